"""Logger, tracer and metrics for a function, created once per container by its app.py.

Logs are JSON with the function's service name; ids of orders and payments are appended as
keys by the handlers. Nothing here logs events or secrets: POWERTOOLS_LOGGER_LOG_EVENT is
off in the template and tokens travel only in DynamoDB items and Step Functions calls.

The tracer is Powertools' Tracer over the X-Ray recorder, but the X-Ray SDK (about 70 ms to
import and patch) is loaded by the first traced call, not at INIT: that is the first
invocation, whose handler subsegment opens before any AWS call, and the patches Tracer asked
for (``patch_all``: botocore, requests) are applied then.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.tracing.base import BaseProvider

NAMESPACE = "Paycore"

# Most invocations (a status query, a webhook to a merchant without a URL) publish no business
# metric; Powertools warns about each one, which only buries real log lines.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


class XRayOnFirstUse(BaseProvider):
    """The X-Ray recorder as a Tracer provider, imported when a trace first needs it.

    Tracer asks its provider to patch at construction; the patches are remembered and applied
    with the import. What Tracer does for its own X-Ray provider is done here too: subsegments
    are streamed one by one (``streaming_threshold=0``).
    """

    def __init__(self) -> None:
        self._recorder: Any = None
        self._patches: list[Sequence[str] | None] = []  # None: patch_all
        self._lock = threading.Lock()

    def recorder(self) -> Any:
        """``aws_xray_sdk.core.xray_recorder``, with the requested patches applied."""
        with self._lock:
            if self._recorder is None:
                from aws_xray_sdk.core import xray_recorder  # noqa: PLC0415

                xray_recorder.configure(streaming_threshold=0)
                for modules in self._patches:
                    _patch(modules)
                self._recorder = xray_recorder
            return self._recorder

    def patch(self, modules: Sequence[str]) -> None:
        self._request(tuple(modules))

    def patch_all(self) -> None:
        self._request(None)

    def _request(self, modules: Sequence[str] | None) -> None:
        with self._lock:
            self._patches.append(modules)
            if self._recorder is not None:
                _patch(modules)

    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Any:
        return self.recorder().in_subsegment(name=name, **kwargs)

    def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> Any:
        return self.recorder().in_subsegment_async(name=name, **kwargs)

    def put_annotation(self, key: str, value: Any) -> None:
        self.recorder().put_annotation(key=key, value=value)

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.recorder().put_metadata(key=key, value=value, namespace=namespace)


def _patch(modules: Sequence[str] | None) -> None:
    from aws_xray_sdk.core import patch, patch_all  # noqa: PLC0415

    if modules is None:
        patch_all()
    else:
        patch(modules)


def observability(service: str) -> tuple[Logger, Tracer, Metrics]:
    return (
        Logger(service=service),
        Tracer(service=service, provider=XRayOnFirstUse()),
        Metrics(namespace=NAMESPACE, service=service),
    )
