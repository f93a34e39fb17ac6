"""API Gateway TOKEN authorizer: a merchant API key (looked up by its hash) or the platform
admin token. Passes ``role`` and ``merchant_id`` on to the routes."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from paycore.auth import authorize
from paycore.observability import observability

logger, tracer, metrics = observability("authorizer")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return authorize(str(event.get("authorizationToken") or ""), str(event["methodArn"]))
