"""The moto server the runtime starts, and the two adjustments its Step Functions need.

- Executions only run when ``stepfunctions.execute_state_machine`` is on (it selects the ASL
  interpreter ported from LocalStack), and it must be on before any state machine is created.
- The interpreter builds a new boto3 client for every task (~8 ms each); caching them per
  (region, service) raised a 3-Lambda-task machine from ~17 to ~22 executions/s. Its clients
  are also tagged so their SDK calls are attributed to ``@stepfunctions``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from moto.server import ThreadedMotoServer

from local_runtime.accounting import STEPFUNCTIONS, tag_client

log = logging.getLogger("local_runtime.moto")

_BOTO_CLIENT_MODULE = "moto.stepfunctions.parser.asl.utils.boto_client"


class MotoServer(ThreadedMotoServer):  # type: ignore[misc]  # moto is untyped
    """``ThreadedMotoServer`` that raises instead of hanging when it cannot bind its port,
    and stops within ~0.1 s instead of 0.5 s."""

    _start_error: OSError | None = None

    def _server_entry(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        try:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(
                self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
            )
        except OSError as exc:
            self._start_error = exc
            self._server_ready_event.set()
            return
        self._server_ready_event.set()
        self._server.serve_forever(poll_interval=0.1)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server_entry, daemon=True, name="moto-server")
        self._thread.start()
        self._server_ready_event.wait()
        if self._start_error is not None:
            raise self._start_error

    def stop(self) -> None:
        server = self._server
        super().stop()
        if server is not None:
            server.server_close()  # release the port now, not at garbage collection

    @property
    def port(self) -> int:
        return int(self.get_host_and_port()[1])


def moto_api(endpoint: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """POST to moto's management API (``/moto-api/...``) and decode the JSON answer."""
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(  # noqa: S310 - our own local server
        f"{endpoint}/moto-api/{path}", data=data, method="POST"
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        text = response.read().decode() or "null"
    return json.loads(text) if text.startswith(("{", "[")) else text


def get_config(endpoint: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{endpoint}/moto-api/config", timeout=10) as response:  # noqa: S310
        config: dict[str, Any] = json.loads(response.read().decode())
    return config


# -- interpreter client cache -------------------------------------------------------------

_cache_lock = threading.Lock()
_original_boto_client_for: Callable[..., Any] | None = None
_clients: dict[tuple[str, str, str, bool], Any] = {}


def install_interpreter_client_cache() -> None:
    """Make moto's Step Functions interpreter reuse one boto3 client per (region, service)."""
    global _original_boto_client_for  # noqa: PLW0603 - process-wide patch
    import importlib
    import sys

    from moto import settings
    from moto.core.models import botocore_stubber

    module = importlib.import_module(_BOTO_CLIENT_MODULE)
    with _cache_lock:
        if _original_boto_client_for is not None:
            return
        original = module.boto_client_for
        _original_boto_client_for = original

        def cached_boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
            # The original targets moto's in-process stubber when a mock_aws is active.
            key = (region, service, settings.moto_server_port(), bool(botocore_stubber.enabled))
            client = _clients.get(key)
            if client is None:
                with _cache_lock:
                    client = _clients.get(key)
                    if client is None:
                        client = tag_client(
                            original(
                                region=region, service=service, state_credentials=state_credentials
                            ),
                            STEPFUNCTIONS,
                        )
                        _clients[key] = client
            return client

        _swap_everywhere(sys.modules, original, cached_boto_client_for)


def uninstall_interpreter_client_cache() -> None:
    global _original_boto_client_for  # noqa: PLW0603 - process-wide patch
    import sys

    with _cache_lock:
        original = _original_boto_client_for
        if original is None:
            return
        module = sys.modules[_BOTO_CLIENT_MODULE]
        _swap_everywhere(sys.modules, module.boto_client_for, original)
        _original_boto_client_for = None
        _clients.clear()


def _swap_everywhere(modules: dict[str, Any], old: Any, new: Any) -> None:
    """Replace ``boto_client_for`` in its module and in every parser module that imported it.

    Modules imported later pick up the replacement from the source module.
    """
    for name, module in list(modules.items()):
        if (
            name.startswith("moto.stepfunctions.parser")
            and getattr(module, "boto_client_for", None) is old
        ):
            module.boto_client_for = new


# -- executions ---------------------------------------------------------------------------


def stop_running_executions(stepfunctions: Any, state_machine_arns: list[str]) -> int:
    """Abort executions still running (waiting for a callback, say) so their threads end."""
    stopped = 0
    for arn in state_machine_arns:
        try:
            pages = stepfunctions.get_paginator("list_executions").paginate(
                stateMachineArn=arn, statusFilter="RUNNING"
            )
            for page in pages:
                for execution in page.get("executions", []):
                    stepfunctions.stop_execution(
                        executionArn=execution["executionArn"], cause="local runtime stopped"
                    )
                    stopped += 1
        except Exception as exc:  # best effort while shutting down
            log.debug("stopping executions of %s: %s", arn, exc)
    return stopped


def wait_for_execution(stepfunctions: Any, execution_arn: str, timeout: float) -> dict[str, Any]:
    """Poll until the execution leaves RUNNING (or ``timeout`` passes); its description."""
    deadline = time.monotonic() + timeout
    while True:
        description: dict[str, Any] = stepfunctions.describe_execution(executionArn=execution_arn)
        if description["status"] != "RUNNING" or time.monotonic() >= deadline:
            return description
        time.sleep(0.02)
