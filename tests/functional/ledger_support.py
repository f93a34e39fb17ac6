"""Reading what the data layer wrote: the transactions it sent (by recording every DynamoDB
write call at the SDK) and the ledger it left in the table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient

from paycore.dal.codec import from_item
from paycore.dal.ledger import entry_from_item
from paycore.ledger.books import Ledger
from paycore.ledger.entries import JournalEntry

WRITES = {"TransactWriteItems", "PutItem", "UpdateItem"}


@dataclass(frozen=True)
class Item:
    """One item of a write: the action, the key, and the values it puts or adds."""

    action: str  # Put | Update
    pk: str
    sk: str
    values: dict[str, Any]


@dataclass
class WriteLog:
    """Every DynamoDB write request of the test, in order, as lists of items (a single
    PutItem or UpdateItem is a list of one)."""

    calls: list[tuple[str, list[Item]]] = field(default_factory=list)

    def record(self, operation: str, params: dict[str, Any]) -> None:
        if operation == "TransactWriteItems":
            entries = [next(iter(entry.items())) for entry in params["TransactItems"]]
        elif operation == "PutItem":
            entries = [("Put", params)]
        else:
            entries = [("Update", params)]
        self.calls.append((operation, [_item(action, body) for action, body in entries]))

    def transaction_of(self, entry_id: str) -> list[Item]:
        """The items of the one write that posted ``entry_id`` (it must be exactly one)."""
        found = [
            items
            for _, items in self.calls
            if any(item.pk == f"ENTRY#{entry_id}" and item.action == "Put" for item in items)
        ]
        assert len(found) == 1, f"{entry_id} was sent in {len(found)} writes"
        return found[0]

    def posted(self) -> list[str]:
        """The entry ids sent, in order (committed or not)."""
        return [
            item.pk.removeprefix("ENTRY#")
            for _, items in self.calls
            for item in items
            if item.pk.startswith("ENTRY#")
        ]


def _item(action: str, body: dict[str, Any]) -> Item:
    if action == "Put":
        values = from_item(body["Item"])
        return Item(action, str(values["pk"]), str(values["sk"]), values)
    key = from_item(body["Key"])
    values = from_item(body.get("ExpressionAttributeValues", {}))
    return Item(action, str(key["pk"]), str(key["sk"]), values)


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> WriteLog:
    log = WriteLog()
    original = BaseClient._make_api_call

    def recording(self: Any, operation: str, params: Any) -> Any:
        if self.meta.service_model.service_name == "dynamodb" and operation in WRITES:
            log.record(operation, params)
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return log


def account_updates(items: list[Item]) -> dict[str, tuple[int, int]]:
    """The ledger account shards a write adds to: ``{account id: (debits, credits)}``."""
    return {
        str(item.values[":account"]): (int(item.values[":debits"]), int(item.values[":credits"]))
        for item in items
        if item.action == "Update" and item.pk.startswith("ACCOUNT#")
    }


def item_of(items: list[Item], pk: str) -> Item:
    [found] = [item for item in items if item.pk == pk]
    return found


def _scan(table: str) -> list[dict[str, Any]]:
    client = boto3.client("dynamodb")
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**request)
        items.extend(from_item(item) for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def stored_entries(table: str) -> list[JournalEntry]:
    return [entry_from_item(item) for item in _scan(table) if item["sk"] == "ENTRY"]


def stored_accounts(table: str) -> dict[str, tuple[int, int]]:
    """Every ledger account's (debits, credits), its shards summed."""
    totals: dict[str, tuple[int, int]] = {}
    for item in _scan(table):
        if str(item["pk"]).startswith("ACCOUNT#"):
            debits, credits = totals.get(item["account"], (0, 0))
            totals[item["account"]] = (debits + item["debits"], credits + item["credits"])
    return totals


def folded(table: str) -> Ledger:
    return Ledger(stored_entries(table))


def assert_books_agree(table: str) -> Ledger:
    """The account items hold exactly the fold of the stored entries."""
    ledger = folded(table)
    expected = {
        account.id: (ledger.totals(account).debits, ledger.totals(account).credits)
        for account in ledger.accounts()
    }
    assert stored_accounts(table) == expected
    return ledger
