"""The simulators' trade book: trades, buyer choices, close, refunds, the switches that act on
them (with the sandbox's counting rules) and the daily statement with its switches."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from local_runtime.simulators.common.switches import Simulate, parse_simulate
from local_runtime.simulators.common.trades import (
    BuyerAction,
    CloseReason,
    Refund,
    RefundStatus,
    SimulatedFailure,
    StatementLineKind,
    Trade,
    TradeBook,
    TradeError,
    TradeErrorCode,
    TradeStatus,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)


class Clock:
    """The book's wall clock, moved by the test."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def finished() -> list[tuple[Refund, Trade]]:
    return []


@pytest.fixture
def book(clock: Clock, finished: list[tuple[Refund, Trade]]) -> Iterator[TradeBook]:
    numbers = iter(range(1, 10_000))
    trade_book = TradeBook(
        clock=clock,
        new_transaction_id=lambda paid_at: f"T{paid_at:%Y%m%d}-{next(numbers)}",
        new_refund_id=lambda created_at: f"R{created_at:%Y%m%d}-{next(numbers)}",
        on_refund_final=lambda refund, trade: finished.append((refund, trade)),
    )
    trade_book.start()
    yield trade_book
    trade_book.stop()


def create(
    book: TradeBook,
    out_trade_no: str = "pay_1",
    *,
    account: str = "acct_a",
    amount: int = 1999,
    currency: str = "CNY",
    simulate: str | None = None,
    expires_in: timedelta = timedelta(minutes=30),
    **extra: Any,
) -> tuple[Trade, bool]:
    return book.create(
        account,
        out_trade_no,
        amount=amount,
        currency=currency,
        subject="Green tea",
        expires_at=START + expires_in,
        simulate=parse_simulate(simulate),
        **extra,
    )


def paid(book: TradeBook, out_trade_no: str = "pay_1", **kwargs: Any) -> Trade:
    trade, _ = create(book, out_trade_no, **kwargs)
    settled, changed = book.act(trade.pay_token, BuyerAction.PAY)
    assert changed and settled.status is TradeStatus.SUCCESS
    return settled


def error_code(caught: pytest.ExceptionInfo[TradeError]) -> TradeErrorCode:
    return caught.value.code


def wait_for(condition: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- creating a trade ---------------------------------------------------------------------------


def test_a_new_trade_waits_for_the_buyer(book: TradeBook) -> None:
    trade, created = create(book, extra={"notify_url": "http://merchant.test/n"})

    assert created
    assert (trade.account, trade.out_trade_no, trade.amount, trade.currency) == (
        "acct_a",
        "pay_1",
        1999,
        "CNY",
    )
    assert trade.status is TradeStatus.WAIT_BUYER_PAY
    assert trade.created_at == START and trade.expires_at == START + timedelta(minutes=30)
    assert trade.transaction_id is None and trade.paid_at is None
    assert len(trade.pay_token) >= 32
    assert trade.extra == {"notify_url": "http://merchant.test/n"}
    assert book.get("acct_a", "pay_1") == trade
    assert book.get_by_token(trade.pay_token) == trade


def test_creating_again_with_the_same_amount_returns_the_same_trade(book: TradeBook) -> None:
    first, _ = create(book, simulate='{"decline": true}')

    again, created = create(book, simulate='{"notify_drop": true}')

    assert not created
    assert again == first
    assert again.simulate == Simulate(decline=True)  # the creating call's switches stay


def test_creating_again_with_another_amount_or_currency_is_a_conflict(book: TradeBook) -> None:
    create(book)

    with pytest.raises(TradeError) as other_amount:
        create(book, amount=2000)
    with pytest.raises(TradeError) as other_currency:
        create(book, currency="USD")

    assert error_code(other_amount) == error_code(other_currency)
    assert error_code(other_amount) is TradeErrorCode.TRADE_PARAMS_MISMATCH
    assert other_amount.value.http_status == 409
    assert book.get("acct_a", "pay_1").amount == 1999


def test_each_account_has_its_own_trades(book: TradeBook) -> None:
    in_a, _ = create(book, account="acct_a", amount=100)
    in_b, created = create(book, account="acct_b", amount=200)

    assert created
    assert in_a.pay_token != in_b.pay_token
    assert book.get("acct_a", "pay_1").amount == 100
    assert book.get("acct_b", "pay_1").amount == 200
    with pytest.raises(TradeError) as caught:
        book.get("acct_c", "pay_1")
    assert error_code(caught) is TradeErrorCode.TRADE_NOT_FOUND
    assert caught.value.http_status == 404


def test_a_new_trade_must_expire_in_the_future_but_a_replay_finds_an_expired_one(
    book: TradeBook, clock: Clock
) -> None:
    with pytest.raises(TradeError) as caught:
        create(book, "late", expires_in=timedelta(0))
    assert error_code(caught) is TradeErrorCode.EXPIRY_PASSED
    assert caught.value.http_status == 400

    create(book)
    clock.advance(hours=1)
    again, created = create(book)

    assert not created
    assert (again.status, again.close_reason) == (TradeStatus.CLOSED, CloseReason.EXPIRED)


def test_a_channel_may_key_the_buyer_page_by_its_own_unguessable_id(book: TradeBook) -> None:
    trade, _ = create(book, pay_token="cs_test_abc")

    assert trade.pay_token == "cs_test_abc"
    assert book.get_by_token("cs_test_abc").out_trade_no == "pay_1"
    with pytest.raises(ValueError, match="pay_token"):
        create(book, "pay_2", pay_token="cs_test_abc")
    with pytest.raises(TradeError) as caught:
        book.get_by_token("cs_test_unknown")
    assert error_code(caught) is TradeErrorCode.PAY_LINK_NOT_FOUND


@pytest.mark.parametrize(
    "wrong",
    [
        {"amount": 0},
        {"amount": 10**12 + 1},
        {"currency": "XXX"},
        {"expires_at": datetime(2030, 1, 2)},  # naive
    ],
)
def test_values_a_channel_should_have_refused_are_a_bug(
    book: TradeBook, wrong: dict[str, Any]
) -> None:
    params: dict[str, Any] = {
        "amount": 100,
        "currency": "CNY",
        "subject": "Tea",
        "expires_at": START + timedelta(hours=1),
        **wrong,
    }
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies per guard
        book.create("acct_a", "pay_1", **params)


def test_the_book_hands_out_copies(book: TradeBook) -> None:
    trade, _ = create(book, extra={"metadata": {"order": "42"}})

    trade.status = TradeStatus.SUCCESS
    trade.extra["metadata"]["order"] = "changed"

    stored = book.get("acct_a", "pay_1")
    assert stored.status is TradeStatus.WAIT_BUYER_PAY
    assert stored.extra == {"metadata": {"order": "42"}}


# -- the buyer ---------------------------------------------------------------------------------


def test_the_buyer_pays_once(book: TradeBook, clock: Clock) -> None:
    trade, _ = create(book)
    clock.advance(minutes=1)

    first, changed = book.act(trade.pay_token, BuyerAction.PAY)
    again, changed_again = book.act(trade.pay_token, BuyerAction.PAY)

    assert changed and not changed_again
    assert first.status is TradeStatus.SUCCESS
    assert first.paid_at == START + timedelta(minutes=1)
    assert first.transaction_id is not None and first.transaction_id.startswith("T20300101-")
    assert again == first
    with pytest.raises(TradeError) as caught:
        book.act(trade.pay_token, BuyerAction.DECLINE)
    assert error_code(caught) is TradeErrorCode.TRADE_PAID
    assert caught.value.trade is not None and caught.value.trade.status is TradeStatus.SUCCESS


def test_the_buyer_declines(book: TradeBook) -> None:
    trade, _ = create(book)

    declined, changed = book.act(trade.pay_token, BuyerAction.DECLINE)

    assert changed
    assert declined.status is TradeStatus.DECLINED and declined.declined_at == START
    assert declined.transaction_id is None
    with pytest.raises(TradeError) as caught:
        book.act(trade.pay_token, BuyerAction.PAY)
    assert error_code(caught) is TradeErrorCode.TRADE_DECLINED


def test_decline_turns_the_buyers_pay_into_a_decline(book: TradeBook) -> None:
    trade, _ = create(book, simulate='{"decline": true}')

    first, changed = book.act(trade.pay_token, BuyerAction.PAY)
    again, changed_again = book.act(trade.pay_token, BuyerAction.PAY)

    assert changed and not changed_again
    assert first.status is again.status is TradeStatus.DECLINED
    assert first.transaction_id is None


def test_an_expired_trade_closes_when_next_looked_at(book: TradeBook, clock: Clock) -> None:
    trade, _ = create(book)
    clock.advance(minutes=30)

    seen = book.get("acct_a", "pay_1")

    assert (seen.status, seen.close_reason) == (TradeStatus.CLOSED, CloseReason.EXPIRED)
    assert seen.closed_at == trade.expires_at
    with pytest.raises(TradeError) as caught:
        book.act(trade.pay_token, BuyerAction.PAY)
    assert error_code(caught) is TradeErrorCode.TRADE_CLOSED
    assert "expired" in caught.value.message


def test_a_trade_is_payable_until_its_expiry(book: TradeBook, clock: Clock) -> None:
    trade, _ = create(book)
    clock.advance(minutes=29, seconds=59)

    assert book.act(trade.pay_token, BuyerAction.PAY)[0].status is TradeStatus.SUCCESS


# -- close -------------------------------------------------------------------------------------


def test_close_closes_an_unpaid_trade_once(book: TradeBook, clock: Clock) -> None:
    trade, _ = create(book)
    clock.advance(minutes=2)

    closed = book.close("acct_a", "pay_1")
    clock.advance(minutes=2)
    again = book.close("acct_a", "pay_1")

    assert (closed.status, closed.close_reason) == (TradeStatus.CLOSED, CloseReason.MERCHANT_CLOSED)
    assert closed.closed_at == again.closed_at == START + timedelta(minutes=2)
    with pytest.raises(TradeError) as caught:
        book.act(trade.pay_token, BuyerAction.PAY)
    assert error_code(caught) is TradeErrorCode.TRADE_CLOSED


def test_close_refuses_a_paid_trade_and_shows_it(book: TradeBook) -> None:
    paid(book)

    with pytest.raises(TradeError) as caught:
        book.close("acct_a", "pay_1")

    assert error_code(caught) is TradeErrorCode.TRADE_PAID
    assert caught.value.trade is not None and caught.value.trade.transaction_id is not None


def test_close_ends_a_declined_trade_and_refuses_an_unknown_one(book: TradeBook) -> None:
    trade, _ = create(book)
    book.act(trade.pay_token, BuyerAction.DECLINE)

    assert book.close("acct_a", "pay_1").status is TradeStatus.CLOSED
    with pytest.raises(TradeError) as caught:
        book.close("acct_a", "pay_unknown")
    assert error_code(caught) is TradeErrorCode.TRADE_NOT_FOUND


def test_close_ignored_answers_closed_but_the_buyer_can_still_pay(book: TradeBook) -> None:
    trade, _ = create(book, simulate='{"close_ignored": true}')

    answer = book.close("acct_a", "pay_1")

    assert (answer.status, answer.close_reason) == (TradeStatus.CLOSED, CloseReason.MERCHANT_CLOSED)
    assert book.get("acct_a", "pay_1").status is TradeStatus.WAIT_BUYER_PAY
    assert book.act(trade.pay_token, BuyerAction.PAY)[0].status is TradeStatus.SUCCESS


# -- create_error and create_timeout ---------------------------------------------------------


def test_create_error_fails_the_first_calls_without_creating(book: TradeBook) -> None:
    switches = '{"create_error": {"times": 2, "status": 502}}'

    for call in (1, 2):
        with pytest.raises(SimulatedFailure) as caught:
            create(book, simulate=switches)
        assert caught.value.http_status == 502
        assert f"create call {call} of the first 2" in str(caught.value)
        with pytest.raises(TradeError):
            book.get("acct_a", "pay_1")

    trade, created = create(book, simulate=switches)
    assert created and trade.status is TradeStatus.WAIT_BUYER_PAY


def test_create_error_after_create_creates_and_loses_only_the_answer(book: TradeBook) -> None:
    switches = '{"create_error": {"after_create": true}}'

    with pytest.raises(SimulatedFailure) as caught:
        create(book, simulate=switches)

    assert caught.value.http_status == 503
    assert book.get("acct_a", "pay_1").status is TradeStatus.WAIT_BUYER_PAY
    trade, created = create(book, simulate=switches)
    assert not created and trade.simulate.create_error is not None


def test_create_calls_are_counted_per_out_trade_no_over_every_account(book: TradeBook) -> None:
    switches = '{"create_error": {"times": 1}}'
    with pytest.raises(SimulatedFailure):
        create(book, account="acct_a", simulate=switches)

    _, created = create(book, account="acct_b", simulate=switches)  # a failover: call 2

    assert created
    with pytest.raises(TradeError):
        book.get("acct_a", "pay_1")


def test_calls_without_a_switch_count_too(book: TradeBook) -> None:
    create(book)  # call 1

    trade, created = create(book, simulate='{"create_error": {"times": 1}}')  # call 2

    assert not created and trade.out_trade_no == "pay_1"


def test_a_channel_may_count_create_calls_under_the_merchants_reference(
    book: TradeBook,
) -> None:
    switches = '{"create_error": {"times": 1}}'
    with pytest.raises(SimulatedFailure):
        create(book, "cs_1", simulate=switches, calls_key="pay_1")

    trade, created = create(book, "cs_2", simulate=switches, calls_key="pay_1")  # call 2

    assert created and trade.out_trade_no == "cs_2"
    with pytest.raises(TradeError):
        book.get("acct_a", "cs_1")


def test_create_timeout_stalls_the_first_calls_after_creating(book: TradeBook) -> None:
    switches = '{"create_timeout": {"times": 1, "seconds": 0.3}}'

    started = time.monotonic()
    trade, created = create(book, simulate=switches)
    stalled = time.monotonic() - started
    started = time.monotonic()
    create(book, simulate=switches)
    second = time.monotonic() - started

    assert created and trade.status is TradeStatus.WAIT_BUYER_PAY
    assert stalled >= 0.3
    assert second < 0.2


def test_create_error_wins_over_create_timeout_and_answers_at_once(book: TradeBook) -> None:
    switches = '{"create_error": {"times": 1}, "create_timeout": {"times": 1, "seconds": 5}}'

    started = time.monotonic()
    with pytest.raises(SimulatedFailure):
        create(book, simulate=switches)

    assert time.monotonic() - started < 1


def test_stop_ends_a_create_stall_at_once(book: TradeBook) -> None:
    answers: list[bool] = []
    caller = threading.Thread(
        target=lambda: answers.append(
            create(book, simulate='{"create_timeout": {"seconds": 30}}')[1]
        )
    )
    caller.start()
    wait_for(book.trades)  # created, now stalling

    started = time.monotonic()
    book.stop()
    caller.join(timeout=5)

    assert answers == [True]
    assert time.monotonic() - started < 2


# -- refunds -----------------------------------------------------------------------------------


def test_a_refund_succeeds_at_once_and_is_told(
    book: TradeBook, clock: Clock, finished: list[tuple[Refund, Trade]]
) -> None:
    paid(book)
    clock.advance(minutes=5)

    refund, created = book.refund("acct_a", "pay_1", "rfd_1", amount=500, extra={"reason": "x"})

    assert created
    assert (refund.status, refund.amount, refund.currency) == (RefundStatus.SUCCESS, 500, "CNY")
    assert refund.created_at == refund.finished_at == START + timedelta(minutes=5)
    assert refund.refund_id.startswith("R20300101-")
    assert refund.extra == {"reason": "x"}
    assert book.get("acct_a", "pay_1").amount_refunded == 500
    assert book.get_refund("acct_a", "rfd_1") == refund
    assert [(r.out_refund_no, t.amount_refunded) for r, t in finished] == [("rfd_1", 500)]


def test_a_refund_is_idempotent_on_out_refund_no(
    book: TradeBook, finished: list[tuple[Refund, Trade]]
) -> None:
    paid(book)
    paid(book, "pay_2")
    first, _ = book.refund("acct_a", "pay_1", "rfd_1", amount=500)

    again, created = book.refund("acct_a", "pay_1", "rfd_1", amount=500)

    assert not created and again == first
    assert book.get("acct_a", "pay_1").amount_refunded == 500
    assert len(finished) == 1  # the replay is not told again
    with pytest.raises(TradeError) as other_amount:
        book.refund("acct_a", "pay_1", "rfd_1", amount=400)
    with pytest.raises(TradeError) as other_trade:
        book.refund("acct_a", "pay_2", "rfd_1", amount=500)
    assert error_code(other_amount) is TradeErrorCode.REFUND_PARAMS_MISMATCH
    assert error_code(other_trade) is TradeErrorCode.REFUND_PARAMS_MISMATCH
    assert other_amount.value.refund == first


def test_refunds_never_exceed_the_paid_amount(book: TradeBook) -> None:
    paid(book, amount=1000)
    book.refund("acct_a", "pay_1", "rfd_1", amount=600)
    book.refund("acct_a", "pay_1", "rfd_2", amount=300)

    with pytest.raises(TradeError) as caught:
        book.refund("acct_a", "pay_1", "rfd_3", amount=101)
    last, _ = book.refund("acct_a", "pay_1", "rfd_3", amount=100)

    assert error_code(caught) is TradeErrorCode.REFUND_EXCEEDS_PAID
    assert "at most 100 more" in caught.value.message
    assert last.status is RefundStatus.SUCCESS
    trade = book.get("acct_a", "pay_1")
    assert (trade.status, trade.amount_refunded) == (TradeStatus.SUCCESS, 1000)
    assert [r.out_refund_no for r in book.refunds_of("acct_a", "pay_1")] == [
        "rfd_1",
        "rfd_2",
        "rfd_3",
    ]


def test_only_a_paid_trade_is_refunded(book: TradeBook) -> None:
    create(book)

    with pytest.raises(TradeError) as unpaid:
        book.refund("acct_a", "pay_1", "rfd_1", amount=1)
    with pytest.raises(TradeError) as unknown:
        book.refund("acct_a", "pay_unknown", "rfd_2", amount=1)
    with pytest.raises(TradeError) as no_refund:
        book.get_refund("acct_a", "rfd_1")

    assert error_code(unpaid) is TradeErrorCode.TRADE_NOT_PAID
    assert error_code(unknown) is TradeErrorCode.TRADE_NOT_FOUND
    assert error_code(no_refund) is TradeErrorCode.REFUND_NOT_FOUND


def test_refunds_are_kept_per_account(book: TradeBook) -> None:
    paid(book, account="acct_a")
    paid(book, account="acct_b")
    book.refund("acct_a", "pay_1", "rfd_1", amount=100)

    _, created = book.refund("acct_b", "pay_1", "rfd_1", amount=200)

    assert created
    assert [r.amount for r in book.refunds("acct_b")] == [200]
    assert [r.amount for r in book.refunds()] == [100, 200]


def test_refund_fail_fails_every_refund_and_frees_its_amount(
    book: TradeBook, finished: list[tuple[Refund, Trade]]
) -> None:
    paid(book, amount=1000, simulate='{"refund_fail": true}')

    first, _ = book.refund("acct_a", "pay_1", "rfd_1", amount=1000)
    second, _ = book.refund("acct_a", "pay_1", "rfd_2", amount=1000)  # the amount is free again

    assert first.status is second.status is RefundStatus.FAILED
    assert first.finished_at is not None
    assert book.get("acct_a", "pay_1").amount_refunded == 0
    assert [r.status for r, _ in finished] == [RefundStatus.FAILED, RefundStatus.FAILED]


def test_refund_delay_keeps_it_processing_and_reserves_the_amount(
    book: TradeBook, clock: Clock, finished: list[tuple[Refund, Trade]]
) -> None:
    paid(book, amount=1000, simulate='{"refund_delay_seconds": 0.2}')

    refund, _ = book.refund("acct_a", "pay_1", "rfd_1", amount=800)
    with pytest.raises(TradeError) as caught:
        book.refund("acct_a", "pay_1", "rfd_2", amount=201)
    assert refund.status is RefundStatus.PROCESSING and refund.finished_at is None
    assert error_code(caught) is TradeErrorCode.REFUND_EXCEEDS_PAID
    assert finished == []
    clock.advance(seconds=1)

    wait_for(lambda: finished)

    done = book.get_refund("acct_a", "rfd_1")
    assert done.status is RefundStatus.SUCCESS
    assert done.finished_at == START + timedelta(seconds=1)
    assert finished[0][0] == done
    assert finished[0][1].amount_refunded == 800


def test_refund_delay_with_refund_fail_fails_later(
    book: TradeBook, finished: list[tuple[Refund, Trade]]
) -> None:
    paid(book, simulate='{"refund_delay_seconds": 0, "refund_fail": true}')

    refund, _ = book.refund("acct_a", "pay_1", "rfd_1", amount=100)
    wait_for(lambda: finished)

    assert refund.status is RefundStatus.PROCESSING
    assert book.get_refund("acct_a", "rfd_1").status is RefundStatus.FAILED


def test_stop_cancels_a_pending_refund_timer(
    book: TradeBook, finished: list[tuple[Refund, Trade]]
) -> None:
    paid(book, simulate='{"refund_delay_seconds": 0.2}')
    book.refund("acct_a", "pay_1", "rfd_1", amount=100)

    book.stop()
    time.sleep(0.4)

    assert book.get_refund("acct_a", "rfd_1").status is RefundStatus.PROCESSING
    assert finished == []


def test_refund_error_fails_the_first_calls_and_creates_nothing(book: TradeBook) -> None:
    paid(book, simulate='{"refund_error": {"times": 2}}')

    for call in (1, 2):
        with pytest.raises(SimulatedFailure) as caught:
            book.refund("acct_a", "pay_1", "rfd_1", amount=100)
        assert caught.value.http_status == 503
        assert f"refund call {call} of the first 2" in str(caught.value)
    assert book.refunds() == []

    refund, created = book.refund("acct_a", "pay_1", "rfd_1", amount=100)
    assert created and refund.status is RefundStatus.SUCCESS


def test_refund_error_is_checked_before_idempotency(book: TradeBook) -> None:
    paid(book, simulate='{"refund_error": {"times": 2}}')
    paid(book, "pay_2")
    with pytest.raises(TradeError):  # unknown trade: not counted
        book.refund("acct_a", "pay_unknown", "rfd_x", amount=100)
    with pytest.raises(SimulatedFailure):  # call 1
        book.refund("acct_a", "pay_1", "rfd_1", amount=100)

    with pytest.raises(SimulatedFailure):  # call 2 fails although it is not new
        book.refund("acct_a", "pay_1", "rfd_1", amount=100)

    assert book.refund("acct_a", "pay_1", "rfd_1", amount=100)[1]  # call 3 creates
    assert not book.refund("acct_a", "pay_1", "rfd_1", amount=100)[1]  # call 4 replays


def test_refund_calls_are_counted_over_every_account(book: TradeBook) -> None:
    paid(book, account="acct_a", simulate='{"refund_error": {"times": 1}}')
    paid(book, account="acct_b")
    book.refund("acct_b", "pay_1", "rfd_b", amount=100)  # call 1, in another account

    refund, created = book.refund("acct_a", "pay_1", "rfd_a", amount=100)  # call 2

    assert created and refund.status is RefundStatus.SUCCESS


# -- statements --------------------------------------------------------------------------------


def pay_at(book: TradeBook, clock: Clock, moment: datetime, out_trade_no: str, **kw: Any) -> Trade:
    clock.now = moment
    trade, _ = book.create(
        kw.pop("account", "acct_a"),
        out_trade_no,
        amount=kw.pop("amount", 1000),
        currency="CNY",
        subject="Tea",
        expires_at=moment + timedelta(hours=1),
        simulate=parse_simulate(kw.pop("simulate", None)),
    )
    return book.act(trade.pay_token, BuyerAction.PAY)[0]


def test_the_statement_of_a_day_follows_the_time_zone(book: TradeBook, clock: Clock) -> None:
    # 17:00 UTC on 1 January is 01:00 on 2 January in Shanghai.
    late = pay_at(book, clock, datetime(2030, 1, 1, 17, 0, tzinfo=UTC), "pay_late")
    pay_at(book, clock, datetime(2030, 1, 1, 15, 0, tzinfo=UTC), "pay_early")

    shanghai_1 = book.statement_lines("acct_a", date(2030, 1, 1), SHANGHAI)
    shanghai_2 = book.statement_lines("acct_a", date(2030, 1, 2), SHANGHAI)
    utc_1 = book.statement_lines("acct_a", date(2030, 1, 1), UTC)

    assert [line.trade.out_trade_no for line in shanghai_1] == ["pay_early"]
    assert [line.trade.out_trade_no for line in shanghai_2] == ["pay_late"]
    assert [line.trade.out_trade_no for line in utc_1] == ["pay_early", "pay_late"]
    line = shanghai_2[0]
    assert (line.kind, line.amount, line.currency, line.status) == (
        StatementLineKind.PAYMENT,
        1000,
        "CNY",
        "SUCCESS",
    )
    assert line.occurred_at == late.paid_at
    assert line.trade.transaction_id == late.transaction_id
    assert line.refund is None


def test_the_statement_holds_paid_trades_and_succeeded_refunds_only(
    book: TradeBook, clock: Clock
) -> None:
    day = datetime(2030, 1, 1, 3, 0, tzinfo=UTC)
    pay_at(book, clock, day, "pay_1", amount=1000)
    pay_at(book, clock, day, "pay_other", account="acct_b")
    failing = pay_at(book, clock, day, "pay_2", simulate='{"refund_fail": true}')
    waiting, _ = book.create(
        "acct_a", "pay_wait", amount=5, currency="CNY", subject="x", expires_at=day + timedelta(1)
    )
    declined, _ = book.create(
        "acct_a", "pay_no", amount=5, currency="CNY", subject="x", expires_at=day + timedelta(1)
    )
    book.act(declined.pay_token, BuyerAction.DECLINE)
    clock.advance(hours=1)
    book.refund("acct_a", "pay_1", "rfd_1", amount=300)
    book.refund("acct_a", failing.out_trade_no, "rfd_2", amount=300)

    lines = book.statement_lines("acct_a", date(2030, 1, 1), SHANGHAI)

    assert [(line.kind, line.trade.out_trade_no, line.amount) for line in lines] == [
        (StatementLineKind.PAYMENT, "pay_1", 1000),
        (StatementLineKind.PAYMENT, "pay_2", 1000),
        (StatementLineKind.REFUND, "pay_1", 300),
    ]
    refund_line = lines[2]
    assert refund_line.refund is not None and refund_line.refund.out_refund_no == "rfd_1"
    assert refund_line.status == "SUCCESS"
    assert refund_line.occurred_at == datetime(2030, 1, 1, 4, 0, tzinfo=UTC)
    assert waiting.status is TradeStatus.WAIT_BUYER_PAY


def test_a_refund_shows_on_the_day_it_succeeded(book: TradeBook, clock: Clock) -> None:
    pay_at(book, clock, datetime(2030, 1, 1, 3, 0, tzinfo=UTC), "pay_1")
    clock.now = datetime(2030, 1, 3, 3, 0, tzinfo=UTC)
    book.refund("acct_a", "pay_1", "rfd_1", amount=100)

    day_1 = book.statement_lines("acct_a", date(2030, 1, 1), SHANGHAI)
    day_3 = book.statement_lines("acct_a", date(2030, 1, 3), SHANGHAI)

    assert [line.kind for line in day_1] == [StatementLineKind.PAYMENT]
    assert [line.kind for line in day_3] == [StatementLineKind.REFUND]


def test_the_statement_switches_act_on_the_payment_line(book: TradeBook, clock: Clock) -> None:
    moment = datetime(2030, 1, 1, 3, 0, tzinfo=UTC)
    pay_at(book, clock, moment, "pay_omit", simulate='{"statement": "omit"}')
    pay_at(book, clock, moment, "pay_more", simulate='{"statement_amount_delta": 7}')
    pay_at(book, clock, moment, "pay_less", simulate='{"statement_amount_delta": -7}')
    pay_at(book, clock, moment, "pay_closed", simulate='{"statement_status": "CLOSED"}')
    clock.advance(minutes=1)
    book.refund("acct_a", "pay_more", "rfd_more", amount=100)
    book.refund("acct_a", "pay_omit", "rfd_omit", amount=100)

    lines = book.statement_lines("acct_a", date(2030, 1, 1), UTC)

    assert [
        (line.kind.value, line.trade.out_trade_no, line.amount, line.status) for line in lines
    ] == [
        ("payment", "pay_more", 1007, "SUCCESS"),
        ("payment", "pay_less", 993, "SUCCESS"),
        ("payment", "pay_closed", 1000, "CLOSED"),
        ("refund", "pay_more", 100, "SUCCESS"),
        ("refund", "pay_omit", 100, "SUCCESS"),
    ]


def test_an_orphan_is_a_paid_trade_on_its_day(book: TradeBook) -> None:
    orphan = book.add_orphan("acct_a", 4200, "CNY", date(2030, 1, 5), tz=SHANGHAI)

    lines = book.statement_lines("acct_a", date(2030, 1, 5), SHANGHAI)

    assert orphan.orphan and orphan.status is TradeStatus.SUCCESS
    assert orphan.paid_at == datetime(2030, 1, 5, 4, 0, tzinfo=UTC)  # noon in Shanghai
    assert orphan.transaction_id is not None and orphan.transaction_id.startswith("T20300105-")
    assert [(line.trade.out_trade_no, line.amount, line.status) for line in lines] == [
        (orphan.out_trade_no, 4200, "SUCCESS")
    ]
    assert book.statement_lines("acct_b", date(2030, 1, 5), SHANGHAI) == []
    assert book.get("acct_a", orphan.out_trade_no) == orphan
    refund, _ = book.refund("acct_a", orphan.out_trade_no, "rfd_1", amount=4200)
    assert refund.status is RefundStatus.SUCCESS


def test_an_orphan_number_is_unique_in_its_account(book: TradeBook) -> None:
    create(book)

    with pytest.raises(TradeError) as caught:
        book.add_orphan("acct_a", 100, "CNY", date(2030, 1, 5), out_trade_no="pay_1")

    assert error_code(caught) is TradeErrorCode.TRADE_PARAMS_MISMATCH
    assert book.add_orphan("acct_b", 100, "CNY", date(2030, 1, 5), out_trade_no="pay_1").orphan


def test_the_statement_days_are_the_days_with_trades(book: TradeBook, clock: Clock) -> None:
    clock.now = datetime(2030, 1, 1, 17, 0, tzinfo=UTC)  # 2 January in Shanghai
    create(book, "pay_unpaid", expires_in=timedelta(days=1))
    pay_at(book, clock, datetime(2030, 1, 3, 1, 0, tzinfo=UTC), "pay_1")
    clock.now = datetime(2030, 1, 6, 1, 0, tzinfo=UTC)
    book.refund("acct_a", "pay_1", "rfd_1", amount=1)
    book.add_orphan("acct_a", 100, "CNY", date(2030, 1, 9), tz=SHANGHAI)
    book.add_orphan("acct_b", 100, "CNY", date(2030, 1, 10), tz=SHANGHAI)

    assert book.statement_days("acct_a", SHANGHAI) == [
        date(2030, 1, 2),
        date(2030, 1, 3),
        date(2030, 1, 6),
        date(2030, 1, 9),
    ]
    assert book.statement_days("acct_a", UTC)[0] == date(2030, 1, 1)


# -- one lock ----------------------------------------------------------------------------------


def test_concurrent_creates_make_one_trade(book: TradeBook) -> None:
    results: list[bool] = []
    lock = threading.Lock()

    def create_once() -> None:
        _, created = create(book)
        with lock:
            results.append(created)

    threads = [threading.Thread(target=create_once) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False] * 15 + [True]
    assert len(book.trades()) == 1


def test_concurrent_refunds_never_exceed_the_paid_amount(book: TradeBook) -> None:
    paid(book, amount=1000)
    outcomes: list[str] = []
    lock = threading.Lock()

    def refund(number: int) -> None:
        try:
            book.refund("acct_a", "pay_1", f"rfd_{number}", amount=300)
            outcome = "refunded"
        except TradeError as exc:
            outcome = exc.code.value
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=refund, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count("refunded") == 3
    assert outcomes.count("REFUND_EXCEEDS_PAID") == 9
    assert book.get("acct_a", "pay_1").amount_refunded == 900
