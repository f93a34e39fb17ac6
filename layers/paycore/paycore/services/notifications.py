"""Webhook delivery: an event delivered to each of the merchant's endpoints, each delivery
with its own retry policy, and the operator's way back from the dead-letter queue.

An event is handed to the notifier once, carrying its JSON (``paycore.dal.notification_queue``):
by an asynchronous invoke (a *direct* delivery), or as a queued message when the invoke was
refused or no notifier is configured. The notifier reads the merchant's endpoints (one Query)
and:

- when exactly one endpoint receives that event type (enabled, subscribed), delivers to it
  right there: that message is then the endpoint's delivery, with the retry policy below;
- when several do, fans it out: one message per endpoint, each ``{..., "endpoint_id"}``. From
  then on every endpoint is on its own: a failing endpoint's retries, backoff and
  dead-lettering never delay or block another's.

Each attempt reads the endpoints anew, so a retry goes where the merchant's endpoints are
then: should a second endpoint subscribe while the only one is failing, the next attempt fans
out and both get a delivery with the whole retry schedule.

The retry policy lives in SQS itself, so no timer or table of pending retries is needed:

- A direct delivery is attempt 1. When it fails (or cannot be read) its message is queued
  marked ``first_attempt_failed``: that message's first receive only hides it for the first
  backoff (no POST), so its receive n is attempt n from then on. A direct invocation that
  crashes is retried by Lambda, then lands in the queue unmarked (its dead-letter queue).
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
- Nothing to do is a success: a merchant with no endpoint receiving the event, an endpoint
  deleted, disabled or unsubscribed since the delivery was queued.

A message without the event's JSON (an event too large to carry, or queued before events were
carried) has its event read from the table.

Every POST is recorded in the event's delivery history (``GET /v1/events/{id}``).
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

from paycore.clock import now_rfc3339
from paycore.config import get_settings
from paycore.dal.notification_dead_letters import BATCH_LIMIT, receive_dead_letters, requeue
from paycore.dal.notification_queue import (
    FIRST_ATTEMPT_FAILED,
    enqueue_deliveries,
    enqueue_direct,
    extend_visibility,
    max_receive_count,
)
from paycore.dal.trade_store import TradeStore
from paycore.dal.webhook_endpoint_store import WebhookEndpointStore
from paycore.domain.models import Event
from paycore.domain.webhook_endpoints import WebhookEndpoint
from paycore.errors import PaycoreError, ValidationFailed
from paycore.ids import has_prefix
from paycore.services.webhook_endpoints import receiving_endpoints, signing_secrets
from paycore.webhooks import DeliveryResult, post_webhook

# Below this, a POST cannot reasonably finish before the invocation ends: do not start it.
MIN_TIMEOUT_SECONDS = 1.0
MAX_REDRIVE_MESSAGES = 1000


class DeliveryOutcome(StrEnum):
    FANNED_OUT = "fanned_out"  # one delivery queued per receiving endpoint (several)
    NO_ENDPOINT = "no_endpoint"  # no endpoint receives it (now): nothing to deliver
    DELIVERED = "delivered"
    FAILED = "failed"  # back to the queue after the backoff (or to the DLQ after the last)
    # The receive that stands for a failed direct first attempt: only its backoff, no POST.
    DEFERRED = "deferred"
    POISON = "poison"  # can never succeed: on its way to the DLQ


@dataclass(frozen=True)
class QueuedNotification:
    """One message of the notification queue as the notifier received it, or the payload of
    a direct (asynchronous) invocation: attempt 1, with no receipt handle."""

    body: str
    receive_count: int
    receipt_handle: str | None = field(repr=False)

    @classmethod
    def direct(cls, body: str) -> QueuedNotification:
        return cls(body=body, receive_count=1, receipt_handle=None)


@dataclass(frozen=True)
class DeliveryReport:
    """What happened to one queued notification, in terms safe to log."""

    outcome: DeliveryOutcome
    attempt: int  # the message's receive count
    event_id: str | None = None
    event_type: str | None = None
    merchant_id: str | None = None
    endpoint_id: str | None = None
    endpoints: int | None = None  # how many deliveries a fan-out queued
    status_code: int | None = None
    error: str | None = None
    # After a failure: the delay before the next attempt; None when no attempt is left.
    retry_in_seconds: int | None = None

    @property
    def settled(self) -> bool:
        """True when the message is done with and may be deleted from the queue."""
        return self.outcome in {
            DeliveryOutcome.FANNED_OUT,
            DeliveryOutcome.NO_ENDPOINT,
            DeliveryOutcome.DELIVERED,
        }

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


@dataclass(frozen=True)
class _Message:
    event_id: str
    merchant_id: str
    endpoint_id: str | None
    event: Event | None  # carried in the message; None: read it
    first_attempt_failed: bool = False


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
    """Deliver the event ``message`` names to the one endpoint that receives it (or that the
    message names), or fan it out to several, and arrange the retry of a failed delivery (see
    the module docstring). ``time_budget`` is how many seconds the caller can still wait: the
    HTTP timeout shrinks to fit it, and without enough time the attempt counts as failed
    without a request, rather than being cut off by the end of the invocation."""
    try:
        read = _read_body(message.body)
        if read.first_attempt_failed and message.receive_count == 1:
            return DeliveryReport(
                DeliveryOutcome.DEFERRED,
                message.receive_count,
                event_id=read.event_id,
                merchant_id=read.merchant_id,
                endpoint_id=read.endpoint_id,
                retry_in_seconds=_hold_back(message),
            )
        event = read.event if read.event is not None else _load_event(store, read)
    except _Poison as poison:
        _release(message)
        return DeliveryReport(
            DeliveryOutcome.POISON,
            message.receive_count,
            event_id=poison.event_id,
            error=poison.reason,
        )
    if read.endpoint_id is None:
        return _fan_out(store, message, event, time_budget)
    endpoint_id = read.endpoint_id
    endpoint = WebhookEndpointStore.of(store).get_endpoint(event.merchant_id, endpoint_id)
    if endpoint is None or not endpoint.receives(event.type):
        return _report(DeliveryOutcome.NO_ENDPOINT, message, event, endpoint_id=endpoint_id)
    return _deliver(store, message, event, endpoint, time_budget)


def _read_body(body: str) -> _Message:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise _Poison("message body is not JSON") from exc
    if not isinstance(data, dict):
        raise _Poison("message body names no event id")
    event_id, merchant_id = data.get("event_id"), data.get("merchant_id")
    if not isinstance(event_id, str) or not has_prefix(event_id, "evt"):
        raise _Poison("message body names no event id")
    endpoint_id = data.get("endpoint_id")
    if endpoint_id is not None and not (
        isinstance(endpoint_id, str) and has_prefix(endpoint_id, "we")
    ):
        raise _Poison("message body names no webhook endpoint id", event_id)
    failed = data.get(FIRST_ATTEMPT_FAILED, False)
    if not isinstance(failed, bool):
        raise _Poison(f"{FIRST_ATTEMPT_FAILED} is not a boolean", event_id)
    carried = data.get("event")
    if carried is None:
        return _Message(event_id, str(merchant_id), endpoint_id, None, failed)
    if not isinstance(merchant_id, str) or not has_prefix(merchant_id, "mch"):
        raise _Poison("message body names no merchant id", event_id)
    return _Message(
        event_id,
        merchant_id,
        endpoint_id,
        _carried_event(carried, event_id, merchant_id),
        failed,
    )


def _carried_event(carried: object, event_id: str, merchant_id: str) -> Event:
    """The event from its public JSON (``Event.resource()``) carried in the message."""
    if (
        isinstance(carried, dict)
        and carried.keys() == {"id", "object", "type", "created_at", "data"}
        and carried["id"] == event_id
        and carried["object"] == "event"
        and isinstance(carried["type"], str)
        and isinstance(carried["created_at"], str)
        and isinstance(carried["data"], dict)
        and carried["data"].keys() == {"object"}
        and isinstance(carried["data"]["object"], dict)
    ):
        return Event(
            id=event_id,
            merchant_id=merchant_id,
            type=carried["type"],
            created_at=carried["created_at"],
            data_object=carried["data"]["object"],
        )
    raise _Poison("the message carries a malformed event", event_id)


def _load_event(store: TradeStore, message: _Message) -> Event:
    event = store.get_event(message.event_id)
    if event is None:
        raise _Poison("no such event", message.event_id)
    if event.merchant_id != message.merchant_id:
        raise _Poison("the message names another merchant than the event's", event.id)
    return event


def _fan_out(
    store: TradeStore, message: QueuedNotification, event: Event, time_budget: float | None
) -> DeliveryReport:
    endpoints = receiving_endpoints(store, event.merchant_id, event.type)
    if endpoints is None:
        _release(message)
        return DeliveryReport(
            DeliveryOutcome.POISON,
            message.receive_count,
            event_id=event.id,
            error="the event's merchant does not exist",
        )
    if not endpoints:
        return _report(DeliveryOutcome.NO_ENDPOINT, message, event)
    if len(endpoints) == 1:
        return _deliver(store, message, event, endpoints[0], time_budget)
    enqueue_deliveries(event, [endpoint.id for endpoint in endpoints])
    return _report(DeliveryOutcome.FANNED_OUT, message, event, endpoints=len(endpoints))


def _deliver(
    store: TradeStore,
    message: QueuedNotification,
    event: Event,
    endpoint: WebhookEndpoint,
    time_budget: float | None,
) -> DeliveryReport:
    """One attempt to deliver ``event`` to ``endpoint``; a failure hides the message for its
    backoff (or releases it to the dead-letter queue after the last attempt)."""
    result = _attempt(store, event, endpoint, time_budget)
    if result.delivered:
        return _report(
            DeliveryOutcome.DELIVERED, message, event, endpoint_id=endpoint.id, result=result
        )
    return _report(
        DeliveryOutcome.FAILED,
        message,
        event,
        endpoint_id=endpoint.id,
        result=result,
        retry_in=_hold_back(message),
    )


def _attempt(
    store: TradeStore, event: Event, endpoint: WebhookEndpoint, time_budget: float | None
) -> DeliveryResult:
    settings = get_settings()
    timeout = settings.webhook_timeout_seconds
    if time_budget is not None:
        timeout = min(timeout, time_budget)
    if timeout < MIN_TIMEOUT_SECONDS:
        return DeliveryResult(delivered=False, error="no time left in this invocation")
    at = now_rfc3339()
    result = post_webhook(
        endpoint.url,
        signing_secrets(endpoint, at),
        event.id,
        event_body(event),
        timeout=timeout,
        allow_private_targets=settings.webhook_allow_private_targets,
    )
    WebhookEndpointStore.of(store).record_attempt(
        event.id,
        endpoint.id,
        at,
        status_code=result.status_code,
        error=None if result.status_code is not None else result.error,
    )
    return result


def _hold_back(message: QueuedNotification) -> int | None:
    """Hide a failed message for its backoff; after the last attempt, release it at once so
    SQS parks it in the dead-letter queue. Returns the backoff, or None after the last. A
    failed direct delivery is queued instead (its first receive then holds it back)."""
    last_attempt = max_receive_count()
    last = last_attempt is not None and message.receive_count >= last_attempt
    seconds = (
        None
        if last
        else backoff_seconds(get_settings().webhook_retry_schedule, message.receive_count)
    )
    if message.receipt_handle is None:
        enqueue_direct(message.body, first_attempt_failed=True)
    else:
        extend_visibility(message.receipt_handle, seconds or 0)
    return seconds


def _release(message: QueuedNotification) -> None:
    """Let a message that can never succeed reach the dead-letter queue at once (a direct
    one by way of the queue, which parks it after its receives)."""
    if message.receipt_handle is None:
        enqueue_direct(message.body, first_attempt_failed=False)
    else:
        extend_visibility(message.receipt_handle, 0)


def _report(
    outcome: DeliveryOutcome,
    message: QueuedNotification,
    event: Event,
    *,
    endpoint_id: str | None = None,
    endpoints: int | None = None,
    result: DeliveryResult | None = None,
    retry_in: int | None = None,
) -> DeliveryReport:
    return DeliveryReport(
        outcome,
        message.receive_count,
        event_id=event.id,
        event_type=event.type,
        merchant_id=event.merchant_id,
        endpoint_id=endpoint_id,
        endpoints=endpoints,
        status_code=result.status_code if result else None,
        error=result.error if result else None,
        retry_in_seconds=retry_in,
    )


class RedriveRequest(BaseModel):
    """What an operator asks the redrive function for (its invocation payload)."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

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
