"""A real merchant webhook endpoint for tests and the benchmark: an HTTP server on loopback
that verifies every delivery with the `standardwebhooks` library, as a merchant would."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Delivery:
    webhook_id: str
    event: dict[str, Any]
    status: int
    received_at: float
    body: str = ""  # exactly as received, with its headers (lower-case names)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class WebhookReceiver:
    """Answers 500 to the first ``fail_first`` deliveries of each event, then 200."""

    secret: str | None = None
    fail_first: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    rejected: int = 0
    _lock: Any = field(default_factory=threading.RLock)
    _condition: threading.Condition = field(init=False)
    _server: ThreadingHTTPServer | None = None

    def __post_init__(self) -> None:
        self._condition = threading.Condition(self._lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/webhooks"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                status = receiver._receive(dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _receive(self, headers: dict[str, str], body: str) -> int:
        lowered = {key.lower(): value for key, value in headers.items()}
        if self.secret is None:
            with self._condition:
                self.rejected += 1
            return 400
        try:
            Webhook(self.secret).verify(body, lowered)
        except WebhookVerificationError:
            with self._condition:
                self.rejected += 1
                self._condition.notify_all()
            return 401
        event = json.loads(body)
        webhook_id = lowered["webhook-id"]
        with self._condition:
            earlier = sum(1 for d in self.deliveries if d.webhook_id == webhook_id)
            status = 500 if earlier < self.fail_first else 200
            self.deliveries.append(
                Delivery(webhook_id, event, status, time.monotonic(), body, lowered)
            )
            self._condition.notify_all()
        return status

    def accepted(self, event_type: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                d.event
                for d in self.deliveries
                if d.status == 200 and (event_type is None or d.event["type"] == event_type)
            ]

    def events(self, event_type: str) -> list[dict[str, Any]]:
        """The accepted events of ``event_type``, each once (in the order first accepted):
        what a merchant who dedupes on ``webhook-id`` acts on. Delivery is at least once, so
        an event may arrive twice (a retried step publishes it again)."""
        seen: dict[str, dict[str, Any]] = {}
        for event in self.accepted(event_type):
            seen.setdefault(event["id"], event)
        return list(seen.values())

    def attempts(self, event_id: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.webhook_id == event_id]

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> bool:
        """Wait until ``predicate(receiver)`` holds (re-checked on every delivery)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(min(remaining, 0.5))
            return True
