"""Events: one per state change a merchant cares about, stored with the change, then queued
for webhook delivery."""

from __future__ import annotations

from typing import Any

from paycore.clock import now_rfc3339
from paycore.dal.notification_queue import enqueue_event
from paycore.dal.trade_store import TradeStore
from paycore.domain.models import Event
from paycore.errors import NotFound
from paycore.ids import derived_id, has_prefix

ORDER_PAID = "order.paid"
ORDER_CLOSED = "order.closed"
ORDER_CONFIRMED = "order.confirmed"
PAYMENT_FAILED = "payment.failed"
REFUND_SUCCEEDED = "refund.succeeded"
REFUND_FAILED = "refund.failed"


def event_id(cause_id: str, event_type: str) -> str:
    """Events' ids derive from (cause, type): a retried state change finds its event instead
    of making a second one."""
    return derived_id("evt", cause_id, event_type)


def event_for(event_type: str, merchant_id: str, cause_id: str, obj: dict[str, Any]) -> Event:
    """The event of one state change (see ``event_id``)."""
    return Event(
        id=event_id(cause_id, event_type),
        merchant_id=merchant_id,
        type=event_type,
        created_at=now_rfc3339(),
        data_object=obj,
    )


def publish(event: Event) -> None:
    """Queue a stored event for delivery (at least once)."""
    enqueue_event(event.id, event.merchant_id)


def get_event(store: TradeStore, merchant_id: str, event_id: str) -> Event:
    event = store.get_event(event_id) if has_prefix(event_id, "evt") else None
    if event is None or event.merchant_id != merchant_id:
        raise NotFound(f"no event {event_id}", code="event_not_found", param="event_id")
    return event


def list_events(
    store: TradeStore, merchant_id: str, *, limit: int, starting_after: str | None
) -> tuple[list[Event], bool]:
    if starting_after is not None:
        try:
            get_event(store, merchant_id, starting_after)
        except NotFound as unknown:  # the cursor names nothing this merchant has
            raise NotFound(unknown.detail, code=unknown.code, param="starting_after") from None
    return store.list_events(merchant_id, limit, starting_after)


def redeliver(store: TradeStore, merchant_id: str, event_id: str) -> Event:
    """Queue an event for delivery again (e.g. after the merchant fixed their endpoint)."""
    event = get_event(store, merchant_id, event_id)
    publish(event)
    return event
