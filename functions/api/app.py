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
# Answers are not traced: some carry what must not leave the function (an API key shown once,
# a cashier link, which is a credential).
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _cold  # noqa: PLW0603 - once per container
    if _cold:
        _cold = False
        if (warning := no_channel_warning()) is not None:
            logger.warning(warning)
    commands.register_context(context)
    merchant_id = (event.get("requestContext", {}).get("authorizer") or {}).get("merchant_id")
    logger.append_keys(merchant_id=merchant_id, path_parameters=_loggable(event))
    return app.resolve(event, context)


def _loggable(event: dict[str, Any]) -> dict[str, Any] | None:
    """The path parameters, less a cashier link's token (the link's only credential)."""
    parameters = event.get("pathParameters")
    if not parameters or "token" not in parameters:
        return parameters
    return {**parameters, "token": "<redacted>"}
