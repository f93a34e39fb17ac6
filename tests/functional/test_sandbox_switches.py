"""The sandbox's misbehaviour switches and channel accounts, over real HTTP.

Each switch is set in ``sandbox_behaviour`` on ``POST /v1/orders`` and shows up where a real
channel would misbehave: the buyer's Pay, the notifications, the create answer. Accounts are
path prefixes (``/accounts/<id>/v1/...``), each with its own order book.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from local_runtime.sandbox.server import SandboxServer
from paycore.channels.base import ChannelPaymentState, ChannelPaymentStatus
from tests.functional.sandbox_support import (
    ACK,
    FAST_RETRIES,
    SECRET,
    CallbackReceiver,
    create_order,
    debug_view,
    notification_is_signed,
    order_body,
    signed_call,
    wait_for,
)
from tests.support import sandbox_gateway

Receivers = Callable[..., CallbackReceiver]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer("127.0.0.1", 0, SECRET, notify_schedule=FAST_RETRIES)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    started: list[CallbackReceiver] = []

    def start(replies: list[tuple[int, str]], delay: float = 0.0) -> CallbackReceiver:
        started.append(CallbackReceiver(replies, delay))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


def pay(order: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = requests.post(
        order["pay_url"], json={"action": "pay"}, timeout=5
    ).json()
    return answer


def query(sandbox: SandboxServer, out_trade_no: str, prefix: str = "") -> requests.Response:
    return signed_call(sandbox, "GET", f"{prefix}/v1/orders/{out_trade_no}")


def create(sandbox: SandboxServer, body: dict[str, Any], prefix: str = "") -> requests.Response:
    return signed_call(sandbox, "POST", f"{prefix}/v1/orders", body, timeout=10)


# -- the switches are stored and shown ---------------------------------------------------------


def test_the_switches_set_are_stored_and_shown_in_the_debug_view(sandbox: SandboxServer) -> None:
    behaviour = {"decline": True, "notify_duplicate": 2, "create_error": {"times": 1}}
    body = order_body(sandbox_behaviour=behaviour)

    assert create(sandbox, body).status_code == 503  # create_error: nothing created
    assert create(sandbox, body).status_code == 201

    shown = debug_view(sandbox, body["out_trade_no"])["sandbox_behaviour"]
    assert shown == {
        "decline": True,
        "notify_duplicate": 2,
        "create_error": {"times": 1, "status": 503, "after_create": False},
    }


# -- decline ---------------------------------------------------------------------------------


def test_decline_turns_the_buyers_pay_into_a_decline(
    sandbox: SandboxServer, receivers: Receivers
) -> None:
    receiver = receivers([ACK])
    order = create_order(sandbox, notify_url=receiver.url, sandbox_behaviour={"decline": True})

    first, again = pay(order), pay(order)

    assert first["status"] == again["status"] == "DECLINED"
    queried = query(sandbox, order["out_trade_no"]).json()
    assert (queried["status"], queried["failure_code"]) == ("DECLINED", "BUYER_DECLINED")
    assert queried["transaction_id"] is None
    wait_for(lambda: receiver.count() == 1)
    assert receiver.bodies()[0]["status"] == "DECLINED"
    time.sleep(0.2)
    assert receiver.count() == 1  # pressing Pay again changed nothing


def test_without_decline_the_same_pay_succeeds(sandbox: SandboxServer) -> None:
    order = create_order(sandbox, sandbox_behaviour={"decline": False})

    assert pay(order)["status"] == "SUCCESS"


# -- notification switches -----------------------------------------------------------------


def test_notify_delay_holds_back_the_first_attempt(
    sandbox: SandboxServer, receivers: Receivers
) -> None:
    delayed_receiver, prompt_receiver = receivers([ACK]), receivers([ACK])
    delayed = create_order(
        sandbox, notify_url=delayed_receiver.url, sandbox_behaviour={"notify_delay_seconds": 0.6}
    )
    prompt = create_order(sandbox, notify_url=prompt_receiver.url)

    started = time.monotonic()
    pay(delayed)
    pay(prompt)
    wait_for(lambda: prompt_receiver.count() == 1)
    assert delayed_receiver.count() == 0
    wait_for(lambda: delayed_receiver.count() == 1)

    assert delayed_receiver.received[0].at - started >= 0.6
    assert prompt_receiver.received[0].at - started < 0.5
    assert notification_is_signed(delayed_receiver.received[0])


def test_notify_delay_keeps_the_retry_schedule_after_the_first_attempt(
    sandbox: SandboxServer, receivers: Receivers
) -> None:
    receiver = receivers([(500, ""), ACK])
    order = create_order(
        sandbox, notify_url=receiver.url, sandbox_behaviour={"notify_delay_seconds": 0.3}
    )

    pay(order)
    wait_for(lambda: receiver.count() == 2)

    first, second = receiver.received
    assert 0.03 <= second.at - first.at < 0.25  # FAST_RETRIES[1] is 0.05 s
    assert first.json()["notify_id"] == second.json()["notify_id"]


def test_notify_drop_never_sends_and_the_debug_view_shows_it_dropped(
    sandbox: SandboxServer, receivers: Receivers
) -> None:
    receiver = receivers([ACK])
    order = create_order(sandbox, notify_url=receiver.url, sandbox_behaviour={"notify_drop": True})

    pay(order)
    time.sleep(0.3)

    assert receiver.count() == 0
    (dropped,) = debug_view(sandbox, order["out_trade_no"])["notifications"]
    assert dropped["state"] == "DROPPED"
    assert dropped["status"] == "SUCCESS"
    assert dropped["attempts"] == []
    assert query(sandbox, order["out_trade_no"]).json()["status"] == "SUCCESS"


def test_notify_duplicate_sends_concurrent_copies_with_one_notify_id(
    sandbox: SandboxServer, receivers: Receivers
) -> None:
    receiver = receivers([ACK], 0.4)  # each answer takes 0.4 s: copies must overlap
    order = create_order(
        sandbox, notify_url=receiver.url, sandbox_behaviour={"notify_duplicate": 3}
    )

    pay(order)
    wait_for(lambda: receiver.count() == 3)

    arrivals = [r.at for r in receiver.received]
    assert max(arrivals) - min(arrivals) < 0.3  # all arrived before the first was answered
    assert len({body["notify_id"] for body in receiver.bodies()}) == 1
    assert all(notification_is_signed(r) for r in receiver.received)
    time.sleep(0.6)
    assert receiver.count() == 3  # every copy acknowledged: no retries
    copies = debug_view(sandbox, order["out_trade_no"])["notifications"]
    assert sorted(c["copy"] for c in copies) == [1, 2, 3]
    assert {(c["copies"], c["state"]) for c in copies} == {(3, "DELIVERED")}


def test_duplicate_copies_are_retried_independently(
    sandbox: SandboxServer, receivers: Receivers
) -> None:
    receiver = receivers([(500, ""), ACK])  # only the very first request fails
    order = create_order(
        sandbox, notify_url=receiver.url, sandbox_behaviour={"notify_duplicate": 2}
    )

    pay(order)
    wait_for(lambda: receiver.count() == 3)
    wait_for(
        lambda: all(
            c["state"] == "DELIVERED"
            for c in debug_view(sandbox, order["out_trade_no"])["notifications"]
        )
    )
    copies = debug_view(sandbox, order["out_trade_no"])["notifications"]
    assert sorted(len(c["attempts"]) for c in copies) == [1, 2]


def test_notify_reorder_sends_a_stale_waiting_notification_after_the_final_one(
    sandbox: SandboxServer, receivers: Receivers
) -> None:
    receiver = receivers([ACK])
    order = create_order(
        sandbox, notify_url=receiver.url, sandbox_behaviour={"notify_reorder": True}
    )
    gateway = sandbox_gateway(sandbox.url, SECRET, timeout=2.0)

    pay(order)
    wait_for(lambda: receiver.count() == 2)

    final, stale = receiver.received
    assert final.json()["status"] == "SUCCESS"
    assert stale.json()["status"] == "WAIT_BUYER_PAY"
    assert stale.json()["transaction_id"] is None
    assert stale.json()["notify_id"] != final.json()["notify_id"]
    assert 0.35 <= stale.at - final.at < 1.5
    stale_state = gateway.parse_notification(stale.body.encode(), stale.headers)
    assert isinstance(stale_state, ChannelPaymentState)
    assert stale_state.status is ChannelPaymentStatus.PENDING
    views = debug_view(sandbox, order["out_trade_no"])["notifications"]
    assert [(v["status"], v["stale"]) for v in views] == [
        ("SUCCESS", False),
        ("WAIT_BUYER_PAY", True),
    ]


def test_query_only_settles_the_order_but_never_notifies(
    sandbox: SandboxServer, receivers: Receivers
) -> None:
    receiver = receivers([ACK])
    paid = create_order(sandbox, notify_url=receiver.url, sandbox_behaviour={"query_only": True})
    declined = create_order(
        sandbox, notify_url=receiver.url, sandbox_behaviour={"query_only": True, "decline": True}
    )

    pay(paid)
    pay(declined)
    time.sleep(0.3)

    assert receiver.count() == 0
    assert query(sandbox, paid["out_trade_no"]).json()["status"] == "SUCCESS"
    assert query(sandbox, declined["out_trade_no"]).json()["status"] == "DECLINED"
    assert debug_view(sandbox, paid["out_trade_no"])["notifications"] == []


# -- create_error ------------------------------------------------------------------------------


def test_create_error_answers_503_without_creating_then_creates(sandbox: SandboxServer) -> None:
    body = order_body(sandbox_behaviour={"create_error": {}})

    failed = create(sandbox, body)

    assert (failed.status_code, failed.json()["code"]) == (503, "SYSTEM_ERROR")
    assert query(sandbox, body["out_trade_no"]).status_code == 404
    retried = create(sandbox, body)
    assert retried.status_code == 201
    assert query(sandbox, body["out_trade_no"]).json()["status"] == "WAIT_BUYER_PAY"


def test_create_error_after_create_creates_the_order_but_loses_the_answer(
    sandbox: SandboxServer,
) -> None:
    body = order_body(
        sandbox_behaviour={"create_error": {"times": 2, "status": 502, "after_create": True}}
    )

    answers = [create(sandbox, body) for _ in range(3)]

    assert [a.status_code for a in answers] == [502, 502, 200]  # created by the first call
    assert answers[0].json()["code"] == "SYSTEM_ERROR"
    queried = query(sandbox, body["out_trade_no"]).json()
    assert queried == answers[2].json()
    assert queried["pay_url"].startswith(f"{sandbox.url}/pay/")


@pytest.mark.parametrize("status", [500, 502, 503])
def test_create_error_answers_the_chosen_status(sandbox: SandboxServer, status: int) -> None:
    body = order_body(sandbox_behaviour={"create_error": {"status": status}})

    assert create(sandbox, body).status_code == status


def test_create_error_counts_every_create_call_for_the_out_trade_no(
    sandbox: SandboxServer,
) -> None:
    body = order_body()
    assert create(sandbox, body).status_code == 201  # call 1, no switch
    switched = {**body, "sandbox_behaviour": {"create_error": {"times": 2}}}

    # The switch comes from each call's own body: call 2 is within "the first 2", call 3 not.
    assert create(sandbox, switched).status_code == 503
    assert create(sandbox, switched).status_code == 200


def test_create_error_counts_across_accounts(sandbox: SandboxServer) -> None:
    body = order_body(sandbox_behaviour={"create_error": {"times": 1}})

    in_a = create(sandbox, body, "/accounts/acct-a")
    in_b = create(sandbox, body, "/accounts/acct-b")

    assert (in_a.status_code, in_b.status_code) == (503, 201)


# -- create_timeout ----------------------------------------------------------------------------


def test_create_timeout_creates_then_stalls_while_other_requests_go_on(
    sandbox: SandboxServer,
) -> None:
    body = order_body(sandbox_behaviour={"create_timeout": {"seconds": 0.8}})
    answers: list[requests.Response] = []
    started = time.monotonic()
    stalled = threading.Thread(target=lambda: answers.append(create(sandbox, body)))
    stalled.start()

    wait_for(lambda: query(sandbox, body["out_trade_no"]).status_code == 200, timeout=0.6)
    other = query(sandbox, body["out_trade_no"])  # served while the create still stalls
    stalled.join(timeout=5)

    assert other.json()["status"] == "WAIT_BUYER_PAY"
    assert time.monotonic() - started >= 0.8
    assert answers[0].status_code == 201
    assert answers[0].json() == other.json()
    replay_started = time.monotonic()
    assert create(sandbox, body).status_code == 200  # call 2: past "times", answers at once
    assert time.monotonic() - replay_started < 0.5


def test_create_timeout_times_stalls_several_calls(sandbox: SandboxServer) -> None:
    body = order_body(sandbox_behaviour={"create_timeout": {"times": 2, "seconds": 0.3}})

    durations = []
    for _ in range(3):
        started = time.monotonic()
        create(sandbox, body)
        durations.append(time.monotonic() - started)

    assert durations[0] >= 0.3
    assert durations[1] >= 0.3
    assert durations[2] < 0.25


def test_stop_does_not_wait_for_a_stalled_create() -> None:
    server = SandboxServer("127.0.0.1", 0, SECRET, notify_schedule=FAST_RETRIES)
    server.start()
    body = order_body(sandbox_behaviour={"create_timeout": {"seconds": 30}})
    outcome: list[object] = []

    def stalled_create() -> None:
        try:
            outcome.append(create(server, body).status_code)
        except requests.RequestException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=stalled_create, daemon=True)
    thread.start()
    wait_for(lambda: query(server, body["out_trade_no"]).status_code == 200)

    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0
    thread.join(timeout=5)
    assert outcome  # the stalled call ended (answered or cut) instead of hanging 30 s


# -- accounts ----------------------------------------------------------------------------------


def test_each_account_has_its_own_order_book(sandbox: SandboxServer) -> None:
    number = order_body()["out_trade_no"]

    in_a = create(sandbox, order_body(out_trade_no=number, amount=100), "/accounts/acct-a")
    in_b = create(sandbox, order_body(out_trade_no=number, amount=200), "/accounts/acct-b")

    assert (in_a.status_code, in_b.status_code) == (201, 201)  # no ORDER_PARAMS_MISMATCH
    assert query(sandbox, number, "/accounts/acct-a").json()["amount"] == 100
    assert query(sandbox, number, "/accounts/acct-b").json()["amount"] == 200
    missing = query(sandbox, number)  # the un-prefixed API is account "default"
    assert (missing.status_code, missing.json()["code"]) == (404, "ORDER_NOT_FOUND")
    assert in_a.json()["pay_url"] != in_b.json()["pay_url"]

    signed_call(sandbox, "POST", f"/accounts/acct-a/v1/orders/{number}/close", {})
    assert pay(in_b.json())["status"] == "SUCCESS"
    assert query(sandbox, number, "/accounts/acct-a").json()["status"] == "CLOSED"
    assert query(sandbox, number, "/accounts/acct-b").json()["status"] == "SUCCESS"


def test_the_unprefixed_api_is_the_default_account(sandbox: SandboxServer) -> None:
    order = create_order(sandbox)

    via_prefix = query(sandbox, order["out_trade_no"], "/accounts/default")

    assert via_prefix.status_code == 200
    assert via_prefix.json() == query(sandbox, order["out_trade_no"]).json()
    assert debug_view(sandbox, order["out_trade_no"])["account"] == "default"


def test_the_debug_views_show_the_account_and_tell_accounts_apart(
    sandbox: SandboxServer,
) -> None:
    number = order_body()["out_trade_no"]
    create(sandbox, order_body(out_trade_no=number, amount=100), "/accounts/acct-a")
    create(sandbox, order_body(out_trade_no=number, amount=200), "/accounts/acct-b")

    ambiguous = requests.get(f"{sandbox.url}/__sandbox/orders/{number}", timeout=5)

    assert (ambiguous.status_code, ambiguous.json()["code"]) == (409, "ORDER_AMBIGUOUS")
    assert debug_view(sandbox, number, "acct-b")["amount"] == 200
    assert debug_view(sandbox, number, "acct-b")["account"] == "acct-b"
    listing = requests.get(f"{sandbox.url}/__sandbox/orders", timeout=5).json()["orders"]
    assert sorted(o["account"] for o in listing if o["out_trade_no"] == number) == [
        "acct-a",
        "acct-b",
    ]
    only_a = requests.get(
        f"{sandbox.url}/__sandbox/orders", params={"account": "acct-a"}, timeout=5
    ).json()["orders"]
    assert only_a
    assert {o["account"] for o in only_a} == {"acct-a"}


def test_the_signature_covers_the_account_prefix(sandbox: SandboxServer) -> None:
    number = create_order(sandbox, prefix="/accounts/acct-a")["out_trade_no"]
    genuine = query(sandbox, number, "/accounts/acct-a")
    headers = {
        name: genuine.request.headers[name] for name in ("Sandbox-Timestamp", "Sandbox-Signature")
    }

    replayed = requests.get(
        f"{sandbox.url}/accounts/acct-b/v1/orders/{number}", headers=headers, timeout=5
    )

    assert genuine.status_code == 200
    assert (replayed.status_code, replayed.json()["code"]) == (401, "SIGNATURE_INVALID")


def test_an_invalid_account_id_is_refused(sandbox: SandboxServer) -> None:
    response = create(sandbox, order_body(), "/accounts/no.dots")

    assert (response.status_code, response.json()["param"]) == (400, "account")


def test_the_adapter_speaks_for_one_account(sandbox: SandboxServer) -> None:
    in_b = sandbox_gateway(f"{sandbox.url}/accounts/acct-b", SECRET, timeout=2.0, account_id="b")
    default = sandbox_gateway(sandbox.url, SECRET, timeout=2.0)
    body = order_body()
    assert create(sandbox, body, "/accounts/acct-b").status_code == 201

    assert in_b.query_order(body["out_trade_no"]).status is ChannelPaymentStatus.PENDING
    assert default.query_order(body["out_trade_no"]).status is ChannelPaymentStatus.NOT_FOUND
    assert in_b.close_order(body["out_trade_no"]).status is ChannelPaymentStatus.CLOSED


def test_close_ignored_answers_closed_but_the_buyer_can_still_pay(
    sandbox: SandboxServer,
) -> None:
    order = create_order(sandbox, sandbox_behaviour={"close_ignored": True})
    number = order["out_trade_no"]

    closed = signed_call(sandbox, "POST", f"/v1/orders/{number}/close", {})

    assert closed.status_code == 200 and closed.json()["status"] == "CLOSED"
    assert query(sandbox, number).json()["status"] == "WAIT_BUYER_PAY"
    assert pay(order)["status"] == "SUCCESS"
    assert query(sandbox, number).json()["status"] == "SUCCESS"


def test_without_close_ignored_a_closed_order_cannot_be_paid(sandbox: SandboxServer) -> None:
    order = create_order(sandbox)
    signed_call(sandbox, "POST", f"/v1/orders/{order['out_trade_no']}/close", {})

    late = requests.post(order["pay_url"], json={"action": "pay"}, timeout=5)

    assert late.status_code == 409 and late.json()["code"] == "ORDER_CLOSED"
