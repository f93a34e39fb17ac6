# Alipay's bill is Chinese with full-width punctuation: the tests compare it as written.
# ruff: noqa: RUF001
"""The Alipay simulator's daily trade bill: alipay.data.dataservice.bill.downloadurl.query
through the SDK, the .csv.zip behind bill_download_url unzipped and read as GBK, the rows an
adapter would parse; the statement switches and POST /_sim/orphans."""

from __future__ import annotations

import csv
import io
import secrets
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import requests
from alipay import AliPay

from local_runtime.simulators.alipay import AlipaySimulator
from local_runtime.simulators.alipay.protocol import SHANGHAI
from tests.simulators.alipay_support import (
    ShiftedClock,
    beijing_local_time,
    entry_of,
    open_cashier,
    page_pay_url,
    paid_trade,
    sdk_for,
)

DETAIL_HEADER = [
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
]


@pytest.fixture(scope="module", autouse=True)
def _sdk_in_beijing() -> Iterator[None]:
    with beijing_local_time():
        yield


@pytest.fixture(scope="module")
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture(scope="module")
def simulator(clock: ShiftedClock) -> Iterator[AlipaySimulator]:
    sim = AlipaySimulator(
        "127.0.0.1", 0, accounts=["alipay-x", "alipay-y"], notify_schedule=(0,), clock=clock
    )
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def sdk(simulator: AlipaySimulator) -> AliPay:
    return sdk_for(entry_of(simulator, "alipay-x"))


def new_number() -> str:
    return f"pay_{secrets.token_hex(8)}"


def bill_url(sdk: AliPay, day: str, bill_type: str = "trade") -> dict[str, Any]:
    answer: dict[str, Any] = sdk.server_api(
        "alipay.data.dataservice.bill.downloadurl.query",
        {"bill_type": bill_type, "bill_date": day},
    )
    return answer


def download(url: str) -> zipfile.ZipFile:
    answer = requests.get(url, timeout=5)
    assert answer.status_code == 200, answer.text
    return zipfile.ZipFile(io.BytesIO(answer.content))


def detail_text(archive: zipfile.ZipFile) -> str:
    [name] = [n for n in archive.namelist() if n.endswith("_业务明细.csv")]
    return archive.read(name).decode("gbk")


def bill_rows(text: str) -> tuple[list[str], list[dict[str, str]], list[str]]:
    """What an adapter parses: the '#' lines, then the header and the rows (cells stripped
    of Alipay's tab padding)."""
    comments = [line for line in text.splitlines() if line.startswith("#")]
    table = [line for line in text.splitlines() if line and not line.startswith("#")]
    reader = csv.reader(table)
    header = next(reader)
    rows = [dict(zip(header, (cell.strip() for cell in row), strict=True)) for row in reader]
    return header, rows, comments


def day_rows(sdk: AliPay, days: set[str]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for day in sorted(days):
        answer = bill_url(sdk, day)
        assert answer["code"] == "10000", answer
        rows += bill_rows(detail_text(download(answer["bill_download_url"])))[1]
    return rows


# -- the file -----------------------------------------------------------------------------------


def test_the_days_bill_lists_payments_and_refunds_in_alipays_format(sdk: AliPay) -> None:
    # GIVEN a payment partly refunded, and a payment never paid
    number = new_number()
    paid_trade(sdk, number, "19.99", subject="绿茶, 两杯")
    unpaid = new_number()
    open_cashier(page_pay_url(sdk, unpaid, "5.00"))
    refund = sdk.api_alipay_trade_refund("5.00", out_trade_no=number, out_request_no="rfd_9")
    trade = sdk.api_alipay_trade_query(out_trade_no=number)
    pay_day, refund_day = trade["send_pay_date"][:10], refund["gmt_refund_pay"][:10]

    # WHEN the merchant asks for the day's bill and downloads it
    answer = bill_url(sdk, pay_day)
    assert answer["code"] == "10000"
    url = answer["bill_download_url"]
    assert "/downloadBillFile.resource?" in url
    archive = download(url)

    # THEN it is a zip of the detail and the summary, GBK CSV with Alipay's header lines
    compact = pay_day.replace("-", "")
    names = sorted(archive.namelist())
    assert len(names) == 2
    assert names[0].endswith(f"_{compact}_业务明细(汇总).csv")
    assert names[1].endswith(f"_{compact}_业务明细.csv")
    text = detail_text(archive)
    header, _, comments = bill_rows(text)
    assert header == DETAIL_HEADER
    assert comments[0] == "#支付宝业务明细查询"
    assert comments[1].startswith("#账号：[2088") and comments[1].endswith("0156]")
    start = datetime.fromisoformat(pay_day).strftime("%Y年%m月%d日")
    assert comments[2].startswith(f"#起始日期：[{start} 00:00:00]")
    assert comments[-1].startswith("#导出时间：[")
    # AND the paid trade is a 交易 row; the refund a 退款 row with its out_request_no
    rows = day_rows(sdk, {pay_day, refund_day})
    mine = [row for row in rows if row["商户订单号"] == number]
    assert [row["业务类型"] for row in mine] == ["交易", "退款"]
    payment, refunded = mine
    assert payment["支付宝交易号"] == trade["trade_no"]
    assert payment["商品名称"] == "绿茶, 两杯"
    assert (payment["订单金额（元）"], payment["商家实收（元）"]) == ("19.99", "19.99")
    assert payment["服务费（元）"] == "-0.12"  # 0.6 % of 19.99, half up
    assert payment["完成时间"] == trade["send_pay_date"]
    assert payment["退款批次号/请求号"] == ""
    assert refunded["订单金额（元）"] == "-5.00"
    assert refunded["退款批次号/请求号"] == "rfd_9"
    assert refunded["服务费（元）"] == "0.03"  # the fee returned in proportion
    assert refunded["完成时间"] == refund["gmt_refund_pay"]
    # AND the unpaid trade is not in it
    assert all(row["商户订单号"] != unpaid for row in rows)
    # AND the footer sums the 交易 and 退款 rows
    payments = [row for row in bill_rows(text)[1] if row["业务类型"] == "交易"]
    paid_sum = sum(int(row["商家实收（元）"].replace(".", "")) for row in payments)
    total = f"{paid_sum // 100}.{paid_sum % 100:02d}"
    assert any(c.startswith(f"#交易合计：{len(payments)}笔，商家实收共{total}元") for c in comments)


def test_the_statement_switches_put_discrepancies_in_the_bill(sdk: AliPay) -> None:
    omitted, off, closed, plain = (new_number() for _ in range(4))
    paid_trade(sdk, omitted, "3.00", simulate={"statement": "omit"})
    paid_trade(sdk, off, "3.00", simulate={"statement_amount_delta": -50})
    paid_trade(sdk, closed, "3.00", simulate={"statement_status": "CLOSED"})
    paid_trade(sdk, plain, "3.00")
    days = {
        sdk.api_alipay_trade_query(out_trade_no=n)["send_pay_date"][:10]
        for n in (omitted, off, closed, plain)
    }

    rows = {row["商户订单号"]: row for row in day_rows(sdk, days)}

    assert omitted not in rows
    assert rows[off]["订单金额（元）"] == "2.50"
    assert rows[off]["商家实收（元）"] == "2.50"
    assert rows[closed]["业务类型"] == "CLOSED"
    assert (rows[plain]["业务类型"], rows[plain]["订单金额（元）"]) == ("交易", "3.00")
    # the channel still has every one of them as paid
    assert sdk.api_alipay_trade_query(out_trade_no=omitted)["trade_status"] == "TRADE_SUCCESS"


def test_an_orphan_is_in_its_days_bill_and_can_be_queried(
    simulator: AlipaySimulator, sdk: AliPay
) -> None:
    answer = requests.post(
        f"{simulator.url}/_sim/orphans",
        json={"account": "alipay-x", "amount": 1234, "currency": "CNY", "date": "2026-01-05"},
        timeout=5,
    )

    assert answer.status_code == 201
    orphan = answer.json()
    rows = day_rows(sdk, {"2026-01-05"})
    [row] = [row for row in rows if row["商户订单号"] == orphan["out_trade_no"]]
    assert (row["业务类型"], row["订单金额（元）"]) == ("交易", "12.34")
    assert row["支付宝交易号"] == orphan["transaction_id"]
    assert row["完成时间"] == "2026-01-05 12:00:00"
    queried = sdk.api_alipay_trade_query(out_trade_no=orphan["out_trade_no"])
    assert (queried["trade_status"], queried["total_amount"]) == ("TRADE_SUCCESS", "12.34")
    other = sdk_for(entry_of(simulator, "alipay-y"))
    assert bill_url(other, "2026-01-05")["sub_code"] == "isp.bill_not_exist"


def test_orphans_are_cny_only_and_for_known_accounts(simulator: AlipaySimulator) -> None:
    url = f"{simulator.url}/_sim/orphans"
    usd = {"account": "alipay-x", "amount": 100, "currency": "USD", "date": "2026-01-05"}
    nobody = {"account": "nobody", "amount": 100, "currency": "CNY", "date": "2026-01-05"}

    assert requests.post(url, json=usd, timeout=5).status_code == 400
    assert requests.post(url, json=nobody, timeout=5).status_code == 404


# -- asking for a bill ----------------------------------------------------------------------------


def test_a_day_without_trades_has_no_bill(sdk: AliPay) -> None:
    answer = bill_url(sdk, "2020-02-02")

    assert (answer["code"], answer["sub_code"]) == ("40004", "isp.bill_not_exist")


def test_a_future_day_has_no_bill(sdk: AliPay) -> None:
    tomorrow = (datetime.now(SHANGHAI).date() + timedelta(days=2)).isoformat()

    assert bill_url(sdk, tomorrow)["sub_code"] == "isp.bill_not_exist"


@pytest.mark.parametrize(
    ("day", "bill_type"),
    [("2026-01", "trade"), ("20260105", "trade"), ("2026-02-30", "trade"), ("2026-01-05", "x")],
)
def test_what_is_not_a_daily_trade_bill_is_a_parameter_error(
    sdk: AliPay, day: str, bill_type: str
) -> None:
    answer = bill_url(sdk, day, bill_type)

    assert (answer["code"], answer["sub_code"]) == ("40004", "ACQ.INVALID_PARAMETER")


def test_a_bill_link_works_for_30_seconds(sdk: AliPay, clock: ShiftedClock) -> None:
    number = new_number()
    paid_trade(sdk, number, "1.00")
    day = sdk.api_alipay_trade_query(out_trade_no=number)["send_pay_date"][:10]
    url = bill_url(sdk, day)["bill_download_url"]
    try:
        clock.offset = timedelta(seconds=25)
        assert requests.get(url, timeout=5).status_code == 200
        clock.offset = timedelta(seconds=31)
        assert requests.get(url, timeout=5).status_code == 404
    finally:
        clock.offset = timedelta()
    forged = url.rsplit("fileId=", 1)[0] + "fileId=guessed"
    assert requests.get(forged, timeout=5).status_code == 404


def test_a_trade_created_but_never_paid_still_publishes_an_empty_bill(
    simulator: AlipaySimulator,
) -> None:
    sdk = sdk_for(entry_of(simulator, "alipay-y"))
    open_cashier(page_pay_url(sdk, new_number(), "1.00"))
    today: date = datetime.now(SHANGHAI).date()

    answer = bill_url(sdk, today.isoformat())

    if answer.get("code") != "10000":  # created just before midnight in Beijing
        answer = bill_url(sdk, (today - timedelta(days=1)).isoformat())
    header, rows, comments = bill_rows(detail_text(download(answer["bill_download_url"])))
    assert header == DETAIL_HEADER
    assert rows == []
    assert "#交易合计：0笔，商家实收共0.00元，商家优惠共0.00元" in comments
