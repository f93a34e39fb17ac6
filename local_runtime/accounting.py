"""What a local run costs on AWS: SDK calls by caller, DynamoDB write units, and Step
Functions state transitions.

Every botocore API call made in this process is counted by (caller, service, operation). The
caller is the logical id of the function whose invocation made the call (from the thread's
invocation scope), ``@stepfunctions`` for moto's state machine interpreter, or ``@runtime``
for the runtime itself (provisioning, SQS pollers) and anything else in the process.

moto reports no consumed capacity for transactions, so DynamoDB write units are counted by
item from each write request (``write_units``): a Put costs its item's size in KB rounded
up, an Update or Delete one unit (the stored item's size is not in the request; paycore's
updated items are under 1 KB), and every item of a ``TransactWriteItems`` twice. Index writes
are counted apart, for Puts only: one per global secondary index whose key the new item
carries (an upper bound for a keys-only index, whose entry is rewritten only when its key
changes). Updates that create an index entry (a ledger account's first write) are not seen.
"""

from __future__ import annotations

import logging
import math
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


# The trade table's global secondary indexes, by the partition key attribute they need.
INDEX_KEYS: Final = ("gsi1pk", "gsi2pk")


def _value_size(value: dict[str, Any]) -> int:  # noqa: PLR0911 - one answer per type
    """DynamoDB's size of one attribute value (docs: "Item sizes and formats")."""
    kind, content = next(iter(value.items()))
    if kind in ("S", "B"):
        return len(content.encode() if isinstance(content, str) else content)
    if kind == "N":
        digits = len(str(content).lstrip("-").replace(".", "").strip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "BS", "NS"):
        return sum(_value_size({kind[0]: element}) for element in content)
    if kind == "L":
        return 3 + sum(1 + _value_size(element) for element in content)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in content.items())
    return 0


def item_size(item: dict[str, Any]) -> int:
    """The size DynamoDB bills for an item: names plus values, in bytes."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _put_units(item: dict[str, Any]) -> int:
    return max(1, math.ceil(item_size(item) / 1024))


def write_units(operation: str, params: dict[str, Any]) -> tuple[int, int]:
    """(table write units, index write units) a DynamoDB write request costs, by item."""
    if operation == "PutItem":
        item = params.get("Item", {})
        return _put_units(item), sum(1 for key in INDEX_KEYS if key in item)
    if operation in ("UpdateItem", "DeleteItem"):
        return 1, 0
    if operation == "BatchWriteItem":
        table = index = 0
        for requests in params.get("RequestItems", {}).values():
            for request in requests:
                put = request.get("PutRequest")
                table += _put_units(put["Item"]) if put else 1
                index += sum(1 for key in INDEX_KEYS if put and key in put["Item"])
        return table, index
    if operation == "TransactWriteItems":
        table = index = 0
        for entry in params.get("TransactItems", []):
            action, body = next(iter(entry.items()))
            if action == "Put":
                table += 2 * _put_units(body["Item"])
                index += sum(1 for key in INDEX_KEYS if key in body["Item"])
            elif action in ("Update", "Delete"):
                table += 2
        return table, index
    return 0, 0


class SdkCallCounter:
    """Thread-safe counts of botocore API calls by (caller, service, operation), and of the
    DynamoDB write units they cost by caller."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._units: Counter[tuple[str, str]] = Counter()
        self._largest: dict[str, int] = {}  # caller -> most items in one TransactWriteItems

    def record(self, caller: str, service: str, operation: str) -> None:
        with self._lock:
            self._counts[(caller, service, operation)] += 1

    def record_write_units(self, caller: str, table: int, index: int) -> None:
        with self._lock:
            self._units[(caller, "table")] += table
            self._units[(caller, "index")] += index

    def record_transaction(self, caller: str, items: int) -> None:
        with self._lock:
            self._largest[caller] = max(items, self._largest.get(caller, 0))

    def largest_transactions(self) -> dict[str, int]:
        """``{caller: items}``: the most items one ``TransactWriteItems`` of each caller held
        (DynamoDB allows 100)."""
        with self._lock:
            return dict(sorted(self._largest.items()))

    def write_units(self) -> dict[str, dict[str, int]]:
        """``{caller: {"table": units, "index": units}}`` (see ``write_units``)."""
        with self._lock:
            items = list(self._units.items())
        result: dict[str, dict[str, int]] = {}
        for (caller, kind), units in sorted(items):
            result.setdefault(caller, {"table": 0, "index": 0})[kind] = units
        return result

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
            self._units.clear()
            self._largest.clear()


_patch_lock = threading.Lock()
_active: SdkCallCounter | None = None
_original_make_api_call: Callable[..., Any] | None = None


def _counting_make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
    counter = _active
    if counter is not None:
        current = scope.current()
        caller = current.function_id if current else getattr(self, _CALLER_ATTRIBUTE, RUNTIME)
        service = self.meta.service_model.service_name
        counter.record(caller, service, operation_name)
        if service == "dynamodb":
            table_units, index_units = write_units(operation_name, api_params)
            if table_units:
                counter.record_write_units(caller, table_units, index_units)
            if operation_name == "TransactWriteItems":
                counter.record_transaction(caller, len(api_params.get("TransactItems") or ()))
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
