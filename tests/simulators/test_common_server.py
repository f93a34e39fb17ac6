"""The simulator HTTP harness: binds (port 0 in tests), serves threaded in the background,
starts once, stops idempotently, and stops its services (book, deliverer) with it."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from local_runtime.simulators.common.delivery import NotificationDeliverer
from local_runtime.simulators.common.server import SimulatorServer, client_host
from local_runtime.simulators.common.switches import parse_simulate
from local_runtime.simulators.common.trades import TradeBook


class DemoChannel:
    """A tiny channel app: ``/hello``, ``/slow`` (0.5 s) and ``/create`` (a stalled create)."""

    def __init__(self, book: TradeBook) -> None:
        self.book = book

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        if request.path == "/slow":
            time.sleep(0.5)
        if request.path == "/create":
            _, created = self.book.create(
                "acct_a",
                "pay_stalled",
                amount=100,
                currency="CNY",
                subject="Tea",
                expires_at=datetime.now(UTC) + timedelta(hours=1),
                simulate=parse_simulate('{"create_timeout": {"seconds": 30}}'),
            )
            response = Response(f"created={created}")
        else:
            response = Response(f"hello from {request.path}")
        body: Iterable[bytes] = response(environ, start_response)
        return body


def started(server: SimulatorServer) -> SimulatorServer:
    server.start()
    return server


def test_a_server_on_port_0_serves_at_its_url() -> None:
    server = started(SimulatorServer("127.0.0.1", 0, DemoChannel(TradeBook()), name="demo-sim"))
    try:
        answer = requests.get(f"{server.url}/hello", timeout=5)
        assert answer.status_code == 200
        assert answer.text == "hello from /hello"
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.port > 0
    finally:
        server.stop()


def test_requests_are_served_by_threads() -> None:
    server = started(SimulatorServer("127.0.0.1", 0, DemoChannel(TradeBook())))
    try:
        slow = threading.Thread(target=requests.get, args=(f"{server.url}/slow",), daemon=True)
        slow.start()
        time.sleep(0.05)
        begun = time.monotonic()
        assert requests.get(f"{server.url}/hello", timeout=5).status_code == 200
        assert time.monotonic() - begun < 0.3  # not queued behind the slow one
        slow.join(timeout=5)
    finally:
        server.stop()


def test_an_instance_starts_once_and_stops_idempotently() -> None:
    never_started = SimulatorServer("127.0.0.1", 0, DemoChannel(TradeBook()), name="demo-sim")
    with pytest.raises(RuntimeError, match="demo-sim is not started"):
        _ = never_started.url
    never_started.stop()  # harmless before start
    with pytest.raises(RuntimeError, match="starts once"):
        never_started.start()

    server = started(SimulatorServer("127.0.0.1", 0, DemoChannel(TradeBook()), name="demo-sim"))
    with pytest.raises(RuntimeError, match="starts once"):
        server.start()
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError, match="starts once"):
        server.start()


def test_stop_releases_the_port() -> None:
    server = started(SimulatorServer("127.0.0.1", 0, DemoChannel(TradeBook())))
    port = server.port
    server.stop()

    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/hello", timeout=2)
    again = started(SimulatorServer("127.0.0.1", port, DemoChannel(TradeBook())))
    try:
        assert requests.get(f"{again.url}/hello", timeout=5).status_code == 200
    finally:
        again.stop()


def test_stop_ends_a_stalled_create_and_cancels_pending_notifications() -> None:
    book = TradeBook()
    deliverer = NotificationDeliverer((5.0,))
    server = started(SimulatorServer("127.0.0.1", 0, DemoChannel(book), services=(book, deliverer)))
    answers: list[str] = []

    def stalled_create() -> None:
        answers.append(requests.post(f"{server.url}/create", timeout=10).text)

    caller = threading.Thread(target=stalled_create)
    caller.start()
    deadline = time.monotonic() + 3
    while not book.trades():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    deliverer.deliver(
        "topic", "http://127.0.0.1:9/", lambda: (b"", {}), lambda s, b: True, parse_simulate(None)
    )

    begun = time.monotonic()
    server.stop()
    caller.join(timeout=5)

    assert time.monotonic() - begun < 2
    assert answers == ["created=True"]
    assert [entry["state"] for entry in deliverer.history("topic")] == ["CANCELLED"]


def test_the_access_log_goes_to_the_simulators_logger(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    server = started(SimulatorServer("127.0.0.1", 0, DemoChannel(TradeBook())))
    try:
        with caplog.at_level(logging.INFO, logger="local_runtime.simulators.access"):
            requests.get(f"{server.url}/hello?x=1", timeout=5)
            time.sleep(0.05)
    finally:
        server.stop()

    lines = [r.getMessage() for r in caplog.records if r.name == "local_runtime.simulators.access"]
    assert any("GET /hello?x=1" in line and "200" in line for line in lines)
    assert "GET /hello" not in capfd.readouterr().err


def test_a_wildcard_bind_is_reached_on_loopback() -> None:
    assert client_host("0.0.0.0") == "127.0.0.1"
    assert client_host("") == "127.0.0.1"
    assert client_host("::") == "[::1]"
    assert client_host("::1") == "[::1]"
    assert client_host("localhost") == "localhost"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = started(SimulatorServer("0.0.0.0", port, DemoChannel(TradeBook())))
    try:
        assert server.url == f"http://127.0.0.1:{port}"
        assert requests.get(f"{server.url}/hello", timeout=5).status_code == 200
    finally:
        server.stop()
