"""The order's money: where it sits (escrow, pending, available), the guaranteed-trade deadline
and what can be confirmed, and the settlement day its money is due."""

from __future__ import annotations

from dataclasses import replace

import pytest

from paycore.domain.models import DEFAULT_AUTO_CONFIRM_IN, Order, Payment, TradeType
from paycore.domain.status import OrderStatus, PaymentStatus
from paycore.errors import Conflict
from paycore.ledger.accounts import Holding

AT = "2026-11-25T10:00:00.000Z"
PAID_AT = "2026-11-26T23:30:00.000Z"
TZ = "Asia/Shanghai"
PAYMENT = Payment(
    id="pay_1",
    merchant_id="mch_1",
    order_id="ord_1",
    status=PaymentStatus.SUCCEEDED,
    amount=1999,
    currency="CNY",
    instruments=[],
    channel="sandbox",
    created_at=AT,
    updated_at=AT,
    channel_amount=1999,
    fee=12,
    settlement_delay_days=2,
)


def paying(trade_type: TradeType, auto_confirm_in: int | None = None) -> Order:
    return Order(
        id="ord_1",
        merchant_id="mch_1",
        merchant_order_no="A-1",
        amount=1999,
        currency="CNY",
        subject="Tea",
        status=OrderStatus.PAYING,
        expires_at=AT,
        created_at=AT,
        updated_at=AT,
        current_payment_id="pay_1",
        trade_type=trade_type,
        auto_confirm_in=auto_confirm_in,
    )


def test_a_paid_guaranteed_order_holds_its_money_in_escrow_until_its_deadline() -> None:
    paid = paying(TradeType.GUARANTEED, 3600).mark_paid(PAYMENT, PAID_AT, time_zone=TZ)
    assert paid.auto_confirm_at == "2026-11-27T00:30:00.000Z"
    assert paid.holding is Holding.ESCROW and paid.is_confirmable
    default = paying(TradeType.GUARANTEED).mark_paid(PAYMENT, PAID_AT, time_zone=TZ)
    assert DEFAULT_AUTO_CONFIRM_IN == 10 * 86400
    assert default.auto_confirm_at == "2026-12-06T23:30:00.000Z"


def test_confirming_moves_the_money_to_pending_without_a_status_change() -> None:
    paid = paying(TradeType.GUARANTEED, 60).mark_paid(PAYMENT, PAID_AT, time_zone=TZ)
    confirmed = paid.confirm(AT, time_zone=TZ)
    assert confirmed.status is OrderStatus.PAID and confirmed.confirmed_at == AT
    assert confirmed.holding is Holding.PENDING and not confirmed.is_confirmable
    shown = confirmed.resource()
    assert (shown["trade_type"], shown["confirmed_at"], shown["auto_confirm_in"]) == (
        "guaranteed",
        AT,
        60,
    )


@pytest.mark.parametrize(
    ("order", "why"),
    [
        (
            paying(TradeType.INSTANT).mark_paid(PAYMENT, PAID_AT, time_zone=TZ),
            "not a guaranteed order",
        ),
        (paying(TradeType.GUARANTEED), "it is paying"),
        (
            paying(TradeType.GUARANTEED)
            .mark_paid(PAYMENT, PAID_AT, time_zone=TZ)
            .confirm(AT, time_zone=TZ),
            "already",
        ),
        (
            replace(
                paying(TradeType.GUARANTEED).mark_paid(PAYMENT, PAID_AT, time_zone=TZ),
                status=OrderStatus.REFUNDED,
            ),
            "it is refunded",
        ),
    ],
)
def test_only_a_paid_unconfirmed_guaranteed_order_can_be_confirmed(order: Order, why: str) -> None:
    with pytest.raises(Conflict) as refused:
        order.confirm(AT, time_zone=TZ)
    assert refused.value.code == "order_not_confirmable"
    assert why in refused.value.detail


def test_an_instant_order_is_pending_once_paid_and_has_no_deadline() -> None:
    paid = paying(TradeType.INSTANT).mark_paid(PAYMENT, PAID_AT, time_zone=TZ)
    assert paid.holding is Holding.PENDING and paid.auto_confirm_at is None
    partly = replace(
        paying(TradeType.GUARANTEED).mark_paid(PAYMENT, PAID_AT, time_zone=TZ),
        status=OrderStatus.PARTIALLY_REFUNDED,
    )
    assert partly.is_confirmable


def test_money_is_due_its_delay_after_the_local_day_it_became_pending() -> None:
    # 23:30 UTC on the 26th is 07:30 on the 27th in Shanghai; the payment's delay is 2 days.
    instant = paying(TradeType.INSTANT).mark_paid(PAYMENT, PAID_AT, time_zone=TZ)
    assert instant.settle_on == "2026-11-29" and instant.awaits_settlement
    assert paying(TradeType.INSTANT).mark_paid(PAYMENT, PAID_AT, time_zone="UTC").settle_on == (
        "2026-11-28"
    )
    held = paying(TradeType.GUARANTEED).mark_paid(PAYMENT, PAID_AT, time_zone=TZ)
    assert held.settle_on is None and not held.awaits_settlement
    confirmed = held.confirm("2026-12-01T16:00:00.000Z", time_zone=TZ)  # 00:00 the 2nd there
    assert confirmed.settle_on == "2026-12-04"
    with pytest.raises(Conflict) as early:
        confirmed.settle("2026-12-03", AT)
    assert early.value.code == "order_not_due"
    settled = confirmed.settle("2026-12-05", AT)
    assert settled.settled_on == "2026-12-05" and settled.holding is Holding.AVAILABLE
    assert not settled.awaits_settlement
    with pytest.raises(Conflict):
        settled.settle("2026-12-06", AT)
    internal = replace(PAYMENT, channel_amount=0, fee=0)
    assert paying(TradeType.INSTANT).mark_paid(internal, PAID_AT, time_zone=TZ).settle_on is None
