"""A merchant's notification endpoint for the simulator tests: a real HTTP server on loopback
that records every request (raw body bytes, headers, arrival time) and answers from a script
of ``(status, body)`` replies, repeating the last one, optionally after a delay."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived


class NotificationReceiver:
    """Start with ``replies``; ``url`` is where to send; ``close()`` when done."""

    def __init__(self, replies: list[tuple[int, str]], *, delay: float = 0.0) -> None:
        if not replies:
            raise ValueError("give at least one reply")
        self.replies = replies
        self.delay = delay
        self._received: list[Received] = []
        self._condition = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/notify"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def received(self) -> list[Received]:
        with self._condition:
            return list(self._received)

    def wait_for(self, count: int, timeout: float = 3.0) -> list[Received]:
        """The requests once at least ``count`` arrived (AssertionError after ``timeout``)."""
        with self._condition:
            arrived = self._condition.wait_for(lambda: len(self._received) >= count, timeout)
            assert arrived, f"{len(self._received)} of {count} requests arrived in {timeout} s"
            return list(self._received)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, request: Received) -> tuple[int, str]:
        with self._condition:
            self._received.append(request)
            self._condition.notify_all()
            return self.replies[min(len(self._received), len(self.replies)) - 1]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = Received(self.path, dict(self.headers.items()), body, arrived)
                status, reply = receiver._record(request)
                time.sleep(receiver.delay)
                payload = reply.encode()
                try:
                    self.send_response(status)
                    if 300 <= status < 400:
                        self.send_header("Location", receiver.url)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the sender gave up waiting (a timeout test)
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
