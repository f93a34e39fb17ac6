"""Every money step against moto posts its journal entry in the same transaction as the state
change that causes it: read from the transaction the data layer sent, then from the table
(the account items always hold the fold of the stored entries)."""

from __future__ import annotations

import boto3
import pytest

from paycore.dal.ledger import LedgerStore
from paycore.dal.refund_store import RefundStore
from paycore.dal.trade_store import TradeStore
from paycore.domain.status import OrderStatus, PaymentStatus
from paycore.ledger.accounts import Account
from paycore.services.orchestration import PaymentSteps
from paycore.services.refunds import RefundSteps, late_payment_refund_id
from tests.functional.conftest import MotoStack
from tests.functional.ledger_support import (
    WriteLog,
    account_updates,
    assert_books_agree,
    item_of,
    stored_entries,
    writes,
)
from tests.functional.money_support import BUYER, CHANNEL, SUCCEEDED, Shop

__all__ = ["writes"]

ACCOUNT = "sandbox-primary"
CLEARING = f"channel:sandbox:{ACCOUNT}:clearing:CNY"
REFUNDING = f"channel:sandbox:{ACCOUNT}:refunding:CNY"
FEES = "platform:fees:CNY"


@pytest.fixture
def store(moto_stack: MotoStack, refund_machine: str) -> TradeStore:
    return TradeStore()


def _account(account_id: str) -> Account:
    return Account.parse(account_id)


def test_a_channel_payment_posts_its_money_with_the_settlement(
    store: TradeStore, writes: WriteLog, moto_stack: MotoStack
) -> None:
    shop = Shop(store)
    merchant = shop.id
    order_id = shop.order(1999)
    payment_id = shop.pay(order_id, CHANNEL)
    # A channel-only payment reserves nothing: its start posts no entry.
    assert writes.posted() == []

    PaymentSteps(store).settle(payment_id, SUCCEEDED)

    items = writes.transaction_of(f"je_{payment_id}_payment_succeeded")
    assert item_of(items, f"PAYMENT#{payment_id}").values["status"] == "succeeded"
    assert item_of(items, f"ORDER#{order_id}").values["status"] == "paid"
    assert any(item.pk.startswith("EVENT#") for item in items)
    # 0.60% (the default rate) of 19.99, rounded half up: 0.12.
    assert account_updates(items) == {
        CLEARING: (1999, 0),
        f"merchant:{merchant}:pending:CNY": (0, 1987),
        FEES: (0, 12),
    }
    ledger = assert_books_agree(moto_stack.trade_table)
    assert ledger.balance(_account(CLEARING)) == 1999
    assert ledger.balance(_account(FEES)) == 12


def test_a_combined_payment_reserves_its_balance_then_spends_balance_and_coupon(
    store: TradeStore, writes: WriteLog, moto_stack: MotoStack
) -> None:
    shop = Shop(store)
    merchant = shop.id
    shop.credit(700)
    coupon = shop.coupon(300)
    order_id = shop.order(1999)
    payment_id = shop.pay(
        order_id,
        {"type": "coupon", "coupon_id": coupon},
        {"type": "balance", "amount": 700},
        CHANNEL,
    )
    available = f"buyer:{merchant}:{BUYER}:available:CNY"
    frozen = f"buyer:{merchant}:{BUYER}:frozen:CNY"
    issued = f"merchant:{merchant}:issued_value:CNY"

    started = writes.transaction_of(f"je_{payment_id}_payment_reserved")
    assert item_of(started, f"PAYMENT#{payment_id}").values["status"] == "processing"
    assert item_of(started, f"BALANCE#{merchant}#{BUYER}#CNY").action == "Update"
    assert account_updates(started) == {available: (700, 0), frozen: (0, 700)}

    PaymentSteps(store).settle(payment_id, SUCCEEDED)

    settled = writes.transaction_of(f"je_{payment_id}_payment_succeeded")
    assert item_of(settled, f"COUPON#{coupon}").values[":used"] == "used"
    assert account_updates(settled) == {
        CLEARING: (999, 0),
        f"merchant:{merchant}:pending:CNY": (0, 993),
        FEES: (0, 6),  # on the channel part only
        frozen: (700, 0),
        f"coupon:{coupon}:CNY": (300, 0),
        issued: (0, 1000),
    }
    ledger = assert_books_agree(moto_stack.trade_table)
    # The merchant gave 1,000 of its own value and its buyer spent all of it.
    assert ledger.balance(_account(issued)) == 0
    assert ledger.open_clearing() == []


def test_a_failed_payment_releases_what_it_reserved(
    store: TradeStore, writes: WriteLog, moto_stack: MotoStack
) -> None:
    shop = Shop(store)
    merchant = shop.id
    shop.credit(500)
    order_id = shop.order(1999)
    payment_id = shop.pay(order_id, {"type": "balance", "amount": 500}, CHANNEL)

    failed = {"status": "failed", "failure_code": "payment_declined", "source": "callback"}
    PaymentSteps(store).settle(payment_id, failed)

    items = writes.transaction_of(f"je_{payment_id}_payment_released")
    assert item_of(items, f"PAYMENT#{payment_id}").values["status"] == "failed"
    assert item_of(items, f"ORDER#{order_id}").values["status"] == "created"
    assert account_updates(items) == {
        f"buyer:{merchant}:{BUYER}:frozen:CNY": (500, 0),
        f"buyer:{merchant}:{BUYER}:available:CNY": (0, 500),
    }
    ledger = assert_books_agree(moto_stack.trade_table)
    assert ledger.balance(_account(f"buyer:{merchant}:{BUYER}:available:CNY")) == 500
    assert ledger.open_clearing() == []


def test_an_internal_payment_spends_balance_and_coupon_in_its_one_transaction(
    store: TradeStore, writes: WriteLog, moto_stack: MotoStack
) -> None:
    shop = Shop(store)
    merchant = shop.id
    shop.credit(1500)
    coupon = shop.coupon(800)  # worth more than the order needs: used whole
    order_id = shop.order(1999)
    payment_id = shop.pay(
        order_id,
        {"type": "coupon", "coupon_id": coupon},
        {"type": "balance", "amount": 1199},
    )

    items = writes.transaction_of(f"je_{payment_id}_payment_succeeded")
    assert item_of(items, f"PAYMENT#{payment_id}").values["status"] == "succeeded"
    assert item_of(items, f"ORDER#{order_id}").values["status"] == "paid"
    assert account_updates(items) == {
        f"buyer:{merchant}:{BUYER}:available:CNY": (1199, 0),
        f"coupon:{coupon}:CNY": (800, 0),
        f"merchant:{merchant}:issued_value:CNY": (0, 1999),
    }
    assert assert_books_agree(moto_stack.trade_table).balance(
        _account(f"merchant:{merchant}:issued_value:CNY")
    ) == (1500 + 800 - 1999)


def test_credits_and_coupons_post_the_merchants_own_value(
    store: TradeStore, writes: WriteLog, moto_stack: MotoStack
) -> None:
    shop = Shop(store)
    merchant = shop.id
    shop.credit(1000)
    coupon = shop.coupon(300)

    [credit_entry, coupon_entry] = writes.posted()
    assert coupon_entry == f"je_{coupon}_coupon_issued"
    assert credit_entry.startswith("je_crd_") and credit_entry.endswith("_balance_credited")
    credit = writes.transaction_of(credit_entry)
    assert item_of(credit, f"BALANCE#{merchant}#{BUYER}#CNY").values[":amount"] == 1000
    assert account_updates(credit) == {
        f"merchant:{merchant}:issued_value:CNY": (1000, 0),
        f"buyer:{merchant}:{BUYER}:available:CNY": (0, 1000),
    }
    issued = writes.transaction_of(f"je_{coupon}_coupon_issued")
    assert item_of(issued, f"COUPON#{coupon}").action == "Put"
    assert account_updates(issued) == {
        f"merchant:{merchant}:issued_value:CNY": (300, 0),
        f"coupon:{coupon}:CNY": (0, 300),
    }
    assert_books_agree(moto_stack.trade_table)


def _paid(store: TradeStore, amount: int = 1999) -> tuple[Shop, str, str]:
    shop = Shop(store)
    order_id, payment_id = shop.paid(amount)
    return shop, order_id, payment_id


def test_a_channel_refund_leaves_clearing_when_started_and_is_paid_by_the_merchant_once_done(
    store: TradeStore, writes: WriteLog, moto_stack: MotoStack
) -> None:
    shop, order_id, _ = _paid(store)
    merchant = shop.id
    refund = shop.refund(order_id, 500)

    started = writes.transaction_of(f"je_{refund.id}_refund_started")
    assert item_of(started, f"REFUND#{refund.id}").values["status"] == "processing"
    assert item_of(started, f"ORDER#{order_id}").values["refund_pending"] == 500
    assert account_updates(started) == {REFUNDING: (500, 0), CLEARING: (0, 500)}

    shop.finish_refund(refund.id)

    done = writes.transaction_of(f"je_{refund.id}_refund_succeeded")
    assert item_of(done, f"REFUND#{refund.id}").values["status"] == "succeeded"
    assert item_of(done, f"ORDER#{order_id}").values["amount_refunded"] == 500
    # The fee of 12 on 1,999, returned in proportion for 500: floor((12*500*2 + 1999) / 3998).
    assert item_of(done, f"REFUND#{refund.id}").values["fee_refunded"] == 3
    assert account_updates(done) == {
        f"merchant:{merchant}:pending:CNY": (497, 0),
        FEES: (3, 0),
        REFUNDING: (0, 500),
    }
    ledger = assert_books_agree(moto_stack.trade_table)
    assert ledger.balance(_account(f"merchant:{merchant}:pending:CNY")) == 1987 - 497
    assert ledger.balance(_account(CLEARING)) == 1499
    assert ledger.open_clearing() == []


def test_a_failed_refund_puts_its_channel_part_back(
    store: TradeStore, writes: WriteLog, moto_stack: MotoStack
) -> None:
    shop, order_id, _ = _paid(store)
    refund = shop.refund(order_id, 1999)

    RefundSteps(store).settle_refund(
        refund.id, {"status": "failed", "failure_code": "refund_rejected", "source": "query"}
    )

    items = writes.transaction_of(f"je_{refund.id}_refund_failed")
    assert item_of(items, f"ORDER#{order_id}").values["refund_pending"] == 0
    assert account_updates(items) == {CLEARING: (1999, 0), REFUNDING: (0, 1999)}
    ledger = assert_books_agree(moto_stack.trade_table)
    assert ledger.balance(_account(CLEARING)) == 1999
    assert ledger.open_clearing() == []


def test_an_internal_refund_gives_the_balance_back_at_once(
    store: TradeStore, writes: WriteLog, moto_stack: MotoStack
) -> None:
    shop = Shop(store)
    merchant = shop.id
    shop.credit(1999)
    order_id = shop.order(1999)
    shop.pay(order_id, {"type": "balance", "amount": 1999})

    refund = shop.refund(order_id, 600)

    assert refund.status.value == "succeeded"
    items = writes.transaction_of(f"je_{refund.id}_refund_succeeded")
    assert item_of(items, f"REFUND#{refund.id}").action == "Put"
    assert account_updates(items) == {
        f"merchant:{merchant}:issued_value:CNY": (600, 0),
        f"buyer:{merchant}:{BUYER}:available:CNY": (0, 600),
    }
    assert f"je_{refund.id}_refund_started" not in writes.posted()
    assert_books_agree(moto_stack.trade_table)


def test_a_late_payment_is_owed_back_then_returned(
    store: TradeStore, writes: WriteLog, moto_stack: MotoStack
) -> None:
    shop = Shop(store)
    order_id = shop.order(1999)
    payment_id = shop.pay(order_id, CHANNEL)
    closed = {"status": "failed", "failure_code": "order_expired", "source": "query"}
    PaymentSteps(store).settle(payment_id, {**closed, "paid_amount": 1999, "paid_currency": "CNY"})
    refund_id = late_payment_refund_id(payment_id)
    late = f"channel:sandbox:{ACCOUNT}:late_payments:CNY"

    started = writes.transaction_of(f"je_{refund_id}_late_payment_refund_started")
    assert item_of(started, f"REFUND#{refund_id}").values["kind"] == "late_payment"
    assert not any(item.pk.startswith("ORDER#") for item in started)
    assert account_updates(started) == {
        CLEARING: (1999, 1999),
        late: (0, 1999),
        REFUNDING: (1999, 0),
    }

    RefundSteps(store).settle_refund(refund_id, {"status": "succeeded", "source": "callback"})

    done = writes.transaction_of(f"je_{refund_id}_late_payment_refund_succeeded")
    assert account_updates(done) == {late: (1999, 0), REFUNDING: (0, 1999)}
    ledger = assert_books_agree(moto_stack.trade_table)
    assert ledger.open_clearing() == []
    assert ledger.balance(_account(CLEARING)) == 0


def test_a_retried_step_never_posts_twice(
    store: TradeStore, writes: WriteLog, moto_stack: MotoStack
) -> None:
    _, order_id, payment_id = _paid(store)
    before = assert_books_agree(moto_stack.trade_table).snapshot()

    again = PaymentSteps(store).settle(payment_id, SUCCEEDED)

    assert again["newly_settled"] is False
    assert [e.id for e in stored_entries(moto_stack.trade_table)] == [
        f"je_{payment_id}_payment_succeeded"
    ]
    assert assert_books_agree(moto_stack.trade_table).snapshot() == before
    order = store.get_order(order_id)
    payment = store.get_payment(payment_id)
    assert order is not None and order.status is OrderStatus.PAID
    assert payment is not None and payment.status is PaymentStatus.SUCCEEDED


def test_the_trial_balance_lists_every_account_of_the_currency_and_balances(
    store: TradeStore, moto_stack: MotoStack
) -> None:
    shop, order_id, _ = _paid(store)
    merchant = shop.id
    shop.credit(250)
    shop.refund(order_id, 99)

    balance = LedgerStore().trial_balance("CNY")

    lines = {line.account: (line.debits, line.credits) for line in balance.lines}
    assert lines == {
        CLEARING: (1999, 99),
        REFUNDING: (99, 0),
        f"merchant:{merchant}:pending:CNY": (0, 1987),
        FEES: (0, 12),
        f"merchant:{merchant}:issued_value:CNY": (250, 0),
        f"buyer:{merchant}:{BUYER}:available:CNY": (0, 250),
    }
    assert balance.total_debits == balance.total_credits == 1999 + 99 + 250
    assert [line.account for line in balance.lines] == sorted(lines)
    assert LedgerStore().trial_balance("USD").lines == ()


def test_fees_are_fixed_when_a_payment_starts_and_a_full_refund_in_parts_returns_all(
    store: TradeStore, writes: WriteLog, moto_stack: MotoStack
) -> None:
    shop = Shop(store, fee_rate_bps=250)
    merchant = shop.merchant
    order_id = shop.order(1999)
    payment_id = shop.pay(order_id, CHANNEL)
    started = store.get_payment(payment_id)
    assert started is not None and (started.fee_rate_bps, started.fee) == (250, 50)
    assert (started.resource()["fee"], started.resource()["net"]) == (None, None)
    # The merchant's rate changes after the payment started: the payment keeps its own.
    boto3.client("dynamodb").update_item(
        TableName=moto_stack.trade_table,
        Key={"pk": {"S": f"MERCHANT#{merchant.id}"}, "sk": {"S": "MERCHANT"}},
        UpdateExpression="SET fee_rate_bps = :rate",
        ExpressionAttributeValues={":rate": {"N": "9999"}},
    )
    assert (terms := store.get_merchant(merchant.id)) and terms.fee_rate_bps == 9999

    PaymentSteps(store).settle(payment_id, SUCCEEDED)

    paid = store.get_payment(payment_id)
    assert paid is not None and (paid.resource()["fee"], paid.resource()["net"]) == (50, 1949)
    succeeded = writes.transaction_of(f"je_{payment_id}_payment_succeeded")
    assert account_updates(succeeded)[FEES] == (0, 50)
    returned = []
    for amount in (700, 700, 599):
        refund = shop.refunded(order_id, amount)
        done = RefundStore(store.table).get_refund(refund.id)
        assert done is not None and done.fee_refunded is not None
        assert done.resource()["fee_refunded"] == done.fee_refunded
        returned.append(done.fee_refunded)
        entry = writes.transaction_of(f"je_{refund.id}_refund_succeeded")
        assert account_updates(entry)[FEES] == (done.fee_refunded, 0)
    # floor((50 * R * 2 + 1999) / 3998) at R = 700, 1400, 1999: 18, 35, 50.
    assert returned == [18, 17, 15]
    ledger = assert_books_agree(moto_stack.trade_table)
    assert ledger.balance(_account(FEES)) == 0
    assert ledger.balance(_account(f"merchant:{merchant.id}:pending:CNY")) == 0
    assert ledger.balance(_account(CLEARING)) == 0
    assert ledger.open_clearing() == []
