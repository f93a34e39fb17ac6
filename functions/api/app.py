"""Merchant and platform API (API Gateway REST proxy -> Powertools resolver)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from paycore.api.idempotency import IdempotentCommands
from paycore.api.routes import build_app
from paycore.observability import observability
from paycore.services.channels import no_channel_warning

logger, tracer, metrics = observability("api")
commands = IdempotentCommands()
app = build_app(commands)
_cold = True  # the first request of this container says when no channel is configured


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _cold  # noqa: PLW0603 - once per container
    if _cold:
        _cold = False
        if (warning := no_channel_warning()) is not None:
            logger.warning(warning)
    commands.register_context(context)
    merchant_id = (event.get("requestContext", {}).get("authorizer") or {}).get("merchant_id")
    logger.append_keys(merchant_id=merchant_id, path_parameters=event.get("pathParameters"))
    return app.resolve(event, context)
