"""Events: one per state change a merchant cares about, stored with the change, then queued
for webhook delivery."""

from __future__ import annotations

from typing import Any

from paycore.clock import now_rfc3339
from paycore.dal.notification_queue import dispatch_event, enqueue_deliveries
from paycore.dal.trade_store import TradeStore
from paycore.dal.webhook_endpoint_store import WebhookEndpointStore
from paycore.domain.models import Event
from paycore.domain.webhook_endpoints import DeliveryAttempt
from paycore.errors import Conflict, NotFound
from paycore.ids import derived_id, has_prefix
from paycore.services import webhook_endpoints

ORDER_PAID = "order.paid"
ORDER_CLOSED = "order.closed"
ORDER_CONFIRMED = "order.confirmed"
PAYMENT_FAILED = "payment.failed"
REFUND_SUCCEEDED = "refund.succeeded"
REFUND_FAILED = "refund.failed"
# Every type above: what a webhook endpoint may subscribe to (besides "*").
EVENT_TYPES = (
    ORDER_PAID,
    ORDER_CLOSED,
    ORDER_CONFIRMED,
    PAYMENT_FAILED,
    REFUND_SUCCEEDED,
    REFUND_FAILED,
)


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
    """Hand a stored event to the notifier for delivery (at least once)."""
    dispatch_event(event)


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


def delivery_attempts(store: TradeStore, event: Event) -> list[DeliveryAttempt]:
    """Every attempt to deliver ``event`` to any endpoint (the newest 50 per endpoint),
    newest first."""
    return WebhookEndpointStore.of(store).delivery_attempts(event.id)


def redeliver(
    store: TradeStore, merchant_id: str, event_id: str, endpoint_id: str | None = None
) -> Event:
    """Queue an event for delivery again (e.g. after the merchant fixed their endpoint): to
    every endpoint that receives it, or to ``endpoint_id`` only. Each delivery gets the whole
    retry schedule again."""
    event = get_event(store, merchant_id, event_id)
    if endpoint_id is None:
        publish(event)
        return event
    endpoint = webhook_endpoints.get_endpoint(store, merchant_id, endpoint_id)
    if endpoint.disabled:
        raise Conflict(
            f"webhook endpoint {endpoint.id} is disabled", code="webhook_endpoint_disabled"
        )
    if not endpoint.subscribes_to(event.type):
        raise Conflict(
            f"webhook endpoint {endpoint.id} does not subscribe to {event.type}",
            code="webhook_endpoint_not_subscribed",
        )
    enqueue_deliveries(event, [endpoint.id])
    return event
