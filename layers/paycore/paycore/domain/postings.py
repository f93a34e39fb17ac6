"""The journal entry of each money change, from paycore's own objects.

The ledger's posting rules (``paycore.ledger.rules``) take neutral facts; this module is where
a payment, a refund, an order, a credit or a coupon becomes those facts. Each function gives
the entry to write in the change's transaction, or None when the change moved no money (the
reservation of a payment without a balance part, the confirmation of an order paid without a
channel): nothing is written then.
"""

from __future__ import annotations

from collections.abc import Sequence

from paycore.domain.instruments import Coupon
from paycore.domain.models import Order, Payment
from paycore.domain.refunds import (
    CHANNEL,
    Refund,
    RefundKind,
    allocation_key,
    paid_by_instrument,
)
from paycore.ledger import rules
from paycore.ledger.accounts import Holding
from paycore.ledger.entries import JournalEntry
from paycore.ledger.fees import ChannelMoney
from paycore.ledger.rules import (
    ChannelPart,
    CouponReturn,
    CouponUse,
    PaymentFacts,
    RefundFacts,
    SettlementLine,
)

# The channel account of a payment not routed yet. The entries that need the channel part's
# figures before routing (a reservation, a release) post nothing to the channel account.
UNROUTED = "unrouted"


def _posted(entry: JournalEntry) -> JournalEntry | None:
    return None if entry.is_empty else entry


def payment_facts(payment: Payment, *, routed: bool = True) -> PaymentFacts:
    """``payment`` split over its instruments. ``routed``: its channel part must name the
    account that took it (a success); otherwise an unrouted payment's part is ``UNROUTED``."""
    channel = None
    if payment.channel and payment.channel_amount:
        account = payment.channel_account
        if account is None:
            if routed:
                raise ValueError(f"payment {payment.id} has a channel part but no account")
            account = UNROUTED
        channel = ChannelPart(payment.channel, account, payment.channel_amount)
    coupon = None
    if payment.coupon_id:
        face_value = payment.coupon_face_value or payment.coupon_amount
        coupon = CouponUse(payment.coupon_id, payment.coupon_amount, face_value)
    return PaymentFacts(
        payment_id=payment.id,
        order_id=payment.order_id,
        merchant_id=payment.merchant_id,
        currency=payment.currency,
        buyer_id=payment.buyer_id,
        channel=channel,
        balance_amount=payment.balance_amount,
        coupon=coupon,
    )


def channel_money(payment: Payment, order: Order) -> ChannelMoney:
    """The payment's channel part as the merchant's money, with what succeeded refunds of
    ``order`` have given back of it so far."""
    return ChannelMoney(
        payment.channel_amount, payment.fee, order.refunded_by_instrument.get(CHANNEL, 0)
    )


def fee_refunded(refund: Refund, payment: Payment, order: Order | None) -> int:
    """The fee ``refund`` returns if it succeeds now, ``order`` as read before it completes:
    the increase of the cumulative figure of paycore.ledger.fees. A late-payment refund and
    a refund without a channel part return none."""
    if refund.kind is RefundKind.LATE_PAYMENT or not refund.channel_amount or order is None:
        return 0
    return channel_money(payment, order).fee_refunded_by(refund.channel_amount)


def payment_started(payment: Payment) -> JournalEntry | None:
    """A payment with a channel part starts: its balance part is reserved."""
    return _posted(rules.payment_reserved(payment_facts(payment, routed=False)))


def payment_succeeded(
    payment: Payment, into: Holding, *, reserved: bool = True
) -> JournalEntry | None:
    """``payment`` succeeded; its channel part, less the fee, goes ``into`` the merchant's
    escrow or pending. ``reserved=False``: internal instruments paid all of it at once."""
    facts = payment_facts(payment, routed=bool(payment.channel_amount))
    return _posted(
        rules.payment_succeeded(
            facts, fee_rate_bps=payment.fee_rate_bps, into=into, reserved=reserved
        )
    )


def payment_failed(payment: Payment) -> JournalEntry | None:
    """``payment`` failed (declined, closed, expired, not started): its reservation ends."""
    return _posted(rules.payment_released(payment_facts(payment, routed=False)))


def refund_facts(refund: Refund, payment: Payment, order: Order | None) -> RefundFacts:
    """``refund`` split over the payment's instruments; ``order`` as read when the refund
    is written (what succeeded refunds gave back before it: a coupon comes back once all it
    paid is refunded). A late-payment refund is its channel part alone."""
    channel = None
    if refund.channel_amount:
        if not refund.channel or not refund.channel_account:
            raise ValueError(f"refund {refund.id} has a channel part but no channel account")
        channel = ChannelPart(refund.channel, refund.channel_account, refund.channel_amount)
    coupon = None
    parts = refund.coupon_parts()
    if parts and order is not None:
        part = parts[0]
        key = allocation_key(part)
        paid = paid_by_instrument(payment)[key]
        coupon = CouponReturn(
            coupon_id=str(part["coupon_id"]),
            amount=int(part["amount"]),
            paid=paid,
            refunded_before=order.refunded_by_instrument.get(key, 0),
            face_value=payment.coupon_face_value or paid,
        )
    return RefundFacts(
        refund_id=refund.id,
        payment_id=refund.payment_id,
        order_id=refund.order_id,
        merchant_id=refund.merchant_id,
        currency=refund.currency,
        buyer_id=payment.buyer_id or (order.buyer_id if order else None),
        channel=channel,
        balance_amount=refund.balance_amount,
        coupon=coupon,
    )


def refund_started(refund: Refund, payment: Payment, order: Order | None) -> JournalEntry | None:
    """A refund is recorded: its channel part leaves the channel clearing account (a
    late-payment refund: the money came in, owed to the buyer, and goes straight out)."""
    facts = refund_facts(refund, payment, order)
    if refund.kind is RefundKind.LATE_PAYMENT:
        return _posted(rules.late_payment_refund_started(facts))
    return _posted(rules.refund_started(facts))


def refund_succeeded(refund: Refund, payment: Payment, order: Order | None) -> JournalEntry | None:
    """``refund`` succeeded: the merchant pays its channel part less the fee it returns, from
    wherever ``order``'s money sits (``order`` as read before the refund completes); the
    internal parts go back to the buyer."""
    facts = refund_facts(refund, payment, order)
    if refund.kind is RefundKind.LATE_PAYMENT:
        return _posted(rules.late_payment_refund_succeeded(facts))
    if order is None:
        raise ValueError(f"merchant refund {refund.id} needs its order")
    money = channel_money(payment, order) if facts.channel else None
    taken_from = order.holding if facts.channel else None
    return _posted(rules.refund_succeeded(facts, money=money, taken_from=taken_from))


def refund_failed(refund: Refund, payment: Payment, order: Order | None) -> JournalEntry | None:
    """``refund`` failed: its channel part comes back to the channel clearing account."""
    return _posted(rules.refund_failed(refund_facts(refund, payment, order)))


def trade_confirmed(order: Order, payment: Payment) -> JournalEntry | None:
    """A guaranteed ``order`` is confirmed (``order`` as read before): what the merchant
    still holds from its payment moves from escrow to pending."""
    money = channel_money(payment, order)
    return _posted(
        rules.trade_confirmed(order.id, payment.id, order.merchant_id, order.currency, money)
    )


def settlement_lines(orders: Sequence[Order]) -> list[SettlementLine]:
    """What each order brings to a settlement: its payment's channel money as it is now."""
    return [
        SettlementLine(str(order.current_payment_id), order.channel_money, order.channel_refunds)
        for order in orders
    ]


def settlement(
    merchant_id: str, currency: str, settlement_date: str, lines: Sequence[SettlementLine]
) -> JournalEntry | None:
    """Settlement ``settlement_date`` makes the lines' pending money available."""
    return _posted(rules.settlement(merchant_id, currency, settlement_date, lines))


def balance_credited(
    credit_id: str, merchant_id: str, buyer_id: str, currency: str, amount: int
) -> JournalEntry:
    return rules.balance_credited(credit_id, merchant_id, buyer_id, currency, amount)


def coupon_issued(coupon: Coupon) -> JournalEntry:
    return rules.coupon_issued(
        coupon.id, coupon.merchant_id, coupon.buyer_id, coupon.currency, coupon.amount
    )
