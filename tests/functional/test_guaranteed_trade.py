"""Guaranteed trade (担保交易) against moto: the money waits in escrow, refunds come out of
escrow, confirmation (by the merchant or the sweep) moves what is left to pending in the same
transaction as the order's confirmed_at and its event."""

from __future__ import annotations

import pytest

from paycore.clock import seconds_after
from paycore.dal.ledger import LedgerStore
from paycore.dal.trade_store import TradeStore
from paycore.errors import Conflict
from paycore.ledger.accounts import Account
from paycore.services import confirmation, events
from tests.functional.conftest import MotoStack
from tests.functional.ledger_support import (
    WriteLog,
    account_updates,
    assert_books_agree,
    item_of,
    writes,
)
from tests.functional.money_support import Shop
from tests.support import FakeContext, load_function

__all__ = ["writes"]

FEES = "platform:fees:CNY"


@pytest.fixture
def store(moto_stack: MotoStack, refund_machine: str) -> TradeStore:
    return TradeStore()


def _holdings(shop: Shop) -> dict[str, int]:
    held = LedgerStore().merchant_holdings(shop.id).get("CNY", {})
    return {holding.value: amount for holding, amount in held.items()}


def test_escrow_holds_the_money_refunds_come_out_of_it_and_confirmation_releases_the_rest(
    store: TradeStore, writes: WriteLog, moto_stack: MotoStack
) -> None:
    shop = Shop(store)
    order_id, payment_id = shop.paid(1999, trade_type="guaranteed")
    escrow = f"merchant:{shop.id}:escrow:CNY"
    pending = f"merchant:{shop.id}:pending:CNY"

    paid = writes.transaction_of(f"je_{payment_id}_payment_succeeded")
    assert account_updates(paid)[escrow] == (0, 1987)
    assert pending not in account_updates(paid)
    assert _holdings(shop) == {"escrow": 1987, "pending": 0, "available": 0}

    refund = shop.refunded(order_id, 500)  # returns 3 of the fee of 12
    assert account_updates(writes.transaction_of(f"je_{refund.id}_refund_succeeded"))[escrow] == (
        497,
        0,
    )

    confirmed = confirmation.confirm_order(store, shop.id, order_id)

    assert confirmed.confirmed_at is not None and confirmed.status.value == "partially_refunded"
    items = writes.transaction_of(f"je_{order_id}_trade_confirmed")
    assert item_of(items, f"ORDER#{order_id}").values["confirmed_at"] == confirmed.confirmed_at
    event_id = events.event_id(order_id, events.ORDER_CONFIRMED)
    assert item_of(items, f"EVENT#{event_id}").values["type"] == "order.confirmed"
    assert account_updates(items) == {escrow: (1490, 0), pending: (0, 1490)}
    assert _holdings(shop) == {"escrow": 0, "pending": 1490, "available": 0}
    # Refunds after confirmation come out of pending.
    later = shop.refunded(order_id, 1499)  # the rest: the remaining 9 of the fee come back
    assert account_updates(writes.transaction_of(f"je_{later.id}_refund_succeeded")) == {
        pending: (1490, 0),
        FEES: (9, 0),
        "channel:sandbox:sandbox-primary:refunding:CNY": (0, 1499),
    }
    ledger = assert_books_agree(moto_stack.trade_table)
    assert ledger.balance(Account.parse(escrow)) == ledger.balance(Account.parse(pending)) == 0
    assert ledger.balance(Account.parse(FEES)) == 0


@pytest.mark.parametrize(
    "setup",
    ["instant", "unpaid", "confirmed", "refunded"],
)
def test_what_cannot_be_confirmed_is_a_409_and_changes_nothing(
    store: TradeStore, moto_stack: MotoStack, setup: str
) -> None:
    shop = Shop(store)
    if setup == "instant":
        order_id, _ = shop.paid(1999)
    elif setup == "unpaid":
        order_id = shop.order(1999, trade_type="guaranteed")
    else:
        order_id, _ = shop.paid(1999, trade_type="guaranteed")
        if setup == "confirmed":
            confirmation.confirm_order(store, shop.id, order_id)
        else:
            shop.refunded(order_id, 1999)
    before = store.get_order(order_id)
    entries = assert_books_agree(moto_stack.trade_table).entries

    with pytest.raises(Conflict) as refused:
        confirmation.confirm_order(store, shop.id, order_id)

    assert refused.value.code == "order_not_confirmable"
    assert store.get_order(order_id) == before
    assert assert_books_agree(moto_stack.trade_table).entries == entries


def test_an_internally_paid_guaranteed_order_confirms_without_moving_money(
    store: TradeStore, writes: WriteLog, moto_stack: MotoStack
) -> None:
    shop = Shop(store)
    shop.credit(1999)
    order_id = shop.order(1999, trade_type="guaranteed")
    shop.pay(order_id, {"type": "balance", "amount": 1999})

    confirmed = confirmation.confirm_order(store, shop.id, order_id)

    assert confirmed.confirmed_at is not None
    assert f"je_{order_id}_trade_confirmed" not in writes.posted()
    assert store.get_event(events.event_id(order_id, events.ORDER_CONFIRMED)) is not None


def test_the_sweep_confirms_only_the_orders_past_their_deadline(
    store: TradeStore, moto_stack: MotoStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = Shop(store)
    soon, _ = shop.paid(1000, trade_type="guaranteed", auto_confirm_in=60)
    later, _ = shop.paid(2000, trade_type="guaranteed", auto_confirm_in=3600)
    done, _ = shop.paid(3000, trade_type="guaranteed", auto_confirm_in=60)
    confirmation.confirm_order(store, shop.id, done)
    instant, _ = shop.paid(4000)
    sweep = load_function("auto_confirm")

    assert sweep.lambda_handler({}, FakeContext()) == {
        "confirmed": 0,
        "not_confirmable": 0,
        "retry_later": 0,
    }
    soon_order = store.get_order(soon)
    assert soon_order is not None and soon_order.auto_confirm_at is not None
    future = seconds_after(soon_order.auto_confirm_at, 120)
    monkeypatch.setattr("paycore.services.confirmation.now_rfc3339", lambda: future)

    assert sweep.lambda_handler({}, FakeContext())["confirmed"] == 1

    confirmed = store.get_order(soon)
    assert confirmed is not None and confirmed.confirmed_at == future
    for untouched in (later, instant):
        order = store.get_order(untouched)
        assert order is not None and order.confirmed_at is None
    assert sweep.lambda_handler({}, FakeContext())["confirmed"] == 0  # it left the index
    # 1000 (fee 6) confirmed by the sweep and 3000 (fee 18) by the merchant are pending;
    # 2000 (fee 12) is still in escrow; the instant 4000 (fee 24) is pending.
    assert _holdings(shop) == {"escrow": 1988, "pending": 994 + 2982 + 3976, "available": 0}
