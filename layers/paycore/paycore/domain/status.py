"""Status enums and the transition tables of the order and the payment.

The order (the trade, like a payment intent) and the payment (one attempt to pay it) have
separate statuses. A status changes only through ``check_transition``; the data layer then makes
the same change with a conditional write on the expected current status.
"""

from __future__ import annotations

from enum import StrEnum

from paycore.errors import Conflict


class OrderStatus(StrEnum):
    CREATED = "created"
    PAYING = "paying"
    PAID = "paid"
    CLOSED = "closed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class PaymentStatus(StrEnum):
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.CREATED: frozenset({OrderStatus.PAYING, OrderStatus.CLOSED}),
    OrderStatus.PAYING: frozenset({OrderStatus.PAID, OrderStatus.CREATED}),
    OrderStatus.PAID: frozenset({OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}),
    OrderStatus.PARTIALLY_REFUNDED: frozenset(
        {OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}
    ),
    OrderStatus.CLOSED: frozenset(),
    OrderStatus.REFUNDED: frozenset(),
}

PAYMENT_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.PROCESSING: frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.FAILED}),
    PaymentStatus.SUCCEEDED: frozenset(),
    PaymentStatus.FAILED: frozenset(),
}

FINAL_PAYMENT_STATUSES = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.FAILED})


def can_transition_order(current: OrderStatus, target: OrderStatus) -> bool:
    return target in ORDER_TRANSITIONS[current]


def can_transition_payment(current: PaymentStatus, target: PaymentStatus) -> bool:
    return target in PAYMENT_TRANSITIONS[current]


def check_order_transition(current: OrderStatus, target: OrderStatus, *, code: str) -> None:
    if not can_transition_order(current, target):
        raise Conflict(f"order is {current.value}; it cannot become {target.value}", code=code)


def check_payment_transition(current: PaymentStatus, target: PaymentStatus) -> None:
    if not can_transition_payment(current, target):
        raise Conflict(
            f"payment is {current.value}; it cannot become {target.value}",
            code="payment_not_processing",
        )
