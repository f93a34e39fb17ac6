"""Closing orders: on the merchant's request and, at ``expires_at``, by the expiry sweeper.

An unpaid order closes with an ``order.closed`` event. An order whose payment is in flight
closes only after its channel order is closed: if the buyer paid first, the payment succeeds
and the close is refused (409 ``order_not_closable``); otherwise the payment fails, releasing
what it reserved, and the order closes in the same transaction. Either way nothing is charged
for a closed order, and a paid order is never closed.
"""

from __future__ import annotations

import logging

from paycore.clock import now_rfc3339
from paycore.dal.trade_store import TradeStore
from paycore.domain.changes import OrderClosing
from paycore.domain.models import Order
from paycore.domain.status import OrderStatus
from paycore.errors import ConcurrentUpdate, PaycoreError
from paycore.services import events
from paycore.services.orchestration import PaymentSteps
from paycore.services.orders import get_order

logger = logging.getLogger(__name__)

_ATTEMPTS = 5


def close_order(store: TradeStore, merchant_id: str, order_id: str) -> Order:
    """Close an unpaid order on the merchant's request. Closing twice is fine; a paid order
    is a 409."""
    get_order(store, merchant_id, order_id)  # 404 for another merchant's order
    return _close(
        store, order_id, "order_closed", "the merchant closed the order before it was paid"
    )


def close_expired_order(store: TradeStore, order_id: str) -> Order | None:
    """Close an order that reached ``expires_at`` unpaid; None if it was paid meanwhile."""
    try:
        return _close(
            store, order_id, "order_expired", "the buyer did not pay before the order expired"
        )
    except PaycoreError as exc:
        if exc.code == "order_not_closable":
            return None
        raise


def expire_orders(store: TradeStore) -> dict[str, int]:
    """One sweep: close every open order past its ``expires_at``. An order that cannot be
    closed now (its channel is unreachable, its payment is still starting) stays open and is
    tried again by the next sweep."""
    closed = skipped = failed = 0
    for order_id in store.expired_order_ids(now_rfc3339()):
        try:
            if close_expired_order(store, order_id) is None:
                skipped += 1
            else:
                closed += 1
        except PaycoreError as exc:
            failed += 1
            logger.warning("order %s not closed yet: %s (%s)", order_id, exc.code, exc.detail)
    return {"closed": closed, "paid_meanwhile": skipped, "retry_later": failed}


def _close(store: TradeStore, order_id: str, code: str, message: str) -> Order:
    for _ in range(_ATTEMPTS):
        order = store.get_order(order_id)
        if order is None:  # pragma: no cover - checked by the callers
            raise ConcurrentUpdate(f"order {order_id} vanished")
        try:
            match order.status:
                case OrderStatus.CLOSED:
                    _republish_closed(store, order)
                    return order
                case OrderStatus.PAYING:
                    return PaymentSteps(store).close_paying_order(order, code, message)
                case _:
                    closed = order.close(now_rfc3339())
                    event = events.event_for(
                        events.ORDER_CLOSED, order.merchant_id, order.id, closed.resource()
                    )
                    saved = store.close_order(OrderClosing(closed, event))
                    events.publish(event)
                    return saved
        except ConcurrentUpdate:
            continue  # a payment started or settled meanwhile: look again
    raise ConcurrentUpdate(f"order {order_id} keeps changing; retry the close")


def _republish_closed(store: TradeStore, order: Order) -> None:
    """A retried close: queue its event again in case the first try stopped between the
    write and the queue (delivery is at least once; receivers dedupe on webhook-id)."""
    earlier = store.get_event(events.event_id(order.id, events.ORDER_CLOSED))
    if earlier is not None:
        events.publish(earlier)
