"""The instrument item builders against moto: each condition holds money and coupons to their
rules, inside a transaction (as payments and refunds use them) and alone; a refused move
changes nothing, and of concurrent moves that together break a rule exactly one wins."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local_runtime import dynamodb_transactions
from paycore.api.models import CreateCouponRequest, CreditBalanceRequest
from paycore.clock import now, rfc3339
from paycore.dal import instruments as builders
from paycore.dal.instruments import InstrumentStore
from paycore.domain.changes import BalanceCredit, CouponIssue
from paycore.domain.instruments import Balance, Coupon, CouponStatus
from paycore.errors import NotFound, ValidationFailed
from paycore.ids import new_id
from paycore.services import instruments as service
from tests.functional.conftest import MotoStack

MCH, BUYER, CUR = "mch_1", "buyer-1", "CNY"
NOW = "2026-11-25T10:00:00.000Z"
FAILED = "ConditionalCheckFailed"


@pytest.fixture
def store(moto_stack: MotoStack) -> InstrumentStore:
    return InstrumentStore()


def transact(*entries: dict[str, Any]) -> list[str] | None:
    """Run entries as one TransactWriteItems call; None, or the cancellation codes."""
    try:
        boto3.client("dynamodb").transact_write_items(TransactItems=list(entries))
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "TransactionCanceledException":
            raise
        return [reason["Code"] for reason in exc.response["CancellationReasons"]]
    return None


def raw_item(table: str, pk: str, sk: str) -> dict[str, Any] | None:
    item = boto3.client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
    )
    return item.get("Item")


def credit(store: InstrumentStore, amount: int, buyer: str = BUYER) -> Balance:
    return store.credit_balance(BalanceCredit(new_id("crd"), MCH, buyer, CUR, amount, NOW))


def balance(store: InstrumentStore, buyer: str = BUYER, currency: str = CUR) -> tuple[int, int]:
    found = store.get_balance(MCH, buyer, currency)
    assert found is not None
    return found.available, found.frozen


def new_coupon(
    store: InstrumentStore,
    coupon_id: str = "cpn_1",
    *,
    buyer: str = BUYER,
    currency: str = CUR,
    expires_at: str | None = None,
    merchant: str = MCH,
) -> Coupon:
    coupon = Coupon(
        id=coupon_id,
        merchant_id=merchant,
        buyer_id=buyer,
        amount=500,
        currency=currency,
        status=CouponStatus.AVAILABLE,
        expires_at=expires_at,
        created_at=NOW,
        updated_at=NOW,
    )
    store.create_coupon(CouponIssue(coupon))
    return coupon


def lock(store: InstrumentStore, payment: str = "pay_1", **overrides: str) -> list[str] | None:
    args = {
        "coupon_id": "cpn_1",
        "merchant_id": MCH,
        "buyer_id": BUYER,
        "currency": CUR,
        "payment_id": payment,
        "now_rfc3339": NOW,
        **overrides,
    }
    return transact(builders.lock_coupon(store.table, **args))


# -- balances -------------------------------------------------------------------------------


def test_credit_creates_the_balance_item_with_the_shared_layout(
    store: InstrumentStore, moto_stack: MotoStack
) -> None:
    assert store.get_balance(MCH, BUYER, CUR) is None
    credited = credit(store, 1000)
    assert (credited.available, credited.frozen) == (1000, 0)
    item = raw_item(moto_stack.trade_table, f"BALANCE#{MCH}#{BUYER}#{CUR}", "BALANCE")
    assert item is not None
    assert {key: next(iter(value.values())) for key, value in item.items()}.items() >= {
        "merchant_id": MCH,
        "buyer_id": BUYER,
        "currency": CUR,
        "available": "1000",
        "frozen": "0",
    }.items()
    assert "updated_at" in item
    # A credit inside a transaction adds up too, and creates other buyers' balances.
    assert transact(builders.credit_balance(store.table, MCH, BUYER, CUR, 1)) is None
    assert balance(store) == (1001, 0)


def test_freeze_then_settle_spends_the_reserved_money(store: InstrumentStore) -> None:
    credit(store, 1000)
    assert transact(builders.freeze_balance(store.table, MCH, BUYER, CUR, 600)) is None
    assert balance(store) == (400, 600)
    assert transact(builders.settle_frozen_balance(store.table, MCH, BUYER, CUR, 600)) is None
    assert balance(store) == (400, 0)


def test_release_returns_frozen_money_to_available(store: InstrumentStore) -> None:
    credit(store, 1000)
    transact(builders.freeze_balance(store.table, MCH, BUYER, CUR, 700))
    assert transact(builders.release_frozen_balance(store.table, MCH, BUYER, CUR, 700)) is None
    assert balance(store) == (1000, 0)
    # Nothing left frozen: a second release (e.g. a replayed failure) is refused.
    assert transact(builders.release_frozen_balance(store.table, MCH, BUYER, CUR, 700)) == [FAILED]
    assert balance(store) == (1000, 0)


def test_freezing_more_than_available_fails_and_changes_nothing(
    store: InstrumentStore, moto_stack: MotoStack
) -> None:
    credit(store, 1000)
    before = raw_item(moto_stack.trade_table, f"BALANCE#{MCH}#{BUYER}#{CUR}", "BALANCE")
    assert transact(builders.freeze_balance(store.table, MCH, BUYER, CUR, 1001)) == [FAILED]
    # Alone too (UpdateItem): the same condition.
    assert store.write([builders.freeze_balance(store.table, MCH, BUYER, CUR, 1001)]) == [FAILED]
    after = raw_item(moto_stack.trade_table, f"BALANCE#{MCH}#{BUYER}#{CUR}", "BALANCE")
    assert after == before
    # Exactly all of it is fine.
    assert transact(builders.freeze_balance(store.table, MCH, BUYER, CUR, 1000)) is None
    assert balance(store) == (0, 1000)


def test_a_refused_move_cancels_the_whole_transaction(
    store: InstrumentStore, moto_stack: MotoStack
) -> None:
    """The payment write beside a refused freeze does not happen either."""
    credit(store, 100)
    payment_put = {
        "Put": {
            "TableName": store.table,
            "Item": {"pk": {"S": "PAYMENT#pay_1"}, "sk": {"S": "PAYMENT"}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }
    codes = transact(payment_put, builders.freeze_balance(store.table, MCH, BUYER, CUR, 101))
    assert codes == ["None", FAILED]
    assert raw_item(moto_stack.trade_table, "PAYMENT#pay_1", "PAYMENT") is None
    assert balance(store) == (100, 0)


def test_a_never_credited_balance_cannot_be_frozen_or_debited(
    store: InstrumentStore, moto_stack: MotoStack
) -> None:
    for build in (
        builders.freeze_balance,
        builders.debit_balance,
        builders.settle_frozen_balance,
        builders.release_frozen_balance,
    ):
        assert transact(build(store.table, MCH, BUYER, CUR, 1)) == [FAILED]
    # The refused updates did not create an item.
    assert raw_item(moto_stack.trade_table, f"BALANCE#{MCH}#{BUYER}#{CUR}", "BALANCE") is None


def test_debit_takes_from_available_only_when_enough(store: InstrumentStore) -> None:
    credit(store, 300)
    transact(builders.freeze_balance(store.table, MCH, BUYER, CUR, 200))
    assert transact(builders.debit_balance(store.table, MCH, BUYER, CUR, 101)) == [FAILED]
    assert transact(builders.debit_balance(store.table, MCH, BUYER, CUR, 100)) is None
    assert balance(store) == (0, 200)


def test_settle_cannot_spend_more_than_is_frozen(store: InstrumentStore) -> None:
    credit(store, 1000)
    transact(builders.freeze_balance(store.table, MCH, BUYER, CUR, 100))
    assert transact(builders.settle_frozen_balance(store.table, MCH, BUYER, CUR, 101)) == [FAILED]
    assert balance(store) == (900, 100)


def test_balances_are_per_merchant_buyer_and_currency(store: InstrumentStore) -> None:
    credit(store, 1000)
    for merchant, buyer, currency in (
        ("mch_2", BUYER, CUR),
        (MCH, "buyer-2", CUR),
        (MCH, BUYER, "USD"),
    ):
        assert store.get_balance(merchant, buyer, currency) is None
        assert transact(builders.freeze_balance(store.table, merchant, buyer, currency, 1)) == [
            FAILED
        ]
    assert balance(store) == (1000, 0)


def test_sequential_freezes_that_together_exceed_available_one_wins(
    store: InstrumentStore,
) -> None:
    credit(store, 1000)
    first = transact(builders.freeze_balance(store.table, MCH, BUYER, CUR, 600))
    second = transact(builders.freeze_balance(store.table, MCH, BUYER, CUR, 600))
    assert (first, second) == (None, [FAILED])
    assert balance(store) == (400, 600)


def race(entry: dict[str, Any], racers: int) -> list[list[str] | None]:
    """Send the same entry from ``racers`` threads at once; the outcomes, successes first."""
    start = threading.Barrier(racers)
    outcomes: list[list[str] | None] = []
    guard = threading.Lock()

    def run() -> None:
        start.wait()
        outcome = transact(entry)
        with guard:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes, key=lambda outcome: outcome is not None)


@pytest.fixture
def serialized_dynamodb() -> Iterator[None]:
    """In-process moto does not isolate concurrent requests; the local runtime's patch serves
    them one at a time, as DynamoDB's item-level isolation does for one item."""
    dynamodb_transactions.install()
    try:
        yield
    finally:
        dynamodb_transactions.uninstall()


@pytest.mark.usefixtures("serialized_dynamodb")
def test_concurrent_freezes_that_together_exceed_available_exactly_one_wins(
    store: InstrumentStore,
) -> None:
    for round_no in range(5):
        buyer = f"racer-{round_no}"
        credit(store, 1000, buyer)
        entry = builders.freeze_balance(store.table, MCH, buyer, CUR, 600)
        assert race(entry, 6) == [None] + [[FAILED]] * 5
        assert balance(store, buyer) == (400, 600)


@pytest.mark.usefixtures("serialized_dynamodb")
def test_concurrent_locks_of_one_coupon_exactly_one_wins(store: InstrumentStore) -> None:
    new_coupon(store)
    start = threading.Barrier(5)
    winners: list[str] = []

    def take(payment: str) -> None:
        start.wait()
        if lock(store, payment) is None:
            winners.append(payment)

    threads = [threading.Thread(target=take, args=(f"pay_{n}",)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    coupon = store.get_coupon("cpn_1")
    assert coupon is not None and coupon.locked_by == winners[0]


# -- coupons --------------------------------------------------------------------------------


def test_coupon_item_follows_the_shared_layout(
    store: InstrumentStore, moto_stack: MotoStack
) -> None:
    coupon = new_coupon(store, expires_at="2030-01-01T00:00:00.000Z")
    item = raw_item(moto_stack.trade_table, "COUPON#cpn_1", "COUPON")
    assert item is not None
    assert item["status"] == {"S": "available"} and item["amount"] == {"N": "500"}
    assert "locked_by" not in item
    assert store.get_coupon("cpn_1") == coupon
    assert store.get_coupon("cpn_none") is None


def test_lock_then_use_marks_the_coupon_used_by_that_payment(store: InstrumentStore) -> None:
    new_coupon(store)
    assert lock(store, "pay_1") is None
    locked = store.get_coupon("cpn_1")
    assert locked is not None
    assert (locked.status, locked.locked_by, locked.updated_at) == (
        CouponStatus.LOCKED,
        "pay_1",
        NOW,
    )
    assert transact(builders.use_coupon(store.table, "cpn_1", "pay_1")) is None
    used = store.get_coupon("cpn_1")
    assert used is not None and (used.status, used.locked_by) == (CouponStatus.USED, "pay_1")
    # Used once: it can be neither locked nor used again.
    assert lock(store, "pay_2") == [FAILED]
    assert transact(builders.use_coupon(store.table, "cpn_1", "pay_1")) == [FAILED]


def test_use_coupon_refuses_a_different_payment(store: InstrumentStore) -> None:
    new_coupon(store)
    lock(store, "pay_1")
    assert transact(builders.use_coupon(store.table, "cpn_1", "pay_2")) == [FAILED]
    coupon = store.get_coupon("cpn_1")
    assert coupon is not None and (coupon.status, coupon.locked_by) == (
        CouponStatus.LOCKED,
        "pay_1",
    )


def test_use_coupon_refuses_an_unlocked_coupon(store: InstrumentStore) -> None:
    new_coupon(store)
    assert transact(builders.use_coupon(store.table, "cpn_1", "pay_1")) == [FAILED]
    assert transact(builders.use_coupon(store.table, "cpn_missing", "pay_1")) == [FAILED]


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"buyer_id": "buyer-2"}, "another buyer"),
        ({"currency": "USD"}, "another currency"),
        ({"merchant_id": "mch_2"}, "another merchant"),
        ({"coupon_id": "cpn_missing"}, "no such coupon"),
    ],
)
def test_lock_refuses_a_coupon_not_of_this_payment(
    store: InstrumentStore, moto_stack: MotoStack, overrides: dict[str, str], why: str
) -> None:
    new_coupon(store)
    before = raw_item(moto_stack.trade_table, "COUPON#cpn_1", "COUPON")
    assert lock(store, **overrides) == [FAILED], why
    assert raw_item(moto_stack.trade_table, "COUPON#cpn_1", "COUPON") == before
    assert raw_item(moto_stack.trade_table, "COUPON#cpn_missing", "COUPON") is None


def test_lock_refuses_an_expired_coupon(store: InstrumentStore) -> None:
    new_coupon(store, "cpn_1", expires_at="2026-11-25T09:59:59.999Z")
    new_coupon(store, "cpn_2", expires_at=NOW)  # expires_at is the first moment it is gone
    new_coupon(store, "cpn_3", expires_at="2026-11-25T10:00:00.001Z")
    new_coupon(store, "cpn_4", expires_at=None)
    assert lock(store) == [FAILED]
    assert lock(store, coupon_id="cpn_2") == [FAILED]
    assert lock(store, coupon_id="cpn_3") is None
    assert lock(store, coupon_id="cpn_4") is None


def test_lock_refuses_an_already_locked_coupon(store: InstrumentStore) -> None:
    new_coupon(store)
    assert lock(store, "pay_1") is None
    assert lock(store, "pay_2") == [FAILED]
    assert lock(store, "pay_1") == [FAILED]  # even for the same payment: it is not available
    coupon = store.get_coupon("cpn_1")
    assert coupon is not None and coupon.locked_by == "pay_1"


def test_release_makes_the_coupon_available_again(store: InstrumentStore) -> None:
    new_coupon(store)
    lock(store, "pay_1")
    assert transact(builders.release_coupon(store.table, "cpn_1", "pay_2")) == [FAILED]
    assert transact(builders.release_coupon(store.table, "cpn_1", "pay_1")) is None
    coupon = store.get_coupon("cpn_1")
    assert coupon is not None and (coupon.status, coupon.locked_by) == (
        CouponStatus.AVAILABLE,
        None,
    )
    assert transact(builders.release_coupon(store.table, "cpn_1", "pay_1")) == [FAILED]
    assert lock(store, "pay_2") is None


def test_use_coupon_now_goes_straight_to_used(store: InstrumentStore) -> None:
    new_coupon(store)
    new_coupon(store, "cpn_2", buyer="buyer-2")
    args = ("cpn_1", MCH, BUYER, CUR, "pay_1", NOW)
    assert transact(builders.use_coupon_now(store.table, *args)) is None
    coupon = store.get_coupon("cpn_1")
    assert coupon is not None and (coupon.status, coupon.locked_by) == (CouponStatus.USED, "pay_1")
    assert transact(builders.use_coupon_now(store.table, *args)) == [FAILED]
    # Same conditions as lock: another buyer's coupon is refused.
    other = ("cpn_2", MCH, BUYER, CUR, "pay_1", NOW)
    assert transact(builders.use_coupon_now(store.table, *other)) == [FAILED]


def test_restore_gives_a_used_coupon_back(store: InstrumentStore) -> None:
    new_coupon(store)
    assert transact(builders.restore_coupon(store.table, "cpn_1")) == [FAILED]  # not used
    lock(store, "pay_1")
    assert transact(builders.restore_coupon(store.table, "cpn_1")) == [FAILED]  # only locked
    transact(builders.use_coupon(store.table, "cpn_1", "pay_1"))
    assert transact(builders.restore_coupon(store.table, "cpn_1", payment_id="pay_2")) == [FAILED]
    assert transact(builders.restore_coupon(store.table, "cpn_1", payment_id="pay_1")) is None
    coupon = store.get_coupon("cpn_1")
    assert coupon is not None and (coupon.status, coupon.locked_by) == (
        CouponStatus.AVAILABLE,
        None,
    )
    assert transact(builders.restore_coupon(store.table, "cpn_1")) == [FAILED]  # once


def test_a_combined_reservation_commits_together_or_not_at_all(store: InstrumentStore) -> None:
    """Coupon lock + balance freeze in one transaction, as a combined payment does it."""
    credit(store, 300)
    new_coupon(store)
    lock_entry = builders.lock_coupon(store.table, "cpn_1", MCH, BUYER, CUR, "pay_1", NOW)
    too_much = builders.freeze_balance(store.table, MCH, BUYER, CUR, 301)
    assert transact(lock_entry, too_much) == ["None", FAILED]
    coupon = store.get_coupon("cpn_1")
    assert coupon is not None and coupon.status is CouponStatus.AVAILABLE
    enough = builders.freeze_balance(store.table, MCH, BUYER, CUR, 300)
    assert transact(lock_entry, enough) is None
    assert balance(store) == (0, 300)
    # And the failure path gives both back.
    assert (
        transact(
            builders.release_coupon(store.table, "cpn_1", "pay_1"),
            builders.release_frozen_balance(store.table, MCH, BUYER, CUR, 300),
        )
        is None
    )
    assert balance(store) == (300, 0)


def test_store_write_reports_codes(store: InstrumentStore) -> None:
    credit(store, 10)
    new_coupon(store)
    assert store.write([builders.freeze_balance(store.table, MCH, BUYER, CUR, 5)]) is None
    assert store.write(
        [
            builders.lock_coupon(store.table, "cpn_1", MCH, BUYER, CUR, "pay_1", NOW),
            builders.freeze_balance(store.table, MCH, BUYER, CUR, 6),
        ]
    ) == ["None", FAILED]


# -- services -------------------------------------------------------------------------------


def test_service_balance_reads_zero_until_credited(store: InstrumentStore) -> None:
    assert service.get_balance(store, MCH, BUYER, "JPY") == Balance(MCH, BUYER, "JPY")
    request = CreditBalanceRequest(amount=70, currency="JPY")
    assert service.credit_balance(store, MCH, BUYER, request).available == 70
    assert service.credit_balance(store, MCH, BUYER, request).available == 140
    assert service.get_balance(store, MCH, BUYER, "JPY").available == 140
    assert service.get_balance(store, "mch_2", BUYER, "JPY").available == 0
    with pytest.raises(ValidationFailed) as raised:
        service.get_balance(store, MCH, BUYER, "XXX")
    assert raised.value.param == "currency"


def test_service_issues_and_scopes_coupons(store: InstrumentStore) -> None:
    expires = rfc3339(now() + timedelta(days=1))
    request = CreateCouponRequest(buyer_id=BUYER, amount=500, currency=CUR, expires_at=expires)
    coupon = service.issue_coupon(store, MCH, request)
    assert coupon.id.startswith("cpn_") and coupon.status is CouponStatus.AVAILABLE
    assert service.get_coupon(store, MCH, coupon.id) == coupon
    for merchant, coupon_id in ((("mch_2", coupon.id)), (MCH, "cpn_unknown"), (MCH, "ord_1")):
        with pytest.raises(NotFound) as raised:
            service.get_coupon(store, merchant, coupon_id)
        assert raised.value.code == "coupon_not_found"
    past = CreateCouponRequest(
        buyer_id=BUYER, amount=1, currency=CUR, expires_at=rfc3339(now() - timedelta(seconds=1))
    )
    with pytest.raises(ValidationFailed) as refused:
        service.issue_coupon(store, MCH, past)
    assert refused.value.param == "expires_at"
