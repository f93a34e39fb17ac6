"""The sandbox's daily statement over real HTTP: what a merchant downloads to reconcile, and
the statement switches that make discrepancies on purpose."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local_runtime.sandbox.server import SandboxServer
from tests.functional.sandbox_support import (
    SECRET,
    create_order,
    order_body,
    paid_order,
    signed_call,
)

HEADER = [
    "kind",
    "reference",
    "transaction_id",
    "out_trade_no",
    "amount",
    "currency",
    "fee",
    "status",
    "occurred_at",
]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer("127.0.0.1", 0, SECRET, notify_schedule=())
    server.start()
    yield server
    server.stop()


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def statement(sandbox: SandboxServer, day: str, prefix: str = "") -> list[dict[str, str]]:
    answer = signed_call(sandbox, "GET", f"{prefix}/v1/statements/{day}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8"))))
    assert rows[0] == HEADER
    return [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]


def lines_of(rows: list[dict[str, str]], order: dict[str, Any]) -> list[dict[str, str]]:
    return [row for row in rows if row["out_trade_no"] == order["out_trade_no"]]


def refund(
    sandbox: SandboxServer, order: dict[str, Any], amount: int, no: str, prefix: str = ""
) -> None:
    answer = signed_call(
        sandbox,
        "POST",
        f"{prefix}/v1/orders/{order['out_trade_no']}/refunds",
        {"out_refund_no": no, "amount": amount, "notify_url": "http://127.0.0.1:9/n"},
    )
    assert answer.status_code == 200, answer.text


def test_a_paid_order_and_its_refund_are_on_todays_statement(sandbox: SandboxServer) -> None:
    order = paid_order(sandbox, prefix="/accounts/stmt-a", amount=1999)
    refund(sandbox, order, 500, f"rfd_{order['out_trade_no'][4:]}", prefix="/accounts/stmt-a")
    unpaid = create_order(sandbox, prefix="/accounts/stmt-a")

    rows = statement(sandbox, today(), prefix="/accounts/stmt-a")

    payment, refunded = lines_of(rows, order)
    assert payment["kind"] == "PAYMENT"
    assert payment["reference"] == order["out_trade_no"]
    assert payment["transaction_id"].startswith("sbxt_")
    assert (payment["amount"], payment["currency"], payment["fee"]) == ("1999", "CNY", "0")
    assert payment["status"] == "SUCCESS"
    assert refunded["kind"] == "REFUND"
    assert refunded["reference"] == f"rfd_{order['out_trade_no'][4:]}"
    assert refunded["transaction_id"].startswith("sbxr_")
    assert refunded["amount"] == "500"
    assert payment["occurred_at"] <= refunded["occurred_at"]
    assert lines_of(rows, unpaid) == []


def test_each_account_has_its_own_statement(sandbox: SandboxServer) -> None:
    order = paid_order(sandbox, prefix="/accounts/stmt-b")

    assert lines_of(statement(sandbox, today(), prefix="/accounts/stmt-b"), order)
    assert lines_of(statement(sandbox, today(), prefix="/accounts/stmt-c"), order) == []
    assert lines_of(statement(sandbox, today()), order) == []


def test_a_day_without_trades_is_the_header_alone(sandbox: SandboxServer) -> None:
    paid_order(sandbox, prefix="/accounts/stmt-d")
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()

    assert statement(sandbox, yesterday, prefix="/accounts/stmt-d") == []


@pytest.mark.parametrize("day", ["2030-13-01", "yesterday", "20300101", "2999-01-01"])
def test_a_malformed_or_future_day_is_refused(sandbox: SandboxServer, day: str) -> None:
    answer = signed_call(sandbox, "GET", f"/v1/statements/{day}")

    assert answer.status_code == 400
    assert (answer.json()["code"], answer.json()["param"]) == ("INVALID_PARAMETER", "day")


def test_the_statement_needs_a_signature(sandbox: SandboxServer) -> None:
    answer = signed_call(sandbox, "GET", f"/v1/statements/{today()}", secret="wrong")

    assert answer.status_code == 401


def test_the_statement_switches_make_discrepancies(sandbox: SandboxServer) -> None:
    prefix = "/accounts/stmt-e"
    omitted = paid_order(sandbox, prefix=prefix, sandbox_behaviour={"statement": "omit"})
    refund(sandbox, omitted, 100, f"rfd_{omitted['out_trade_no'][4:]}", prefix=prefix)
    more = paid_order(sandbox, prefix=prefix, sandbox_behaviour={"statement_amount_delta": 7})
    less = paid_order(
        sandbox, prefix=prefix, amount=5, sandbox_behaviour={"statement_amount_delta": -9}
    )
    closed = paid_order(sandbox, prefix=prefix, sandbox_behaviour={"statement_status": "CLOSED"})

    rows = statement(sandbox, today(), prefix=prefix)

    assert lines_of(rows, omitted) == []
    assert [row["amount"] for row in lines_of(rows, more)] == ["1241"]
    assert [row["amount"] for row in lines_of(rows, less)] == ["0"]
    assert [row["status"] for row in lines_of(rows, closed)] == ["CLOSED"]


@pytest.mark.parametrize(
    ("behaviour", "param"),
    [
        ({"statement": "drop"}, "sandbox_behaviour.statement"),
        ({"statement_amount_delta": 1.5}, "sandbox_behaviour.statement_amount_delta"),
        ({"statement_amount_delta": "1"}, "sandbox_behaviour.statement_amount_delta"),
        ({"statement_status": "REFUNDED"}, "sandbox_behaviour.statement_status"),
    ],
)
def test_bad_statement_switches_are_refused(
    sandbox: SandboxServer, behaviour: dict[str, Any], param: str
) -> None:
    answer = signed_call(sandbox, "POST", "/v1/orders", order_body(sandbox_behaviour=behaviour))

    assert answer.status_code == 400
    assert answer.json()["param"] == param
