"""Atomic changes: one object per state change that must be written all at once.

A service reads the aggregates, transitions them (``paycore.domain.models``), and builds one
of these; the data layer writes it as ONE DynamoDB transaction (``paycore.dal``), keeping
every condition: the versions the aggregates were read at, the balances and coupon states the
instrument moves need. Services never build DynamoDB items themselves.

- ``PaymentStart``: a new payment, its order moved to ``paying`` (or, when internal
  instruments pay all of it, ``paid`` with its event) and its instruments reserved (or spent).
- ``PaymentSettlement``: a payment made final, its order paid, payable again or closed, its
  events, and its reserved instruments spent or released.
- ``OrderClosing``: an unpaid order closed, with its event.
- ``TradeConfirmation``: a paid guaranteed order confirmed, its event, and its money moved
  from the merchant's escrow to pending.
- ``RefundStart``: a new refund and its amount reserved on the order (or, for a refund of
  internal instruments only, refunded at once with its credits and event); a late-payment
  refund alone.
- ``RefundSettlement``: a refund made final, its order's amounts, its event and its credits.
- ``BalanceCredit`` and ``CouponIssue``: a merchant gives its buyer stored value.
- ``SettlementBatch``: a batch of one merchant's orders in one currency settled, their pending
  money made available, and the settlement's figures added up.

Each also carries its journal entry (``paycore.domain.postings``), written in the same
transaction with its id new (the id derives from the cause: a retried step cannot post twice),
and the rules that decide its instrument moves, so the same rule serves every path that makes
the change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from paycore.domain import postings
from paycore.domain.instruments import (
    BalanceMove,
    BalanceMoveKind,
    Coupon,
    CouponMove,
    CouponMoveKind,
    InstrumentMove,
)
from paycore.domain.models import Event, Order, Payment
from paycore.domain.refunds import Refund, RefundStatus, allocation_key, paid_by_instrument
from paycore.domain.status import PaymentStatus
from paycore.errors import Conflict
from paycore.ledger.entries import JournalEntry
from paycore.ledger.rules import SettlementFigures

# -- the instrument moves of payments and refunds ------------------------------------------------


def payment_reservations(payment: Payment, at: str, *, at_once: bool) -> tuple[InstrumentMove, ...]:
    """What starting ``payment`` does to its internal instruments: reserve them until the
    channel answers, or (``at_once``: no channel part) spend them now. Each move carries the
    refusal to answer when its condition fails."""
    moves: list[InstrumentMove] = []
    buyer = str(payment.buyer_id)
    if payment.balance_amount:
        moves.append(
            BalanceMove(
                BalanceMoveKind.DEBIT if at_once else BalanceMoveKind.FREEZE,
                payment.merchant_id,
                buyer,
                payment.currency,
                payment.balance_amount,
                at,
                refusal=Conflict(
                    f"the buyer's available {payment.currency} balance is less than "
                    f"{payment.balance_amount}",
                    code="insufficient_balance",
                    param="instruments",
                ),
            )
        )
    if payment.coupon_id:
        moves.append(
            CouponMove(
                CouponMoveKind.USE_NOW if at_once else CouponMoveKind.LOCK,
                payment.coupon_id,
                payment.id,
                at,
                merchant_id=payment.merchant_id,
                buyer_id=buyer,
                currency=payment.currency,
                refusal=Conflict(
                    f"coupon {payment.coupon_id} is no longer available",
                    code="coupon_unavailable",
                    param="instruments",
                ),
            )
        )
    return tuple(moves)


def payment_finish_moves(payment: Payment, at: str) -> tuple[InstrumentMove, ...]:
    """What a final ``payment`` does to what it reserved: spent when it succeeded, given
    back when it failed, so nothing stays frozen or locked."""
    succeeded = payment.status is PaymentStatus.SUCCEEDED
    moves: list[InstrumentMove] = []
    if payment.balance_amount:
        moves.append(
            BalanceMove(
                BalanceMoveKind.SPEND_FROZEN if succeeded else BalanceMoveKind.RELEASE_FROZEN,
                payment.merchant_id,
                str(payment.buyer_id),
                payment.currency,
                payment.balance_amount,
                at,
            )
        )
    if payment.coupon_id:
        moves.append(
            CouponMove(
                CouponMoveKind.USE if succeeded else CouponMoveKind.RELEASE,
                payment.coupon_id,
                payment.id,
                at,
            )
        )
    return tuple(moves)


def refund_credit_moves(
    payment: Payment, refund: Refund, order_before: Order, at: str
) -> tuple[InstrumentMove, ...]:
    """The internal instruments' part of a succeeded refund: the balance part back to the
    buyer's available balance; a coupon back to ``available`` once refunds (this one
    included) have given back its whole amount."""
    moves: list[InstrumentMove] = []
    if refund.balance_amount:
        buyer = payment.buyer_id or order_before.buyer_id
        if buyer is None:
            raise Conflict(f"payment {payment.id} paid by balance has no buyer", code="no_buyer")
        moves.append(
            BalanceMove(
                BalanceMoveKind.CREDIT,
                refund.merchant_id,
                buyer,
                refund.currency,
                refund.balance_amount,
                at,
            )
        )
    paid = paid_by_instrument(payment)
    for part in refund.coupon_parts():
        key = allocation_key(part)
        refunded = order_before.refunded_by_instrument.get(key, 0) + int(part["amount"])
        if refunded >= paid.get(key, 0):
            moves.append(CouponMove(CouponMoveKind.RESTORE, str(part["coupon_id"]), payment.id, at))
    return tuple(moves)


# -- the changes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentStart:
    """``order`` (transitioned, with the version it was read at) and the new ``payment``;
    ``event`` when the payment completes at once."""

    order: Order
    payment: Payment
    moves: tuple[InstrumentMove, ...]
    entry: JournalEntry | None
    event: Event | None = None

    @classmethod
    def reserving(cls, paying: Order, payment: Payment, at: str) -> PaymentStart:
        """A payment with a channel part: its internal instruments are reserved."""
        moves = payment_reservations(payment, at, at_once=False)
        return cls(paying, payment, moves, postings.payment_started(payment))

    @classmethod
    def at_once(cls, paid: Order, succeeded: Payment, at: str, event: Event) -> PaymentStart:
        """Internal instruments pay the whole order: spent now, the order paid."""
        moves = payment_reservations(succeeded, at, at_once=True)
        entry = postings.payment_succeeded(succeeded, paid.holding, reserved=False)
        return cls(paid, succeeded, moves, entry, event)


@dataclass(frozen=True)
class PaymentSettlement:
    """A final ``payment`` and its ``order`` (both transitioned, with the versions they were
    read at), the events the change causes, the instruments spent or released, and the
    entry: the money of a success, or the end of a failed payment's reservation."""

    payment: Payment
    order: Order
    events: tuple[Event, ...]
    moves: tuple[InstrumentMove, ...]
    entry: JournalEntry | None

    @classmethod
    def of(cls, payment: Payment, order: Order, *events: Event, at: str) -> PaymentSettlement:
        if payment.status is PaymentStatus.SUCCEEDED:
            entry = postings.payment_succeeded(payment, order.holding)
        else:
            entry = postings.payment_failed(payment)
        return cls(payment, order, events, payment_finish_moves(payment, at), entry)


@dataclass(frozen=True)
class OrderClosing:
    """An unpaid order closed (transitioned, with the version it was read at)."""

    order: Order
    event: Event


@dataclass(frozen=True)
class TradeConfirmation:
    """A guaranteed order confirmed (transitioned, with the version it was read at)."""

    order: Order
    event: Event
    entry: JournalEntry | None

    @classmethod
    def of(cls, confirmed: Order, payment: Payment, event: Event) -> TradeConfirmation:
        return cls(confirmed, event, postings.trade_confirmed(confirmed, payment))


@dataclass(frozen=True)
class RefundStart:
    """A new ``refund`` with its ``order`` (None for a late-payment refund, which never
    counted against the order); ``event`` and credit ``moves`` when it completes at once."""

    refund: Refund
    order: Order | None
    entry: JournalEntry | None
    event: Event | None = None
    moves: tuple[InstrumentMove, ...] = ()

    @classmethod
    def reserving(
        cls, refund: Refund, reserved: Order, *, payment: Payment, order_before: Order
    ) -> RefundStart:
        """A refund with a channel part: its amount is reserved on the order."""
        return cls(refund, reserved, postings.refund_started(refund, payment, order_before))

    @classmethod
    def late_payment(cls, refund: Refund, payment: Payment) -> RefundStart:
        """Money the channel took for a payment already final without it goes back."""
        return cls(refund, None, postings.refund_started(refund, payment, None))

    @classmethod
    def at_once(
        cls,
        refunded: Order,
        succeeded: Refund,
        *,
        payment: Payment,
        order_before: Order,
        event: Event,
        at: str,
    ) -> RefundStart:
        """A refund of internal instruments only: succeeded, refunded and credited now."""
        moves = refund_credit_moves(payment, succeeded, order_before, at)
        entry = postings.refund_succeeded(succeeded, payment, order_before)
        return cls(succeeded, refunded, entry, event, moves)


@dataclass(frozen=True)
class RefundSettlement:
    """A final ``refund`` with its ``order``'s amounts (None for a late-payment refund), its
    event, its entry and, when it succeeded, its credits."""

    refund: Refund
    order: Order | None
    event: Event | None
    entry: JournalEntry | None
    moves: tuple[InstrumentMove, ...] = ()

    @classmethod
    def of(
        cls,
        final: Refund,
        order: Order | None,
        *,
        payment: Payment,
        order_before: Order | None,
        event: Event | None,
        at: str,
    ) -> RefundSettlement:
        """``order`` is the order after the refund, ``order_before`` as it was read."""
        if final.status is RefundStatus.SUCCEEDED:
            moves = (
                refund_credit_moves(payment, final, order_before, at)
                if order_before is not None
                else ()
            )
            entry = postings.refund_succeeded(final, payment, order_before)
            return cls(final, order, event, entry, moves)
        return cls(final, order, event, postings.refund_failed(final, payment, order_before))


@dataclass(frozen=True)
class BalanceCredit:
    """A merchant tops up its buyer's stored balance (``id``: the credit, ``crd_...``)."""

    id: str
    merchant_id: str
    buyer_id: str
    currency: str
    amount: int
    at: str

    @property
    def move(self) -> BalanceMove:
        return BalanceMove(
            BalanceMoveKind.CREDIT,
            self.merchant_id,
            self.buyer_id,
            self.currency,
            self.amount,
            self.at,
        )

    @property
    def entry(self) -> JournalEntry:
        return postings.balance_credited(
            self.id, self.merchant_id, self.buyer_id, self.currency, self.amount
        )


@dataclass(frozen=True)
class CouponIssue:
    """A merchant gives its buyer a coupon."""

    coupon: Coupon

    @property
    def entry(self) -> JournalEntry:
        return postings.coupon_issued(self.coupon)


@dataclass(frozen=True)
class SettlementBatch:
    """Settlement ``date`` of ``orders`` (settled, each with the version it was read at) of
    one merchant in one currency: their entry, and the figures they add to that day."""

    merchant_id: str
    currency: str
    date: str
    orders: tuple[Order, ...]
    figures: SettlementFigures
    entry: JournalEntry | None

    @classmethod
    def of(cls, due: Sequence[Order], settlement_date: str, at: str) -> SettlementBatch:
        """``due``: orders as read, all of one merchant and currency and due by then."""
        first = due[0]
        if any((o.merchant_id, o.currency) != (first.merchant_id, first.currency) for o in due):
            raise ValueError("a settlement batch is one merchant's orders in one currency")
        lines = postings.settlement_lines(due)
        return cls(
            first.merchant_id,
            first.currency,
            settlement_date,
            tuple(order.settle(settlement_date, at) for order in due),
            SettlementFigures.of(lines),
            postings.settlement(first.merchant_id, first.currency, settlement_date, lines),
        )
