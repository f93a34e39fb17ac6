"""Webhook delivery: one queued event to its merchant, the retry policy around it, and the
operator's way back from the dead-letter queue.

The retry policy lives in SQS itself, so no timer or table of pending retries is needed:

- Attempt n is the message's ``ApproximateReceiveCount`` (1 on the first delivery).
- A failed attempt n hides the message for ``WEBHOOK_RETRY_SCHEDULE[n-1]`` seconds (the last
  value repeats if the queue allows more attempts than the schedule has entries), then the
  record is reported failed, so SQS hands it out again once that delay is over.
- The attempt numbered ``maxReceiveCount`` (the template's ``WebhookMaxAttempts``) is the
  last: on failure it is made visible at once, so SQS moves it to the dead-letter queue on the
  next receive instead of after a backoff that leads nowhere. The DLQ alarm then fires.
- A poison message (a body that is not ours, an unknown event or merchant) cannot succeed on
  any retry. It is made visible at once as well, burns through its receives in seconds and
  lands in the dead-letter queue: never dropped, always in front of an operator.
- A merchant without a ``webhook_url`` has nothing to deliver: that is a success.

``redrive_dead_letters`` moves parked messages back to the notification queue as new
messages, so they get the whole schedule again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from paycore.config import get_settings
from paycore.dal.notification_dead_letters import BATCH_LIMIT, receive_dead_letters, requeue
from paycore.dal.notification_queue import extend_visibility, max_receive_count
from paycore.dal.trade_store import TradeStore
from paycore.domain.models import Event, Merchant
from paycore.errors import PaycoreError, ValidationFailed
from paycore.ids import has_prefix
from paycore.webhooks import DeliveryResult, post_webhook

# Below this, a POST cannot reasonably finish before the invocation ends: do not start it.
MIN_TIMEOUT_SECONDS = 1.0
MAX_REDRIVE_MESSAGES = 1000


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    NO_WEBHOOK_URL = "no_webhook_url"
    FAILED = "failed"  # back to the queue after the backoff (or to the DLQ after the last)
    POISON = "poison"  # can never succeed: on its way to the DLQ


@dataclass(frozen=True)
class QueuedNotification:
    """One message of the notification queue as the notifier received it."""

    body: str
    receive_count: int
    receipt_handle: str = field(repr=False)


@dataclass(frozen=True)
class DeliveryReport:
    """What happened to one queued notification, in terms safe to log."""

    outcome: DeliveryOutcome
    attempt: int
    event_id: str | None = None
    event_type: str | None = None
    merchant_id: str | None = None
    status_code: int | None = None
    error: str | None = None
    # After a failure: the delay before the next attempt; None when no attempt is left.
    retry_in_seconds: int | None = None

    @property
    def settled(self) -> bool:
        """True when the message is done with and may be deleted from the queue."""
        return self.outcome in {DeliveryOutcome.DELIVERED, DeliveryOutcome.NO_WEBHOOK_URL}

    def log_keys(self) -> dict[str, object]:
        return {key: value for key, value in asdict(self).items() if value is not None}


class NotificationNotSettled(PaycoreError):
    """The notifier raises it for a record that must stay in the queue (failed or poison)."""

    code = "notification_not_settled"


class _Poison(Exception):
    def __init__(self, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id


def backoff_seconds(schedule: Sequence[int], attempt: int) -> int:
    """Seconds to wait after failed attempt ``attempt`` (1-based) before retry ``attempt``:
    ``schedule[attempt - 1]``, the last value repeating once the schedule runs out."""
    if not schedule:
        raise ValueError("the webhook retry schedule is empty")
    if attempt < 1:
        raise ValueError("attempts count from 1")
    return schedule[min(attempt, len(schedule)) - 1]


def event_body(event: Event) -> bytes:
    """The exact bytes delivered (and signed): the event's public JSON, compact."""
    return json.dumps(event.resource(), separators=(",", ":")).encode()


def deliver_notification(
    store: TradeStore, message: QueuedNotification, *, time_budget: float | None = None
) -> DeliveryReport:
    """Deliver the event ``message`` names to its merchant and arrange the retry if that
    failed (see the module docstring). ``time_budget`` is how many seconds the caller can
    still wait: the HTTP timeout shrinks to fit it, and without enough time the attempt counts
    as failed without a request, rather than being cut off by the end of the invocation."""
    try:
        event, merchant = _load(store, message.body)
    except _Poison as poison:
        extend_visibility(message.receipt_handle, 0)
        return DeliveryReport(
            DeliveryOutcome.POISON,
            message.receive_count,
            event_id=poison.event_id,
            error=poison.reason,
        )
    if not merchant.webhook_url:
        return _report(DeliveryOutcome.NO_WEBHOOK_URL, message, event)
    result = _attempt(store, event, merchant, merchant.webhook_url, time_budget)
    if result.delivered:
        return _report(DeliveryOutcome.DELIVERED, message, event, result)
    retry_in = _hold_back(message)
    return _report(DeliveryOutcome.FAILED, message, event, result, retry_in)


def _read_body(body: str) -> tuple[str, object]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise _Poison("message body is not JSON") from exc
    event_id = data.get("event_id") if isinstance(data, dict) else None
    if not isinstance(event_id, str) or not has_prefix(event_id, "evt"):
        raise _Poison("message body names no event id")
    return event_id, data.get("merchant_id")


def _load(store: TradeStore, body: str) -> tuple[Event, Merchant]:
    event_id, merchant_id = _read_body(body)
    event = store.get_event(event_id)
    if event is None:
        raise _Poison("no such event", event_id)
    if event.merchant_id != merchant_id:
        raise _Poison("the message names another merchant than the event's", event_id)
    merchant = store.get_merchant(event.merchant_id)
    if merchant is None:
        raise _Poison("the event's merchant does not exist", event_id)
    return event, merchant


def _attempt(
    store: TradeStore, event: Event, merchant: Merchant, url: str, time_budget: float | None
) -> DeliveryResult:
    settings = get_settings()
    timeout = settings.webhook_timeout_seconds
    if time_budget is not None:
        timeout = min(timeout, time_budget)
    if timeout < MIN_TIMEOUT_SECONDS:
        return DeliveryResult(delivered=False, error="no time left in this invocation")
    result = post_webhook(
        url,
        [merchant.webhook_secret],
        event.id,
        event_body(event),
        timeout=timeout,
        allow_private_targets=settings.webhook_allow_private_targets,
    )
    store.record_delivery(event.id, delivered=result.delivered, status_code=result.status_code)
    return result


def _hold_back(message: QueuedNotification) -> int | None:
    """Hide a failed message for its backoff; after the last attempt, release it at once so
    SQS parks it in the dead-letter queue. Returns the backoff, or None after the last."""
    last_attempt = max_receive_count()
    if last_attempt is not None and message.receive_count >= last_attempt:
        extend_visibility(message.receipt_handle, 0)
        return None
    seconds = backoff_seconds(get_settings().webhook_retry_schedule, message.receive_count)
    extend_visibility(message.receipt_handle, seconds)
    return seconds


def _report(
    outcome: DeliveryOutcome,
    message: QueuedNotification,
    event: Event,
    result: DeliveryResult | None = None,
    retry_in: int | None = None,
) -> DeliveryReport:
    return DeliveryReport(
        outcome,
        message.receive_count,
        event_id=event.id,
        event_type=event.type,
        merchant_id=event.merchant_id,
        status_code=result.status_code if result else None,
        error=result.error if result else None,
        retry_in_seconds=retry_in,
    )


class RedriveRequest(BaseModel):
    """What an operator asks the redrive function for (its invocation payload)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_messages: Annotated[int, Field(ge=1, le=MAX_REDRIVE_MESSAGES)] = 100


def redrive_dead_letters(max_messages: int) -> int:
    """Move up to ``max_messages`` parked webhooks back to the notification queue, where each
    starts the retry schedule afresh. Returns how many moved; bounded so one call cannot run
    past its Lambda timeout, and stops early when the dead-letter queue is empty."""
    if not 1 <= max_messages <= MAX_REDRIVE_MESSAGES:
        raise ValidationFailed(
            f"max_messages must be between 1 and {MAX_REDRIVE_MESSAGES}", param="max_messages"
        )
    moved = 0
    for _ in range(math.ceil(max_messages / BATCH_LIMIT)):
        letters = receive_dead_letters(max_messages - moved)
        if not letters:
            break
        moved += requeue(letters)
        if moved >= max_messages:
            break
    return moved
