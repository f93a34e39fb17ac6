"""The trade aggregates: merchant, order, payment and event.

Each status change goes through a method that checks the transition table first; the data
layer repeats the check as a conditional write so a lost race can never double-apply it.
``resource()`` gives the merchant-facing JSON shape of the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

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
    webhook_url: str | None
    webhook_secret: str  # whsec_<base64>; shown to the merchant once, kept to sign webhooks
    created_at: str

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "merchant",
            "name": self.name,
            "webhook_url": self.webhook_url,
            "created_at": self.created_at,
        }

    def __repr__(self) -> str:  # never print the signing secret
        return f"Merchant(id={self.id!r}, name={self.name!r})"


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
    version: int = 0  # optimistic lock: every write expects it and stores it + 1

    def start_paying(self, payment_id: str, at: str) -> Order:
        check_order_transition(self.status, OrderStatus.PAYING, code="order_not_payable")
        return replace(
            self, status=OrderStatus.PAYING, current_payment_id=payment_id, updated_at=at
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
        }


@dataclass(frozen=True)
class Payment:
    id: str
    merchant_id: str
    order_id: str
    status: PaymentStatus
    amount: int
    currency: str
    instruments: list[dict[str, Any]]
    channel: str
    created_at: str
    updated_at: str
    return_url: str | None = None
    next_action: dict[str, str] | None = None
    channel_order_id: str | None = None
    channel_transaction_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
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
