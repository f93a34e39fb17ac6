"""The merchant notification queue. Two kinds of message, both JSON:

- ``{"event_id", "merchant_id"}``: an event to fan out to the merchant's endpoints (what
  publishing an event queues, and what messages queued before endpoints existed look like);
- ``{"event_id", "merchant_id", "endpoint_id"}``: one event for one endpoint, with its own
  receive count, backoff and dead-lettering.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from paycore.aws import client
from paycore.config import get_settings

# SendMessageBatch takes at most 10 entries.
_BATCH = 10


def enqueue_event(event_id: str, merchant_id: str) -> None:
    """Queue ``event_id`` for webhook delivery. At least once: the notifier tolerates twins."""
    client("sqs").send_message(
        QueueUrl=get_settings().notification_queue_url,
        MessageBody=json.dumps({"event_id": event_id, "merchant_id": merchant_id}),
    )


def enqueue_deliveries(event_id: str, merchant_id: str, endpoint_ids: Sequence[str]) -> None:
    """Queue one delivery of ``event_id`` per endpoint. Raises when any could not be queued
    (the caller's retry queues all again: a twin is harmless, a loss is not)."""
    sqs = client("sqs")
    for start in range(0, len(endpoint_ids), _BATCH):
        chunk = endpoint_ids[start : start + _BATCH]
        answer = sqs.send_message_batch(
            QueueUrl=get_settings().notification_queue_url,
            Entries=[
                {
                    "Id": str(index),
                    "MessageBody": json.dumps(
                        {"event_id": event_id, "merchant_id": merchant_id, "endpoint_id": endpoint}
                    ),
                }
                for index, endpoint in enumerate(chunk)
            ],
        )
        if answer.get("Failed"):
            codes = sorted({str(failure.get("Code")) for failure in answer["Failed"]})
            raise RuntimeError(f"{len(answer['Failed'])} deliveries not queued: {codes}")


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
