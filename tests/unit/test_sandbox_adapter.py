"""The sandbox adapter against a real sandbox channel over HTTP.

Every test talks to a real ``SandboxServer`` on a free port (or, for the failure modes, to a
real HTTP server that misbehaves on purpose): nothing in paycore is faked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from local_runtime.sandbox.server import SandboxServer
from paycore.channels.base import (
    ChannelPaymentState,
    ChannelPaymentStatus,
    ChannelRefundState,
    ChannelRefundStatus,
    CreateChannelOrder,
    CreateChannelRefund,
    NextActionType,
)
from paycore.channels.sandbox.adapter import SandboxGateway, create_gateway
from paycore.channels.sandbox.transformers import (
    SandboxRefundStatus,
    SandboxStatus,
    to_payment_status,
    to_refund_status,
)
from paycore.config import Settings
from paycore.errors import CallbackRejected, ChannelRejected, ChannelUnavailable
from tests.support import sandbox_gateway

SECRET = "sandbox-secret-for-adapter-tests"
DEAD_URL = "http://127.0.0.1:9/notify"  # nothing listens: notifications fail fast


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer("127.0.0.1", 0, SECRET, notify_schedule=(0,))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gateway(sandbox: SandboxServer) -> SandboxGateway:
    return sandbox_gateway(sandbox.url, SECRET, timeout=2.0)


def order_request(**overrides: object) -> CreateChannelOrder:
    fields: dict[str, object] = {
        "out_trade_no": f"pay_{secrets.token_hex(8)}",
        "amount": 1234,
        "currency": "CNY",
        "subject": "Green tea, 250 g",
        "notify_url": DEAD_URL,
        "expires_at": (datetime.now(UTC) + timedelta(minutes=30)).isoformat(),
    }
    fields.update(overrides)
    return CreateChannelOrder(**fields)  # type: ignore[arg-type]


def buyer_chooses(pay_url: str, action: str) -> requests.Response:
    return requests.post(pay_url, json={"action": action}, timeout=5)


# -- create --------------------------------------------------------------------------------


def test_create_returns_the_channel_order_and_a_pay_url_on_the_sandbox(
    gateway: SandboxGateway, sandbox: SandboxServer
) -> None:
    request = order_request()

    order = gateway.create_order(request)

    assert order.out_trade_no == request.out_trade_no
    assert order.channel_order_id.startswith("sbxo_")
    assert order.next_action.url.startswith(f"{sandbox.url}/pay/")
    assert requests.get(order.next_action.url, timeout=5).status_code == 200


def test_create_replayed_with_the_same_amount_returns_the_same_order(
    gateway: SandboxGateway,
) -> None:
    request = order_request()

    first = gateway.create_order(request)
    replay = gateway.create_order(request)

    assert replay == first


def test_create_replay_finds_its_order_even_after_it_expired(gateway: SandboxGateway) -> None:
    request = order_request(expires_at=(datetime.now(UTC) + timedelta(seconds=1)).isoformat())
    first = gateway.create_order(request)
    wait_for(lambda: gateway.query_order(request.out_trade_no).status.value == "closed")

    assert gateway.create_order(request) == first


def test_create_with_another_amount_for_the_same_out_trade_no_is_rejected(
    gateway: SandboxGateway,
) -> None:
    request = order_request()
    gateway.create_order(request)

    with pytest.raises(ChannelRejected, match="ORDER_PARAMS_MISMATCH"):
        gateway.create_order(order_request(out_trade_no=request.out_trade_no, amount=1))


@pytest.mark.parametrize(
    "overrides",
    [
        {"currency": "XXX"},
        {"amount": 0},
        {"notify_url": "ftp://example.com/notify"},
        {"expires_at": "2000-01-01T00:00:00Z"},
        {"expires_at": "tomorrow"},
        {"subject": ""},
    ],
)
def test_create_with_invalid_parameters_is_rejected(
    gateway: SandboxGateway, overrides: dict[str, object]
) -> None:
    with pytest.raises(ChannelRejected, match="INVALID_PARAMETER"):
        gateway.create_order(order_request(**overrides))


def test_a_wrong_secret_is_rejected_by_the_sandbox(sandbox: SandboxServer) -> None:
    impostor = sandbox_gateway(sandbox.url, "not-the-secret", timeout=2.0)

    with pytest.raises(ChannelRejected, match="SIGNATURE_INVALID"):
        impostor.create_order(order_request())


def test_the_adapter_never_shows_its_secret(gateway: SandboxGateway) -> None:
    assert SECRET not in repr(gateway)


# -- query ---------------------------------------------------------------------------------


def test_query_of_a_new_order_is_pending(gateway: SandboxGateway) -> None:
    request = order_request()
    created = gateway.create_order(request)

    state = gateway.query_order(request.out_trade_no)

    assert state == ChannelPaymentState(
        out_trade_no=request.out_trade_no,
        status=ChannelPaymentStatus.PENDING,
        amount=1234,
        currency="CNY",
        channel_order_id=created.channel_order_id,
        next_action=created.next_action,
    )


def test_query_of_a_paid_order_is_succeeded_with_the_transaction(gateway: SandboxGateway) -> None:
    request = order_request()
    order = gateway.create_order(request)
    assert buyer_chooses(order.next_action.url, "pay").json()["status"] == "SUCCESS"

    state = gateway.query_order(request.out_trade_no)

    assert state.status is ChannelPaymentStatus.SUCCEEDED
    assert (state.amount, state.currency) == (1234, "CNY")
    assert state.channel_transaction_id is not None
    assert state.channel_transaction_id.startswith("sbxt_")
    assert state.failure_code is None


def test_query_of_a_declined_order_is_failed_with_the_reason(gateway: SandboxGateway) -> None:
    request = order_request()
    order = gateway.create_order(request)
    buyer_chooses(order.next_action.url, "decline")

    state = gateway.query_order(request.out_trade_no)

    assert state.status is ChannelPaymentStatus.FAILED
    assert state.failure_code == "buyer_declined"
    assert state.failure_message
    assert state.channel_transaction_id is None


def test_query_of_a_closed_order_is_closed(gateway: SandboxGateway) -> None:
    request = order_request()
    gateway.create_order(request)
    gateway.close_order(request.out_trade_no)

    assert gateway.query_order(request.out_trade_no).status is ChannelPaymentStatus.CLOSED


def test_query_of_an_unknown_order_is_not_found(gateway: SandboxGateway) -> None:
    state = gateway.query_order("pay_never_created")

    assert state == ChannelPaymentState("pay_never_created", ChannelPaymentStatus.NOT_FOUND)


@pytest.mark.parametrize(
    ("sandbox_status", "ours"),
    [
        (SandboxStatus.WAIT_BUYER_PAY, ChannelPaymentStatus.PENDING),
        (SandboxStatus.SUCCESS, ChannelPaymentStatus.SUCCEEDED),
        (SandboxStatus.DECLINED, ChannelPaymentStatus.FAILED),
        (SandboxStatus.CLOSED, ChannelPaymentStatus.CLOSED),
    ],
)
def test_every_sandbox_status_maps_to_ours(
    sandbox_status: SandboxStatus, ours: ChannelPaymentStatus
) -> None:
    assert to_payment_status(sandbox_status) is ours


# -- close ---------------------------------------------------------------------------------


def test_closing_an_unpaid_order_closes_it_and_closing_again_is_harmless(
    gateway: SandboxGateway,
) -> None:
    request = order_request()
    order = gateway.create_order(request)

    first = gateway.close_order(request.out_trade_no)
    again = gateway.close_order(request.out_trade_no)

    assert first.status is again.status is ChannelPaymentStatus.CLOSED
    assert buyer_chooses(order.next_action.url, "pay").json()["code"] == "ORDER_CLOSED"


def test_closing_a_paid_order_reports_the_success_instead(gateway: SandboxGateway) -> None:
    request = order_request()
    order = gateway.create_order(request)
    buyer_chooses(order.next_action.url, "pay")

    state = gateway.close_order(request.out_trade_no)

    assert state.status is ChannelPaymentStatus.SUCCEEDED
    assert state.channel_transaction_id is not None
    assert gateway.query_order(request.out_trade_no).status is ChannelPaymentStatus.SUCCEEDED


def test_closing_an_unknown_order_is_not_found(gateway: SandboxGateway) -> None:
    assert gateway.close_order("pay_unknown").status is ChannelPaymentStatus.NOT_FOUND


# -- when the channel cannot answer ----------------------------------------------------------


class MisbehavingChannel:
    """A real HTTP server that answers every request with ``status`` and ``body`` after
    ``delay`` seconds: a channel having a bad day, or something that is not the channel."""

    def __init__(self, status: int, body: str, delay: float = 0.0) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                time.sleep(outer.delay)
                payload = outer.body.encode()
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.status, self.body, self.delay = status, body, delay
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def misbehaving() -> Iterator[list[MisbehavingChannel]]:
    started: list[MisbehavingChannel] = []
    yield started
    for channel in started:
        channel.close()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, '{"code": "INTERNAL_ERROR", "message": "boom"}'),
        (503, "<html>Service Unavailable</html>"),
        (429, '{"code": "RATE_LIMITED", "message": "slow down"}'),
        (404, "<html>Not Found</html>"),  # a 4xx that is not the sandbox speaking
        (302, ""),
        (200, "this is not JSON"),
        (200, '{"status": "WAIT_BUYER_PAY"}'),  # JSON, but not an order
        (
            200,
            '{"out_trade_no": "pay_x", "status": "REFUNDING", "amount": 1, "currency": "CNY",'
            ' "channel_order_id": "sbxo_1"}',
        ),  # a status we do not know
    ],
)
def test_answers_that_leave_the_outcome_unknown_are_unavailable(
    misbehaving: list[MisbehavingChannel], status: int, body: str
) -> None:
    channel = MisbehavingChannel(status, body)
    misbehaving.append(channel)
    gateway = sandbox_gateway(channel.url, SECRET, timeout=2.0)

    with pytest.raises(ChannelUnavailable):
        gateway.create_order(order_request())
    with pytest.raises(ChannelUnavailable):
        gateway.query_order("pay_x")


def test_a_channel_slower_than_the_timeout_is_unavailable(
    misbehaving: list[MisbehavingChannel],
) -> None:
    channel = MisbehavingChannel(200, "{}", delay=1.0)
    misbehaving.append(channel)
    gateway = sandbox_gateway(channel.url, SECRET, timeout=0.2)

    started = time.monotonic()
    with pytest.raises(ChannelUnavailable, match="timed out"):
        gateway.query_order("pay_x")
    assert time.monotonic() - started < 0.9


def test_a_channel_that_refuses_connections_is_unavailable() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and is closed now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = sandbox_gateway(f"http://127.0.0.1:{port}", SECRET, timeout=1.0)

    with pytest.raises(ChannelUnavailable):
        gateway.create_order(order_request())
    with pytest.raises(ChannelUnavailable):
        gateway.close_order("pay_x")


def test_an_answer_about_another_order_is_unavailable(
    misbehaving: list[MisbehavingChannel],
) -> None:
    other = {
        "out_trade_no": "pay_other",
        "status": "SUCCESS",
        "amount": 1,
        "currency": "CNY",
        "channel_order_id": "sbxo_1",
    }
    channel = MisbehavingChannel(200, json.dumps(other))
    misbehaving.append(channel)
    gateway = sandbox_gateway(channel.url, SECRET, timeout=2.0)

    with pytest.raises(ChannelUnavailable, match="another order"):
        gateway.query_order("pay_mine")


@pytest.mark.parametrize("base_url", ["ftp://example.com", "example.com", "file:///etc/passwd"])
def test_only_http_base_urls_are_accepted(base_url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        sandbox_gateway(base_url, SECRET)


# -- notifications ----------------------------------------------------------------------------


def notification(**overrides: object) -> str:
    body: dict[str, object] = {
        "notify_id": "ntf_1",
        "notify_type": "trade.status_changed",
        "out_trade_no": "pay_1",
        "channel_order_id": "sbxo_1",
        "status": "SUCCESS",
        "amount": 1234,
        "currency": "CNY",
        "transaction_id": "sbxt_1",
        "paid_at": "2030-01-01T00:00:00.000Z",
        "failure_code": None,
        "failure_message": None,
        "sent_at": "2030-01-01T00:00:00.000Z",
    }
    body.update(overrides)
    return json.dumps(body)


def signed(body: str, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    """Headers as the sandbox signs a notification (its documented recipe)."""
    timestamp = str(int(time.time() if at is None else at))
    message = f"{timestamp}\n{body}".encode()
    signature = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return {"Sandbox-Timestamp": timestamp, "Sandbox-Signature": signature}


def test_a_signed_notification_is_read_into_the_payment_state(gateway: SandboxGateway) -> None:
    body = notification()

    state = gateway.parse_notification(body.encode(), signed(body))

    assert state == ChannelPaymentState(
        out_trade_no="pay_1",
        status=ChannelPaymentStatus.SUCCEEDED,
        amount=1234,
        currency="CNY",
        channel_order_id="sbxo_1",
        channel_transaction_id="sbxt_1",
        notification_id="ntf_1",
    )


def test_notification_header_names_are_case_insensitive(gateway: SandboxGateway) -> None:
    body = notification()
    headers = {name.lower(): value for name, value in signed(body).items()}

    assert (
        gateway.parse_notification(body.encode(), headers).status is ChannelPaymentStatus.SUCCEEDED
    )


def test_a_notification_from_six_minutes_ago_is_stale(gateway: SandboxGateway) -> None:
    body = notification()

    with pytest.raises(CallbackRejected, match="stale"):
        gateway.parse_notification(body.encode(), signed(body, at=time.time() - 301))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Sandbox-Timestamp": "1"},
        {"Sandbox-Signature": "ab" * 32},
        {"Sandbox-Timestamp": "", "Sandbox-Signature": ""},
    ],
)
def test_an_unsigned_notification_is_rejected(
    gateway: SandboxGateway, headers: dict[str, str]
) -> None:
    with pytest.raises(CallbackRejected, match="unsigned"):
        gateway.parse_notification(notification().encode(), headers)


def test_a_notification_signed_with_another_secret_is_forged(gateway: SandboxGateway) -> None:
    body = notification()

    with pytest.raises(CallbackRejected, match="signature"):
        gateway.parse_notification(body.encode(), signed(body, secret="attacker"))


def test_a_tampered_notification_body_is_rejected(gateway: SandboxGateway) -> None:
    headers = signed(notification(amount=1))

    with pytest.raises(CallbackRejected, match="signature"):
        gateway.parse_notification(notification(amount=1_000_000).encode(), headers)


@pytest.mark.parametrize("timestamp", ["soon", "12.5", "-5", "١٢٣"])
def test_a_notification_with_a_garbled_timestamp_is_rejected(
    gateway: SandboxGateway, timestamp: str
) -> None:
    body = notification()
    headers = {**signed(body), "Sandbox-Timestamp": timestamp}

    with pytest.raises(CallbackRejected):
        gateway.parse_notification(body.encode(), headers)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        notification(notify_type="refund.status_changed"),
        notification(status="REFUNDED"),
        notification(amount="1234"),
        notification(amount=True),
        notification(out_trade_no=None),
        notification(notify_id=""),
    ],
)
def test_a_correctly_signed_but_malformed_notification_is_rejected(
    gateway: SandboxGateway, body: str
) -> None:
    with pytest.raises(CallbackRejected, match="malformed"):
        gateway.parse_notification(body.encode(), signed(body))


def test_a_non_ascii_signature_is_rejected_not_crashed_on(gateway: SandboxGateway) -> None:
    body = notification()
    headers = {**signed(body), "Sandbox-Signature": "é" * 64}

    with pytest.raises(CallbackRejected, match="signature"):
        gateway.parse_notification(body.encode(), headers)


def test_the_acknowledgement_is_what_the_sandbox_waits_for(gateway: SandboxGateway) -> None:
    ack = gateway.acknowledge()

    assert ack.status_code == 200
    assert json.loads(ack.body) == {"code": "SUCCESS"}
    assert ack.content_type == "application/json"


def wait_for(condition: object, timeout: float = 5.0) -> None:
    """Poll ``condition`` (a callable) until it is true, failing after ``timeout`` seconds."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.02)


# -- accounts, behaviour switches and the pay link -------------------------------------------


def test_a_gateway_speaks_for_its_account_only(sandbox: SandboxServer) -> None:
    in_b = sandbox_gateway(f"{sandbox.url}/accounts/acct-b", SECRET, timeout=2.0, account_id="b")
    default = sandbox_gateway(sandbox.url, SECRET, timeout=2.0)
    request = order_request()

    order = in_b.create_order(request)

    assert (in_b.account_id, default.account_id) == ("b", "default")
    assert in_b.query_order(request.out_trade_no).channel_order_id == order.channel_order_id
    assert default.query_order(request.out_trade_no).status is ChannelPaymentStatus.NOT_FOUND
    assert default.create_order(request).channel_order_id != order.channel_order_id
    assert "account_id='b'" in repr(in_b)


def test_the_registry_factory_builds_a_gateway_from_the_accounts_credentials(
    sandbox: SandboxServer,
) -> None:
    credentials = {"base_url": f"{sandbox.url}/accounts/acct-f/", "secret": SECRET}

    gateway = create_gateway("acct-f", credentials, Settings())

    assert (gateway.name, gateway.account_id, gateway.simulator) == ("sandbox", "acct-f", True)
    assert gateway.next_action_type is NextActionType.REDIRECT
    assert gateway.create_order(order_request()).next_action.type is NextActionType.REDIRECT
    assert SECRET not in repr(gateway)


def test_create_passes_simulate_as_the_sandbox_behaviour(
    gateway: SandboxGateway, sandbox: SandboxServer
) -> None:
    request = order_request(simulate={"decline": True})

    order = gateway.create_order(request)
    buyer_chooses(order.next_action.url, "pay")

    state = gateway.query_order(request.out_trade_no)
    assert state.status is ChannelPaymentStatus.FAILED
    assert state.failure_code == "buyer_declined"
    shown = requests.get(
        f"{sandbox.url}/__sandbox/orders/{request.out_trade_no}", timeout=5
    ).json()["sandbox_behaviour"]
    assert shown == {"decline": True}


def test_create_without_simulate_sends_no_behaviour(
    gateway: SandboxGateway, sandbox: SandboxServer
) -> None:
    request = order_request()

    gateway.create_order(request)

    shown = requests.get(
        f"{sandbox.url}/__sandbox/orders/{request.out_trade_no}", timeout=5
    ).json()["sandbox_behaviour"]
    assert shown == {}


def test_an_unknown_sandbox_switch_is_rejected(gateway: SandboxGateway) -> None:
    request = order_request(simulate={"explode": True})

    with pytest.raises(ChannelRejected, match="INVALID_PARAMETER"):
        gateway.create_order(request)


def test_query_and_close_answers_carry_the_pay_link(gateway: SandboxGateway) -> None:
    request = order_request()
    order = gateway.create_order(request)

    assert gateway.query_order(request.out_trade_no).next_action.url == order.next_action.url
    assert gateway.close_order(request.out_trade_no).next_action.url == order.next_action.url


def test_a_create_error_is_unavailable_and_a_retry_creates(gateway: SandboxGateway) -> None:
    request = order_request(simulate={"create_error": {"times": 1}})

    with pytest.raises(ChannelUnavailable, match="503"):
        gateway.create_order(request)
    assert gateway.query_order(request.out_trade_no).status is ChannelPaymentStatus.NOT_FOUND
    assert gateway.create_order(request).out_trade_no == request.out_trade_no


def test_a_timed_out_create_can_be_adopted_from_the_query(sandbox: SandboxServer) -> None:
    impatient = sandbox_gateway(sandbox.url, SECRET, timeout=0.3)
    request = order_request(simulate={"create_timeout": {"times": 1, "seconds": 1.0}})

    with pytest.raises(ChannelUnavailable, match="timed out"):
        impatient.create_order(request)
    state = impatient.query_order(request.out_trade_no)

    assert state.status is ChannelPaymentStatus.PENDING
    assert state.next_action.url is not None
    assert state.next_action.url.startswith(f"{sandbox.url}/pay/")
    assert buyer_chooses(state.next_action.url, "pay").json()["status"] == "SUCCESS"
    assert (
        impatient.create_order(request).next_action.url == state.next_action.url
    )  # call 2: prompt


# -- refunds -----------------------------------------------------------------------------------


def paid(gateway: SandboxGateway, **overrides: object) -> CreateChannelOrder:
    request = order_request(**overrides)
    order = gateway.create_order(request)
    assert buyer_chooses(order.next_action.url, "pay").json()["status"] == "SUCCESS"
    return request


def refund_request(
    order: CreateChannelOrder, amount: int, **overrides: object
) -> CreateChannelRefund:
    fields: dict[str, object] = {
        "out_trade_no": order.out_trade_no,
        "out_refund_no": f"rfd_{secrets.token_hex(8)}",
        "amount": amount,
        "currency": order.currency,
        "notify_url": DEAD_URL,
    }
    fields.update(overrides)
    return CreateChannelRefund(**fields)  # type: ignore[arg-type]


def test_a_refund_succeeds_and_queries_the_same(gateway: SandboxGateway) -> None:
    order = paid(gateway)
    request = refund_request(order, 234, reason="one cup broken")

    state = gateway.refund(request)

    assert state.status is ChannelRefundStatus.SUCCEEDED
    assert (state.out_refund_no, state.out_trade_no) == (request.out_refund_no, order.out_trade_no)
    assert (state.amount, state.currency) == (234, "CNY")
    assert state.channel_refund_id is not None
    assert state.channel_refund_id.startswith("sbxr_")
    assert (state.failure_code, state.failure_message, state.notification_id) == (None, None, None)
    assert gateway.query_refund(order.out_trade_no, request.out_refund_no) == state
    assert gateway.refund(request) == state  # idempotent


def test_partial_refunds_up_to_the_paid_amount(gateway: SandboxGateway) -> None:
    order = paid(gateway)

    assert gateway.refund(refund_request(order, 1000)).status is ChannelRefundStatus.SUCCEEDED
    assert gateway.refund(refund_request(order, 234)).status is ChannelRefundStatus.SUCCEEDED
    with pytest.raises(ChannelRejected, match="REFUND_EXCEEDS_PAID"):
        gateway.refund(refund_request(order, 1))


def test_a_reused_out_refund_no_with_another_amount_is_rejected(gateway: SandboxGateway) -> None:
    order = paid(gateway)
    first = refund_request(order, 100)
    gateway.refund(first)

    with pytest.raises(ChannelRejected, match="REFUND_PARAMS_MISMATCH"):
        gateway.refund(refund_request(order, 101, out_refund_no=first.out_refund_no))


def test_refunding_an_unpaid_or_unknown_order_is_rejected(gateway: SandboxGateway) -> None:
    unpaid = order_request()
    gateway.create_order(unpaid)

    with pytest.raises(ChannelRejected, match="ORDER_NOT_PAID"):
        gateway.refund(refund_request(unpaid, 1))
    with pytest.raises(ChannelRejected, match="ORDER_NOT_FOUND"):
        gateway.refund(refund_request(order_request(), 1))
    with pytest.raises(ChannelRejected, match="INVALID_PARAMETER"):
        gateway.refund(refund_request(unpaid, 1, out_refund_no="not valid"))


def test_query_of_an_unknown_refund_is_not_found(gateway: SandboxGateway) -> None:
    state = gateway.query_refund("pay_x", "rfd_never")

    assert state == ChannelRefundState("rfd_never", "pay_x", ChannelRefundStatus.NOT_FOUND)


def test_a_refund_the_channel_fails_is_failed_with_our_code(gateway: SandboxGateway) -> None:
    order = paid(gateway, simulate={"refund_fail": True})

    state = gateway.refund(refund_request(order, 100))

    assert state.status is ChannelRefundStatus.FAILED
    assert state.failure_code == "refund_rejected"
    assert state.failure_message


def test_a_delayed_refund_is_pending_then_succeeded(gateway: SandboxGateway) -> None:
    order = paid(gateway, simulate={"refund_delay_seconds": 0.2})
    request = refund_request(order, 100)

    assert gateway.refund(request).status is ChannelRefundStatus.PENDING
    wait_for(
        lambda: (
            gateway.query_refund(order.out_trade_no, request.out_refund_no).status
            is ChannelRefundStatus.SUCCEEDED
        )
    )


def test_a_refund_error_is_unavailable_and_a_retry_refunds_once(gateway: SandboxGateway) -> None:
    order = paid(gateway, simulate={"refund_error": {"times": 1}})
    request = refund_request(order, 100)

    with pytest.raises(ChannelUnavailable, match="503"):
        gateway.refund(request)
    missing = gateway.query_refund(order.out_trade_no, request.out_refund_no)
    assert missing.status is ChannelRefundStatus.NOT_FOUND
    assert gateway.refund(request).status is ChannelRefundStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("sandbox_status", "ours"),
    [
        (SandboxRefundStatus.PROCESSING, ChannelRefundStatus.PENDING),
        (SandboxRefundStatus.SUCCESS, ChannelRefundStatus.SUCCEEDED),
        (SandboxRefundStatus.FAILED, ChannelRefundStatus.FAILED),
    ],
)
def test_every_sandbox_refund_status_maps_to_ours(
    sandbox_status: SandboxRefundStatus, ours: ChannelRefundStatus
) -> None:
    assert to_refund_status(sandbox_status) is ours


def test_every_sandbox_refund_status_is_mapped() -> None:
    assert {to_refund_status(s) for s in SandboxRefundStatus} == {
        ChannelRefundStatus.PENDING,
        ChannelRefundStatus.SUCCEEDED,
        ChannelRefundStatus.FAILED,
    }


REFUND_ANSWER = {
    "out_refund_no": "rfd_1",
    "out_trade_no": "pay_1",
    "refund_id": "sbxr_1",
    "amount": 100,
    "currency": "CNY",
    "status": "SUCCESS",
    "failure_code": None,
    "failure_message": None,
}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, '{"code": "INTERNAL_ERROR", "message": "boom"}'),
        (503, '{"code": "SYSTEM_ERROR", "message": "simulated"}'),
        (404, "<html>Not Found</html>"),
        (200, "not JSON"),
        (200, json.dumps({**REFUND_ANSWER, "status": "REFUNDED"})),
        (200, json.dumps({**REFUND_ANSWER, "refund_id": None})),
        (200, json.dumps({**REFUND_ANSWER, "out_refund_no": "rfd_other"})),
        (200, json.dumps({**REFUND_ANSWER, "out_trade_no": "pay_other"})),
    ],
)
def test_refund_answers_that_leave_the_outcome_unknown_are_unavailable(
    misbehaving: list[MisbehavingChannel], status: int, body: str
) -> None:
    channel = MisbehavingChannel(status, body)
    misbehaving.append(channel)
    gateway = sandbox_gateway(channel.url, SECRET, timeout=2.0)
    request = CreateChannelRefund("pay_1", "rfd_1", 100, "CNY", DEAD_URL)

    with pytest.raises(ChannelUnavailable):
        gateway.refund(request)
    with pytest.raises(ChannelUnavailable):
        gateway.query_refund("pay_1", "rfd_1")


def test_a_well_formed_refund_answer_is_read(misbehaving: list[MisbehavingChannel]) -> None:
    channel = MisbehavingChannel(200, json.dumps(REFUND_ANSWER))
    misbehaving.append(channel)
    gateway = sandbox_gateway(channel.url, SECRET, timeout=2.0)

    state = gateway.query_refund("pay_1", "rfd_1")

    assert state == ChannelRefundState(
        "rfd_1", "pay_1", ChannelRefundStatus.SUCCEEDED, 100, "CNY", "sbxr_1"
    )


# -- refund notifications ----------------------------------------------------------------------


def refund_notification(**overrides: object) -> str:
    body: dict[str, object] = {
        "notify_id": "ntf_r1",
        "notify_type": "refund.status_changed",
        "out_refund_no": "rfd_1",
        "out_trade_no": "pay_1",
        "refund_id": "sbxr_1",
        "status": "SUCCESS",
        "amount": 100,
        "currency": "CNY",
        "failure_code": None,
        "failure_message": None,
        "sent_at": "2030-01-01T00:00:00.000Z",
    }
    body.update(overrides)
    return json.dumps(body)


def test_a_signed_refund_notification_is_read_into_the_refund_state(
    gateway: SandboxGateway,
) -> None:
    body = refund_notification()

    state = gateway.parse_notification(body.encode(), signed(body))

    assert state == ChannelRefundState(
        out_refund_no="rfd_1",
        out_trade_no="pay_1",
        status=ChannelRefundStatus.SUCCEEDED,
        amount=100,
        currency="CNY",
        channel_refund_id="sbxr_1",
        notification_id="ntf_r1",
    )


@pytest.mark.parametrize(
    ("status", "ours"),
    [("PROCESSING", ChannelRefundStatus.PENDING), ("FAILED", ChannelRefundStatus.FAILED)],
)
def test_refund_notifications_of_each_status_are_read(
    gateway: SandboxGateway, status: str, ours: ChannelRefundStatus
) -> None:
    failed = status == "FAILED"
    body = refund_notification(
        status=status,
        failure_code="REFUND_REJECTED" if failed else None,
        failure_message="The channel rejected the refund." if failed else None,
    )

    state = gateway.parse_notification(body.encode(), signed(body))

    assert isinstance(state, ChannelRefundState)
    assert state.status is ours
    assert state.failure_code == ("refund_rejected" if failed else None)


def test_an_unknown_refund_failure_code_is_kept_in_the_message(gateway: SandboxGateway) -> None:
    body = refund_notification(status="FAILED", failure_code="BANK_CLOSED", failure_message="no")

    state = gateway.parse_notification(body.encode(), signed(body))

    assert isinstance(state, ChannelRefundState)
    assert state.failure_code == "refund_failed"
    assert state.failure_message is not None
    assert "BANK_CLOSED" in state.failure_message


@pytest.mark.parametrize(
    "body",
    [
        refund_notification(status="REFUNDED"),
        refund_notification(status="WAIT_BUYER_PAY"),
        refund_notification(out_refund_no=None),
        refund_notification(refund_id=""),
        refund_notification(amount="100"),
        refund_notification(notify_id=None),
        refund_notification(notify_type="refund.created"),
    ],
)
def test_a_correctly_signed_but_malformed_refund_notification_is_rejected(
    gateway: SandboxGateway, body: str
) -> None:
    with pytest.raises(CallbackRejected, match="malformed"):
        gateway.parse_notification(body.encode(), signed(body))


def test_a_forged_refund_notification_is_rejected(gateway: SandboxGateway) -> None:
    body = refund_notification()

    with pytest.raises(CallbackRejected, match="signature"):
        gateway.parse_notification(body.encode(), signed(body, secret="attacker"))


# -- statements --------------------------------------------------------------------------------


def test_the_statement_of_today_lists_the_payments_and_refunds(sandbox: SandboxServer) -> None:
    gateway = sandbox_gateway(f"{sandbox.url}/accounts/statements", SECRET)
    order = paid(gateway)
    refunded = gateway.refund(refund_request(order, 234))
    skewed = paid(gateway, simulate={"statement_amount_delta": -34})
    today = datetime.now(UTC).date()

    statement = gateway.fetch_statement(today)

    assert statement.day == today
    assert statement.content_type == "text/csv"
    assert statement.filename == f"sandbox-statements-{today.isoformat()}.csv"
    assert statement.content.startswith(b"kind,reference,")
    lines = {(line.kind.value, line.reference): line for line in statement.lines}
    payment = lines[("payment", order.out_trade_no)]
    assert (payment.amount, payment.currency, payment.fee) == (1234, "CNY", 0)
    assert payment.status is ChannelPaymentStatus.SUCCEEDED
    assert payment.channel_transaction_id.startswith("sbxt_")
    refund_line = lines[("refund", refunded.out_refund_no)]
    assert refund_line.amount == 234
    assert refund_line.channel_transaction_id == refunded.channel_refund_id
    assert refund_line.status is ChannelRefundStatus.SUCCEEDED
    assert lines[("payment", skewed.out_trade_no)].amount == 1200


def test_a_statement_for_a_future_day_is_refused(gateway: SandboxGateway) -> None:
    with pytest.raises(ChannelRejected, match="INVALID_PARAMETER"):
        gateway.fetch_statement(datetime.now(UTC).date() + timedelta(days=2))


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, "<html>not a statement</html>"), (503, "down"), (200, "kind,reference\r\n")],
)
def test_a_statement_answer_we_cannot_read_is_unavailable(
    misbehaving: list[MisbehavingChannel], status: int, body: str
) -> None:
    channel = MisbehavingChannel(status, body)
    misbehaving.append(channel)

    with pytest.raises(ChannelUnavailable):
        sandbox_gateway(channel.url, SECRET).fetch_statement(datetime.now(UTC).date())
