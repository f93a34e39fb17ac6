"""Daily settlement against moto: what is due becomes available, once, in batches that are
each one transaction; the figures a merchant reads add up over every run of the day."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from paycore.dal.ledger import LedgerStore
from paycore.dal.trade_store import TradeStore
from paycore.errors import ValidationFailed
from paycore.ledger.accounts import Account, Holding
from paycore.services import confirmation, settlement
from tests.functional.conftest import MotoStack
from tests.functional.ledger_support import (
    WriteLog,
    account_updates,
    assert_books_agree,
    writes,
)
from tests.functional.money_support import Shop
from tests.support import FakeContext, load_function

__all__ = ["writes"]


@pytest.fixture
def store(moto_stack: MotoStack, refund_machine: str) -> TradeStore:
    return TradeStore()


def _holdings(shop: Shop, currency: str = "CNY") -> tuple[int, int, int]:
    """(escrow, pending, available)."""
    held = LedgerStore().merchant_holdings(shop.id).get(currency, {})
    return tuple(held.get(kind, 0) for kind in Holding)  # type: ignore[return-value]


def _figures(store: TradeStore, shop: Shop, day: Any, currency: str = "CNY") -> dict[str, Any]:
    return settlement.get_settlement(store, shop.id, day, currency)


def test_todays_settlement_makes_what_is_due_available_once(
    store: TradeStore, writes: WriteLog, moto_stack: MotoStack
) -> None:
    shop = Shop(store, settlement_delay_days=0)
    first, _ = shop.paid(1999)  # fee 12
    second, _ = shop.paid(1000)  # fee 6
    shop.refunded(first, 500)  # 3 of the fee back, 497 from pending
    today = settlement.today()

    run = settlement.run_settlement(store, today)

    assert (run.payments_count, run.settlements_count) == (2, 1)
    assert _holdings(shop) == (0, 0, 1987 - 497 + 994)
    assert _figures(store, shop, today) == {
        "object": "settlement",
        "date": today.isoformat(),
        "currency": "CNY",
        "payments_count": 2,
        "gross": 2999,
        "fees": 18,
        "refunds_count": 1,
        "refunds": 500,
        "fee_refunded": 3,
        "net": 2999 - 18 - 500 + 3,
    }
    [entry_id] = [e for e in writes.posted() if e.endswith("_settlement")]
    items = writes.transaction_of(entry_id)
    settled = [item for item in items if item.pk.startswith("ORDER#")]
    assert {item.pk for item in settled} == {f"ORDER#{first}", f"ORDER#{second}"}
    assert {item.values["settled_on"] for item in settled} == {today.isoformat()}
    assert account_updates(items) == {
        f"merchant:{shop.id}:pending:CNY": (2484, 0),
        f"merchant:{shop.id}:available:CNY": (0, 2484),
    }
    # Again: nothing is due any more; a refund of a settled order comes out of available.
    assert settlement.run_settlement(store, today).payments_count == 0
    later = shop.refunded(first, 1499)  # the rest of the fee (9) comes back too
    assert account_updates(writes.transaction_of(f"je_{later.id}_refund_succeeded"))[
        f"merchant:{shop.id}:available:CNY"
    ] == (1490, 0)
    assert _holdings(shop) == (0, 0, 994)
    # A payment made later today is settled by a later run of the same day, and the day's
    # figures add up over both runs.
    shop.paid(300)  # fee 2
    assert settlement.run_settlement(store, today).payments_count == 1
    assert _figures(store, shop, today)["payments_count"] == 3
    assert _figures(store, shop, today)["net"] == 2484 + 298
    ledger = assert_books_agree(moto_stack.trade_table)
    assert ledger.balance(Account.parse(f"merchant:{shop.id}:pending:CNY")) == 0


def test_money_waits_for_its_delay_and_only_its_own_days(
    store: TradeStore, moto_stack: MotoStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = Shop(store, "Slow", settlement_delay_days=2)
    slow.paid(1000)
    today = settlement.today()
    for day in (today, today + timedelta(days=1)):
        monkeypatch.setattr(settlement, "today", lambda day=day: day)
        assert settlement.run_settlement(store, day).payments_count == 0
    assert _holdings(slow) == (0, 994, 0)
    due = today + timedelta(days=2)
    monkeypatch.setattr(settlement, "today", lambda: due)

    assert settlement.run_settlement(store, due).payments_count == 1

    assert _holdings(slow) == (0, 0, 994)
    assert _figures(store, slow, due)["net"] == 994
    assert _figures(store, slow, today)["payments_count"] == 0


def test_a_future_day_cannot_be_run(store: TradeStore) -> None:
    with pytest.raises(ValidationFailed) as refused:
        settlement.run_settlement(store, settlement.today() + timedelta(days=1))
    assert refused.value.code == "settlement_date_in_future" and refused.value.param == "date"


def test_guaranteed_money_is_settled_from_its_confirmation_on(
    store: TradeStore, moto_stack: MotoStack
) -> None:
    shop = Shop(store, settlement_delay_days=0)
    held, _ = shop.paid(1999, trade_type="guaranteed")
    today = settlement.today()
    assert settlement.run_settlement(store, today).payments_count == 0
    assert _holdings(shop) == (1987, 0, 0)

    confirmation.confirm_order(store, shop.id, held)
    assert settlement.run_settlement(store, today).payments_count == 1

    assert _holdings(shop) == (0, 0, 1987)


def test_many_orders_settle_in_batches_well_inside_the_transaction_limit(
    store: TradeStore, writes: WriteLog, moto_stack: MotoStack
) -> None:
    shop = Shop(store, settlement_delay_days=0)
    other = Shop(store, "Other", settlement_delay_days=0)
    for _ in range(30):
        shop.paid(100)  # fee 1
    other.paid(100, "JPY")

    run = settlement.run_settlement(store, settlement.today())

    assert (run.payments_count, run.settlements_count) == (31, 2)
    batches = [
        items
        for operation, items in writes.calls
        if operation == "TransactWriteItems"
        and any(item.pk.startswith("ENTRY#") and item.pk.endswith("_settlement") for item in items)
    ]
    assert sorted(len(items) for items in batches) == [1 + 4, 5 + 4, 25 + 4]
    assert _holdings(shop) == (0, 0, 30 * 99)
    assert _holdings(other, "JPY") == (0, 0, 99)
    assert_books_agree(moto_stack.trade_table)


def test_a_refund_that_lands_during_a_run_is_counted_once(
    store: TradeStore, moto_stack: MotoStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run read the order before a refund succeeded; its batch fails on the order's
    version, reads it again and settles what is left."""
    shop = Shop(store, settlement_delay_days=0)
    order_id, _ = shop.paid(1999)
    refund = shop.refund(order_id, 999)
    read = TradeStore.get_orders
    raced: list[str] = []

    def read_then_refund(self: TradeStore, ids: list[str]) -> Any:
        found = read(self, ids)
        if not raced:
            raced.append(refund.id)
            shop.finish_refund(refund.id)  # returns 6 of the fee of 12
        return found

    monkeypatch.setattr(TradeStore, "get_orders", read_then_refund)

    assert settlement.run_settlement(store, settlement.today()).payments_count == 1

    figures = _figures(store, shop, settlement.today())
    assert (figures["refunds"], figures["fee_refunded"], figures["net"]) == (999, 6, 994)
    assert _holdings(shop) == (0, 0, 994)
    assert_books_agree(moto_stack.trade_table)


def test_the_schedule_settles_the_day_it_was_scheduled_for(
    store: TradeStore, moto_stack: MotoStack
) -> None:
    shop = Shop(store, settlement_delay_days=0)
    shop.paid(500)
    today = settlement.today()
    job = load_function("settlement")
    # Scheduled for 00:00 of yesterday (Shanghai): today's payment is not due then.
    yesterday_midnight = f"{(today - timedelta(days=1)).isoformat()}T00:00:00+08:00"
    assert job.lambda_handler({"scheduled_time": yesterday_midnight}, FakeContext()) == {
        "object": "settlement_run",
        "date": (today - timedelta(days=1)).isoformat(),
        "payments_count": 0,
        "settlements_count": 0,
    }
    ran = job.lambda_handler({}, FakeContext())  # no scheduled time: today
    assert (ran["date"], ran["payments_count"]) == (today.isoformat(), 1)
