"""Refunds in the domain: the allocation rule, the refund's transitions, the order's refund
amounts."""

from __future__ import annotations

from typing import Any

import pytest

from paycore.domain.models import Order, Payment
from paycore.domain.refunds import (
    REFUND_TRANSITIONS,
    Refund,
    RefundKind,
    RefundStatus,
    add_allocations,
    allocate,
    can_transition_refund,
    paid_by_instrument,
)
from paycore.domain.status import OrderStatus, PaymentStatus
from paycore.errors import Conflict

AT = "2026-11-25T10:00:00.000Z"
LATER = "2026-11-25T10:05:00.000Z"


def payment(*instruments: dict[str, Any], amount: int | None = None) -> Payment:
    total = sum(int(i["amount"]) for i in instruments)
    return Payment(
        id="pay_1",
        merchant_id="mch_1",
        order_id="ord_1",
        status=PaymentStatus.SUCCEEDED,
        amount=amount if amount is not None else total,
        currency="CNY",
        instruments=list(instruments),
        channel=next((i["channel"] for i in instruments if i["type"] == "channel"), None),
        created_at=AT,
        updated_at=AT,
    )


CHANNEL = {"type": "channel", "channel": "sandbox", "amount": 1000}
BALANCE = {"type": "balance", "amount": 600}
COUPON = {"type": "coupon", "coupon_id": "cpn_1", "amount": 400}
COMBINED = payment(COUPON, BALANCE, CHANNEL)  # listed in another order on purpose


def paid_order(amount_paid: int = 2000, **changes: Any) -> Order:
    values: dict[str, Any] = {
        "id": "ord_1",
        "merchant_id": "mch_1",
        "merchant_order_no": "A-1",
        "amount": amount_paid,
        "currency": "CNY",
        "subject": "Tea",
        "status": OrderStatus.PAID,
        "expires_at": AT,
        "created_at": AT,
        "updated_at": AT,
        "amount_paid": amount_paid,
        "current_payment_id": "pay_1",
    }
    values.update(changes)
    return Order(**values)


def refund(status: RefundStatus = RefundStatus.PROCESSING) -> Refund:
    return Refund(
        id="rfd_1",
        merchant_id="mch_1",
        order_id="ord_1",
        payment_id="pay_1",
        amount=500,
        currency="CNY",
        status=status,
        kind=RefundKind.MERCHANT,
        allocations=[{"type": "channel", "amount": 500}],
        created_at=AT,
        updated_at=AT,
        reason="damaged",
        channel="sandbox",
    )


# -- allocation ---------------------------------------------------------------------------------


def test_paid_by_instrument_lists_channel_then_balance_then_coupon() -> None:
    assert list(paid_by_instrument(COMBINED).items()) == [
        ("channel", 1000),
        ("balance", 600),
        ("coupon:cpn_1", 400),
    ]


def test_a_channel_only_payment_refunds_through_the_channel() -> None:
    assert allocate(payment(CHANNEL), {}, 300) == [{"type": "channel", "amount": 300}]


def test_the_channel_part_goes_first_then_balance_then_coupon() -> None:
    assert allocate(COMBINED, {}, 1900) == [
        {"type": "channel", "amount": 1000},
        {"type": "balance", "amount": 600},
        {"type": "coupon", "coupon_id": "cpn_1", "amount": 300},
    ]


def test_earlier_refunds_use_up_their_instruments() -> None:
    previous = {"channel": 1000, "balance": 100}
    assert allocate(COMBINED, previous, 600) == [
        {"type": "balance", "amount": 500},
        {"type": "coupon", "coupon_id": "cpn_1", "amount": 100},
    ]


def test_no_instrument_gets_back_more_than_it_paid() -> None:
    for amount in [*range(1, 1751, 37), 1750]:
        parts = {a["type"]: a["amount"] for a in allocate(COMBINED, {"channel": 250}, amount)}
        assert sum(parts.values()) == amount
        assert parts.get("channel", 0) <= 750
        assert parts.get("balance", 0) <= 600
        assert parts.get("coupon", 0) <= 400


@pytest.mark.parametrize(("previous", "amount"), [({}, 2001), ({"channel": 1000}, 1001)])
def test_more_than_is_left_is_refused(previous: dict[str, int], amount: int) -> None:
    with pytest.raises(Conflict) as refused:
        allocate(COMBINED, previous, amount)
    assert refused.value.code == "refund_exceeds_paid"


def test_allocation_totals_add_and_give_back() -> None:
    parts = allocate(COMBINED, {}, 1700)
    totals = add_allocations({}, parts)
    assert totals == {"channel": 1000, "balance": 600, "coupon:cpn_1": 100}
    assert add_allocations(totals, parts, sign=-1) == {}
    with pytest.raises(Conflict):
        add_allocations({}, parts, sign=-1)


# -- the refund's transitions -------------------------------------------------------------------


def test_only_a_processing_refund_changes() -> None:
    assert REFUND_TRANSITIONS[RefundStatus.PROCESSING] == {
        RefundStatus.SUCCEEDED,
        RefundStatus.FAILED,
    }
    for final in (RefundStatus.SUCCEEDED, RefundStatus.FAILED):
        assert not any(can_transition_refund(final, target) for target in RefundStatus)


def test_succeed_and_fail_record_what_happened() -> None:
    assert refund().fee_refunded is None
    done = refund().succeed("sbxr_1", LATER, fee_refunded=3)
    assert done.status is RefundStatus.SUCCEEDED and done.channel_refund_id == "sbxr_1"
    assert done.fee_refunded == 3 and done.resource()["fee_refunded"] == 3
    assert done.updated_at == LATER and done.is_final
    failed = refund().fail("refund_rejected", "no", LATER)
    assert failed.status is RefundStatus.FAILED and failed.failure_code == "refund_rejected"
    for final in (done, failed):
        with pytest.raises(Conflict) as refused:
            final.succeed(None, LATER, fee_refunded=0)
        assert refused.value.code == "refund_not_processing"
        with pytest.raises(Conflict):
            final.fail("x", "y", LATER)


def test_refund_resource_has_the_contract_shape() -> None:
    shown = refund().resource()
    assert {
        "id",
        "object",
        "order_id",
        "amount",
        "status",
        "reason",
        "created_at",
        "updated_at",
    } <= set(shown)
    assert shown["object"] == "refund" and shown["status"] == "processing"
    assert shown["allocations"] == [{"type": "channel", "amount": 500}]
    assert shown["kind"] == "merchant" and shown["payment_id"] == "pay_1"


# -- the order's refund amounts -----------------------------------------------------------------


@pytest.mark.parametrize("status", [OrderStatus.CREATED, OrderStatus.PAYING, OrderStatus.CLOSED])
def test_an_unpaid_order_cannot_be_refunded(status: OrderStatus) -> None:
    with pytest.raises(Conflict) as refused:
        paid_order(status=status, amount_paid=0).reserve_refund(1)
    assert refused.value.code == "order_not_refundable"


def test_refunds_in_flight_count_against_what_is_left() -> None:
    order = paid_order(2000).reserve_refund(1500, [{"type": "channel", "amount": 1500}], LATER)
    assert order.refund_pending == 1500 and order.refund_allocated == {"channel": 1500}
    assert order.status is OrderStatus.PAID and order.updated_at == LATER
    with pytest.raises(Conflict) as refused:
        order.reserve_refund(501)
    assert refused.value.code == "refund_exceeds_paid"
    assert order.reserve_refund(500).refund_pending == 2000


def test_completing_refunds_moves_the_order_to_partially_then_fully_refunded() -> None:
    parts = [{"type": "channel", "amount": 500}]
    order = paid_order(2000).reserve_refund(500, parts).complete_refund(500, parts, LATER)
    assert order.status is OrderStatus.PARTIALLY_REFUNDED
    assert (order.amount_refunded, order.refund_pending) == (500, 0)
    assert order.refunded_by_instrument == {"channel": 500}
    rest = [{"type": "channel", "amount": 1500}]
    order = order.reserve_refund(1500, rest).complete_refund(1500, rest)
    assert order.status is OrderStatus.REFUNDED and order.amount_refunded == 2000
    # A refunded order is an over-refund for any further amount.
    with pytest.raises(Conflict) as refused:
        order.reserve_refund(1)
    assert refused.value.code == "refund_exceeds_paid"


def test_a_failed_refund_gives_its_amount_back() -> None:
    parts = [{"type": "channel", "amount": 700}]
    order = paid_order(2000).reserve_refund(700, parts).release_refund(700, parts)
    assert order.status is OrderStatus.PAID
    assert (order.amount_refunded, order.refund_pending, order.refund_allocated) == (0, 0, {})
    assert order.reserve_refund(2000).refund_pending == 2000


def test_only_a_reserved_amount_completes_or_is_released() -> None:
    order = paid_order(2000).reserve_refund(100)
    for change in (order.complete_refund, order.release_refund):
        with pytest.raises(Conflict) as refused:
            change(101)
        assert refused.value.code == "refund_not_reserved"
