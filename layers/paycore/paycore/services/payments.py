"""Starting a payment and reading it back (the API side of the payment flow)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from paycore.channels.registry import routed_gateways
from paycore.clock import now, now_rfc3339, parse_rfc3339
from paycore.config import get_settings
from paycore.dal.instruments import InstrumentStore
from paycore.dal.trade_store import TradeStore, order_snapshot, payment_snapshot
from paycore.dal.workflow import start_payment_execution
from paycore.domain.changes import PaymentSettlement, PaymentStart
from paycore.domain.models import Order, Payment
from paycore.domain.status import OrderStatus, PaymentStatus
from paycore.errors import Conflict, NotFound, PaycoreError, ServiceUnavailable, ValidationFailed
from paycore.ids import has_prefix, new_id
from paycore.ledger.fees import fee_for
from paycore.services import events
from paycore.services.orders import get_order

if TYPE_CHECKING:  # the API's request models; the workers that settle payments never load them
    from paycore.api.models import ChannelInstrument, CreatePaymentRequest


def get_payment(store: TradeStore, merchant_id: str, payment_id: str) -> Payment:
    payment = store.get_payment(payment_id) if has_prefix(payment_id, "pay") else None
    if payment is None or payment.merchant_id != merchant_id:
        raise NotFound(f"no payment {payment_id}", code="payment_not_found", param="payment_id")
    return payment


@dataclass(frozen=True)
class _Plan:
    """How a payment splits the order amount over its instruments."""

    coupon_id: str | None
    coupon_amount: int
    coupon_face_value: int
    balance_amount: int
    channel: ChannelInstrument | None
    channel_amount: int


def _plan(store: TradeStore, order: Order, request: CreatePaymentRequest) -> _Plan:
    """Check that the instruments add up to the order amount and can be used by its buyer;
    every refusal here is a 4xx and nothing has been written yet."""
    from paycore.api.models import (  # noqa: PLC0415 - the API loads them; workers do not
        BalanceInstrument,
        ChannelInstrument,
        CouponInstrument,
    )

    coupon = request.instrument(CouponInstrument)
    balance = request.instrument(BalanceInstrument)
    channel = request.instrument(ChannelInstrument)
    if (coupon or balance) and order.buyer_id is None:
        raise ValidationFailed(
            "balance and coupon instruments need an order with a buyer_id",
            code="buyer_required",
            param="instruments",
        )
    coupon_amount = coupon_face_value = 0
    if coupon is not None:
        found = InstrumentStore(store.table).get_coupon(coupon.coupon_id)
        if found is None or found.merchant_id != order.merchant_id:
            raise ValidationFailed(
                f"no coupon {coupon.coupon_id}", code="coupon_not_found", param="instruments"
            )
        if not found.usable_by(order.merchant_id, str(order.buyer_id), order.currency):
            raise Conflict(
                f"coupon {found.id} is {found.effective_status().value} or not for this "
                "buyer and currency",
                code="coupon_unavailable",
                param="instruments",
            )
        # A coupon is used whole; one worth more than the order pays the order, no more.
        coupon_amount = min(found.amount, order.amount)
        coupon_face_value = found.amount
    balance_amount = balance.amount if balance is not None else 0
    rest = order.amount - coupon_amount - balance_amount
    if rest < 0:
        raise ValidationFailed(
            f"the instruments add up to more than the order amount {order.amount}",
            code="instrument_amounts_mismatch",
            param="instruments",
        )
    if rest > 0 and channel is None:
        raise ValidationFailed(
            f"the instruments leave {rest} of {order.amount} {order.currency} unpaid; "
            "add a channel instrument",
            code="instrument_amounts_mismatch",
            param="instruments",
        )
    if rest == 0 and channel is not None:
        raise ValidationFailed(
            "the internal instruments pay the whole order; the channel would take nothing",
            code="instrument_amounts_mismatch",
            param="instruments",
        )
    if channel is not None:
        _check_routable(channel, order.currency, rest)  # refuses before any write
    return _Plan(
        coupon.coupon_id if coupon else None,
        coupon_amount,
        coupon_face_value,
        balance_amount,
        channel,
        rest,
    )


@dataclass(frozen=True)
class MerchantTerms:
    """The merchant's terms a payment takes for good when it starts."""

    fee_rate_bps: int
    settlement_delay_days: int


def start_payment(
    store: TradeStore,
    merchant_id: str,
    order_id: str,
    request: CreatePaymentRequest,
    callback_base_url: str,
    *,
    terms: MerchantTerms | None = None,
) -> Payment:
    """Record a payment for the whole order, reserve its internal instruments and move the
    order to ``paying`` in one transaction, then start the payment's state machine and wait
    briefly for the channel's redirect URL so the answer can carry ``next_action``.

    A payment that internal instruments cover entirely completes in that one transaction:
    no channel, no state machine. ``terms``: the merchant's, when the caller has them (the
    authorizer passes them on); read from the merchant otherwise.

    The execution's input carries the order and the payment as written here, so its first
    step reads neither again (its writes are conditional on these versions)."""
    order = get_order(store, merchant_id, order_id)
    if order.status is not OrderStatus.CREATED:
        raise Conflict(f"order is {order.status.value}", code="order_not_payable")
    if parse_rfc3339(order.expires_at) <= now():
        raise Conflict("order has expired", code="order_expired")
    plan = _plan(store, order, request)
    if terms is None:
        merchant = store.get_merchant(merchant_id)
        if merchant is None:  # pragma: no cover - the authorizer found its key
            raise NotFound(f"no merchant {merchant_id}", code="merchant_not_found")
        terms = MerchantTerms(merchant.fee_rate_bps, merchant.settlement_delay_days)
    at = now_rfc3339()
    payment = Payment(
        id=new_id("pay"),
        merchant_id=merchant_id,
        order_id=order.id,
        status=PaymentStatus.PROCESSING,
        amount=order.amount,
        currency=order.currency,
        instruments=_instruments(plan),
        channel=plan.channel.channel if plan.channel else None,
        return_url=request.return_url,
        created_at=at,
        updated_at=at,
        buyer_id=order.buyer_id,
        channel_amount=plan.channel_amount,
        balance_amount=plan.balance_amount,
        coupon_id=plan.coupon_id,
        coupon_amount=plan.coupon_amount,
        coupon_face_value=plan.coupon_face_value,
        simulate=plan.channel.switches() if plan.channel else None,
        callback_base_url=callback_base_url,
        # The merchant's terms when the payment starts are the payment's for good.
        fee_rate_bps=terms.fee_rate_bps,
        fee=fee_for(plan.channel_amount, terms.fee_rate_bps),
        settlement_delay_days=terms.settlement_delay_days,
    )
    paying = order.start_paying(payment.id, at)
    if plan.channel is None:
        return _pay_at_once(store, paying, payment, at)
    paying, payment = store.start_payment(PaymentStart.reserving(paying, payment, at))
    settings = get_settings()
    try:
        start_payment_execution(
            payment.id,
            {
                "payment_id": payment.id,
                "callback_base_url": callback_base_url,
                "callback_wait_seconds": settings.callback_wait_seconds,
                "query_interval_seconds": settings.channel_query_interval_seconds,
                "order": order_snapshot(paying),
                "payment": payment_snapshot(payment),
            },
        )
    except PaycoreError:
        # Nothing reached a channel: release what was reserved, give the order back.
        failed = payment.fail("workflow_unavailable", "the payment could not be started", at)
        store.settle_payment(PaymentSettlement.of(failed, paying.reopen(payment.id, at), at=at))
        raise ServiceUnavailable("the payment could not be started; retry") from None
    return _await_next_action(store, payment, settings.payment_action_wait_seconds)


def _pay_at_once(store: TradeStore, paying: Order, payment: Payment, at: str) -> Payment:
    """Coupon and balance cover the order: spend them, pay the order, record the event."""
    succeeded = payment.succeed(None, at)
    paid = paying.mark_paid(payment, at, time_zone=get_settings().settlement_time_zone)
    event = events.event_for(events.ORDER_PAID, paid.merchant_id, payment.id, paid.resource())
    store.start_payment(PaymentStart.at_once(paid, succeeded, at, event))
    events.publish(event)
    return succeeded


def _instruments(plan: _Plan) -> list[dict[str, Any]]:
    shown: list[dict[str, Any]] = []
    if plan.coupon_id:
        shown.append({"type": "coupon", "coupon_id": plan.coupon_id, "amount": plan.coupon_amount})
    if plan.balance_amount:
        shown.append({"type": "balance", "amount": plan.balance_amount})
    if plan.channel is not None:
        channel: dict[str, Any] = {
            "type": "channel",
            "channel": plan.channel.channel,
            "amount": plan.channel_amount,
        }
        switches = plan.channel.switches()
        if switches is not None:
            channel["simulate"] = switches
        shown.append(channel)
    return shown


def _check_routable(channel: ChannelInstrument, currency: str, amount: int) -> None:
    """Some configured account of the channel takes this payment (else 422), and, when the
    instrument carries ``simulate``, every account it may be routed to is a local simulator:
    misbehaviour switches never reach a real channel."""
    gateways = routed_gateways(channel.channel, currency, amount)
    if channel.switches() is not None and not all(gateway.simulator for gateway in gateways):
        raise ValidationFailed(
            f"simulate is only for local channel simulators, and a {channel.channel} account "
            "this payment may be routed to is a real one",
            code="simulate_not_allowed",
            param="instruments",
        )


class _ActionWait:
    """How long the channel's next action usually takes to appear, learnt by this container
    (a moving average): the first read of the payment waits about that long, so an answer
    usually costs one read instead of a read every few milliseconds from the start."""

    WEIGHT = 0.3  # of the latest wait in the average
    SHARE = 0.8  # of the average waited before the first read (a little early, not late)

    def __init__(self) -> None:
        self.typical: float | None = None

    def first_pause(self, wait_seconds: float) -> float:
        return 0.0 if self.typical is None else min(self.typical * self.SHARE, wait_seconds / 2)

    def learn(self, took: float) -> None:
        typical = self.typical
        self.typical = took if typical is None else typical + self.WEIGHT * (took - typical)


_action_wait = _ActionWait()


def _await_next_action(store: TradeStore, payment: Payment, wait_seconds: float) -> Payment:
    started = time.monotonic()
    deadline = started + wait_seconds
    time.sleep(_action_wait.first_pause(wait_seconds))
    pause = 0.02
    current = payment
    while time.monotonic() < deadline:
        latest = store.get_payment(payment.id)
        if latest is not None:
            current = latest
            if latest.next_action is not None or latest.is_final:
                if latest.next_action is not None:
                    _action_wait.learn(time.monotonic() - started)
                return latest
        time.sleep(pause)
        pause = min(pause * 2, 0.25)
    return replace(current)
