"""The merchant notification queue: one message per event to deliver."""

from __future__ import annotations

import json

from paycore.aws import client
from paycore.config import get_settings


def enqueue_event(event_id: str, merchant_id: str) -> None:
    """Queue ``event_id`` for webhook delivery. At least once: the notifier tolerates twins."""
    client("sqs").send_message(
        QueueUrl=get_settings().notification_queue_url,
        MessageBody=json.dumps({"event_id": event_id, "merchant_id": merchant_id}),
    )


def extend_visibility(receipt_handle: str, seconds: int) -> None:
    """Hide a message that failed delivery for ``seconds``: the retry backoff."""
    client("sqs").change_message_visibility(
        QueueUrl=get_settings().notification_queue_url,
        ReceiptHandle=receipt_handle,
        VisibilityTimeout=max(0, min(seconds, 43200)),
    )
