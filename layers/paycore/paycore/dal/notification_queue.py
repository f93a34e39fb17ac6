"""The merchant notification queue, and the asynchronous invoke that hands an event's first
delivery to the notifier. Two kinds of message, both JSON:

- ``{"event_id", "merchant_id", "event"}``: an event for the merchant's endpoints (what
  publishing an event sends);
- ``{"event_id", "merchant_id", "endpoint_id", "event"}``: one event for one endpoint, with
  its own receive count, backoff and dead-lettering.

Publishing an event invokes the notifier asynchronously with the first kind as its payload
(Lambda keeps the event, retries a crashed invocation twice, then puts the payload in the
notification queue: the function's dead-letter queue); only when that invoke is refused, or
no notifier is configured, is the event queued. A first attempt that failed is queued with
``"first_attempt_failed": true``: its first receive stands for that attempt (no POST, only
the backoff), so every later receive n is attempt n, as for any other message.

``event`` is the event's public JSON, exactly what is delivered, so the notifier need not
read the event back. It is left out of an event larger than ``MAX_CARRIED_EVENT_BYTES``, and
messages queued before it was carried have none: the notifier reads the event then.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from paycore.aws import client
from paycore.config import get_settings
from paycore.domain.models import Event

# SendMessageBatch takes at most 10 entries.
_BATCH = 10
# Well under SQS's message size limit (256 KiB, ten messages per batch of 256 KiB at most).
MAX_CARRIED_EVENT_BYTES = 16 * 1024


def message_body(event: Event, endpoint_id: str | None = None) -> str:
    """The message that queues ``event`` (for one endpoint, when named)."""
    body: dict[str, object] = {"event_id": event.id, "merchant_id": event.merchant_id}
    if endpoint_id is not None:
        body["endpoint_id"] = endpoint_id
    resource = event.resource()
    if len(json.dumps(resource, separators=(",", ":"))) <= MAX_CARRIED_EVENT_BYTES:
        body["event"] = resource
    return json.dumps(body, separators=(",", ":"))


# Marks a message queued after its first attempt failed in the notifier's direct invocation.
FIRST_ATTEMPT_FAILED = "first_attempt_failed"
# An asynchronous invoke's payload is at most 256 KiB; ours are far smaller (see above).
_ASYNC_INVOKE = "Event"

log = logging.getLogger(__name__)


def dispatch_event(event: Event) -> None:
    """Hand ``event`` to the notifier for delivery, at least once: by an asynchronous invoke
    when a notifier is configured (one call instead of a message that is sent, received and
    deleted), else, or when Lambda refuses the invoke, through the queue. Raises only when
    both fail (the caller's retry publishes again: a twin is harmless, a loss is not)."""
    function = get_settings().notifier_function_name
    if function:
        try:
            client("lambda").invoke(
                FunctionName=function,
                InvocationType=_ASYNC_INVOKE,
                Payload=message_body(event).encode(),
            )
            return
        except (BotoCoreError, ClientError) as exc:
            log.warning(
                "notifier invoke refused; queueing the event instead",
                extra={"event_id": event.id, "error": type(exc).__name__},
            )
    enqueue_event(event)


def enqueue_direct(body: str, *, first_attempt_failed: bool) -> None:
    """Queue the payload of a direct invocation: marked when its first attempt failed (see
    the module docstring); unmarked, and as it is, when it can never succeed (the notifier
    then parks it in the dead-letter queue after its receives)."""
    if first_attempt_failed:
        data = json.loads(body)
        body = json.dumps({**data, FIRST_ATTEMPT_FAILED: True}, separators=(",", ":"))
    client("sqs").send_message(QueueUrl=get_settings().notification_queue_url, MessageBody=body)


def afresh(body: str) -> str:
    """``body`` for a message that starts the schedule afresh (a redrive): without the
    ``first_attempt_failed`` mark, whose first receive would only wait out retry 1's delay."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict) or FIRST_ATTEMPT_FAILED not in data:
        return body
    del data[FIRST_ATTEMPT_FAILED]
    return json.dumps(data, separators=(",", ":"))


def enqueue_event(event: Event) -> None:
    """Queue ``event`` for webhook delivery. At least once: the notifier tolerates twins."""
    client("sqs").send_message(
        QueueUrl=get_settings().notification_queue_url, MessageBody=message_body(event)
    )


def enqueue_deliveries(event: Event, endpoint_ids: Sequence[str]) -> None:
    """Queue one delivery of ``event`` per endpoint. Raises when any could not be queued (the
    caller's retry queues all again: a twin is harmless, a loss is not)."""
    sqs = client("sqs")
    for start in range(0, len(endpoint_ids), _BATCH):
        chunk = endpoint_ids[start : start + _BATCH]
        answer = sqs.send_message_batch(
            QueueUrl=get_settings().notification_queue_url,
            Entries=[
                {"Id": str(index), "MessageBody": message_body(event, endpoint)}
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
