"""The trade aggregates: merchant, order, payment and event.

Each status change goes through a method that checks the transition table first; the data
layer repeats the check as a conditional write so a lost race can never double-apply it.
``resource()`` gives the merchant-facing JSON shape of the contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from paycore.clock import days_after, local_date, seconds_after
from paycore.domain.refunds import add_allocations
from paycore.domain.status import (
    OrderStatus,
    PaymentStatus,
    check_order_transition,
    check_payment_transition,
)
from paycore.errors import Conflict
from paycore.ledger.accounts import Holding
from paycore.ledger.fees import DEFAULT_FEE_RATE_BPS, ChannelMoney

DEFAULT_SETTLEMENT_DELAY_DAYS = 1
MAX_SETTLEMENT_DELAY_DAYS = 30
# Guaranteed trade: how long after payment an unconfirmed order confirms itself (10 days).
DEFAULT_AUTO_CONFIRM_IN = 864_000
MIN_AUTO_CONFIRM_IN = 60
MAX_AUTO_CONFIRM_IN = 7_776_000


class TradeType(StrEnum):
    INSTANT = "instant"  # the merchant's money is pending as soon as the order is paid
    GUARANTEED = "guaranteed"  # 担保交易: held in escrow until the buyer confirms


@dataclass(frozen=True)
class Merchant:
    id: str
    name: str
    webhook_url: str | None  # as given at onboarding: its first webhook endpoint
    created_at: str
    # The merchant's terms, fixed on each payment when it starts (paycore.ledger.fees).
    fee_rate_bps: int = DEFAULT_FEE_RATE_BPS
    settlement_delay_days: int = DEFAULT_SETTLEMENT_DELAY_DAYS

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "merchant",
            "name": self.name,
            "webhook_url": self.webhook_url,
            "fee_rate_bps": self.fee_rate_bps,
            "settlement_delay_days": self.settlement_delay_days,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Order:
    id: str
    merchant_id: str
    merchant_order_no: str
    amount: int
    currency: str
    subject: str
    status: OrderStatus
    expires_at: str
    created_at: str
    updated_at: str
    amount_paid: int = 0
    amount_refunded: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    buyer_id: str | None = None
    current_payment_id: str | None = None
    # The buyer's page (paycore.domain.cashier) and where it sends the buyer once paid.
    cashier_url: str | None = None
    return_url: str | None = None
    # The payment that started last (kept after it ends: the cashier shows why it failed).
    last_payment_id: str | None = None
    # Reserved by refunds still processing: amount_refunded + refund_pending <= amount_paid.
    refund_pending: int = 0
    # Per instrument ("channel", "balance", "coupon:<id>"; see domain/refunds.py): what
    # refunds not failed have taken from it, and what succeeded refunds gave back through it.
    refund_allocated: dict[str, int] = field(default_factory=dict)
    refunded_by_instrument: dict[str, int] = field(default_factory=dict)
    trade_type: TradeType = TradeType.INSTANT
    auto_confirm_in: int | None = None  # guaranteed trade: seconds from paid to confirmed
    auto_confirm_at: str | None = None  # guaranteed trade: set when paid
    confirmed_at: str | None = None  # guaranteed trade: by the merchant, or automatically
    # The paid payment's channel money and the merchant's settlement delay, kept on the order
    # (set when paid) for confirmation and settlement; see ``channel_money``.
    channel_paid: int = 0
    paid_fee: int = 0
    settlement_delay_days: int = DEFAULT_SETTLEMENT_DELAY_DAYS
    channel_refunds: int = 0  # succeeded refunds that gave back some of the channel part
    settle_on: str | None = None  # YYYY-MM-DD: the settlement that makes its money available
    settled_on: str | None = None  # YYYY-MM-DD: the settlement that did
    version: int = 0  # optimistic lock: every write expects it and stores it + 1

    def start_paying(self, payment_id: str, at: str) -> Order:
        check_order_transition(self.status, OrderStatus.PAYING, code="order_not_payable")
        return replace(
            self,
            status=OrderStatus.PAYING,
            current_payment_id=payment_id,
            last_payment_id=payment_id,
            updated_at=at,
        )

    def mark_paid(self, payment: Payment, at: str, *, time_zone: str) -> Order:
        """``payment`` succeeded at ``at``. An instant order's money is due for settlement
        ``settlement_delay_days`` after that day in ``time_zone``; a guaranteed one waits in
        escrow until ``auto_confirm_at`` at the latest."""
        self._check_current_payment(payment.id)
        check_order_transition(self.status, OrderStatus.PAID, code="order_not_paying")
        paid = replace(
            self,
            status=OrderStatus.PAID,
            amount_paid=payment.amount,
            channel_paid=payment.channel_amount,
            paid_fee=payment.fee,
            settlement_delay_days=payment.settlement_delay_days,
            updated_at=at,
        )
        if self.trade_type is TradeType.GUARANTEED:
            wait = self.auto_confirm_in or DEFAULT_AUTO_CONFIRM_IN
            return replace(paid, auto_confirm_at=seconds_after(at, wait))
        return replace(paid, settle_on=paid._settlement_day(at, time_zone))

    def _settlement_day(self, at: str, time_zone: str) -> str | None:
        """The settlement that makes money pending from ``at`` available (None: no money)."""
        if not self.channel_paid:
            return None
        return days_after(local_date(at, time_zone), self.settlement_delay_days)

    @property
    def channel_money(self) -> ChannelMoney:
        """The paid channel part as the merchant's money: gross, fee, and what succeeded
        refunds gave back of it."""
        return ChannelMoney(
            self.channel_paid, self.paid_fee, self.refunded_by_instrument.get("channel", 0)
        )

    @property
    def awaits_settlement(self) -> bool:
        """Its money is pending (paid instant, or confirmed) and no settlement took it yet."""
        return self.settle_on is not None and self.settled_on is None

    def settle(self, settlement_date: str, at: str) -> Order:
        """Settlement ``settlement_date`` makes this order's pending money available."""
        if not self.awaits_settlement or str(self.settle_on) > settlement_date:
            raise Conflict(
                f"order {self.id} is not due for settlement {settlement_date}",
                code="order_not_due",
            )
        return replace(self, settled_on=settlement_date, updated_at=at)

    @property
    def is_confirmable(self) -> bool:
        """A paid guaranteed order not confirmed yet, not refunded in full."""
        return (
            self.trade_type is TradeType.GUARANTEED
            and self.status in (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED)
            and self.confirmed_at is None
        )

    def confirm(self, at: str, *, time_zone: str) -> Order:
        """The buyer received the goods (or the order confirmed itself): the merchant's money
        leaves escrow. Not a status change: the order stays paid (or partly refunded)."""
        if not self.is_confirmable:
            why = (
                "it is not a guaranteed order"
                if self.trade_type is not TradeType.GUARANTEED
                else "it is already confirmed"
                if self.confirmed_at
                else f"it is {self.status.value}"
            )
            raise Conflict(
                f"order {self.id} cannot be confirmed: {why}", code="order_not_confirmable"
            )
        return replace(
            self,
            confirmed_at=at,
            settle_on=self._settlement_day(at, time_zone),
            updated_at=at,
        )

    def reopen(self, payment_id: str, at: str) -> Order:
        """A payment failed: the order is payable again."""
        self._check_current_payment(payment_id)
        check_order_transition(self.status, OrderStatus.CREATED, code="order_not_paying")
        return replace(self, status=OrderStatus.CREATED, current_payment_id=None, updated_at=at)

    def close(self, at: str) -> Order:
        check_order_transition(self.status, OrderStatus.CLOSED, code="order_not_closable")
        return replace(self, status=OrderStatus.CLOSED, updated_at=at)

    @property
    def holding(self) -> Holding:
        """Where the merchant's money from this order sits: escrow while a guaranteed order
        is not confirmed, then pending until settled, then available."""
        if self.settled_on is not None:
            return Holding.AVAILABLE
        if self.trade_type is TradeType.GUARANTEED and self.confirmed_at is None:
            return Holding.ESCROW
        return Holding.PENDING

    @property
    def is_open(self) -> bool:
        """Still waiting for money: it closes itself at ``expires_at``."""
        return self.status in (OrderStatus.CREATED, OrderStatus.PAYING)

    def _check_current_payment(self, payment_id: str) -> None:
        if self.current_payment_id != payment_id:
            raise Conflict(
                f"order {self.id} is not being paid by {payment_id}", code="payment_superseded"
            )

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "order",
            "merchant_order_no": self.merchant_order_no,
            "amount": self.amount,
            "currency": self.currency,
            "subject": self.subject,
            "status": self.status.value,
            "amount_paid": self.amount_paid,
            "amount_refunded": self.amount_refunded,
            "expires_at": self.expires_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "metadata": dict(self.metadata),
            "buyer_id": self.buyer_id,
            "trade_type": self.trade_type.value,
            "auto_confirm_in": self.auto_confirm_in,
            "auto_confirm_at": self.auto_confirm_at,
            "confirmed_at": self.confirmed_at,
            "cashier_url": self.cashier_url,
            "return_url": self.return_url,
        }

    # -- refunds (see paycore.domain.refunds) ---------------------------------------------

    def reserve_refund(
        self, amount: int, allocations: Iterable[Mapping[str, Any]] = (), at: str | None = None
    ) -> Order:
        """Hold ``amount`` for a refund being made: refunds never add up to more than was
        paid, counting those still processing."""
        if self.status not in _REFUNDABLE:
            raise Conflict(f"order is {self.status.value}", code="order_not_refundable")
        if amount <= 0 or self.amount_refunded + self.refund_pending + amount > self.amount_paid:
            raise Conflict(
                f"a refund of {amount} exceeds what is left to refund "
                f"({self.amount_paid - self.amount_refunded - self.refund_pending})",
                code="refund_exceeds_paid",
                param="amount",
            )
        return replace(
            self,
            refund_pending=self.refund_pending + amount,
            refund_allocated=add_allocations(self.refund_allocated, allocations),
            updated_at=at or self.updated_at,
        )

    def complete_refund(
        self, amount: int, allocations: Iterable[Mapping[str, Any]] = (), at: str | None = None
    ) -> Order:
        """A reserved refund succeeded: it moves from pending to refunded."""
        self._check_reserved(amount)
        refunded = self.amount_refunded + amount
        target = (
            OrderStatus.REFUNDED if refunded >= self.amount_paid else OrderStatus.PARTIALLY_REFUNDED
        )
        check_order_transition(self.status, target, code="order_not_refundable")
        return replace(
            self,
            status=target,
            amount_refunded=refunded,
            refund_pending=self.refund_pending - amount,
            refunded_by_instrument=add_allocations(self.refunded_by_instrument, allocations),
            channel_refunds=self.channel_refunds
            + any(a["type"] == "channel" and int(a["amount"]) > 0 for a in allocations),
            updated_at=at or self.updated_at,
        )

    def release_refund(
        self, amount: int, allocations: Iterable[Mapping[str, Any]] = (), at: str | None = None
    ) -> Order:
        """A reserved refund failed: what it held can be refunded again."""
        self._check_reserved(amount)
        return replace(
            self,
            refund_pending=self.refund_pending - amount,
            refund_allocated=add_allocations(self.refund_allocated, allocations, sign=-1),
            updated_at=at or self.updated_at,
        )

    def _check_reserved(self, amount: int) -> None:
        if amount <= 0 or amount > self.refund_pending:
            raise Conflict(
                f"order {self.id} holds {self.refund_pending} for refunds, not {amount}",
                code="refund_not_reserved",
            )


# An order that has taken money can be refunded. A fully refunded one stays here so that one
# more refund is answered as what it is, an over-refund (409 refund_exceeds_paid).
_REFUNDABLE = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED})


@dataclass(frozen=True)
class Payment:
    id: str
    merchant_id: str
    order_id: str
    status: PaymentStatus
    amount: int
    currency: str
    instruments: list[dict[str, Any]]
    channel: str | None  # None when internal instruments cover the whole amount
    created_at: str
    updated_at: str
    return_url: str | None = None
    next_action: dict[str, str] | None = None
    channel_order_id: str | None = None
    channel_transaction_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    buyer_id: str | None = None
    channel_amount: int = 0  # what the channel instrument takes (the rest of the amount)
    balance_amount: int = 0  # frozen from the buyer's stored balance
    coupon_id: str | None = None
    coupon_amount: int = 0
    coupon_face_value: int = 0  # the coupon's whole amount (used whole, even for less)
    fee_rate_bps: int = 0  # the merchant's rate when the payment started
    fee: int = 0  # on the channel part, at that rate (paycore.ledger.fees)
    settlement_delay_days: int = DEFAULT_SETTLEMENT_DELAY_DAYS  # the merchant's, at the start
    # The misbehaviour switches for a local channel simulator (paycore.channels.simulate).
    simulate: dict[str, Any] | None = None
    channel_account: str | None = None  # the routed account that holds the channel order
    channel_attempts: list[dict[str, Any]] = field(default_factory=list)
    callback_base_url: str | None = None  # where channels call back (late refunds need it)
    # The signed channel notifications taken for this payment (short fingerprints, see
    # paycore.services.callbacks): the same message again is a replay. Internal: never in the
    # resource (so never in an answer or an event). Added by the callback's conditional update,
    # which leaves the version alone; carried here so that every later whole-item write keeps
    # them.
    notification_fingerprints: list[str] = field(default_factory=list)
    version: int = 0  # optimistic lock: every write expects it and stores it + 1

    @property
    def is_final(self) -> bool:
        return self.status is not PaymentStatus.PROCESSING

    @property
    def net(self) -> int:
        """What the merchant gets from the channel part: the part less the fee (coupon and
        stored-balance parts are the merchant's own value and carry no fee)."""
        return self.channel_amount - self.fee

    def succeed(self, channel_transaction_id: str | None, at: str) -> Payment:
        check_payment_transition(self.status, PaymentStatus.SUCCEEDED)
        return replace(
            self,
            status=PaymentStatus.SUCCEEDED,
            channel_transaction_id=channel_transaction_id,
            next_action=None,
            updated_at=at,
        )

    def fail(self, code: str, message: str, at: str) -> Payment:
        check_payment_transition(self.status, PaymentStatus.FAILED)
        return replace(
            self,
            status=PaymentStatus.FAILED,
            failure_code=code,
            failure_message=message,
            next_action=None,
            updated_at=at,
        )

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "payment",
            "order_id": self.order_id,
            "status": self.status.value,
            "amount": self.amount,
            "currency": self.currency,
            "instruments": [dict(item) for item in self.instruments],
            "next_action": dict(self.next_action) if self.next_action else None,
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
            "fee": self.fee if self.status is PaymentStatus.SUCCEEDED else None,
            "net": self.net if self.status is PaymentStatus.SUCCEEDED else None,
            "channel_account": self.channel_account,
            "channel_attempts": [dict(item) for item in self.channel_attempts],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Event:
    id: str
    merchant_id: str
    type: str
    created_at: str
    data_object: dict[str, Any]

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "event",
            "type": self.type,
            "created_at": self.created_at,
            "data": {"object": self.data_object},
        }
