"""The parties of the sandbox channel's functional tests, over real HTTP: a merchant server
that signs its calls as the README says, a buyer who presses a button, and the merchant's
callback endpoint (a real local HTTP server) that records notifications."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from local_runtime.sandbox.server import SandboxServer

SECRET = "sandbox-secret-for-functional-tests"
FAST_RETRIES = (0, 0.05, 0.05, 0.05)
ACK = (200, '{"code": "SUCCESS"}')
DEAD_URL = "http://127.0.0.1:9/nobody-listens"


@dataclass
class Received:
    headers: dict[str, str]
    body: str
    at: float  # time.monotonic() when the request arrived

    def json(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)
        return payload


class CallbackReceiver:
    """The merchant's notification endpoint: records each request and answers from a script
    of ``(status, body)`` replies, repeating the last one, after ``delay`` seconds."""

    def __init__(self, replies: list[tuple[int, str]], delay: float = 0.0) -> None:
        self.replies = replies
        self.delay = delay
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callbacks/sandbox"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.monotonic()
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                status, reply = receiver.record(Received(dict(self.headers.items()), body, arrived))
                time.sleep(receiver.delay)
                payload = reply.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def record(self, request: Received) -> tuple[int, str]:
        with self._lock:
            self.received.append(request)
            return self.replies[min(len(self.received), len(self.replies)) - 1]

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.json() for r in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def signed_call(
    sandbox: SandboxServer,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    secret: str = SECRET,
    at: float | None = None,
    timeout: float = 5,
) -> requests.Response:
    """A merchant-server call signed as the README says."""
    data = b"" if body is None else json.dumps(body).encode()
    timestamp = str(int(time.time() if at is None else at))
    message = f"{timestamp}\n{method}\n{path}\n".encode() + data
    headers = {
        "Content-Type": "application/json",
        "Sandbox-Timestamp": timestamp,
        "Sandbox-Signature": hmac.new(secret.encode(), message, hashlib.sha256).hexdigest(),
    }
    return requests.request(method, sandbox.url + path, data=data, headers=headers, timeout=timeout)


def notification_is_signed(received: Received, secret: str = SECRET) -> bool:
    """The notification's signature checks out with the documented recipe."""
    timestamp = received.headers["Sandbox-Timestamp"]
    expected = hmac.new(
        secret.encode(), f"{timestamp}\n".encode() + received.body.encode(), hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, received.headers["Sandbox-Signature"])


def order_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "out_trade_no": f"pay_{secrets.token_hex(8)}",
        "amount": 1234,
        "currency": "CNY",
        "subject": "Green tea, 250 g",
        "notify_url": DEAD_URL,
        "expires_at": (datetime.now(UTC) + timedelta(minutes=30)).isoformat(),
    }
    body.update(overrides)
    return body


def create_order(sandbox: SandboxServer, *, prefix: str = "", **overrides: Any) -> dict[str, Any]:
    """A new order (in the account whose path ``prefix`` is given, e.g. ``/accounts/a``)."""
    response = signed_call(sandbox, "POST", f"{prefix}/v1/orders", order_body(**overrides))
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


def paid_order(sandbox: SandboxServer, *, prefix: str = "", **overrides: Any) -> dict[str, Any]:
    """A new order that the buyer has paid."""
    order = create_order(sandbox, prefix=prefix, **overrides)
    paid = requests.post(order["pay_url"], json={"action": "pay"}, timeout=5)
    assert paid.json()["status"] == "SUCCESS", paid.text
    return order


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.02)


def debug_view(sandbox: SandboxServer, out_trade_no: str, account: str | None = None) -> Any:
    query = {} if account is None else {"account": account}
    return requests.get(
        f"{sandbox.url}/__sandbox/orders/{out_trade_no}", params=query, timeout=5
    ).json()
