"""paycore's Alipay adapter against the Alipay simulator, over real HTTP: every verb of the
channel port, the buyer's cashier, the notifications Alipay really posts (captured by a local
receiver), the misbehaviour switches and the daily bill. Nothing in paycore is faked."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from local_runtime.simulators.alipay.protocol import sign_params
from paycore.channels.alipay.adapter import AlipayGateway
from paycore.channels.alipay.transformers import page_pay_order_id
from paycore.channels.base import (
    MAX_NOTIFICATION_BYTES,
    CallbackAck,
    ChannelPaymentState,
    ChannelPaymentStatus,
    ChannelRefundState,
    ChannelRefundStatus,
    NextActionType,
    StatementLineKind,
)
from paycore.errors import CallbackRejected, ChannelRejected, ChannelUnavailable
from tests.functional.alipay_support import (
    DEAD_URL,
    AlipayWorld,
    Receivers,
    buyer,
    order,
    paid,
    payment_id,
    refund_of,
    settle,
    today,
)
from tests.simulators.receiver import NotificationReceiver
from tests.support import eventually

FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


@pytest.fixture(scope="module")
def world() -> Iterator[AlipayWorld]:
    made = AlipayWorld()
    made.simulator.start()
    yield made
    made.simulator.stop()


@pytest.fixture(autouse=True)
def _real_time(world: AlipayWorld) -> Iterator[None]:
    world.clock.offset = timedelta()
    yield
    world.clock.offset = timedelta()


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    started: list[NotificationReceiver] = []

    def start(*replies: tuple[int, str]) -> NotificationReceiver:
        started.append(NotificationReceiver(list(replies or [(200, "success")])))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


@pytest.fixture(scope="module")
def gateway(world: AlipayWorld) -> AlipayGateway:
    return world.gateway("alipay-a")


def fields_of(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode(), keep_blank_values=True))


def notifications(receiver: Any, count: int, timeout: float = 5.0) -> list[bytes]:
    return [request.body for request in receiver.wait_for(count, timeout)]


# -- create ------------------------------------------------------------------------------------


def test_create_requests_page_pay_and_sends_the_buyer_to_the_cashier(
    world: AlipayWorld, gateway: AlipayGateway
) -> None:
    request = order(return_url="https://shop.example/return")

    created = gateway.create_order(request)

    assert created.out_trade_no == request.out_trade_no
    assert created.next_action.type is NextActionType.REDIRECT
    assert str(created.next_action.url).startswith(f"{world.simulator.url}/cashier/")
    expires = datetime.fromisoformat(request.expires_at)
    assert created.channel_order_id == page_pay_order_id(request.out_trade_no, expires)
    trade = world.debug_trade(request.out_trade_no)
    assert (trade["amount"], trade["currency"], trade["trade_status"]) == (
        1999,
        "CNY",
        "WAIT_BUYER_PAY",
    )
    assert trade["subject"] == "绿茶 Green tea"
    assert trade["extra"]["notify_url"] == DEAD_URL
    assert trade["extra"]["return_url"] == "https://shop.example/return"
    assert "passback_params" not in trade["extra"]  # no switches, nothing forwarded
    # time_expire is our deadline (Beijing, to the second, never later than ours)
    sim_expiry = datetime.fromisoformat(trade["expires_at"].replace("Z", "+00:00"))
    assert timedelta(0) <= expires - sim_expiry < timedelta(seconds=1)
    assert gateway.query_order(
        request.out_trade_no, created.channel_order_id
    ) == ChannelPaymentState(
        request.out_trade_no,
        ChannelPaymentStatus.PENDING,
        amount=1999,
        currency="CNY",
        channel_order_id=created.channel_order_id,
    )


def test_create_again_finds_the_same_trade_and_another_amount_is_refused(
    world: AlipayWorld, gateway: AlipayGateway
) -> None:
    request = order()
    first = gateway.create_order(request)

    again = gateway.create_order(request)

    assert again.next_action == first.next_action
    assert (
        len(
            [
                t
                for t in requests.get(f"{world.simulator.url}/_sim/trades", timeout=5).json()[
                    "data"
                ]
                if t["out_trade_no"] == request.out_trade_no
            ]
        )
        == 1
    )
    with pytest.raises(ChannelRejected, match=r"ACQ.CONTEXT_INCONSISTENT"):
        gateway.create_order(order(request.out_trade_no, 2000))


def test_a_return_url_alipay_would_refuse_is_left_out(
    world: AlipayWorld, gateway: AlipayGateway
) -> None:
    request = order(return_url="https://shop.example/return?" + "x" * 250)

    created = gateway.create_order(request)

    assert str(created.next_action.url).startswith(f"{world.simulator.url}/cashier/")
    assert "return_url" not in world.debug_trade(request.out_trade_no)["extra"]


def test_alipay_takes_yuan_only(world: AlipayWorld, gateway: AlipayGateway) -> None:
    request = order(currency="USD")

    with pytest.raises(ChannelRejected, match="CNY only"):
        gateway.create_order(request)
    assert gateway.query_order(request.out_trade_no).status is ChannelPaymentStatus.NOT_FOUND


def test_a_refused_page_pay_is_a_rejection(gateway: AlipayGateway) -> None:
    with pytest.raises(ChannelRejected, match=r"ACQ.INVALID_PARAMETER"):
        gateway.create_order(order(expires_in=timedelta(seconds=-30)))  # time_expire passed


# -- the buyer ---------------------------------------------------------------------------------


def test_the_buyer_pays_and_the_query_says_succeeded_with_the_amount(
    world: AlipayWorld, gateway: AlipayGateway
) -> None:
    request = order(amount=12345)
    created = gateway.create_order(request)

    assert buyer(str(created.next_action.url), "pay").json()["status"] == "SUCCESS"

    state = gateway.query_order(request.out_trade_no, created.channel_order_id)
    trade = world.debug_trade(request.out_trade_no)
    assert state.status is ChannelPaymentStatus.SUCCEEDED
    assert (state.amount, state.currency) == (12345, "CNY")
    assert state.channel_transaction_id == trade["transaction_id"]
    assert state.channel_transaction_id and len(state.channel_transaction_id) == 28


def test_a_buyer_who_declines_leaves_a_closed_trade(gateway: AlipayGateway) -> None:
    request = order(simulate={"decline": True})
    created = gateway.create_order(request)

    assert buyer(str(created.next_action.url), "pay").json()["status"] == "DECLINED"

    state = gateway.query_order(request.out_trade_no, created.channel_order_id)
    assert (state.status, state.amount, state.channel_transaction_id) == (
        ChannelPaymentStatus.CLOSED,
        1999,
        None,
    )


# -- "not found" -------------------------------------------------------------------------------


def test_no_trade_is_not_found_only_when_nobody_holds_a_link(gateway: AlipayGateway) -> None:
    """At Alipay a page.pay trade appears when the buyer opens the cashier: with a link out
    (our channel order id) "no trade" is PENDING until the link expires, then CLOSED."""
    number = payment_id()
    later = datetime.now(UTC) + timedelta(minutes=5)
    earlier = datetime.now(UTC) - timedelta(seconds=5)

    nobody = gateway.query_order(number)
    waiting = gateway.query_order(number, page_pay_order_id(number, later))
    expired = gateway.query_order(number, page_pay_order_id(number, earlier))

    assert nobody == ChannelPaymentState(number, ChannelPaymentStatus.NOT_FOUND)
    assert waiting.status is ChannelPaymentStatus.PENDING
    assert expired.status is ChannelPaymentStatus.CLOSED
    assert gateway.close_order(number).status is ChannelPaymentStatus.NOT_FOUND
    assert gateway.close_order(number, page_pay_order_id(number, later)).status is (
        ChannelPaymentStatus.CLOSED
    )


def test_an_expired_trade_is_closed(world: AlipayWorld, gateway: AlipayGateway) -> None:
    request = order(expires_in=timedelta(minutes=1))
    created = gateway.create_order(request)

    world.clock.offset = timedelta(minutes=2)  # Alipay's clock passes time_expire

    assert gateway.query_order(request.out_trade_no, created.channel_order_id).status is (
        ChannelPaymentStatus.CLOSED
    )
    assert buyer(str(created.next_action.url), "pay").status_code == 409
    assert gateway.close_order(request.out_trade_no).status is ChannelPaymentStatus.CLOSED


# -- close -------------------------------------------------------------------------------------


def test_close_makes_an_unpaid_trade_unpayable_and_is_idempotent(
    world: AlipayWorld, gateway: AlipayGateway
) -> None:
    request = order()
    created = gateway.create_order(request)

    closed = gateway.close_order(request.out_trade_no, created.channel_order_id)

    assert (closed.status, closed.channel_order_id) == (
        ChannelPaymentStatus.CLOSED,
        created.channel_order_id,
    )
    assert gateway.close_order(request.out_trade_no).status is ChannelPaymentStatus.CLOSED
    assert gateway.query_order(request.out_trade_no).status is ChannelPaymentStatus.CLOSED
    assert buyer(str(created.next_action.url), "pay").status_code == 409
    assert world.debug_trade(request.out_trade_no)["trade_status"] == "TRADE_CLOSED"


def test_closing_a_paid_trade_says_it_succeeded(world: AlipayWorld, gateway: AlipayGateway) -> None:
    request = order(amount=500)
    paid(gateway, request)

    state = gateway.close_order(request.out_trade_no)

    assert (state.status, state.amount) == (ChannelPaymentStatus.SUCCEEDED, 500)
    assert state.channel_transaction_id == world.debug_trade(request.out_trade_no)["transaction_id"]


def test_close_ignored_answers_closed_but_the_buyer_can_still_pay(
    gateway: AlipayGateway, receivers: Receivers
) -> None:
    receiver = receivers()
    request = order(notify_url=receiver.url, simulate={"close_ignored": True})
    created = gateway.create_order(request)

    assert gateway.close_order(request.out_trade_no).status is ChannelPaymentStatus.CLOSED
    assert gateway.query_order(request.out_trade_no).status is ChannelPaymentStatus.PENDING
    assert buyer(str(created.next_action.url), "pay").json()["status"] == "SUCCESS"

    [body] = notifications(receiver, 1)
    late = gateway.parse_notification(body, FORM)
    assert isinstance(late, ChannelPaymentState)
    assert (late.status, late.amount) == (ChannelPaymentStatus.SUCCEEDED, 1999)


# -- refunds -----------------------------------------------------------------------------------


def test_partial_refunds_repeated_refunds_and_the_fully_refunded_trade(
    world: AlipayWorld, gateway: AlipayGateway
) -> None:
    request = order(amount=2000)
    paid(gateway, request)
    number = request.out_trade_no
    first = refund_of(number, 500, reason="damaged " * 40)

    done = gateway.refund(first)
    repeated = gateway.refund(first)

    assert (done.status, done.amount, done.currency) == (ChannelRefundStatus.SUCCEEDED, 500, "CNY")
    assert (repeated.status, repeated.amount) == (ChannelRefundStatus.SUCCEEDED, 500)
    assert world.debug_trade(number)["amount_refunded"] == 500  # refunded once
    second = gateway.refund(refund_of(number, 700))
    assert second.status is ChannelRefundStatus.SUCCEEDED
    assert gateway.query_refund(number, first.out_refund_no) == ChannelRefundState(
        first.out_refund_no, number, ChannelRefundStatus.SUCCEEDED, amount=500, currency="CNY"
    )
    with pytest.raises(ChannelRejected, match=r"ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"):
        gateway.refund(refund_of(number, 801))
    with pytest.raises(ChannelRejected, match=r"ACQ.DISCORDANT_REPEAT_REQUEST"):
        gateway.refund(refund_of(number, 600, first.out_refund_no))

    rest = gateway.refund(refund_of(number, 800))

    assert rest.status is ChannelRefundStatus.SUCCEEDED
    assert world.debug_trade(number)["trade_status"] == "TRADE_CLOSED"
    after = gateway.query_order(number)  # paid, then refunded in full: still a success
    assert (after.status, after.amount) == (ChannelPaymentStatus.SUCCEEDED, 2000)


def test_refunds_of_an_unpaid_or_unknown_trade_are_refused(gateway: AlipayGateway) -> None:
    request = order()
    gateway.create_order(request)

    with pytest.raises(ChannelRejected, match=r"ACQ.TRADE_STATUS_ERROR"):
        gateway.refund(refund_of(request.out_trade_no, 100))
    with pytest.raises(ChannelRejected, match=r"ACQ.TRADE_NOT_EXIST"):
        gateway.refund(refund_of(payment_id(), 100))
    with pytest.raises(ChannelRejected, match="CNY only"):
        gateway.refund(refund_of(request.out_trade_no, 100, currency="JPY"))
    assert gateway.query_refund(request.out_trade_no, "rfd_never").status is (
        ChannelRefundStatus.NOT_FOUND
    )
    assert gateway.query_refund(payment_id(), "rfd_never").status is ChannelRefundStatus.NOT_FOUND


def test_refund_fail_is_a_failed_refund_at_once(world: AlipayWorld, gateway: AlipayGateway) -> None:
    request = order(simulate={"refund_fail": True})
    paid(gateway, request)
    asked = refund_of(request.out_trade_no, 300)

    failed = gateway.refund(asked)

    assert failed.status is ChannelRefundStatus.FAILED
    assert failed.failure_code == "merchant_balance_insufficient"
    assert "ACQ.SELLER_BALANCE_NOT_ENOUGH" in str(failed.failure_message)
    # Alipay's refund query cannot tell "failed" from "never received": ask again, same answer
    assert gateway.query_refund(request.out_trade_no, asked.out_refund_no).status is (
        ChannelRefundStatus.NOT_FOUND
    )
    assert gateway.refund(asked).status is ChannelRefundStatus.FAILED
    assert world.debug_trade(request.out_trade_no)["amount_refunded"] == 0


def test_refund_error_leaves_the_outcome_unknown_until_asked_again(
    world: AlipayWorld, gateway: AlipayGateway
) -> None:
    request = order(simulate={"refund_error": {"times": 1}})
    paid(gateway, request)
    asked = refund_of(request.out_trade_no, 300)

    with pytest.raises(ChannelUnavailable, match=r"ACQ.SYSTEM_ERROR"):
        gateway.refund(asked)

    assert gateway.query_refund(request.out_trade_no, asked.out_refund_no).status is (
        ChannelRefundStatus.NOT_FOUND
    )
    assert gateway.refund(asked).status is ChannelRefundStatus.SUCCEEDED
    assert world.debug_trade(request.out_trade_no)["amount_refunded"] == 300


def test_a_delayed_refund_is_pending_then_succeeds_and_is_notified(
    gateway: AlipayGateway, receivers: Receivers
) -> None:
    receiver = receivers()
    request = order(notify_url=receiver.url, simulate={"refund_delay_seconds": 0.6})
    paid(gateway, request)
    notifications(receiver, 1)  # the payment's
    asked = refund_of(request.out_trade_no, 400)

    pending = gateway.refund(asked)

    assert (pending.status, pending.amount) == (ChannelRefundStatus.PENDING, 400)
    assert gateway.query_refund(request.out_trade_no, asked.out_refund_no).status is (
        ChannelRefundStatus.PENDING
    )
    eventually(
        lambda: (
            gateway.query_refund(request.out_trade_no, asked.out_refund_no).status
            is ChannelRefundStatus.SUCCEEDED
        ),
        timeout=5,
    )
    bodies = notifications(receiver, 2)
    notified = gateway.parse_notification(bodies[1], FORM)
    assert notified == ChannelRefundState(
        asked.out_refund_no,
        request.out_trade_no,
        ChannelRefundStatus.SUCCEEDED,
        currency="CNY",
        notification_id=fields_of(bodies[1])["notify_id"],
    )


def test_a_delayed_refund_that_fails_is_found_failed_by_asking_again(
    gateway: AlipayGateway, receivers: Receivers
) -> None:
    receiver = receivers()
    request = order(
        notify_url=receiver.url, simulate={"refund_delay_seconds": 0.3, "refund_fail": True}
    )
    paid(gateway, request)
    asked = refund_of(request.out_trade_no, 400)

    assert gateway.refund(asked).status is ChannelRefundStatus.PENDING
    eventually(
        lambda: (
            gateway.query_refund(request.out_trade_no, asked.out_refund_no).status
            is ChannelRefundStatus.NOT_FOUND
        ),
        timeout=5,
    )
    assert gateway.refund(asked).status is ChannelRefundStatus.FAILED
    settle(0.3)
    assert len(receiver.received()) == 1  # the payment's only: a failed refund is not notified


# -- notifications -----------------------------------------------------------------------------


def test_the_payment_notification_parses_and_our_ack_stops_alipay(
    world: AlipayWorld, gateway: AlipayGateway, receivers: Receivers
) -> None:
    ack = gateway.acknowledge()
    receiver = receivers((ack.status_code, ack.body))
    request = order(notify_url=receiver.url, amount=888)
    paid(gateway, request)

    [received] = receiver.wait_for(1)
    state = gateway.parse_notification(received.body, received.headers)

    assert ack == CallbackAck(200, "success", "text/plain")
    trade = world.debug_trade(request.out_trade_no)
    assert state == ChannelPaymentState(
        request.out_trade_no,
        ChannelPaymentStatus.SUCCEEDED,
        amount=888,
        currency="CNY",
        channel_transaction_id=trade["transaction_id"],
        notification_id=fields_of(received.body)["notify_id"],
    )
    settle(0.3)
    [delivery] = world.debug_trade(request.out_trade_no)["notifications"]
    assert delivery["state"] == "DELIVERED" and len(delivery["attempts"]) == 1


def test_a_decline_is_notified_as_a_closed_trade(
    gateway: AlipayGateway, receivers: Receivers
) -> None:
    receiver = receivers()
    request = order(notify_url=receiver.url, simulate={"decline": True})
    created = gateway.create_order(request)
    buyer(str(created.next_action.url), "pay")

    [body] = notifications(receiver, 1)
    state = gateway.parse_notification(body, FORM)

    assert isinstance(state, ChannelPaymentState)
    assert (state.status, state.amount) == (ChannelPaymentStatus.CLOSED, 1999)


def test_refund_notifications_partial_then_full(
    gateway: AlipayGateway, receivers: Receivers
) -> None:
    receiver = receivers()
    request = order(notify_url=receiver.url, amount=1000)
    paid(gateway, request)
    part, rest = refund_of(request.out_trade_no, 300), refund_of(request.out_trade_no, 700)

    # Each notification is posted on its own thread: wait for each before the next step, so
    # that they arrive in the order the trade changed (the order is what this test reads).
    notifications(receiver, 1)
    gateway.refund(part)
    notifications(receiver, 2)
    gateway.refund(rest)

    bodies = notifications(receiver, 3)
    statuses = [fields_of(body)["trade_status"] for body in bodies]
    parsed = [gateway.parse_notification(body, FORM) for body in bodies[1:]]
    assert statuses == ["TRADE_SUCCESS", "TRADE_SUCCESS", "TRADE_CLOSED"]
    assert [(s.out_refund_no, s.status) for s in parsed if isinstance(s, ChannelRefundState)] == [
        (part.out_refund_no, ChannelRefundStatus.SUCCEEDED),
        (rest.out_refund_no, ChannelRefundStatus.SUCCEEDED),
    ]


@pytest.fixture(scope="module")
def captured(world: AlipayWorld) -> bytes:
    """One genuine payment notification of account alipay-a, as Alipay posted it."""
    receiver = NotificationReceiver([(200, "success")])
    gateway = world.gateway("alipay-a")
    paid(gateway, order(notify_url=receiver.url))
    [received] = receiver.wait_for(1)
    receiver.close()
    return received.body


def resigned(fields: dict[str, str], key: rsa.RSAPrivateKey) -> bytes:
    values = {name: value for name, value in fields.items() if name != "sign"}
    values["sign"] = sign_params(key, values)
    return urlencode(values).encode()


def test_the_genuine_notification_is_accepted(gateway: AlipayGateway, captured: bytes) -> None:
    assert gateway.parse_notification(captured, FORM).status is ChannelPaymentStatus.SUCCEEDED
    assert gateway.parse_notification(captured, {}).status is ChannelPaymentStatus.SUCCEEDED


def forgeries(world: AlipayWorld, captured: bytes) -> dict[str, bytes]:
    fields = fields_of(captured)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    own_key = world.alipay_key("alipay-a")
    other_key = world.alipay_key("alipay-b")
    return {
        "forged (another key)": resigned(fields, stranger),
        "signed by another app's Alipay key": resigned(fields, other_key),
        "unsigned": urlencode({k: v for k, v in fields.items() if k != "sign"}).encode(),
        "empty sign": urlencode({**fields, "sign": ""}).encode(),
        "sign_type RSA": urlencode({**fields, "sign_type": "RSA"}).encode(),
        "no sign_type": urlencode({k: v for k, v in fields.items() if k != "sign_type"}).encode(),
        "tampered amount": urlencode({**fields, "total_amount": "0.01"}).encode(),
        "tampered status": urlencode({**fields, "trade_status": "TRADE_CLOSED"}).encode(),
        "an added field": urlencode({**fields, "refund_fee": "19.99"}).encode(),
        "a field twice": captured + b"&total_amount=0.01",
        "a field twice, same value": captured + b"&" + captured.split(b"&")[0],
        "oversized": captured + b"&pad=" + b"x" * MAX_NOTIFICATION_BYTES,
        "not a form": b'{"trade_status": "TRADE_SUCCESS"}',
        "not UTF-8": b"trade_status=\xff\xfe",
        "empty": b"",
        "stale (6 minutes)": resigned(
            {
                **fields,
                "notify_time": (datetime.now(UTC) + timedelta(hours=8, minutes=-6)).strftime(
                    "%Y-%m-%d %H:%M:%S"
                ),
            },
            own_key,
        ),
        "from the future (6 minutes)": resigned(
            {
                **fields,
                "notify_time": (datetime.now(UTC) + timedelta(hours=8, minutes=6)).strftime(
                    "%Y-%m-%d %H:%M:%S"
                ),
            },
            own_key,
        ),
        "for another app": resigned({**fields, "app_id": "2021000000000000"}, own_key),
        "malformed but signed": resigned({**fields, "trade_status": "PAID"}, own_key),
        "unknown notify_type": resigned({**fields, "notify_type": "trade_status_async"}, own_key),
        "non-UTF-8 charset": resigned({**fields, "charset": "gbk"}, own_key),
    }


@pytest.mark.parametrize(
    "case",
    [
        "forged (another key)",
        "signed by another app's Alipay key",
        "unsigned",
        "empty sign",
        "sign_type RSA",
        "no sign_type",
        "tampered amount",
        "tampered status",
        "an added field",
        "a field twice",
        "a field twice, same value",
        "oversized",
        "not a form",
        "not UTF-8",
        "empty",
        "stale (6 minutes)",
        "from the future (6 minutes)",
        "for another app",
        "malformed but signed",
        "unknown notify_type",
        "non-UTF-8 charset",
    ],
)
def test_a_notification_that_does_not_verify_is_rejected(
    world: AlipayWorld, gateway: AlipayGateway, captured: bytes, case: str
) -> None:
    with pytest.raises(CallbackRejected):
        gateway.parse_notification(forgeries(world, captured)[case], FORM)


def test_a_json_content_type_is_rejected(gateway: AlipayGateway, captured: bytes) -> None:
    with pytest.raises(CallbackRejected, match="form"):
        gateway.parse_notification(captured, {"content-type": "application/json"})


def test_another_accounts_gateway_rejects_the_notification(
    world: AlipayWorld, captured: bytes
) -> None:
    with pytest.raises(CallbackRejected, match="signature"):
        world.gateway("alipay-b").parse_notification(captured, FORM)


def test_a_notification_alipay_sent_six_minutes_ago_is_stale(
    world: AlipayWorld, gateway: AlipayGateway, receivers: Receivers
) -> None:
    receiver = receivers()
    world.clock.offset = timedelta(minutes=-6)  # Alipay's notify_time lags six minutes
    paid(gateway, order(notify_url=receiver.url))
    [body] = notifications(receiver, 1)
    world.clock.offset = timedelta()

    with pytest.raises(CallbackRejected, match="stale"):
        gateway.parse_notification(body, FORM)


# -- the notification switches ---------------------------------------------------------------


def test_notify_reorder_sends_the_stale_state_last_and_it_moves_nothing_back(
    gateway: AlipayGateway, receivers: Receivers
) -> None:
    receiver = receivers()
    request = order(notify_url=receiver.url, simulate={"notify_reorder": True})
    paid(gateway, request)

    bodies = notifications(receiver, 2)
    states = [gateway.parse_notification(body, FORM) for body in bodies]

    assert [s.status for s in states] == [
        ChannelPaymentStatus.SUCCEEDED,
        ChannelPaymentStatus.PENDING,
    ]
    assert [fields_of(body)["trade_status"] for body in bodies] == [
        "TRADE_SUCCESS",
        "WAIT_BUYER_PAY",
    ]


def test_notify_duplicate_sends_the_same_notification_id_twice(
    gateway: AlipayGateway, receivers: Receivers
) -> None:
    receiver = receivers()
    request = order(notify_url=receiver.url, simulate={"notify_duplicate": 2})
    paid(gateway, request)

    states = [gateway.parse_notification(body, FORM) for body in notifications(receiver, 2)]

    assert states[0] == states[1]
    assert states[0].notification_id


def test_query_only_sends_nothing_and_the_query_tells(
    gateway: AlipayGateway, receivers: Receivers
) -> None:
    receiver = receivers()
    request = order(notify_url=receiver.url, simulate={"query_only": True})
    paid(gateway, request)

    settle(0.4)
    assert receiver.received() == []
    assert gateway.query_order(request.out_trade_no).status is ChannelPaymentStatus.SUCCEEDED


# -- the create switches: a lost create answer -------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_create_error_proves_nothing_was_created(gateway: AlipayGateway, status: int) -> None:
    request = order(simulate={"create_error": {"times": 1, "status": status}})

    with pytest.raises(ChannelUnavailable, match=f"HTTP {status}"):
        gateway.create_order(request)

    # the orchestration asks without a channel order id: nothing exists, fail over
    assert gateway.query_order(request.out_trade_no).status is ChannelPaymentStatus.NOT_FOUND
    created = gateway.create_order(request)
    assert gateway.query_order(request.out_trade_no, created.channel_order_id).status is (
        ChannelPaymentStatus.PENDING
    )


def test_create_error_after_create_is_found_by_the_query(gateway: AlipayGateway) -> None:
    request = order(simulate={"create_error": {"after_create": True}})

    with pytest.raises(ChannelUnavailable):
        gateway.create_order(request)

    found = gateway.query_order(request.out_trade_no)
    assert (found.status, found.amount) == (ChannelPaymentStatus.PENDING, 1999)
    assert found.channel_order_id == request.out_trade_no  # adoptable: it exists


def test_create_timeout_is_unknown_then_the_query_finds_the_trade(world: AlipayWorld) -> None:
    impatient = world.gateway("alipay-a", timeout=0.5)
    request = order(simulate={"create_timeout": {"seconds": 1.5}})

    with pytest.raises(ChannelUnavailable, match="timed out"):
        impatient.create_order(request)

    assert impatient.query_order(request.out_trade_no).status is ChannelPaymentStatus.PENDING
    again = impatient.create_order(request)  # the second call is not stalled
    assert str(again.next_action.url).startswith(f"{world.simulator.url}/cashier/")


def test_switches_ride_in_passback_params_for_a_simulator_account_only(world: AlipayWorld) -> None:
    switches = {"decline": True, "notify_duplicate": 2}
    simulated, real = order(simulate=switches), order(simulate=switches)

    world.gateway("alipay-a").create_order(simulated)
    created = world.gateway("alipay-a", simulator=False).create_order(real)

    passback = world.debug_trade(simulated.out_trade_no)["extra"]["passback_params"]
    assert unquote(passback) == '{"decline":true,"notify_duplicate":2}'
    assert "passback_params" not in world.debug_trade(real.out_trade_no)["extra"]
    assert buyer(str(created.next_action.url), "pay").json()["status"] == "SUCCESS"


# -- the daily bill ----------------------------------------------------------------------------


def test_the_days_bill_with_payments_refunds_switches_and_an_orphan(world: AlipayWorld) -> None:
    gateway = world.gateway("alipay-bill")
    plain = order(amount=10000)
    off = order(amount=1999, simulate={"statement_amount_delta": 100})
    missing = order(amount=500, simulate={"statement": "omit"})
    odd = order(amount=700, simulate={"statement_status": "TRADE_CLOSED"})
    for request in (plain, off, missing, odd):
        paid(gateway, request)
    refund = gateway.refund(refund_of(plain.out_trade_no, 2500))
    day = today()
    orphan = requests.post(
        f"{world.simulator.url}/_sim/orphans",
        json={"account": "alipay-bill", "amount": 3000, "currency": "CNY", "date": day.isoformat()},
        timeout=5,
    ).json()

    statement = gateway.fetch_statement(day)

    assert statement.day == day
    assert statement.content.startswith(b"PK")  # the .csv.zip exactly as served
    assert statement.content_type == "application/zip"
    assert statement.filename.endswith(f"_{day:%Y%m%d}.csv.zip")
    got = {
        (line.kind, line.reference): (line.amount, line.fee, line.status, line.channel_status)
        for line in statement.lines
    }
    assert got == {
        (StatementLineKind.PAYMENT, plain.out_trade_no): (
            10000,
            60,
            ChannelPaymentStatus.SUCCEEDED,
            "交易",
        ),
        (StatementLineKind.REFUND, refund.out_refund_no): (
            2500,
            -15,
            ChannelRefundStatus.SUCCEEDED,
            "退款",
        ),
        (StatementLineKind.PAYMENT, off.out_trade_no): (
            2099,
            12,
            ChannelPaymentStatus.SUCCEEDED,
            "交易",
        ),
        (StatementLineKind.PAYMENT, odd.out_trade_no): (
            700,
            4,
            ChannelPaymentStatus.CLOSED,
            "TRADE_CLOSED",
        ),
        (StatementLineKind.PAYMENT, orphan["out_trade_no"]): (
            3000,
            18,
            ChannelPaymentStatus.SUCCEEDED,
            "交易",
        ),
    }
    by_reference = {line.reference: line for line in statement.lines}
    assert (
        by_reference[plain.out_trade_no].channel_transaction_id
        == world.debug_trade(plain.out_trade_no)["transaction_id"]
    )
    assert by_reference[orphan["out_trade_no"]].channel_transaction_id == orphan["transaction_id"]
    assert {line.currency for line in statement.lines} == {"CNY"}


def test_a_real_accounts_bill_link_must_be_https(world: AlipayWorld) -> None:
    paid(world.gateway("alipay-real"), order())  # the day has a bill
    gateway = world.gateway("alipay-real", simulator=False)  # the simulator's links are http

    with pytest.raises(ChannelUnavailable, match="https"):
        gateway.fetch_statement(today())


def test_a_day_without_trades_has_an_empty_statement_and_a_future_day_none(
    world: AlipayWorld,
) -> None:
    gateway = world.gateway("alipay-quiet")

    empty = gateway.fetch_statement(today() - timedelta(days=3))

    assert (empty.lines, empty.content) == ((), b"")
    with pytest.raises(ChannelRejected, match="has not begun"):
        gateway.fetch_statement(today() + timedelta(days=1))


# -- when Alipay cannot be reached or trusted ------------------------------------------------


def test_every_verb_is_unavailable_when_nothing_listens(world: AlipayWorld) -> None:
    gateway = world.gateway("alipay-a", timeout=1.0, gateway_url="http://127.0.0.1:9/gateway.do")
    number = payment_id()

    calls = [
        lambda: gateway.create_order(order(number)),
        lambda: gateway.query_order(number),
        lambda: gateway.close_order(number),
        lambda: gateway.refund(refund_of(number, 100)),
        lambda: gateway.query_refund(number, "rfd_x"),
        lambda: gateway.fetch_statement(today()),
    ]
    for call in calls:
        with pytest.raises(ChannelUnavailable):
            call()


def test_an_answer_signed_with_another_key_is_not_trusted(world: AlipayWorld) -> None:
    wrong = world.credentials("alipay-b")["alipay_public_key"]
    gateway = world.gateway("alipay-a", alipay_public_key=wrong)

    with pytest.raises(ChannelUnavailable, match="signature does not verify"):
        gateway.query_order(payment_id())


def test_a_wrong_app_key_or_app_id_is_refused_by_alipay(world: AlipayWorld) -> None:
    other_key = world.credentials("alipay-b")["app_private_key"]
    wrong_key = world.gateway("alipay-a", app_private_key=other_key)
    unknown_app = world.gateway("alipay-a", app_id="2021000000000000")

    with pytest.raises(ChannelRejected, match=r"isv.invalid-signature"):
        wrong_key.query_order(payment_id())
    with pytest.raises(ChannelRejected, match=r"isv.invalid-signature"):
        wrong_key.create_order(order())
    with pytest.raises(ChannelRejected, match=r"isv.invalid-app-id"):
        unknown_app.query_order(payment_id())


class _Misbehaving:
    """A gateway stand-in that answers every request with one fixed reply."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        reply = (status, body, headers or {})

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(reply[0])
                for name, value in reply[2].items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply[1])))
                self.end_headers()
                self.wfile.write(reply[1])

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/gateway.do"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (500, b"oops", {}),
        (429, b"slow down", {}),
        (302, b"", {"Location": "https://elsewhere.example/"}),
        (200, b"<html>not json</html>", {}),
        (200, b'{"alipay_trade_query_response":{"code":"10000"}}', {}),  # unsigned success
        (200, b'{"alipay_trade_query_response":{"code":"20000"}}', {}),
        (200, b'{"alipay_trade_query_response":{"code":"10000"},"sign":"AAAA"}', {}),
    ],
)
def test_a_query_answer_we_cannot_trust_is_unavailable(
    world: AlipayWorld, status: int, body: bytes, headers: dict[str, str]
) -> None:
    fake = _Misbehaving(status, body, headers)
    try:
        gateway = world.gateway("alipay-a", gateway_url=fake.url)
        with pytest.raises(ChannelUnavailable):
            gateway.query_order(payment_id())
    finally:
        fake.close()


@pytest.mark.parametrize(
    ("status", "body", "headers"),
    [
        (503, b"busy", {}),
        (200, b"<html><p>something went wrong</p></html>", {}),
        (302, b"", {"Location": "javascript:alert(1)"}),
        (404, b"not here", {}),
    ],
)
def test_a_page_pay_answer_that_proves_nothing_is_unavailable(
    world: AlipayWorld, status: int, body: bytes, headers: dict[str, str]
) -> None:
    fake = _Misbehaving(status, body, headers)
    try:
        gateway = world.gateway("alipay-a", gateway_url=fake.url)
        with pytest.raises(ChannelUnavailable):
            gateway.create_order(order())
    finally:
        fake.close()


def test_a_relative_cashier_location_is_made_absolute(world: AlipayWorld) -> None:
    fake = _Misbehaving(302, b"", {"Location": "/cashier/abc"})
    try:
        created = world.gateway("alipay-a", gateway_url=fake.url).create_order(order())
    finally:
        fake.close()

    assert (
        created.next_action.url
        == f"{urlsplit(fake.url).scheme}://{urlsplit(fake.url).netloc}/cashier/abc"
    )
