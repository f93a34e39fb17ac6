"""The sandbox channel service as its users meet it, over real HTTP.

A merchant server signs its calls, a buyer's browser loads the payment page and presses a
button, and a merchant's callback endpoint (a real local HTTP server here) receives signed
notifications, retried until it acknowledges them, which paycore's adapter must accept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
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
    order_body,
    signed_call,
    wait_for,
)
from tests.support import sandbox_gateway

# -- the three parties: the sandbox, the merchant's server and the merchant's callback -------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer("127.0.0.1", 0, SECRET, notify_schedule=FAST_RETRIES)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def receivers() -> Iterator[Callable[[list[tuple[int, str]]], CallbackReceiver]]:
    started: list[CallbackReceiver] = []

    def start(replies: list[tuple[int, str]]) -> CallbackReceiver:
        started.append(CallbackReceiver(replies))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


# -- merchant API --------------------------------------------------------------------------


def test_create_answers_201_then_replays_200_then_refuses_other_amounts(
    sandbox: SandboxServer,
) -> None:
    body = order_body()

    created = signed_call(sandbox, "POST", "/v1/orders", body)
    replayed = signed_call(sandbox, "POST", "/v1/orders", body)
    mismatch = signed_call(sandbox, "POST", "/v1/orders", {**body, "currency": "USD"})

    assert created.status_code == 201
    assert created.json()["status"] == "WAIT_BUYER_PAY"
    assert created.json()["pay_url"].startswith(f"{sandbox.url}/pay/")
    assert replayed.status_code == 200
    assert replayed.json() == created.json()
    assert mismatch.status_code == 409
    assert mismatch.json()["code"] == "ORDER_PARAMS_MISMATCH"


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"amount": "1234"}, "amount"),
        ({"amount": 12.5}, "amount"),
        ({"amount": -1}, "amount"),
        ({"currency": "cny"}, "currency"),
        ({"out_trade_no": "has spaces"}, "out_trade_no"),
        ({"out_trade_no": "x" * 65}, "out_trade_no"),
        ({"notify_url": "/relative"}, "notify_url"),
        ({"return_url": "javascript:alert(1)"}, "return_url"),
        ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"unexpected": 1}, "unexpected"),
        ({"sandbox_behaviour": {"explode": True}}, "sandbox_behaviour.explode"),
        ({"sandbox_behaviour": {"decline": 1}}, "sandbox_behaviour.decline"),
        ({"sandbox_behaviour": {"decline": "yes"}}, "sandbox_behaviour.decline"),
        (
            {"sandbox_behaviour": {"notify_delay_seconds": -1}},
            "sandbox_behaviour.notify_delay_seconds",
        ),
        (
            {"sandbox_behaviour": {"notify_delay_seconds": 3601}},
            "sandbox_behaviour.notify_delay_seconds",
        ),
        (
            {"sandbox_behaviour": {"notify_delay_seconds": "1"}},
            "sandbox_behaviour.notify_delay_seconds",
        ),
        ({"sandbox_behaviour": {"notify_duplicate": 1}}, "sandbox_behaviour.notify_duplicate"),
        ({"sandbox_behaviour": {"notify_duplicate": 6}}, "sandbox_behaviour.notify_duplicate"),
        ({"sandbox_behaviour": {"notify_duplicate": 2.0}}, "sandbox_behaviour.notify_duplicate"),
        (
            {"sandbox_behaviour": {"create_error": {"status": 504}}},
            "sandbox_behaviour.create_error.status",
        ),
        (
            {"sandbox_behaviour": {"create_error": {"times": 0}}},
            "sandbox_behaviour.create_error.times",
        ),
        (
            {"sandbox_behaviour": {"create_error": {"after": True}}},
            "sandbox_behaviour.create_error.after",
        ),
        ({"sandbox_behaviour": {"create_error": True}}, "sandbox_behaviour.create_error"),
        (
            {"sandbox_behaviour": {"create_timeout": {"seconds": 61}}},
            "sandbox_behaviour.create_timeout.seconds",
        ),
        (
            {"sandbox_behaviour": {"create_timeout": {"times": True}}},
            "sandbox_behaviour.create_timeout.times",
        ),
        (
            {"sandbox_behaviour": {"refund_delay_seconds": -0.5}},
            "sandbox_behaviour.refund_delay_seconds",
        ),
        (
            {"sandbox_behaviour": {"refund_error": {"times": 0}}},
            "sandbox_behaviour.refund_error.times",
        ),
        ({"sandbox_behaviour": {"refund_fail": None}}, "sandbox_behaviour.refund_fail"),
        ({"sandbox_behaviour": []}, "sandbox_behaviour"),
    ],
)
def test_create_refuses_invalid_input_with_400_naming_the_field(
    sandbox: SandboxServer, overrides: dict[str, Any], param: str
) -> None:
    response = signed_call(sandbox, "POST", "/v1/orders", order_body(**overrides))

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_PARAMETER"
    assert response.json()["param"] == param


def test_create_without_a_required_field_is_refused(sandbox: SandboxServer) -> None:
    body = order_body()
    del body["notify_url"]

    response = signed_call(sandbox, "POST", "/v1/orders", body)

    assert (response.status_code, response.json()["param"]) == (400, "notify_url")


def test_a_body_that_is_not_json_is_refused(sandbox: SandboxServer) -> None:
    timestamp = str(int(time.time()))
    message = f"{timestamp}\nPOST\n/v1/orders\n{{nope".encode()
    signature = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()

    response = requests.post(
        f"{sandbox.url}/v1/orders",
        data=b"{nope",
        headers={"Sandbox-Timestamp": timestamp, "Sandbox-Signature": signature},
        timeout=5,
    )

    assert (response.status_code, response.json()["code"]) == (400, "INVALID_PARAMETER")


def test_an_empty_behaviour_block_is_accepted_and_shown(sandbox: SandboxServer) -> None:
    order = create_order(sandbox, sandbox_behaviour={})

    assert debug_view(sandbox, order["out_trade_no"])["sandbox_behaviour"] == {}


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda s: requests.get(f"{s.url}/v1/orders/pay_x", timeout=5), "SIGNATURE_MISSING"),
        (
            lambda s: signed_call(s, "GET", "/v1/orders/pay_x", at=time.time() - 301),
            "TIMESTAMP_OUT_OF_RANGE",
        ),
        (
            lambda s: signed_call(s, "GET", "/v1/orders/pay_x", at=time.time() + 301),
            "TIMESTAMP_OUT_OF_RANGE",
        ),
        (lambda s: signed_call(s, "GET", "/v1/orders/pay_x", secret="guess"), "SIGNATURE_INVALID"),
    ],
)
def test_merchant_calls_need_a_fresh_valid_signature(
    sandbox: SandboxServer, call: Callable[[SandboxServer], requests.Response], code: str
) -> None:
    response = call(sandbox)

    assert response.status_code == 401
    assert response.json()["code"] == code
    assert response.json()["message"]


def test_a_signature_cannot_be_replayed_on_another_order(sandbox: SandboxServer) -> None:
    genuine = signed_call(sandbox, "GET", "/v1/orders/pay_a")
    headers = {
        name: genuine.request.headers[name] for name in ("Sandbox-Timestamp", "Sandbox-Signature")
    }

    replayed = requests.get(f"{sandbox.url}/v1/orders/pay_b", headers=headers, timeout=5)

    assert genuine.status_code == 404
    assert (replayed.status_code, replayed.json()["code"]) == (401, "SIGNATURE_INVALID")


def test_query_answers_each_status(sandbox: SandboxServer) -> None:
    waiting, paid, declined, closed = (create_order(sandbox) for _ in range(4))
    requests.post(paid["pay_url"], json={"action": "pay"}, timeout=5)
    requests.post(declined["pay_url"], json={"action": "decline"}, timeout=5)
    signed_call(sandbox, "POST", f"/v1/orders/{closed['out_trade_no']}/close", {})

    def query(order: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = signed_call(
            sandbox, "GET", f"/v1/orders/{order['out_trade_no']}"
        ).json()
        return answer

    assert query(waiting)["status"] == "WAIT_BUYER_PAY"
    assert query(paid)["status"] == "SUCCESS"
    assert query(paid)["transaction_id"].startswith("sbxt_")
    assert query(paid)["paid_at"].endswith("Z")
    assert query(declined)["status"] == "DECLINED"
    assert query(declined)["failure_code"] == "BUYER_DECLINED"
    assert query(closed)["status"] == "CLOSED"
    assert query(closed)["close_reason"] == "MERCHANT_CLOSED"
    missing = signed_call(sandbox, "GET", "/v1/orders/pay_missing")
    assert (missing.status_code, missing.json()["code"]) == (404, "ORDER_NOT_FOUND")


def test_close_is_idempotent_and_refuses_a_paid_order_showing_it(sandbox: SandboxServer) -> None:
    unpaid, paid = create_order(sandbox), create_order(sandbox)
    requests.post(paid["pay_url"], json={"action": "pay"}, timeout=5)

    def close(order: dict[str, Any]) -> requests.Response:
        return signed_call(sandbox, "POST", f"/v1/orders/{order['out_trade_no']}/close", {})

    assert [close(unpaid).json()["status"] for _ in range(2)] == ["CLOSED", "CLOSED"]
    refused = close(paid)
    assert (refused.status_code, refused.json()["code"]) == (409, "ORDER_PAID")
    assert refused.json()["order"]["status"] == "SUCCESS"
    unknown = signed_call(sandbox, "POST", "/v1/orders/pay_unknown/close", {})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "ORDER_NOT_FOUND")


def test_unknown_routes_and_methods_answer_json_errors(sandbox: SandboxServer) -> None:
    missing = requests.get(f"{sandbox.url}/v2/anything", timeout=5)
    wrong_method = requests.delete(f"{sandbox.url}/v1/orders/pay_x", timeout=5)

    assert (missing.status_code, missing.json()["code"]) == (404, "ROUTE_NOT_FOUND")
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "METHOD_NOT_ALLOWED")


def test_an_oversized_body_is_refused(sandbox: SandboxServer) -> None:
    response = requests.post(f"{sandbox.url}/v1/orders", data=b"x" * 70_000, timeout=5)

    assert (response.status_code, response.json()["code"]) == (413, "BODY_TOO_LARGE")


# -- buyer pages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [(1234, "CNY", "12.34 CNY"), (1500, "JPY", "1,500 JPY"), (5, "USD", "0.05 USD")],
)
def test_the_payment_page_shows_the_amount_in_the_currencys_units(
    sandbox: SandboxServer, amount: int, currency: str, shown: str
) -> None:
    order = create_order(sandbox, amount=amount, currency=currency)

    page = requests.get(order["pay_url"], timeout=5)

    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert f'id="amount">{shown}</p>' in page.text
    assert "Green tea, 250 g" in page.text
    assert 'value="pay"' in page.text
    assert 'value="decline"' in page.text


def test_the_payment_page_escapes_the_subject(sandbox: SandboxServer) -> None:
    order = create_order(sandbox, subject="<script>alert(1)</script>")

    page = requests.get(order["pay_url"], timeout=5).text

    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_an_unknown_pay_link_is_a_404_page(sandbox: SandboxServer) -> None:
    page = requests.get(f"{sandbox.url}/pay/not-a-token", timeout=5)

    assert page.status_code == 404
    assert page.headers["Content-Type"].startswith("text/html")


def test_a_form_post_redirects_the_buyer_to_the_return_url(sandbox: SandboxServer) -> None:
    order = create_order(sandbox, return_url="https://shop.example/orders/42?done=1")

    response = requests.post(
        order["pay_url"], data={"action": "pay"}, allow_redirects=False, timeout=5
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "https://shop.example/orders/42?done=1"


def test_a_form_post_without_a_return_url_shows_the_result(sandbox: SandboxServer) -> None:
    order = create_order(sandbox)

    response = requests.post(order["pay_url"], data={"action": "decline"}, timeout=5)

    assert response.status_code == 200
    assert 'data-status="DECLINED"' in response.text
    assert 'value="pay"' not in response.text


def test_paying_twice_is_idempotent_and_the_other_choice_is_refused(
    sandbox: SandboxServer,
) -> None:
    order = create_order(sandbox)

    first = requests.post(order["pay_url"], json={"action": "pay"}, timeout=5)
    again = requests.post(order["pay_url"], json={"action": "pay"}, timeout=5)
    decline = requests.post(order["pay_url"], json={"action": "decline"}, timeout=5)

    assert (first.status_code, first.json()["status"]) == (200, "SUCCESS")
    assert (again.status_code, again.json()["status"]) == (200, "SUCCESS")
    assert (decline.status_code, decline.json()["code"]) == (409, "ORDER_PAID")
    assert len(debug_view(sandbox, order["out_trade_no"])["notifications"]) == 1


def test_a_declined_or_closed_order_cannot_be_paid(sandbox: SandboxServer) -> None:
    declined, closed = create_order(sandbox), create_order(sandbox)
    requests.post(declined["pay_url"], json={"action": "decline"}, timeout=5)
    signed_call(sandbox, "POST", f"/v1/orders/{closed['out_trade_no']}/close", {})

    pay_declined = requests.post(declined["pay_url"], json={"action": "pay"}, timeout=5)
    pay_closed = requests.post(closed["pay_url"], data={"action": "pay"}, timeout=5)

    assert (pay_declined.status_code, pay_declined.json()["code"]) == (409, "ORDER_DECLINED")
    assert pay_closed.status_code == 409
    assert "closed" in pay_closed.text


def test_an_unknown_action_is_refused(sandbox: SandboxServer) -> None:
    order = create_order(sandbox)

    response = requests.post(order["pay_url"], json={"action": "steal"}, timeout=5)

    assert (response.status_code, response.json()["code"]) == (400, "INVALID_PARAMETER")


def test_an_expired_order_is_closed_and_cannot_be_paid(sandbox: SandboxServer) -> None:
    expires_at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    order = create_order(sandbox, expires_at=expires_at)
    path = f"/v1/orders/{order['out_trade_no']}"

    wait_for(lambda: signed_call(sandbox, "GET", path).json()["status"] == "CLOSED")
    response = requests.post(order["pay_url"], json={"action": "pay"}, timeout=5)

    assert (response.status_code, response.json()["code"]) == (409, "ORDER_CLOSED")
    assert "expired" in response.json()["message"]
    assert signed_call(sandbox, "GET", path).json()["close_reason"] == "EXPIRED"
    assert "expired" in requests.get(order["pay_url"], timeout=5).text


# -- notifications -------------------------------------------------------------------------


def test_the_notification_is_retried_until_acknowledged_and_the_adapter_accepts_it(
    sandbox: SandboxServer,
    receivers: Callable[[list[tuple[int, str]]], CallbackReceiver],
) -> None:
    receiver = receivers([(500, "oops"), (200, '{"code": "FAIL"}'), ACK])
    order = create_order(sandbox, notify_url=receiver.url)
    gateway = sandbox_gateway(sandbox.url, SECRET, timeout=2.0)

    requests.post(order["pay_url"], json={"action": "pay"}, timeout=5)
    wait_for(lambda: receiver.count() >= 3)

    states = [gateway.parse_notification(r.body.encode(), r.headers) for r in receiver.received]
    assert all(isinstance(state, ChannelPaymentState) for state in states)
    assert {state.notification_id for state in states} == {states[0].notification_id}
    assert all(state.status is ChannelPaymentStatus.SUCCEEDED for state in states)
    assert states[0].out_trade_no == order["out_trade_no"]
    assert (states[0].amount, states[0].currency) == (1234, "CNY")
    assert states[0].channel_transaction_id is not None
    wait_for(
        lambda: (
            debug_view(sandbox, order["out_trade_no"])["notifications"][0]["state"] == "DELIVERED"
        )
    )
    attempts = debug_view(sandbox, order["out_trade_no"])["notifications"][0]["attempts"]
    assert [a["acknowledged"] for a in attempts] == [False, False, True]
    assert [a["http_status"] for a in attempts] == [500, 200, 200]
    time.sleep(0.2)  # longer than the remaining retry delays: nothing more arrives
    assert receiver.count() == 3


def test_each_attempt_is_signed_afresh(
    sandbox: SandboxServer,
    receivers: Callable[[list[tuple[int, str]]], CallbackReceiver],
) -> None:
    receiver = receivers([(503, ""), ACK])
    order = create_order(sandbox, notify_url=receiver.url)

    requests.post(order["pay_url"], json={"action": "pay"}, timeout=5)
    wait_for(lambda: receiver.count() >= 2)

    first, second = (json.loads(r.body) for r in receiver.received)
    assert first["notify_id"] == second["notify_id"]
    assert first["sent_at"] != second["sent_at"]
    assert first["notify_type"] == "trade.status_changed"
    signatures = [r.headers["Sandbox-Signature"] for r in receiver.received]
    assert signatures[0] != signatures[1]


def test_a_decline_is_notified_as_a_failure(
    sandbox: SandboxServer,
    receivers: Callable[[list[tuple[int, str]]], CallbackReceiver],
) -> None:
    receiver = receivers([ACK])
    order = create_order(sandbox, notify_url=receiver.url)
    gateway = sandbox_gateway(sandbox.url, SECRET, timeout=2.0)

    requests.post(order["pay_url"], data={"action": "decline"}, timeout=5)
    wait_for(lambda: receiver.count() >= 1)

    state = gateway.parse_notification(
        receiver.received[0].body.encode(), receiver.received[0].headers
    )
    assert isinstance(state, ChannelPaymentState)
    assert state.status is ChannelPaymentStatus.FAILED
    assert state.failure_code == "buyer_declined"
    assert state.channel_transaction_id is None


def test_retries_stop_after_the_schedule_and_the_debug_view_says_so(
    sandbox: SandboxServer,
    receivers: Callable[[list[tuple[int, str]]], CallbackReceiver],
) -> None:
    receiver = receivers([(500, "down for maintenance")])
    order = create_order(sandbox, notify_url=receiver.url)

    requests.post(order["pay_url"], json={"action": "pay"}, timeout=5)

    def state() -> str:
        notification: dict[str, Any] = debug_view(sandbox, order["out_trade_no"])["notifications"][
            0
        ]
        return str(notification["state"])

    wait_for(lambda: state() == "EXHAUSTED")
    assert receiver.count() == len(FAST_RETRIES)
    listing = requests.get(f"{sandbox.url}/__sandbox/orders", timeout=5).json()["orders"]
    mine = next(o for o in listing if o["out_trade_no"] == order["out_trade_no"])
    assert mine["status"] == "SUCCESS"
    assert len(mine["notifications"][0]["attempts"]) == len(FAST_RETRIES)


def test_stop_cancels_pending_notifications_and_releases_the_port(
    receivers: Callable[[list[tuple[int, str]]], CallbackReceiver],
) -> None:
    receiver = receivers([(500, "")])
    server = SandboxServer("127.0.0.1", 0, SECRET, notify_schedule=(0, 0.3, 0.3))
    server.start()
    url = server.url
    try:
        order = create_order(server, notify_url=receiver.url)
        requests.post(order["pay_url"], json={"action": "pay"}, timeout=5)
        wait_for(lambda: receiver.count() == 1)
    finally:
        started = time.monotonic()
        server.stop()
        stopped_in = time.monotonic() - started

    time.sleep(0.5)  # past the next scheduled attempt
    assert receiver.count() == 1
    assert stopped_in < 1.0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/__sandbox/health", timeout=1)


def test_the_server_binds_a_free_port_and_reports_its_url() -> None:
    server = SandboxServer("0.0.0.0", 0, SECRET)
    server.start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert requests.get(f"{server.url}/__sandbox/health", timeout=5).json() == {"status": "ok"}
        with pytest.raises(RuntimeError):
            server.start()
    finally:
        server.stop()
    server.stop()  # stopping twice is harmless
    with pytest.raises(RuntimeError):
        server.start()
