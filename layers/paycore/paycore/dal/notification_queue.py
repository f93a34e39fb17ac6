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


def max_receive_count() -> int | None:
    """Receives the queue allows before SQS parks a message in the dead-letter queue (its
    redrive policy's maxReceiveCount), or None when it has no redrive policy."""
    answer = client("sqs").get_queue_attributes(
        QueueUrl=get_settings().notification_queue_url, AttributeNames=["RedrivePolicy"]
    )
    policy = answer.get("Attributes", {}).get("RedrivePolicy")
    return int(json.loads(policy)["maxReceiveCount"]) if policy else None
