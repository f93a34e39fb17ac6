"""The trade domain: transitions, money, ids."""

from __future__ import annotations

from dataclasses import replace

import pytest

from paycore.domain.models import Order, Payment
from paycore.domain.status import (
    ORDER_TRANSITIONS,
    OrderStatus,
    PaymentStatus,
    can_transition_order,
    can_transition_payment,
)
from paycore.errors import Conflict
from paycore.ids import derived_id, has_prefix, new_id
from paycore.money import format_amount

AT = "2026-11-25T10:00:00.000Z"


def make_order(status: OrderStatus = OrderStatus.CREATED, payment: str | None = None) -> Order:
    return Order(
        id="ord_1",
        merchant_id="mch_1",
        merchant_order_no="A-1",
        amount=1999,
        currency="CNY",
        subject="Tea",
        status=status,
        expires_at=AT,
        created_at=AT,
        updated_at=AT,
        current_payment_id=payment,
    )


def make_payment(status: PaymentStatus = PaymentStatus.PROCESSING) -> Payment:
    return Payment(
        id="pay_1",
        merchant_id="mch_1",
        order_id="ord_1",
        status=status,
        amount=1999,
        currency="CNY",
        instruments=[],
        channel="sandbox",
        created_at=AT,
        updated_at=AT,
    )


def test_order_lifecycle_paid() -> None:
    paying = make_order().start_paying("pay_1", AT)
    assert paying.status is OrderStatus.PAYING and paying.current_payment_id == "pay_1"
    paid = paying.mark_paid(make_payment(), AT, time_zone="Asia/Shanghai")
    assert paid.status is OrderStatus.PAID and paid.amount_paid == 1999


def test_failed_payment_makes_order_payable_again() -> None:
    reopened = make_order().start_paying("pay_1", AT).reopen("pay_1", AT)
    assert reopened.status is OrderStatus.CREATED and reopened.current_payment_id is None
    assert reopened.start_paying("pay_2", AT).current_payment_id == "pay_2"


def test_only_the_current_payment_settles_the_order() -> None:
    paying = make_order().start_paying("pay_1", AT)
    with pytest.raises(Conflict) as raised:
        paying.mark_paid(replace(make_payment(), id="pay_other"), AT, time_zone="UTC")
    assert raised.value.code == "payment_superseded"


@pytest.mark.parametrize("status", [OrderStatus.PAYING, OrderStatus.PAID, OrderStatus.CLOSED])
def test_only_a_created_order_can_start_paying(status: OrderStatus) -> None:
    with pytest.raises(Conflict) as raised:
        make_order(status, "pay_0").start_paying("pay_1", AT)
    assert raised.value.code == "order_not_payable"


@pytest.mark.parametrize("status", [OrderStatus.PAYING, OrderStatus.PAID, OrderStatus.REFUNDED])
def test_a_paid_or_paying_order_cannot_close(status: OrderStatus) -> None:
    with pytest.raises(Conflict) as raised:
        make_order(status, "pay_0").close(AT)
    assert raised.value.code == "order_not_closable"


def test_terminal_statuses_have_no_way_out() -> None:
    assert ORDER_TRANSITIONS[OrderStatus.CLOSED] == frozenset()
    assert ORDER_TRANSITIONS[OrderStatus.REFUNDED] == frozenset()
    for final in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED):
        for target in PaymentStatus:
            assert not can_transition_payment(final, target)
    assert not can_transition_order(OrderStatus.PAID, OrderStatus.CREATED)


def test_payment_final_once() -> None:
    succeeded = make_payment().succeed("txn_1", AT)
    assert succeeded.is_final and succeeded.channel_transaction_id == "txn_1"
    with pytest.raises(Conflict):
        succeeded.fail("late", "late failure", AT)
    failed = make_payment().fail("payment_declined", "declined", AT)
    assert failed.failure_code == "payment_declined" and failed.next_action is None
    with pytest.raises(Conflict):
        failed.succeed("txn_2", AT)


def test_money_formats_with_the_currency_exponent() -> None:
    assert format_amount(1999, "CNY") == "19.99 CNY"
    assert format_amount(5, "USD") == "0.05 USD"
    assert format_amount(1999, "JPY") == "1999 JPY"


def test_ids_are_prefixed_unique_and_time_ordered() -> None:
    first, second = new_id("ord"), new_id("ord")
    assert has_prefix(first, "ord") and first != second
    assert len(first) == len("ord_") + 26
    with pytest.raises(ValueError, match="unknown id prefix"):
        new_id("xyz")


def test_derived_ids_are_stable_per_cause() -> None:
    assert derived_id("evt", "pay_1", "order.paid") == derived_id("evt", "pay_1", "order.paid")
    assert derived_id("evt", "pay_1", "order.paid") != derived_id("evt", "pay_1", "payment.failed")
    assert has_prefix(derived_id("evt", "x"), "evt")
