"""Sandbox refunds over real HTTP: partial and repeated refunds of a paid order, idempotency,
limits, the refund switches, and signed, retried refund notifications that paycore's adapter
reads."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from local_runtime.sandbox.server import SandboxServer
from paycore.channels.base import ChannelRefundState, ChannelRefundStatus
from tests.functional.sandbox_support import (
    ACK,
    DEAD_URL,
    FAST_RETRIES,
    SECRET,
    CallbackReceiver,
    create_order,
    debug_view,
    notification_is_signed,
    paid_order,
    signed_call,
    wait_for,
)
from tests.support import sandbox_gateway

Receivers = Callable[[list[tuple[int, str]]], CallbackReceiver]
REFUND_FIELDS = {
    "out_refund_no",
    "out_trade_no",
    "refund_id",
    "amount",
    "currency",
    "status",
    "failure_code",
    "failure_message",
    "created_at",
    "finished_at",
}
NOTIFICATION_FIELDS = {
    "notify_id",
    "notify_type",
    "out_refund_no",
    "out_trade_no",
    "refund_id",
    "status",
    "amount",
    "currency",
    "failure_code",
    "failure_message",
    "sent_at",
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer("127.0.0.1", 0, SECRET, notify_schedule=FAST_RETRIES)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    started: list[CallbackReceiver] = []

    def start(replies: list[tuple[int, str]]) -> CallbackReceiver:
        started.append(CallbackReceiver(replies))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


def refund_no() -> str:
    return f"rfd_{secrets.token_hex(8)}"


def refund(
    sandbox: SandboxServer,
    out_trade_no: str,
    amount: int,
    *,
    out_refund_no: str | None = None,
    notify_url: str = DEAD_URL,
    prefix: str = "",
    **extra: Any,
) -> requests.Response:
    body = {
        "out_refund_no": out_refund_no or refund_no(),
        "amount": amount,
        "notify_url": notify_url,
        **extra,
    }
    return signed_call(sandbox, "POST", f"{prefix}/v1/orders/{out_trade_no}/refunds", body)


def query_refund(sandbox: SandboxServer, out_refund_no: str, prefix: str = "") -> requests.Response:
    return signed_call(sandbox, "GET", f"{prefix}/v1/refunds/{out_refund_no}")


# -- the happy path ----------------------------------------------------------------------------


def test_a_partial_refund_succeeds_at_once(sandbox: SandboxServer) -> None:
    order = paid_order(sandbox)

    answer = refund(sandbox, order["out_trade_no"], 500, out_refund_no="rfd_part_1")

    assert answer.status_code == 200
    refunded = answer.json()
    assert set(refunded) == REFUND_FIELDS
    assert refunded["out_refund_no"] == "rfd_part_1"
    assert refunded["out_trade_no"] == order["out_trade_no"]
    assert refunded["refund_id"].startswith("sbxr_")
    assert (refunded["amount"], refunded["currency"]) == (500, "CNY")
    assert (refunded["status"], refunded["failure_code"]) == ("SUCCESS", None)
    assert refunded["created_at"].endswith("Z")
    assert refunded["finished_at"].endswith("Z")
    assert query_refund(sandbox, "rfd_part_1").json() == refunded
    assert signed_call(sandbox, "GET", f"/v1/orders/{order['out_trade_no']}").json()["status"] == (
        "SUCCESS"
    )


def test_several_refunds_up_to_the_paid_amount_then_409(sandbox: SandboxServer) -> None:
    order = paid_order(sandbox)
    number = order["out_trade_no"]

    first = refund(sandbox, number, 1000)
    second = refund(sandbox, number, 234)
    over = refund(sandbox, number, 1)

    assert [first.json()["status"], second.json()["status"]] == ["SUCCESS", "SUCCESS"]
    assert first.json()["refund_id"] != second.json()["refund_id"]
    assert (over.status_code, over.json()["code"]) == (409, "REFUND_EXCEEDS_PAID")
    assert over.json()["order"]["out_trade_no"] == number
    view = debug_view(sandbox, number)
    assert view["amount_refunded"] == 1234
    assert [r["amount"] for r in view["refunds"]] == [1000, 234]


def test_one_refund_over_the_paid_amount_is_refused(sandbox: SandboxServer) -> None:
    order = paid_order(sandbox)

    over = refund(sandbox, order["out_trade_no"], 1235)

    assert (over.status_code, over.json()["code"]) == (409, "REFUND_EXCEEDS_PAID")
    assert "1234" in over.json()["message"]
    assert debug_view(sandbox, order["out_trade_no"])["refunds"] == []


# -- idempotency -------------------------------------------------------------------------------


def test_a_refund_is_idempotent_on_out_refund_no(sandbox: SandboxServer) -> None:
    order = paid_order(sandbox)
    number, rfd = order["out_trade_no"], refund_no()

    first = refund(sandbox, number, 1234, out_refund_no=rfd)
    again = refund(sandbox, number, 1234, out_refund_no=rfd)  # the full amount: no 409

    assert (again.status_code, again.json()) == (200, first.json())
    assert len(debug_view(sandbox, number)["refunds"]) == 1


def test_an_out_refund_no_reused_for_another_amount_or_order_is_refused(
    sandbox: SandboxServer,
) -> None:
    order, other = paid_order(sandbox), paid_order(sandbox)
    rfd = refund_no()
    first = refund(sandbox, order["out_trade_no"], 100, out_refund_no=rfd)

    other_amount = refund(sandbox, order["out_trade_no"], 101, out_refund_no=rfd)
    other_order = refund(sandbox, other["out_trade_no"], 100, out_refund_no=rfd)

    for refused in (other_amount, other_order):
        assert (refused.status_code, refused.json()["code"]) == (409, "REFUND_PARAMS_MISMATCH")
        assert refused.json()["refund"] == first.json()
    assert debug_view(sandbox, other["out_trade_no"])["refunds"] == []


# -- refusals ----------------------------------------------------------------------------------


def test_only_a_paid_order_can_be_refunded(sandbox: SandboxServer) -> None:
    waiting, declined, closed = (create_order(sandbox) for _ in range(3))
    requests.post(declined["pay_url"], json={"action": "decline"}, timeout=5)
    signed_call(sandbox, "POST", f"/v1/orders/{closed['out_trade_no']}/close", {})

    for order, status in ((waiting, "WAIT_BUYER_PAY"), (declined, "DECLINED"), (closed, "CLOSED")):
        refused = refund(sandbox, order["out_trade_no"], 1)
        assert (refused.status_code, refused.json()["code"]) == (409, "ORDER_NOT_PAID")
        assert refused.json()["order"]["status"] == status


def test_unknown_orders_and_refunds_are_404(sandbox: SandboxServer) -> None:
    no_order = refund(sandbox, "pay_never_created", 1)
    no_refund = query_refund(sandbox, "rfd_never_created")

    assert (no_order.status_code, no_order.json()["code"]) == (404, "ORDER_NOT_FOUND")
    assert (no_refund.status_code, no_refund.json()["code"]) == (404, "REFUND_NOT_FOUND")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": "100"}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"out_refund_no": "with space"}, "out_refund_no"),
        ({"out_refund_no": "x" * 65}, "out_refund_no"),
        ({"notify_url": "/relative"}, "notify_url"),
        ({"reason": 5}, "reason"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_invalid_refund_requests_are_400(
    sandbox: SandboxServer, body: dict[str, Any], param: str
) -> None:
    order = paid_order(sandbox)
    payload = {"out_refund_no": refund_no(), "amount": 1, "notify_url": DEAD_URL, **body}

    answer = signed_call(sandbox, "POST", f"/v1/orders/{order['out_trade_no']}/refunds", payload)

    assert (answer.status_code, answer.json()["code"]) == (400, "INVALID_PARAMETER")
    assert answer.json()["param"] == param


def test_refund_calls_need_a_signature(sandbox: SandboxServer) -> None:
    order = paid_order(sandbox)

    unsigned = requests.post(
        f"{sandbox.url}/v1/orders/{order['out_trade_no']}/refunds",
        json={"out_refund_no": refund_no(), "amount": 1, "notify_url": DEAD_URL},
        timeout=5,
    )
    unsigned_query = requests.get(f"{sandbox.url}/v1/refunds/rfd_x", timeout=5)

    assert (unsigned.status_code, unsigned_query.status_code) == (401, 401)
    assert debug_view(sandbox, order["out_trade_no"])["refunds"] == []


# -- switches ----------------------------------------------------------------------------------


def test_refund_fail_makes_every_refund_fail_and_frees_the_amount(
    sandbox: SandboxServer, receivers: Receivers
) -> None:
    receiver = receivers([ACK])
    order = paid_order(sandbox, sandbox_behaviour={"refund_fail": True})

    first = refund(sandbox, order["out_trade_no"], 1234, notify_url=receiver.url)
    second = refund(sandbox, order["out_trade_no"], 1234)  # a FAILED refund takes nothing

    for answer in (first, second):
        assert answer.status_code == 200
        assert (answer.json()["status"], answer.json()["failure_code"]) == (
            "FAILED",
            "REFUND_REJECTED",
        )
        assert answer.json()["failure_message"]
        assert answer.json()["finished_at"] is not None
    wait_for(lambda: receiver.count() == 1)
    assert receiver.bodies()[0]["status"] == "FAILED"
    assert receiver.bodies()[0]["failure_code"] == "REFUND_REJECTED"
    assert debug_view(sandbox, order["out_trade_no"])["amount_refunded"] == 0


def test_refund_delay_keeps_a_refund_processing_then_succeeds_and_notifies(
    sandbox: SandboxServer, receivers: Receivers
) -> None:
    receiver = receivers([ACK])
    order = paid_order(sandbox, sandbox_behaviour={"refund_delay_seconds": 0.5})
    rfd = refund_no()

    started = time.monotonic()
    created = refund(
        sandbox, order["out_trade_no"], 1000, out_refund_no=rfd, notify_url=receiver.url
    )
    over = refund(sandbox, order["out_trade_no"], 235)  # 1000 is reserved while processing

    assert (created.json()["status"], created.json()["finished_at"]) == ("PROCESSING", None)
    assert query_refund(sandbox, rfd).json()["status"] == "PROCESSING"
    assert (over.status_code, over.json()["code"]) == (409, "REFUND_EXCEEDS_PAID")
    assert receiver.count() == 0
    wait_for(lambda: receiver.count() == 1)
    assert receiver.received[0].at - started >= 0.5
    assert receiver.bodies()[0]["status"] == "SUCCESS"
    finished = query_refund(sandbox, rfd).json()
    assert finished["status"] == "SUCCESS"
    assert finished["finished_at"] is not None
    assert finished["refund_id"] == created.json()["refund_id"]


def test_refund_delay_with_refund_fail_fails_later_and_frees_the_amount(
    sandbox: SandboxServer, receivers: Receivers
) -> None:
    receiver = receivers([ACK])
    order = paid_order(
        sandbox, sandbox_behaviour={"refund_delay_seconds": 0.2, "refund_fail": True}
    )
    rfd = refund_no()

    created = refund(
        sandbox, order["out_trade_no"], 1234, out_refund_no=rfd, notify_url=receiver.url
    )
    wait_for(lambda: receiver.count() == 1)

    assert created.json()["status"] == "PROCESSING"
    assert receiver.bodies()[0]["status"] == "FAILED"
    assert query_refund(sandbox, rfd).json()["failure_code"] == "REFUND_REJECTED"
    assert refund(sandbox, order["out_trade_no"], 1234).json()["status"] == "PROCESSING"


def test_refund_error_answers_503_without_refunding_then_refunds(sandbox: SandboxServer) -> None:
    order = paid_order(sandbox, sandbox_behaviour={"refund_error": {"times": 2}})
    rfd = refund_no()

    answers = [refund(sandbox, order["out_trade_no"], 100, out_refund_no=rfd) for _ in range(3)]

    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].json()["code"] == "SYSTEM_ERROR"
    assert answers[2].json()["status"] == "SUCCESS"
    assert len(debug_view(sandbox, order["out_trade_no"])["refunds"]) == 1


def test_refund_error_leaves_nothing_behind(sandbox: SandboxServer) -> None:
    order = paid_order(sandbox, sandbox_behaviour={"refund_error": {}})
    rfd = refund_no()

    assert refund(sandbox, order["out_trade_no"], 100, out_refund_no=rfd).status_code == 503
    assert query_refund(sandbox, rfd).status_code == 404


# -- notifications -----------------------------------------------------------------------------


def test_refund_notifications_are_signed_retried_and_read_by_the_adapter(
    sandbox: SandboxServer, receivers: Receivers
) -> None:
    receiver = receivers([(500, "busy"), (200, "not json"), ACK])
    order = paid_order(sandbox)
    rfd = refund_no()
    gateway = sandbox_gateway(sandbox.url, SECRET, timeout=2.0)

    created = refund(
        sandbox, order["out_trade_no"], 300, out_refund_no=rfd, notify_url=receiver.url
    )
    wait_for(lambda: receiver.count() == 3)

    bodies = receiver.bodies()
    assert set(bodies[0]) == NOTIFICATION_FIELDS
    assert bodies[0]["notify_type"] == "refund.status_changed"
    assert len({b["notify_id"] for b in bodies}) == 1
    assert all(notification_is_signed(r) for r in receiver.received)
    assert (bodies[0]["refund_id"], bodies[0]["amount"]) == (created.json()["refund_id"], 300)
    state = gateway.parse_notification(
        receiver.received[2].body.encode(), receiver.received[2].headers
    )
    assert state == ChannelRefundState(
        out_refund_no=rfd,
        out_trade_no=order["out_trade_no"],
        status=ChannelRefundStatus.SUCCEEDED,
        amount=300,
        currency="CNY",
        channel_refund_id=created.json()["refund_id"],
        notification_id=bodies[0]["notify_id"],
    )
    wait_for(
        lambda: (
            requests.get(f"{sandbox.url}/__sandbox/refunds/{rfd}", timeout=5).json()[
                "notifications"
            ][0]["state"]
            == "DELIVERED"
        )
    )
    time.sleep(0.2)
    assert receiver.count() == 3


def test_notify_switches_apply_to_refund_notifications(
    sandbox: SandboxServer, receivers: Receivers
) -> None:
    dropped_to, duplicated_to, reordered_to, quiet_to = (receivers([ACK]) for _ in range(4))
    dropped = paid_order(sandbox, sandbox_behaviour={"notify_drop": True})
    duplicated = paid_order(sandbox, sandbox_behaviour={"notify_duplicate": 2})
    reordered = paid_order(sandbox, sandbox_behaviour={"notify_reorder": True})
    quiet = paid_order(sandbox, sandbox_behaviour={"query_only": True})

    for order, receiver in (
        (dropped, dropped_to),
        (duplicated, duplicated_to),
        (reordered, reordered_to),
        (quiet, quiet_to),
    ):
        answer = refund(sandbox, order["out_trade_no"], 10, notify_url=receiver.url)
        assert answer.json()["status"] == "SUCCESS"
    wait_for(lambda: duplicated_to.count() == 2 and reordered_to.count() == 2)
    time.sleep(0.2)

    assert dropped_to.count() == quiet_to.count() == 0
    (dropped_refund,) = debug_view(sandbox, dropped["out_trade_no"])["refunds"]
    assert [n["state"] for n in dropped_refund["notifications"]] == ["DROPPED"]
    (quiet_refund,) = debug_view(sandbox, quiet["out_trade_no"])["refunds"]
    assert quiet_refund["notifications"] == []
    assert len({b["notify_id"] for b in duplicated_to.bodies()}) == 1
    final, stale = reordered_to.received
    assert (final.json()["status"], stale.json()["status"]) == ("SUCCESS", "PROCESSING")
    assert stale.at - final.at >= 0.35
    gateway = sandbox_gateway(sandbox.url, SECRET, timeout=2.0)
    stale_state = gateway.parse_notification(stale.body.encode(), stale.headers)
    assert isinstance(stale_state, ChannelRefundState)
    assert stale_state.status is ChannelRefundStatus.PENDING


def test_stop_cancels_a_delayed_refund_and_its_notification(receivers: Receivers) -> None:
    receiver = receivers([ACK])
    server = SandboxServer("127.0.0.1", 0, SECRET, notify_schedule=FAST_RETRIES)
    before = set(threading.enumerate())
    server.start()
    timer_threads = [
        t for t in threading.enumerate() if t not in before and t.name.endswith("-scheduler")
    ]
    try:
        order = paid_order(server, sandbox_behaviour={"refund_delay_seconds": 0.3})
        created = refund(server, order["out_trade_no"], 10, notify_url=receiver.url)
        assert created.json()["status"] == "PROCESSING"
    finally:
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.0

    time.sleep(0.5)
    assert receiver.count() == 0
    assert len(timer_threads) == 2  # notifications and refunds
    assert not any(t.is_alive() for t in timer_threads)


# -- accounts and debug views ------------------------------------------------------------------


def test_refunds_belong_to_their_account(sandbox: SandboxServer) -> None:
    number = f"pay_{secrets.token_hex(8)}"
    in_a = paid_order(sandbox, prefix="/accounts/acct-a", out_trade_no=number, amount=100)
    paid_order(sandbox, prefix="/accounts/acct-b", out_trade_no=number, amount=200)
    rfd = refund_no()

    refunded_a = refund(sandbox, number, 100, out_refund_no=rfd, prefix="/accounts/acct-a")
    refunded_b = refund(sandbox, number, 200, out_refund_no=rfd, prefix="/accounts/acct-b")

    assert (refunded_a.json()["status"], refunded_b.json()["status"]) == ("SUCCESS", "SUCCESS")
    assert query_refund(sandbox, rfd, "/accounts/acct-a").json()["amount"] == 100
    assert query_refund(sandbox, rfd, "/accounts/acct-b").json()["amount"] == 200
    assert query_refund(sandbox, rfd).status_code == 404  # not in account "default"
    assert in_a["out_trade_no"] == number
    listing = requests.get(
        f"{sandbox.url}/__sandbox/refunds", params={"out_trade_no": number}, timeout=5
    ).json()["refunds"]
    assert sorted((r["account"], r["amount"]) for r in listing) == [
        ("acct-a", 100),
        ("acct-b", 200),
    ]
    ambiguous = requests.get(f"{sandbox.url}/__sandbox/refunds/{rfd}", timeout=5)
    assert ambiguous.status_code == 409
    one = requests.get(
        f"{sandbox.url}/__sandbox/refunds/{rfd}", params={"account": "acct-b"}, timeout=5
    ).json()
    assert (one["account"], one["amount"]) == ("acct-b", 200)


def test_the_refund_debug_views_show_reason_account_and_notifications(
    sandbox: SandboxServer,
) -> None:
    order = paid_order(sandbox)
    rfd = refund_no()
    refund(sandbox, order["out_trade_no"], 5, out_refund_no=rfd, reason="damaged box")

    everything = requests.get(f"{sandbox.url}/__sandbox/refunds", timeout=5).json()["refunds"]
    mine = next(r for r in everything if r["out_refund_no"] == rfd)

    assert mine["reason"] == "damaged box"
    assert mine["account"] == "default"
    assert mine["notify_url"] == DEAD_URL
    assert mine["notifications"][0]["notify_type"] == "refund.status_changed"
    (in_order,) = debug_view(sandbox, order["out_trade_no"])["refunds"]
    assert in_order["out_refund_no"] == rfd
    missing = requests.get(f"{sandbox.url}/__sandbox/refunds/rfd_nothing", timeout=5)
    assert (missing.status_code, missing.json()["code"]) == (404, "REFUND_NOT_FOUND")
