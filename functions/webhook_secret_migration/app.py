"""Operator tool, run once after upgrading a stack whose merchants were onboarded before
webhook endpoints: moves each such merchant's onboarding ``webhook_secret``, kept in clear on
the merchant item, into its first webhook endpoint, sealed with the stack's KMS key (stack
output ``WebhookSecretMigrationFunctionName``)::

    aws lambda invoke --function-name <name> --cli-binary-format raw-in-base64-out \
        --payload '{}' out.json

It answers ``{"migrated": n, "cursor": {...} | null}``; while ``cursor`` is not null, invoke
it again with ``{"cursor": <that cursor>}``. Running it again is harmless: a merchant already
migrated (by this tool, or by its first webhook since the upgrade) is left as it is.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paycore.dal.trade_store import TradeStore
from paycore.observability import observability
from paycore.services.webhook_endpoints import MigrationRequest, migrate_legacy_secrets

logger, tracer, metrics = observability("webhook_secret_migration")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = MigrationRequest.model_validate(event or {})
    migrated, cursor = migrate_legacy_secrets(TradeStore(), request.cursor)
    metrics.add_metric(name="WebhookSecretsMigrated", unit=MetricUnit.Count, value=migrated)
    logger.info("webhook secrets migrated", extra={"migrated": migrated, "done": cursor is None})
    return {"migrated": migrated, "cursor": cursor}
