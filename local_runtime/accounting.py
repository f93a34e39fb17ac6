"""What a local run costs on AWS: SDK calls by caller, and Step Functions state transitions.

Every botocore API call made in this process is counted by (caller, service, operation). The
caller is the logical id of the function whose invocation made the call (from the thread's
invocation scope), ``@stepfunctions`` for moto's state machine interpreter, or ``@runtime``
for the runtime itself (provisioning, SQS pollers) and anything else in the process.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

from local_runtime import scope

log = logging.getLogger("local_runtime.accounting")

RUNTIME: Final = "@runtime"
STEPFUNCTIONS: Final = "@stepfunctions"
_CALLER_ATTRIBUTE: Final = "_paycore_local_caller"


def tag_client(client: Any, caller: str) -> Any:
    """Attribute calls made through ``client`` (outside any function scope) to ``caller``."""
    setattr(client, _CALLER_ATTRIBUTE, caller)
    return client


class SdkCallCounter:
    """Thread-safe counts of botocore API calls by (caller, service, operation)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def record(self, caller: str, service: str, operation: str) -> None:
        with self._lock:
            self._counts[(caller, service, operation)] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{caller: {"service:Operation": count}}``.

        For example ``{"ApiFunction": {"dynamodb:PutItem": 2}, "@stepfunctions": {...}}``.
        """
        with self._lock:
            items = list(self._counts.items())
        result: dict[str, dict[str, int]] = {}
        for (caller, service, operation), count in sorted(items):
            result.setdefault(caller, {})[f"{service}:{operation}"] = count
        return result

    def total(self, caller: str | None = None) -> int:
        """All calls, or all calls by one caller."""
        with self._lock:
            return sum(n for (who, _, _), n in self._counts.items() if caller in (None, who))

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


_patch_lock = threading.Lock()
_active: SdkCallCounter | None = None
_original_make_api_call: Callable[..., Any] | None = None


def _counting_make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
    counter = _active
    if counter is not None:
        current = scope.current()
        caller = current.function_id if current else getattr(self, _CALLER_ATTRIBUTE, RUNTIME)
        counter.record(caller, self.meta.service_model.service_name, operation_name)
        if operation_name == "StartExecution" and not api_params.get("name"):
            # moto 5.2.5 names it ":None" and fails the next one (LOCAL_RUNTIME.md).
            log.warning("%s started an execution without a name; name every execution", caller)
    assert _original_make_api_call is not None
    return _original_make_api_call(self, operation_name, api_params)


def install_counter(counter: SdkCallCounter) -> None:
    """Count every botocore call of this process into ``counter`` (one counter at a time)."""
    global _active, _original_make_api_call  # noqa: PLW0603 - process-wide patch
    from botocore.client import BaseClient

    with _patch_lock:
        if _active is not None and _active is not counter:
            raise RuntimeError("another SDK call counter is already installed")
        if _original_make_api_call is None:
            _original_make_api_call = BaseClient._make_api_call
            BaseClient._make_api_call = _counting_make_api_call
        _active = counter


def uninstall_counter() -> None:
    global _active, _original_make_api_call  # noqa: PLW0603 - process-wide patch
    from botocore.client import BaseClient

    with _patch_lock:
        if _original_make_api_call is not None:
            BaseClient._make_api_call = _original_make_api_call
            _original_make_api_call = None
        _active = None


def count_state_transitions(stepfunctions_client: Any, execution_arn: str) -> int:
    """State transitions of one execution: its ``*StateEntered`` history events.

    That is what Step Functions Standard bills, so it is the figure to watch when a flow is
    redesigned.
    """
    transitions = 0
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = stepfunctions_client.get_execution_history(**kwargs)
        transitions += sum(
            1 for event in page.get("events", []) if str(event["type"]).endswith("StateEntered")
        )
        token = page.get("nextToken")
        if not token:
            return transitions
        kwargs["nextToken"] = token
