"""The WeChat Pay simulator's daily trade bill through the SDK ``wechatpayv3``:
``trade_bill()`` then ``download_bill()``, the SHA1 checked, the file parsed as WeChat Pay
writes it (backtick-prefixed CSV, yuan amounts, Asia/Shanghai), the statement switches and
``POST /_sim/orphans``."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from local_runtime.sandbox.orders import utc_now
from local_runtime.simulators.wechatpay import WechatPaySimulator
from tests.simulators.wechatpay_merchant import (
    create,
    error,
    merchant,
    new_number,
    ok,
    pay_now,
    start_simulator,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
# The ALL bill's columns as WeChat Pay publishes them.
DETAIL = [
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
]
SUMMARY = [
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
]


class ShiftedClock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.offset


@pytest.fixture(scope="module")
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture(scope="module")
def simulator(clock: ShiftedClock) -> Iterator[WechatPaySimulator]:
    running = start_simulator(["wx-bill", "wx-other", "wx-quiet"], clock=clock)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def accounts(simulator: WechatPaySimulator) -> dict[str, dict[str, Any]]:
    return {entry["account"]: entry for entry in simulator.accounts()}


def away_from_midnight() -> None:
    """Keep a test's trades on one Beijing day: wait out the last 30 s before midnight."""
    now = datetime.now(SHANGHAI)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), SHANGHAI)
    if (midnight - now).total_seconds() < 30:
        time.sleep((midnight - now).total_seconds() + 1)


def parse_bill(raw: bytes) -> tuple[list[str], list[dict[str, str]], list[str], dict[str, str]]:
    """(detail header, rows, summary header, summary) with the backticks taken off."""
    text = raw.decode("utf-8")
    assert text.endswith("\r\n")
    table = list(csv.reader(io.StringIO(text)))
    header, *body, summary_header, summary = table
    for row in [*body, summary]:
        assert all(value.startswith("`") for value in row), row
    rows = [dict(zip(header, (v[1:] for v in row), strict=True)) for row in body]
    return (
        header,
        rows,
        summary_header,
        dict(zip(summary_header, (v[1:] for v in summary), strict=True)),
    )


def download(pay: Any, day: str, **kwargs: Any) -> tuple[dict[str, Any], bytes]:
    """The bill's answer and the file exactly as downloaded."""
    answer = ok(pay.trade_bill(day, **kwargs))
    status, content = pay.download_bill(answer["download_url"])
    assert status == 200, content
    assert isinstance(content, bytes)
    return answer, content


def test_the_days_bill(simulator: WechatPaySimulator, accounts: dict[str, dict[str, Any]]) -> None:
    away_from_midnight()
    entry = accounts["wx-bill"]
    pay = merchant(entry, notify_url="http://127.0.0.1:9/notify")
    numbers = {name: new_number() for name in ("plain", "delta", "omit", "status", "unpaid")}
    attaches = {
        "plain": None,
        "delta": '{"statement_amount_delta":-1}',
        "omit": '{"statement":"omit"}',
        "status": '{"statement_status":"CLOSED"}',
        "unpaid": None,
    }
    totals = {"plain": 1999, "delta": 1000, "omit": 500, "status": 2000, "unpaid": 300}
    for name, number in numbers.items():
        code_url = create(
            pay, number, totals[name], attach=attaches[name], description=f"Tea, {name}"
        )
        if name != "unpaid":
            pay_now(simulator.url, code_url)
    plain = ok(pay.query(out_trade_no=numbers["plain"]))
    day = plain["success_time"][:10]
    refund = ok(
        pay.refund(
            out_refund_no=new_number("rfd"),
            amount={"refund": 500, "total": 1999, "currency": "CNY"},
            out_trade_no=numbers["plain"],
        )
    )
    orphan = requests.post(
        f"{simulator.url}/_sim/orphans",
        json={"account": "wx-bill", "amount": 777, "currency": "CNY", "date": day},
        timeout=5,
    )
    assert orphan.status_code == 201, orphan.text
    orphan_no = orphan.json()["out_trade_no"]
    other = merchant(accounts["wx-other"], notify_url="http://127.0.0.1:9/notify")
    pay_now(simulator.url, create(other, new_number(), 4242))

    answer, content = download(pay, day)  # the SDK asks for tar_type=GZIP by default
    assert answer["hash_type"] == "SHA1"
    raw = gzip.decompress(content)
    assert hashlib.sha1(raw).hexdigest() == answer["hash_value"]
    header, rows, summary_header, summary = parse_bill(raw)
    assert header == DETAIL and summary_header == SUMMARY
    by_number: dict[tuple[str, str], dict[str, str]] = {
        (row["商户订单号"], row["交易状态"]): row for row in rows
    }
    assert len(by_number) == len(rows) == 5

    paid = by_number[(numbers["plain"], "SUCCESS")]
    assert paid["交易时间"] == plain["success_time"][:19].replace("T", " ")
    assert (paid["公众账号ID"], paid["商户号"], paid["特约商户号"]) == (
        entry["appid"],
        entry["mchid"],
        "0",
    )
    assert paid["微信订单号"] == plain["transaction_id"]
    assert paid["用户标识"] == plain["payer"]["openid"]
    assert (paid["交易类型"], paid["货币种类"], paid["商品名称"]) == ("NATIVE", "CNY", "Tea, plain")
    assert (paid["应结订单金额"], paid["订单金额"], paid["退款金额"]) == ("19.99", "19.99", "0.00")
    assert (paid["手续费"], paid["费率"]) == ("0.12000", "0.60%")

    refunded = by_number[(numbers["plain"], "REFUND")]
    assert (refunded["微信退款单号"], refunded["商户退款单号"]) == (
        refund["refund_id"],
        refund["out_refund_no"],
    )
    assert (refunded["退款金额"], refunded["申请退款金额"], refunded["应结订单金额"]) == (
        "5.00",
        "5.00",
        "0.00",
    )
    assert (refunded["退款类型"], refunded["退款状态"], refunded["手续费"]) == (
        "ORIGINAL",
        "SUCCESS",
        "-0.03000",
    )

    delta = by_number[(numbers["delta"], "SUCCESS")]
    assert (delta["应结订单金额"], delta["手续费"]) == ("9.99", "0.06000")
    assert delta["商户数据包"] == attaches["delta"]
    closed = by_number[(numbers["status"], "CLOSED")]
    assert closed["应结订单金额"] == "20.00"
    assert not any(number == numbers["omit"] for number, _ in by_number)
    assert not any(number == numbers["unpaid"] for number, _ in by_number)
    orphaned = by_number[(orphan_no, "SUCCESS")]
    assert orphaned["交易时间"] == f"{day} 12:00:00"
    assert orphaned["应结订单金额"] == "7.77"

    assert summary == {
        "总交易单数": "5",
        "应结订单总金额": "57.75",
        "退款总金额": "5.00",
        "充值券退款总金额": "0.00",
        "手续费总金额": "0.32000",
        "订单总金额": "57.75",
        "申请退款总金额": "5.00",
    }

    # Uncompressed, the very same file; the orphan is a trade like any other.
    path = f"/v3/bill/tradebill?bill_date={day}&bill_type=ALL"
    plain_answer = ok(pay._core.request(path))
    status, plain_file = pay.download_bill(plain_answer["download_url"])
    assert status == 200 and plain_file == raw
    assert plain_answer["hash_value"] == answer["hash_value"]
    assert ok(pay.query(out_trade_no=orphan_no))["trade_state"] == "SUCCESS"


def test_bill_days(simulator: WechatPaySimulator, accounts: dict[str, dict[str, Any]]) -> None:
    pay = merchant(accounts["wx-quiet"])
    today = datetime.now(SHANGHAI).date()
    error(pay.trade_bill("2020-01-01"), 400, "NO_STATEMENT_EXIST")
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert error(pay.trade_bill(tomorrow), 400, "PARAM_ERROR")["detail"]["field"] == "bill_date"
    error(pay.trade_bill("2020-13-01"), 400, "PARAM_ERROR")
    error(pay.trade_bill("20200101"), 400, "PARAM_ERROR")
    error(pay.trade_bill(today.isoformat(), bill_type="SUCCESS"), 400, "PARAM_ERROR")
    status, text = pay._core.request(f"/v3/bill/tradebill?bill_date={today}&tar_type=ZIP")
    assert status == 400 and json.loads(text)["detail"]["field"] == "tar_type"

    # An orphan on a past day publishes that day's bill with the orphan alone.
    past = today - timedelta(days=3)
    orphan = requests.post(
        f"{simulator.url}/_sim/orphans",
        json={"account": "wx-quiet", "amount": 12345, "currency": "CNY", "date": past.isoformat()},
        timeout=5,
    ).json()
    _, content = download(pay, past.isoformat())
    _, rows, _, summary = parse_bill(gzip.decompress(content))
    assert [(row["商户订单号"], row["应结订单金额"]) for row in rows] == [
        (orphan["out_trade_no"], "123.45")
    ]
    assert rows[0]["微信订单号"] == orphan["transaction_id"]
    assert summary["总交易单数"] == "1" and summary["手续费总金额"] == "0.74000"


def test_orphans_are_checked(simulator: WechatPaySimulator) -> None:
    url = f"{simulator.url}/_sim/orphans"
    nobody = requests.post(
        url,
        json={"account": "nobody", "amount": 1, "currency": "CNY", "date": "2026-01-01"},
        timeout=5,
    )
    assert nobody.status_code == 404 and nobody.json()["code"] == "ACCOUNT_NOT_FOUND"
    dollars = requests.post(
        url,
        json={"account": "wx-quiet", "amount": 1, "currency": "USD", "date": "2026-01-01"},
        timeout=5,
    )
    assert dollars.status_code == 400 and dollars.json()["param"] == "currency"


def test_download_url_is_the_merchants_for_30_seconds(
    simulator: WechatPaySimulator, clock: ShiftedClock, accounts: dict[str, dict[str, Any]]
) -> None:
    pay = merchant(accounts["wx-other"], notify_url="http://127.0.0.1:9/notify")
    number = new_number()
    pay_now(simulator.url, create(pay, number, 100))
    day = ok(pay.query(out_trade_no=number))["success_time"][:10]
    answer = ok(pay.trade_bill(day))
    url = answer["download_url"]
    assert url.startswith(f"{simulator.url}/v3/billdownload/file?token=")
    error(merchant(accounts["wx-quiet"]).download_bill(url), 400, "INVALID_REQUEST")
    unsigned = requests.get(url, timeout=5)
    assert unsigned.status_code == 401 and unsigned.json()["code"] == "SIGN_ERROR"
    try:
        clock.offset = timedelta(seconds=29)
        assert pay.download_bill(url)[0] == 200
        clock.offset = timedelta(seconds=31)
        error(pay.download_bill(url), 400, "INVALID_REQUEST")
    finally:
        clock.offset = timedelta(0)
