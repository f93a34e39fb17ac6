"""Make moto's DynamoDB transactions safe under concurrency, as DynamoDB's are.

moto 5.2.5's ``transact_write_items`` deep-copies every table it touches before it starts and,
when the transaction is cancelled, puts those copies back in place of the tables. With the
local runtime's concurrent handlers that has three effects, all seen here:

- the deep copy iterates a table another request is writing to and fails with
  ``RuntimeError: dictionary changed size during iteration`` (an HTTP 500 to the caller);
- a cancelled transaction replaces the whole table with its old copy, silently undoing every
  write other requests made meanwhile: lost orders and payments;
- the copy costs time proportional to the table, so transactions slow down as it grows.

The fix: DynamoDB requests are served one at a time (a process-wide lock around moto's
DynamoDB handler: under the GIL they never ran in parallel anyway), which makes a transaction
atomic and isolated from every other request; and the rollback snapshot holds only the items
the transaction touches, restored one by one when it is cancelled.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

_lock = threading.RLock()
_skip_table_copy = threading.local()
_originals: dict[str, Callable[..., Any]] = {}


def install() -> None:
    """Patch moto's DynamoDB handler, backend and table (idempotent)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    with _lock:
        if _originals:
            return
        _originals["call_action"] = DynamoHandler.call_action
        _originals["transact_write_items"] = DynamoDBBackend.transact_write_items
        _originals["__deepcopy__"] = getattr(Table, "__deepcopy__", None)  # type: ignore[assignment]
        DynamoHandler.call_action = _serialized_call_action
        DynamoDBBackend.transact_write_items = _transact_write_items
        Table.__deepcopy__ = _table_deepcopy


def uninstall() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    with _lock:
        if not _originals:
            return
        DynamoHandler.call_action = _originals["call_action"]
        DynamoDBBackend.transact_write_items = _originals["transact_write_items"]
        if _originals["__deepcopy__"] is None:
            del Table.__deepcopy__
        else:
            Table.__deepcopy__ = _originals["__deepcopy__"]
        _originals.clear()


def _serialized_call_action(self: Any) -> Any:
    with _lock:
        return _originals["call_action"](self)


def _table_deepcopy(self: Any, memo: dict[int, Any]) -> Any:
    """Inside a transaction, moto's whole-table backup becomes the table itself (its restore
    is then a no-op); everywhere else (backups, exports) a table copies as before."""
    if getattr(_skip_table_copy, "active", False):
        return self
    original = _originals.get("__deepcopy__")
    if original is not None:
        return original(self, memo)
    cls = self.__class__
    clone = cls.__new__(cls)
    memo[id(self)] = clone
    for name, value in self.__dict__.items():
        setattr(clone, name, copy.deepcopy(value, memo))
    return clone


def _item_key(
    backend: Any, operation: str, body: dict[str, Any]
) -> tuple[str, dict[str, Any]] | None:
    table_name = body.get("TableName")
    if not table_name or table_name not in backend.tables:
        return None
    if operation != "Put":
        return table_name, dict(body["Key"])
    table = backend.tables[table_name]
    item = body["Item"]
    key = {table.hash_key_attr: item[table.hash_key_attr]}
    if table.range_key_attr is not None and table.range_key_attr in item:
        key[table.range_key_attr] = item[table.range_key_attr]
    return table_name, key


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    with _lock:
        snapshot: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        for entry in transact_items:
            operation, body = next(iter(entry.items()))
            try:
                located = _item_key(self, operation, body)
            except (KeyError, TypeError):
                located = None  # malformed: moto's own validation will refuse it
            if located is None:
                continue
            table_name, key = located
            try:
                current = self.get_item(table_name, key)
            except Exception:  # noqa: S112 - an invalid key: moto's validation refuses it
                continue
            before = copy.deepcopy(current.to_json()["Attributes"]) if current else None
            snapshot.append((table_name, key, before))
        _skip_table_copy.active = True
        try:
            _originals["transact_write_items"](self, transact_items)
        except Exception:
            _restore(self, snapshot)
            raise
        finally:
            _skip_table_copy.active = False


def _restore(
    backend: Any, snapshot: list[tuple[str, dict[str, Any], dict[str, Any] | None]]
) -> None:
    for table_name, key, before in reversed(snapshot):
        if before is None:
            if backend.get_item(table_name, key) is not None:
                backend.delete_item(table_name, key)
        else:
            backend.put_item(table_name, before)
