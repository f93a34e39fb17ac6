"""Channel notifications at ``POST /callbacks/{channel}/{account}``: read the raw body, verify
it with that account's keys, then resume the waiting payment or refund.

Whatever a stranger sends gets a 4xx, never a 5xx: headers over
``MAX_NOTIFICATION_HEADER_BYTES`` are a 431 and a body over ``MAX_NOTIFICATION_BYTES`` a 413,
both before anything is parsed; a body that is not valid base64 (``isBase64Encoded``) a 400;
an unknown channel or account a 404; anything that does not verify a 401. Only a dependency
outage (Secrets Manager, DynamoDB, Step Functions) answers 5xx, which makes the channel retry.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from paycore.api.problem import PROBLEM_CONTENT_TYPE, error_body, problem_body
from paycore.channels.base import MAX_NOTIFICATION_BYTES, MAX_NOTIFICATION_HEADER_BYTES
from paycore.dal.trade_store import TradeStore
from paycore.errors import PaycoreError
from paycore.observability import observability
from paycore.services.callbacks import handle_notification

logger, tracer, metrics = observability("channel_callback")
_BASE64_LIMIT = (MAX_NOTIFICATION_BYTES + 2) // 3 * 4


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    path = event.get("pathParameters") or {}
    channel, account = str(path.get("channel", "")), str(path.get("account", ""))
    logger.append_keys(channel=channel, channel_account=account)
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    if sum(len(k) + len(v) for k, v in headers.items()) > MAX_NOTIFICATION_HEADER_BYTES:
        return _refusal(431, "headers_too_large", "The notification's headers are too large.")
    text = str(event.get("body") or "")
    encoded = bool(event.get("isBase64Encoded"))
    # Refused before decoding: base64 writes 3 bytes as 4 characters, and UTF-8 text has at
    # least as many bytes as characters.
    if len(text) > (_BASE64_LIMIT if encoded else MAX_NOTIFICATION_BYTES):
        return _refusal(413, "payload_too_large", "The notification body is too large.")
    try:
        body = (
            base64.b64decode(text, validate=True)
            if encoded
            else text.encode("utf-8", "surrogatepass")
        )
    except (binascii.Error, ValueError):
        return _refusal(400, "malformed_body", "The body is not valid base64.")
    if len(body) > MAX_NOTIFICATION_BYTES:
        return _refusal(413, "payload_too_large", "The notification body is too large.")
    try:
        ack, object_id = handle_notification(TradeStore(), channel, account, headers, body)
    except PaycoreError as error:
        logger.warning("notification refused", extra={"code": error.code})
        status, problem = error_body(error)
        return _answer(status, PROBLEM_CONTENT_TYPE, json.dumps(problem))
    logger.info("notification accepted", extra={"object_id": object_id})
    return _answer(ack.status_code, ack.content_type, ack.body)


def _refusal(status: int, code: str, detail: str) -> dict[str, Any]:
    logger.warning("notification refused", extra={"code": code})
    return _answer(status, PROBLEM_CONTENT_TYPE, json.dumps(problem_body(status, code, detail)))


def _answer(status: int, content_type: str, body: str) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": content_type}, "body": body}
