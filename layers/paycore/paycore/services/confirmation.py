"""Guaranteed trade (担保交易): confirming a paid order, by the merchant when the buyer has the
goods, or by the auto-confirm sweep once ``auto_confirm_at`` passed.

Confirmation is not a status change: the order stays ``paid`` (or ``partially_refunded``), gets
``confirmed_at`` and an ``order.confirmed`` event, and what the merchant still holds from its
payment moves from escrow to pending, all in one transaction. The sweep works like order
expiry: the sparse index lists paid guaranteed orders by their deadline, so a run reads only
the orders due; no per-order timer.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from paycore.clock import now_rfc3339
from paycore.config import get_settings
from paycore.dal.trade_store import TradeStore
from paycore.domain.changes import TradeConfirmation
from paycore.domain.models import Order
from paycore.errors import ConcurrentUpdate, NotFound, PaycoreError
from paycore.services import events
from paycore.services.orders import get_order

logger = Logger(child=True)  # the calling function's logger (its service and keys)

_ATTEMPTS = 5


def confirm_order(store: TradeStore, merchant_id: str, order_id: str) -> Order:
    """The merchant confirms its guaranteed order: 409 ``order_not_confirmable`` for an instant
    order, one not paid, one confirmed already or one refunded in full."""
    get_order(store, merchant_id, order_id)  # 404 for another merchant's order
    return _confirm(store, order_id)


def _confirm(store: TradeStore, order_id: str) -> Order:
    for _ in range(_ATTEMPTS):
        order = store.get_order(order_id)
        if order is None:  # pragma: no cover - checked by the callers
            raise NotFound(f"no order {order_id}", code="order_not_found")
        at = now_rfc3339()
        # Refuses what cannot be confirmed; its money is due a settlement delay from today.
        confirmed = order.confirm(at, time_zone=get_settings().settlement_time_zone)
        payment = store.get_payment(str(order.current_payment_id))
        if payment is None:  # pragma: no cover - a paid order has its payment
            raise NotFound(f"order {order_id} has no payment", code="payment_not_found")
        event = events.event_for(
            events.ORDER_CONFIRMED, order.merchant_id, order.id, confirmed.resource()
        )
        try:
            saved = store.confirm_order(TradeConfirmation.of(confirmed, payment, event))
        except ConcurrentUpdate:
            continue  # refunded or confirmed meanwhile: look again
        events.publish(event)
        return saved
    raise ConcurrentUpdate(f"order {order_id} keeps changing; retry the confirmation")


def auto_confirm_orders(store: TradeStore) -> dict[str, int]:
    """One sweep: confirm every paid guaranteed order past its ``auto_confirm_at``. An order
    that cannot be confirmed now is left for the next sweep (a write that keeps losing races)
    or has left the index (confirmed or refunded meanwhile)."""
    confirmed = skipped = failed = 0
    for order_id in store.orders_to_confirm(now_rfc3339()):
        try:
            _confirm(store, order_id)
            confirmed += 1
        except PaycoreError as exc:
            if exc.code == "order_not_confirmable":
                skipped += 1
                continue
            failed += 1
            logger.warning(
                "order not confirmed yet", extra={"order_id": order_id, "code": exc.code}
            )
    return {"confirmed": confirmed, "not_confirmable": skipped, "retry_later": failed}
