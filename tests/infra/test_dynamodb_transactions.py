"""moto's DynamoDB transactions, as patched by the local runtime, behave like DynamoDB's:
a cancelled transaction undoes only its own writes, and concurrent requests lose nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local_runtime import dynamodb_transactions


@pytest.fixture
def table() -> Iterator[Any]:
    dynamodb_transactions.install()
    try:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            client.create_table(
                TableName="t",
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
            yield client
    finally:
        dynamodb_transactions.uninstall()


def _put(key: str, value: str, *, new: bool = True) -> dict[str, Any]:
    put: dict[str, Any] = {"TableName": "t", "Item": {"pk": {"S": key}, "v": {"S": value}}}
    if new:
        put["ConditionExpression"] = "attribute_not_exists(pk)"
    return {"Put": put}


def _value(client: Any, key: str) -> str | None:
    item = client.get_item(TableName="t", Key={"pk": {"S": key}}).get("Item")
    return item["v"]["S"] if item else None


def test_a_cancelled_transaction_undoes_only_its_own_writes(table: Any) -> None:
    table.put_item(TableName="t", Item={"pk": {"S": "taken"}, "v": {"S": "first"}})
    table.put_item(TableName="t", Item={"pk": {"S": "changed"}, "v": {"S": "before"}})
    with pytest.raises(ClientError) as raised:
        table.transact_write_items(
            TransactItems=[
                _put("changed", "after", new=False),
                _put("fresh", "x"),
                _put("taken", "second"),
            ]
        )
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert _value(table, "changed") == "before"
    assert _value(table, "fresh") is None
    assert _value(table, "taken") == "first"


def test_concurrent_transactions_and_puts_lose_nothing(table: Any) -> None:
    errors: list[Exception] = []
    committed: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(60):
            try:
                key = f"w{n}-{i}"
                table.put_item(TableName="t", Item={"pk": {"S": f"{key}-plain"}, "v": {"S": "p"}})
                table.transact_write_items(TransactItems=[_put(key, "t"), _put(f"{key}-b", "t")])
                with lock:
                    committed.extend([key, f"{key}-b", f"{key}-plain"])
                # A cancelled twin must not undo anything the other threads wrote meanwhile.
                with pytest.raises(ClientError):
                    table.transact_write_items(
                        TransactItems=[_put(f"{key}-c", "t"), _put(key, "again")]
                    )
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stored = {item["pk"]["S"] for item in table.scan(TableName="t")["Items"]}
    assert stored == set(committed)
