"""Every misbehaviour switch that reaches the WeChat Pay adapter, carried in ``attach`` to the
simulator over real HTTP: lost and slow creates (and how the adapter proves or recovers the
order), query_only, close_ignored, the refund switches, duplicate and stale (notify_reorder)
notifications; and switches never reaching a real account."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from local_runtime.simulators.wechatpay import WechatPaySimulator
from paycore.channels.base import (
    ChannelPaymentState,
    ChannelPaymentStatus,
    ChannelRefundState,
    ChannelRefundStatus,
)
from paycore.errors import ChannelRejected, ChannelUnavailable
from tests.functional.wechatpay_support import (
    QUIET,
    envelope,
    gateway,
    order,
    pay,
    receivers,
    refund,
    scan,
    start_simulator,
    trade_view,
)
from tests.simulators.receiver import NotificationReceiver

__all__ = ["receivers"]  # a fixture

ACCOUNT = "wx-switches"
Receivers = Callable[..., NotificationReceiver]


@pytest.fixture(scope="module")
def simulator() -> Iterator[WechatPaySimulator]:
    running = start_simulator(ACCOUNT)
    yield running
    running.stop()


@pytest.fixture
def receiver(receivers: Receivers) -> NotificationReceiver:
    return receivers()


def test_switches_travel_in_attach_as_compact_json(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    asked = order(receiver.url, simulate={"refund_fail": True, "notify_duplicate": 2})
    gateway(simulator, ACCOUNT).create_order(asked)

    attach = trade_view(simulator, ACCOUNT, asked.out_trade_no)["extra"]["attach"]
    assert attach == '{"notify_duplicate":2,"refund_fail":true}'


def test_switches_longer_than_attach_holds_are_rejected_before_any_call(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    switches = {
        "create_error": {"times": 1, "status": 503, "after_create": True},
        "create_timeout": {"times": 1, "seconds": 8.0},
        "statement_status": "S" * 32,
    }
    asked = order(receiver.url, simulate=switches)

    with pytest.raises(ChannelRejected, match="attach holds 128"):
        gateway(simulator, ACCOUNT).create_order(asked)
    wechat = gateway(simulator, ACCOUNT)
    assert wechat.query_order(asked.out_trade_no).status is ChannelPaymentStatus.NOT_FOUND


def test_a_real_account_never_sends_switches(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    """An account whose credentials say it is no simulator drops ``simulate``: the decline
    switch never reaches the channel, so the buyer's Pay succeeds."""
    wechat = gateway(simulator, ACCOUNT, simulator=False)
    created = wechat.create_order(order(receiver.url, simulate={"decline": True}))

    pay(simulator, str(created.next_action.code_url))

    assert trade_view(simulator, ACCOUNT, created.out_trade_no)["extra"]["attach"] is None
    assert wechat.query_order(created.out_trade_no).status is ChannelPaymentStatus.SUCCEEDED


# -- create: lost answers --------------------------------------------------------------------------


def test_create_error_before_creating_proves_nothing_was_created(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, ACCOUNT)
    asked = order(receiver.url, simulate={"create_error": {"times": 1, "status": 502}})

    with pytest.raises(ChannelUnavailable, match="502"):
        wechat.create_order(asked)
    # What the orchestration asks next: NOT_FOUND, so it may fail over to another account.
    assert wechat.query_order(asked.out_trade_no).status is ChannelPaymentStatus.NOT_FOUND
    created = wechat.create_order(asked)  # the second call is served
    assert created.next_action.code_url is not None


def test_create_error_after_creating_recovers_the_code_url(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    """The order exists but its answer was lost: the adapter's query finds it NOTPAY and the
    same create again answers its code_url (a query never shows one)."""
    wechat = gateway(simulator, ACCOUNT)
    asked = order(receiver.url, simulate={"create_error": {"times": 1, "after_create": True}})

    created = wechat.create_order(asked)

    assert (
        created.next_action.code_url
        == trade_view(simulator, ACCOUNT, asked.out_trade_no)["code_url"]
    )
    pay(simulator, str(created.next_action.code_url))
    assert wechat.query_order(asked.out_trade_no).status is ChannelPaymentStatus.SUCCEEDED


def test_create_error_twice_after_creating_is_unknown_and_the_query_finds_the_order(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, ACCOUNT)
    asked = order(
        receiver.url,
        simulate={"create_error": {"times": 2, "status": 500, "after_create": True}},
    )

    with pytest.raises(ChannelUnavailable, match="500"):
        wechat.create_order(asked)
    state = wechat.query_order(asked.out_trade_no)

    assert state.status is ChannelPaymentStatus.PENDING  # the orchestration adopts the order
    assert (state.amount, state.channel_order_id) == (1999, asked.out_trade_no)
    assert wechat.create_order(asked).next_action.code_url is not None  # the third is served


def test_create_timeout_recovers_the_code_url_of_the_order_it_created(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, ACCOUNT, timeout=0.5)
    asked = order(receiver.url, simulate={"create_timeout": {"times": 1, "seconds": 2.0}})

    started = time.monotonic()
    created = wechat.create_order(asked)

    assert time.monotonic() - started < 2.0  # did not wait for the stalled answer
    view = trade_view(simulator, ACCOUNT, asked.out_trade_no)
    assert created.next_action.code_url == view["code_url"]


def test_create_timeout_twice_is_unknown_and_the_query_finds_the_order(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, ACCOUNT, timeout=0.5)
    asked = order(receiver.url, simulate={"create_timeout": {"times": 2, "seconds": 1.5}})

    with pytest.raises(ChannelUnavailable, match="timed out"):
        wechat.create_order(asked)

    assert wechat.query_order(asked.out_trade_no).status is ChannelPaymentStatus.PENDING


# -- query, close --------------------------------------------------------------------------------


def test_query_only_sends_no_notification_and_the_query_tells(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, ACCOUNT)
    created = wechat.create_order(order(receiver.url, simulate={"query_only": True}))
    pay(simulator, str(created.next_action.code_url))
    made = wechat.refund(refund(created.out_trade_no, 100, receiver.url))

    time.sleep(QUIET)

    assert receiver.received() == []
    assert wechat.query_order(created.out_trade_no).status is ChannelPaymentStatus.SUCCEEDED
    assert wechat.query_refund(created.out_trade_no, made.out_refund_no).status is (
        ChannelRefundStatus.SUCCEEDED
    )


def test_close_ignored_answers_closed_and_the_buyer_can_still_pay(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    """As when a close reaches WeChat Pay after the buyer pressed Pay: the late payment is
    notified and queried as paid (paycore refunds it)."""
    wechat = gateway(simulator, ACCOUNT)
    created = wechat.create_order(order(receiver.url, simulate={"close_ignored": True}))

    closed = wechat.close_order(created.out_trade_no)
    pay(simulator, str(created.next_action.code_url))
    (note,) = receiver.wait_for(1)

    assert closed.status is ChannelPaymentStatus.CLOSED
    late = wechat.parse_notification(note.body, note.headers)
    assert late.status is ChannelPaymentStatus.SUCCEEDED
    assert wechat.query_order(created.out_trade_no).status is ChannelPaymentStatus.SUCCEEDED


# -- refunds ---------------------------------------------------------------------------------------


def _paid(simulator: WechatPaySimulator, receiver: NotificationReceiver, **switches: object) -> str:
    wechat = gateway(simulator, ACCOUNT)
    created = wechat.create_order(order(receiver.url, simulate=switches))
    pay(simulator, str(created.next_action.code_url))
    receiver.wait_for(1)
    return created.out_trade_no


def test_refund_fail_closes_the_refund_and_its_notification_says_so(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, ACCOUNT)
    out_trade_no = _paid(simulator, receiver, refund_fail=True)

    failed = wechat.refund(refund(out_trade_no, 1999, receiver.url))
    note = receiver.wait_for(2)[1]
    notified = wechat.parse_notification(note.body, note.headers)

    assert failed.status is ChannelRefundStatus.FAILED
    assert failed.failure_code == "refund_rejected"
    assert envelope(note)["event_type"] == "REFUND.CLOSED"
    assert isinstance(notified, ChannelRefundState)
    assert (notified.status, notified.failure_code) == (
        ChannelRefundStatus.FAILED,
        "refund_rejected",
    )
    # Nothing was refunded: the order is still merely SUCCESS and the amount is free again.
    assert trade_view(simulator, ACCOUNT, out_trade_no)["trade_state"] == "SUCCESS"
    again = wechat.refund(refund(out_trade_no, 1999, receiver.url))
    assert again.status is ChannelRefundStatus.FAILED


def test_refund_error_is_unknown_then_not_found_then_refunded_by_the_same_number(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, ACCOUNT)
    out_trade_no = _paid(simulator, receiver, refund_error={"times": 1})
    asked = refund(out_trade_no, 600, receiver.url)

    with pytest.raises(ChannelUnavailable, match="503"):
        wechat.refund(asked)
    lost = wechat.query_refund(out_trade_no, asked.out_refund_no)
    made = wechat.refund(asked)

    assert lost.status is ChannelRefundStatus.NOT_FOUND
    assert made.status is ChannelRefundStatus.SUCCEEDED
    assert len(trade_view(simulator, ACCOUNT, out_trade_no)["refunds"]) == 1


def test_refund_delay_is_pending_until_the_query_and_the_notification_say_success(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, ACCOUNT)
    out_trade_no = _paid(simulator, receiver, refund_delay_seconds=0.6)

    asked = wechat.refund(refund(out_trade_no, 999, receiver.url))
    pending = wechat.query_refund(out_trade_no, asked.out_refund_no)
    note = receiver.wait_for(2)[1]
    done = wechat.query_refund(out_trade_no, asked.out_refund_no)

    assert asked.status is pending.status is ChannelRefundStatus.PENDING
    # A refund in progress already makes the order REFUND: still a succeeded payment.
    assert wechat.query_order(out_trade_no).status is ChannelPaymentStatus.SUCCEEDED
    assert done.status is ChannelRefundStatus.SUCCEEDED
    assert wechat.parse_notification(note.body, note.headers).status is (
        ChannelRefundStatus.SUCCEEDED
    )


# -- notifications ---------------------------------------------------------------------------------


def test_duplicates_carry_the_same_notification_id(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, ACCOUNT)
    created = wechat.create_order(order(receiver.url, simulate={"notify_duplicate": 3}))
    pay(simulator, str(created.next_action.code_url))

    states = [wechat.parse_notification(r.body, r.headers) for r in receiver.wait_for(3)]

    assert len({state.notification_id for state in states}) == 1
    assert {state.status for state in states} == {ChannelPaymentStatus.SUCCEEDED}


def test_notify_reorder_stale_notifications_read_as_pending_never_as_a_step_back(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, ACCOUNT)
    created = wechat.create_order(order(receiver.url, simulate={"notify_reorder": True}))
    pay(simulator, str(created.next_action.code_url))
    final, stale = receiver.wait_for(2)
    made = wechat.refund(refund(created.out_trade_no, 400, receiver.url))
    refund_final, refund_stale = receiver.wait_for(4)[2:]

    paid = wechat.parse_notification(final.body, final.headers)
    unpaid = wechat.parse_notification(stale.body, stale.headers)
    refunded = wechat.parse_notification(refund_final.body, refund_final.headers)
    processing = wechat.parse_notification(refund_stale.body, refund_stale.headers)

    assert [envelope(r)["event_type"] for r in (final, stale, refund_final, refund_stale)] == [
        "TRANSACTION.SUCCESS",
        "TRANSACTION.NOTPAY",
        "REFUND.SUCCESS",
        "REFUND.PROCESSING",
    ]
    assert isinstance(paid, ChannelPaymentState) and isinstance(unpaid, ChannelPaymentState)
    assert paid.status is ChannelPaymentStatus.SUCCEEDED
    # The stale one says nothing final: PENDING, which the callback service ignores.
    assert unpaid.status is ChannelPaymentStatus.PENDING
    assert unpaid.channel_transaction_id is None
    assert unpaid.notification_id != paid.notification_id
    assert refunded.status is ChannelRefundStatus.SUCCEEDED
    assert processing.status is ChannelRefundStatus.PENDING
    assert isinstance(processing, ChannelRefundState)
    assert processing.out_refund_no == made.out_refund_no
    assert wechat.query_order(created.out_trade_no).status is ChannelPaymentStatus.SUCCEEDED


def test_decline_is_a_failed_payment_without_notification(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, ACCOUNT)
    created = wechat.create_order(order(receiver.url, simulate={"decline": True}))

    assert scan(simulator, str(created.next_action.code_url), "pay").json()["status"] == (
        "DECLINED"
    )
    time.sleep(QUIET)

    assert receiver.received() == []
    failed = wechat.query_order(created.out_trade_no)
    assert (failed.status, failed.failure_code) == (
        ChannelPaymentStatus.FAILED,
        "payment_declined",
    )
    # Declined is final for this order: WeChat Pay lets the merchant close it; paying again
    # is a new payment (a new out_trade_no).
    assert wechat.close_order(created.out_trade_no).status is ChannelPaymentStatus.CLOSED
    assert trade_view(simulator, ACCOUNT, created.out_trade_no)["trade_state"] == "CLOSED"
