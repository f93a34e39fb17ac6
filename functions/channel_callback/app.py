"""Channel notifications: verify the signature, then resume the waiting payment."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from paycore.api.problem import PROBLEM_CONTENT_TYPE, error_body
from paycore.dal.trade_store import TradeStore
from paycore.errors import PaycoreError
from paycore.observability import observability
from paycore.services.callbacks import handle_notification

logger, tracer, metrics = observability("channel_callback")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    channel = str((event.get("pathParameters") or {}).get("channel", ""))
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    try:
        ack, payment_id = handle_notification(
            TradeStore(), channel, headers, str(event.get("body") or "").encode()
        )
    except PaycoreError as error:
        logger.warning("notification refused", extra={"channel": channel, "code": error.code})
        status, body = error_body(error)
        return {
            "statusCode": status,
            "headers": {"Content-Type": PROBLEM_CONTENT_TYPE},
            "body": json.dumps(body),
        }
    logger.info("notification accepted", extra={"channel": channel, "payment_id": payment_id})
    return {
        "statusCode": ack.status_code,
        "headers": {"Content-Type": ack.content_type},
        "body": ack.body,
    }
