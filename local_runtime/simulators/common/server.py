"""``SimulatorServer``: a channel simulator's WSGI app served by background threads.

The same harness as the sandbox's (local_runtime/sandbox/server.py), for any WSGI app plus the
services that run beside it (a ``TradeBook``'s refund timers, a ``NotificationDeliverer``)::

    server = SimulatorServer("127.0.0.1", 0, app, name="alipay-sim", services=(book, deliverer))
    server.start()  # returns once requests are accepted; port 0 picks a free port
    server.url      # e.g. http://127.0.0.1:41234
    server.stop()   # stops the services first (pending notifications cancelled), then serving
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_POLL_INTERVAL = 0.1  # how quickly stop() is noticed by the serving thread

access_log = logging.getLogger("local_runtime.simulators.access")


class Service(Protocol):
    """Something that runs beside the HTTP server: started before it serves, stopped first."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class _QuietRequestHandler(WSGIRequestHandler):  # type: ignore[misc]  # werkzeug is untyped here
    """Access lines go to our logger (INFO) instead of werkzeug's own stderr handler."""

    def log(self, type: str, message: str, *args: Any) -> None:
        access_log.info("%s - %s", self.address_string(), message % args)


class SimulatorServer:
    """Serves ``app`` on ``host``:``port`` (0: any free port) in background threads.

    An instance starts once (the services' threads cannot restart); ``stop()`` is idempotent
    and may be called before ``start()``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        app: WSGIApp,
        *,
        name: str = "simulator",
        services: Sequence[Service] = (),
    ) -> None:
        self._host = host
        self._port = port
        self._app = app
        self._name = name
        self._services = tuple(services)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._used = False

    @property
    def url(self) -> str:
        """The base URL clients use, e.g. ``http://127.0.0.1:3101`` (the bound port)."""
        if self._server is None:
            raise RuntimeError(f"the {self._name} is not started")
        return f"http://{client_host(self._host)}:{self._server.port}"

    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None:
            raise RuntimeError(f"the {self._name} is not started")
        return int(self._server.port)

    def start(self) -> None:
        """Bind the port, start the services, serve; returns once requests are accepted."""
        if self._used:
            raise RuntimeError(f"the {self._name} starts once; create a new one to start again")
        self._used = True
        self._server = make_server(
            self._host, self._port, self._app, threaded=True, request_handler=_QuietRequestHandler
        )
        for service in self._services:
            service.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"{self._name}-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the services (pending notifications and timers cancelled, stalls ended), then
        stop serving and release the port (idempotent)."""
        self._used = True
        server, self._server = self._server, None
        for service in self._services:
            service.stop()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def client_host(host: str) -> str:
    """A host a client can reach: a wildcard bind address becomes loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
