"""The hosted cashier (收银台): the buyer's side of one order, reached by its cashier link.

The link's token is the only credential (paycore.domain.cashier). What it opens:

- ``view``: what the page shows: the merchant, the order, where it stands (``CashierState``),
  the payment that started last, and, while the order can be paid, the ways to pay it: the
  channels routing offers for its currency and amount and, when the order names a buyer, that
  buyer's available balance and usable coupons.
- ``choose``: the buyer's choice becomes a payment through ``payments.start_payment``, the very
  function behind ``POST /v1/orders/{id}/payments``, with the same validation and reservations.
  A payment already in flight for the order is answered instead (resumed, never doubled): when
  the order is ``paying`` when read, and when a twin request (a double click, a second tab) won
  the race to start one, which the losing request sees as a conflict on the order.

Once the order is final (paid, refunded, closed or past ``expires_at``) the link only says so:
``choose`` refuses like the API (409 ``order_not_payable`` / ``order_expired``) and ``view``
offers nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from paycore.api.models import CreatePaymentRequest
from paycore.channels.registry import ChannelOffer, offered_channels
from paycore.clock import now, parse_rfc3339
from paycore.dal.instruments import InstrumentStore
from paycore.dal.trade_store import TradeStore
from paycore.domain import cashier
from paycore.domain.instruments import Balance, Coupon
from paycore.domain.models import Merchant, Order, Payment
from paycore.domain.status import OrderStatus
from paycore.errors import Conflict, NotFound, ValidationFailed
from paycore.services import payments


class CashierState(StrEnum):
    """Where the order stands, as the buyer's page tells it."""

    OPEN = "open"  # can be paid now
    PAYING = "paying"  # a payment is in flight: the page shows it and follows it
    PAID = "paid"  # paid (refunds later do not reopen it)
    CLOSED = "closed"  # closed by the merchant, or expired unpaid


_PAID = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED})


def state_of(order: Order) -> CashierState:
    if order.status in _PAID:
        return CashierState.PAID
    if order.status is OrderStatus.PAYING:
        return CashierState.PAYING
    if order.status is OrderStatus.CLOSED or parse_rfc3339(order.expires_at) <= now():
        return CashierState.CLOSED
    return CashierState.OPEN


@dataclass(frozen=True)
class CashierView:
    merchant_name: str
    order: Order
    state: CashierState
    payment: Payment | None  # the payment that started last, if any
    channels: list[ChannelOffer] = field(default_factory=list)  # only while OPEN
    balance: Balance | None = None  # only while OPEN, for an order with a buyer
    coupons: list[Coupon] = field(default_factory=list)  # usable ones, only while OPEN


@dataclass(frozen=True)
class CashierChoice:
    """What the buyer picked: a channel for what is left, the stored balance (as much of it as
    the order needs) and one coupon."""

    channel: str | None
    use_balance: bool = False
    coupon_id: str | None = None
    language: str | None = None  # the page's, when the buyer chose it (kept on the way back)


def order_for(store: TradeStore, token: str) -> Order:
    """The order of a cashier link; 404 ``cashier_not_found`` for anything else (a token of
    the wrong form is refused before any read)."""
    order_id = store.order_id_for_cashier_token(token) if cashier.is_token(token) else None
    order = store.get_order(order_id) if order_id else None
    if order is None:
        raise NotFound("no such payment link", code="cashier_not_found", param="token")
    return order


def latest_payment(store: TradeStore, order: Order) -> Payment | None:
    payment_id = order.current_payment_id or order.last_payment_id
    return store.get_payment(payment_id) if payment_id else None


def view(store: TradeStore, token: str) -> CashierView:
    order = order_for(store, token)
    merchant = store.get_merchant(order.merchant_id)
    state = state_of(order)
    shown = CashierView(_name(merchant), order, state, latest_payment(store, order))
    if state is not CashierState.OPEN:
        return shown
    balance, coupons = None, []
    if order.buyer_id is not None:
        instruments = InstrumentStore(store.table)
        balance = instruments.get_balance(order.merchant_id, order.buyer_id, order.currency)
        coupons = [
            coupon
            for coupon in instruments.list_coupons(order.merchant_id, order.buyer_id)
            if coupon.usable_by(order.merchant_id, order.buyer_id, order.currency)
        ]
    return CashierView(
        shown.merchant_name,
        order,
        state,
        shown.payment,
        channels=offered_channels(order.currency, order.amount),
        balance=balance if balance is not None and balance.available > 0 else None,
        coupons=coupons,
    )


def status(store: TradeStore, token: str) -> tuple[Order, Payment | None]:
    """The order and its latest payment: what the page polls while it follows a payment."""
    order = order_for(store, token)
    return order, latest_payment(store, order)


def choose(
    store: TradeStore,
    token: str,
    choice: CashierChoice,
    *,
    callback_base_url: str,
) -> tuple[Order, Payment, bool]:
    """Start the payment the buyer chose, or resume the one in flight: the order as it is
    now, the payment, and whether it was resumed. The channel sends the buyer back to the
    cashier page (``back=1``: it then returns them to the merchant once paid)."""
    order = order_for(store, token)
    if order.status is OrderStatus.PAYING:
        return _resumed(store, order)
    request = _payment_request(store, order, choice, _way_back(order, choice.language))
    try:
        payment = payments.start_payment(
            store, order.merchant_id, order.id, request, callback_base_url
        )
    except Conflict:
        # Another request started a payment between our read and our write (the same buyer
        # clicking twice, or in two tabs): that payment is the one to show.
        current = store.get_order(order.id)
        if current is not None and current.status is OrderStatus.PAYING:
            return _resumed(store, current)
        raise
    return store.get_order(order.id) or order, payment, False


def _resumed(store: TradeStore, order: Order) -> tuple[Order, Payment, bool]:
    payment = store.get_payment(str(order.current_payment_id))
    if payment is None:  # pragma: no cover - the order and its payment are written together
        raise Conflict("the order's payment is still starting; retry", code="order_not_payable")
    return order, payment, True


def _payment_request(
    store: TradeStore, order: Order, choice: CashierChoice, return_url: str | None
) -> CreatePaymentRequest:
    """The choice as the API's payment request: the coupon and the balance first, the channel
    for the rest; validated by the same model as ``POST /v1/orders/{id}/payments``."""
    instruments: list[dict[str, Any]] = []
    covered = 0
    if choice.coupon_id is not None:
        instruments.append({"type": "coupon", "coupon_id": choice.coupon_id})
        coupon = InstrumentStore(store.table).get_coupon(choice.coupon_id)
        if coupon is not None and coupon.merchant_id == order.merchant_id:
            covered = min(coupon.amount, order.amount)  # start_payment checks it is usable
    if choice.use_balance:
        if order.buyer_id is None:
            raise ValidationFailed(
                "this order names no buyer, so it has no stored balance",
                code="buyer_required",
                param="use_balance",
            )
        found = InstrumentStore(store.table).get_balance(
            order.merchant_id, order.buyer_id, order.currency
        )
        take = min(found.available if found else 0, order.amount - covered)
        if take > 0:
            instruments.append({"type": "balance", "amount": take})
            covered += take
    if choice.channel is not None and covered < order.amount:
        instruments.append({"type": "channel", "channel": choice.channel})
    if not instruments:
        raise ValidationFailed(
            "choose a way to pay: a channel, or a balance or coupon that covers the order",
            code="instrument_amounts_mismatch",
            param="channel",
        )
    return CreatePaymentRequest.model_validate(
        {"instruments": instruments, "return_url": return_url}
    )


def _way_back(order: Order, language: str | None) -> str | None:
    if order.cashier_url is None:  # pragma: no cover - an order without a link has no page
        return None
    query = urlencode({"lang": language, "back": "1"} if language else {"back": "1"})
    return f"{order.cashier_url}?{query}"


def _name(merchant: Merchant | None) -> str:
    return merchant.name if merchant is not None else ""
