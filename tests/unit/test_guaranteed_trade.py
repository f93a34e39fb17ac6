"""Guaranteed trade in the order aggregate: where its money sits, its deadline, and what can be
confirmed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from paycore.domain.models import DEFAULT_AUTO_CONFIRM_IN, Order, TradeType
from paycore.domain.status import OrderStatus
from paycore.errors import Conflict
from paycore.ledger.accounts import Holding

AT = "2026-11-25T10:00:00.000Z"
PAID_AT = "2026-11-26T23:30:00.000Z"


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
    paid = paying(TradeType.GUARANTEED, 3600).mark_paid("pay_1", 1999, PAID_AT)
    assert paid.auto_confirm_at == "2026-11-27T00:30:00.000Z"
    assert paid.holding is Holding.ESCROW and paid.is_confirmable
    default = paying(TradeType.GUARANTEED).mark_paid("pay_1", 1999, PAID_AT)
    assert DEFAULT_AUTO_CONFIRM_IN == 10 * 86400
    assert default.auto_confirm_at == "2026-12-06T23:30:00.000Z"


def test_confirming_moves_the_money_to_pending_without_a_status_change() -> None:
    paid = paying(TradeType.GUARANTEED, 60).mark_paid("pay_1", 1999, PAID_AT)
    confirmed = paid.confirm(AT)
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
        (paying(TradeType.INSTANT).mark_paid("pay_1", 1999, PAID_AT), "not a guaranteed order"),
        (paying(TradeType.GUARANTEED), "it is paying"),
        (paying(TradeType.GUARANTEED).mark_paid("pay_1", 1999, PAID_AT).confirm(AT), "already"),
        (
            replace(
                paying(TradeType.GUARANTEED).mark_paid("pay_1", 1999, PAID_AT),
                status=OrderStatus.REFUNDED,
            ),
            "it is refunded",
        ),
    ],
)
def test_only_a_paid_unconfirmed_guaranteed_order_can_be_confirmed(order: Order, why: str) -> None:
    with pytest.raises(Conflict) as refused:
        order.confirm(AT)
    assert refused.value.code == "order_not_confirmable"
    assert why in refused.value.detail


def test_an_instant_order_is_pending_once_paid_and_has_no_deadline() -> None:
    paid = paying(TradeType.INSTANT).mark_paid("pay_1", 1999, PAID_AT)
    assert paid.holding is Holding.PENDING and paid.auto_confirm_at is None
    partly = replace(
        paying(TradeType.GUARANTEED).mark_paid("pay_1", 1999, PAID_AT),
        status=OrderStatus.PARTIALLY_REFUNDED,
    )
    assert partly.is_confirmable
