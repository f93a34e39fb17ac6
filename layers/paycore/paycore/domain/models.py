"""The trade aggregates: merchant, order, payment and event.

Each status change goes through a method that checks the transition table first; the data
layer repeats the check as a conditional write so a lost race can never double-apply it.
``resource()`` gives the merchant-facing JSON shape of the contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from paycore.domain.refunds import add_allocations
from paycore.domain.status import (
    OrderStatus,
    PaymentStatus,
    check_order_transition,
    check_payment_transition,
)
from paycore.errors import Conflict


@dataclass(frozen=True)
class Merchant:
    id: str
    name: str
    webhook_url: str | None  # as given at onboarding: its first webhook endpoint
    created_at: str

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "merchant",
            "name": self.name,
            "webhook_url": self.webhook_url,
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

    def mark_paid(self, payment_id: str, amount: int, at: str) -> Order:
        self._check_current_payment(payment_id)
        check_order_transition(self.status, OrderStatus.PAID, code="order_not_paying")
        return replace(self, status=OrderStatus.PAID, amount_paid=amount, updated_at=at)

    def reopen(self, payment_id: str, at: str) -> Order:
        """A payment failed: the order is payable again."""
        self._check_current_payment(payment_id)
        check_order_transition(self.status, OrderStatus.CREATED, code="order_not_paying")
        return replace(self, status=OrderStatus.CREATED, current_payment_id=None, updated_at=at)

    def close(self, at: str) -> Order:
        check_order_transition(self.status, OrderStatus.CLOSED, code="order_not_closable")
        return replace(self, status=OrderStatus.CLOSED, updated_at=at)

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
    # The misbehaviour switches for a local channel simulator (paycore.channels.simulate).
    simulate: dict[str, Any] | None = None
    channel_account: str | None = None  # the routed account that holds the channel order
    channel_attempts: list[dict[str, Any]] = field(default_factory=list)
    callback_base_url: str | None = None  # where channels call back (late refunds need it)
    version: int = 0  # optimistic lock: every write expects it and stores it + 1

    @property
    def is_final(self) -> bool:
        return self.status is not PaymentStatus.PROCESSING

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
