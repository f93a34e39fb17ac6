"""``SandboxServer``: the sandbox channel as a threaded HTTP server in the background.

Start it beside the backend (the local runtime does) or on port 0 in a test fixture::

    server = SandboxServer("127.0.0.1", 0, secret="s3cret", notify_schedule=(0, 0.2, 0.5))
    server.start()
    ...  # talk to server.url
    server.stop()
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from local_runtime.sandbox.app import SandboxApp
from local_runtime.sandbox.notifications import Notifier
from local_runtime.sandbox.orders import OrderBook
from local_runtime.sandbox.scheduler import Scheduler

DEFAULT_NOTIFY_SCHEDULE: tuple[float, ...] = (0, 1, 2, 5, 10, 30)
_POLL_INTERVAL = 0.1  # how quickly stop() is noticed by the serving thread

access_log = logging.getLogger("local_runtime.sandbox.access")


class _QuietRequestHandler(WSGIRequestHandler):  # type: ignore[misc]  # werkzeug is untyped here
    """Send werkzeug's access lines to our logger instead of werkzeug's own stderr handler."""

    def log(self, type: str, message: str, *args: Any) -> None:
        access_log.info("%s - %s", self.address_string(), message % args)


class SandboxServer:
    """The sandbox channel service: order and refund API (per channel account), buyer pages,
    notifications and the misbehaviour switches.

    ``notify_schedule`` holds the delays (seconds) before notification attempt 1, 2, ...; the
    sandbox stops retrying after the last one. ``notify_timeout`` bounds each attempt.
    """

    def __init__(
        self,
        host: str,
        port: int,
        secret: str,
        notify_schedule: tuple[float, ...] = DEFAULT_NOTIFY_SCHEDULE,
        *,
        notify_timeout: float = 5.0,
    ) -> None:
        if not secret:
            raise ValueError("the sandbox needs a non-empty shared secret")
        self._host = host
        self._port = port
        self._notifier = Notifier(secret, tuple(notify_schedule), timeout=notify_timeout)
        self._timers = Scheduler("sandbox-refunds", workers=2)
        self._stopping = threading.Event()
        self._book = OrderBook(pay_url_for=lambda token: f"{self.url}/pay/{token}")
        self._app = SandboxApp(
            self._book, self._notifier, secret, timers=self._timers, stopping=self._stopping
        )
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._used = False  # one start per instance: the notifier's threads cannot restart

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:3100`` (the bound port)."""
        if self._server is None:
            raise RuntimeError("the sandbox is not started")
        return f"http://{_client_host(self._host)}:{self._server.port}"

    def start(self) -> None:
        """Bind the port and serve in background threads; returns once requests are accepted."""
        if self._used:
            raise RuntimeError("a SandboxServer starts once; create a new one to start again")
        self._used = True
        self._server = make_server(
            self._host,
            self._port,
            self._app,
            threaded=True,
            request_handler=_QuietRequestHandler,
        )
        self._notifier.start()
        self._timers.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name="sandbox-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, cancel pending notifications and refund timers, cut short any
        ``create_timeout`` stall, and release the port (idempotent)."""
        self._used = True
        self._stopping.set()  # first: a stalled create answers now, so its thread ends
        server, self._server = self._server, None
        self._notifier.stop()
        self._timers.stop()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _client_host(host: str) -> str:
    """A host a client can reach: a wildcard bind address becomes loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
