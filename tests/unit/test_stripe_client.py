"""The Stripe adapter's error policy over real HTTP, against a local server that answers what
Stripe (or something in front of it) might: anything that leaves the outcome unknown is
``ChannelUnavailable``, Stripe's refusal is ``ChannelRejected``, no exception of the library
escapes, one request per call (the state machines retry), and no redirect is followed."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from paycore.channels.base import CreateChannelOrder
from paycore.channels.stripe.adapter import StripeGateway
from paycore.channels.stripe.client import ThreadSessions
from paycore.channels.stripe.settings import StripeSettings
from paycore.errors import ChannelRejected, ChannelUnavailable
from paycore.ids import new_id

KEY = "sk_test_" + "q" * 40


class FakeStripe:
    """Answers every request with ``status``/``body`` (after ``delay``), counting them."""

    def __init__(
        self,
        status: int,
        body: str,
        *,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.hits: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                fake.hits.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                time.sleep(delay)
                payload = body.encode()
                try:
                    self.send_response(status)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def fakes() -> Iterator[list[FakeStripe]]:
    started: list[FakeStripe] = []
    yield started
    for fake in started:
        fake.close()


def gateway(url: str, timeout: float = 2.0) -> StripeGateway:
    settings = StripeSettings.model_validate(
        {"secret_key": KEY, "webhook_secret": "whsec_x1", "api_base_url": url, "simulator": True}
    )
    return StripeGateway(settings, account_id="stripe-a", timeout=timeout)


def order() -> CreateChannelOrder:
    return CreateChannelOrder(
        out_trade_no=new_id("pay"),
        amount=1999,
        currency="USD",
        subject="tea",
        notify_url="http://127.0.0.1:9/x",
        expires_at="2099-01-01T00:00:00Z",
    )


def error(kind: str, message: str, **more: Any) -> str:
    return json.dumps({"error": {"type": kind, "message": message, **more}})


def start(fakes: list[FakeStripe], *args: Any, **kwargs: Any) -> FakeStripe:
    fakes.append(FakeStripe(*args, **kwargs))
    return fakes[-1]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, error("api_error", "An unknown error occurred")),
        (502, "<html>Bad Gateway</html>"),
        (503, error("api_error", "simulated")),
        (429, error("invalid_request_error", "Too many requests", code="rate_limit")),
        (409, error("idempotency_error", "in use", code="idempotency_key_in_use")),
        (400, error("idempotency_error", "Keys for idempotent requests can only be used ...")),
        (404, "<html>Not Found</html>"),  # a 4xx that is not Stripe speaking
        (200, "this is not JSON"),
        (200, json.dumps({"object": "list"})),  # JSON, but not a session
        (
            200,
            json.dumps(
                {
                    "id": "cs_1",
                    "object": "checkout.session",
                    "client_reference_id": "pay_x",
                    "status": "archived",
                    "payment_status": "unpaid",
                    "amount_total": 1,
                    "currency": "usd",
                }
            ),
        ),  # a status we do not know
    ],
)
def test_answers_that_leave_the_outcome_unknown_are_unavailable_after_one_request(
    fakes: list[FakeStripe], status: int, body: str
) -> None:
    fake = start(fakes, status, body)
    stripe_gateway = gateway(fake.url)

    with pytest.raises(ChannelUnavailable):
        stripe_gateway.create_order(order())
    assert len(fake.hits) == 1  # no retry inside the library
    with pytest.raises(ChannelUnavailable):
        stripe_gateway.query_order("pay_x", "cs_1")


def test_a_redirect_is_not_followed(fakes: list[FakeStripe]) -> None:
    target = start(fakes, 200, "{}")
    redirecting = start(fakes, 307, "", headers={"Location": f"{target.url}/v1/checkout/sessions"})

    with pytest.raises(ChannelUnavailable):
        gateway(redirecting.url).create_order(order())

    assert len(redirecting.hits) == 1
    assert target.hits == []


def test_stripe_slower_than_the_timeout_is_unavailable(fakes: list[FakeStripe]) -> None:
    fake = start(fakes, 200, "{}", delay=1.0)
    started = time.monotonic()

    with pytest.raises(ChannelUnavailable):
        gateway(fake.url, timeout=0.2).query_order("pay_x", "cs_1")

    assert time.monotonic() - started < 0.9


def test_stripe_refusing_connections_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(ChannelUnavailable):
        gateway(f"http://127.0.0.1:{port}", timeout=1.0).create_order(order())


@pytest.mark.parametrize(
    ("status", "body", "shown"),
    [
        (
            400,
            error(
                "invalid_request_error", "Missing required param: mode.", code="parameter_missing"
            ),
            "parameter_missing",
        ),
        (
            402,
            error("card_error", "Your card was declined.", code="card_declined"),
            "card_declined",
        ),
        (
            403,
            error("invalid_request_error", "The provided key does not have access"),
            "does not have access",
        ),
        (
            401,
            error("invalid_request_error", f"Invalid API Key provided: {KEY[:8]}****{KEY[-4:]}"),
            "API key",
        ),
    ],
)
def test_stripes_refusals_are_rejected(
    fakes: list[FakeStripe], status: int, body: str, shown: str
) -> None:
    fake = start(fakes, status, body)

    with pytest.raises(ChannelRejected, match=shown) as refused:
        gateway(fake.url).create_order(order())

    assert KEY[-4:] not in str(refused.value)


def test_a_query_of_a_session_stripe_does_not_have_is_not_found(fakes: list[FakeStripe]) -> None:
    fake = start(
        fakes,
        404,
        error("invalid_request_error", "No such checkout.session: 'cs_1'", code="resource_missing"),
    )

    state = gateway(fake.url).query_order("pay_x", "cs_1")

    assert state.status.value == "not_found"


def test_each_thread_gets_its_own_session_that_follows_no_redirect() -> None:
    sessions = ThreadSessions()
    seen: dict[str, Any] = {}

    def grab(name: str) -> None:
        seen[name] = sessions.current()
        assert sessions.current() is seen[name]  # the same one within a thread

    threads = [threading.Thread(target=grab, args=(f"t{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({id(session) for session in seen.values()}) == 3
    assert {session.max_redirects for session in seen.values()} == {0}


def test_one_gateway_serves_several_threads_at_once(fakes: list[FakeStripe]) -> None:
    fake = start(fakes, 500, error("api_error", "boom"), delay=0.2)
    shared = gateway(fake.url)
    outcomes: list[str] = []

    def ask() -> None:
        try:
            shared.query_order("pay_x", "cs_1")
        except ChannelUnavailable:
            outcomes.append("unavailable")

    threads = [threading.Thread(target=ask) for _ in range(6)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes == ["unavailable"] * 6
    assert len(fake.hits) == 6
    assert time.monotonic() - started < 1.0  # concurrently, not one after the other
