"""Each signed channel notification is taken once: a replay of the same signed message within
the freshness window is refused.

A channel re-sends a notification it thinks was lost with a fresh signature (a new timestamp,
nonce or body), so a re-delivery is a new message and is acknowledged again. An attacker who
captured a genuine notification can only send it again byte for byte within the 5 minutes its
signature stays fresh: that exact message, seen a second time, is a replay. Its fingerprint
is a SHA-256 of the body and the signature-bearing headers. A payment's notifications keep
theirs on the payment's item (``TradeStore.take_notification``: the same update reads the
payment); a refund's are kept here, in the idempotency table, with DynamoDB's time to live,
for twice the freshness window (clocks may be off either way).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping

from botocore.exceptions import ClientError

from paycore.aws import client
from paycore.config import get_settings

# Headers that carry or bind a signature (Stripe-Signature, Wechatpay-Signature/-Timestamp/
# -Nonce/-Serial, Sandbox-Signature/-Timestamp); Alipay signs inside the body.
_SIGNED_HEADER_WORDS = ("signature", "timestamp", "nonce", "serial")


def fingerprint(channel: str, account_id: str, headers: Mapping[str, str], body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (channel, account_id):
        digest.update(part.encode() + b"\n")
    for name in sorted(headers):
        if any(word in name.lower() for word in _SIGNED_HEADER_WORDS):
            digest.update(f"{name.lower()}:{headers[name]}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def first_sighting(message_fingerprint: str, window_seconds: int) -> bool:
    """True the first time this signed message is seen within ``window_seconds``."""
    now = int(time.time())
    try:
        client("dynamodb").put_item(
            TableName=get_settings().idempotency_table_name,
            Item={
                "id": {"S": f"notification#{message_fingerprint}"},
                "expiration": {"N": str(now + window_seconds)},
            },
            # TTL deletes lazily: an expired marker counts as absent.
            ConditionExpression="attribute_not_exists(id) OR expiration < :now",
            ExpressionAttributeValues={":now": {"N": str(now)}},
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True
