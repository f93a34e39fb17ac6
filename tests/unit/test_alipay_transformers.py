# The bill is Chinese text with full-width punctuation, as Alipay writes it.
# ruff: noqa: RUF001
"""Alipay's words into ours: every status and code mapped (held to what the simulator writes),
times, yuan amounts through paycore.money, our page.pay order id, notifications, refund query
answers and the trade bill (GBK, names without the UTF-8 flag, half- or full-width headers)."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from local_runtime.simulators.alipay import bills, notifications, protocol
from paycore.channels.alipay.transformers import (
    AlipayRefundStatus,
    AlipayTradeStatus,
    BillKind,
    ErrorMeaning,
    ResultCode,
    SubCode,
    Unreadable,
    beijing,
    error_meaning,
    handed_out_until,
    meaning_of,
    page_pay_order_id,
    parse_beijing,
    parse_signed_yuan,
    parse_yuan,
    read_notification,
    refund_query_state,
    result_meaning,
    statement_lines,
    to_payment_status,
    to_refund_status,
    yuan,
)
from paycore.channels.base import (
    ChannelPaymentState,
    ChannelPaymentStatus,
    ChannelRefundState,
    ChannelRefundStatus,
    StatementLineKind,
)
from tests.support import ROOT

SIMULATOR = ROOT / "local_runtime" / "simulators" / "alipay"


def simulator_strings(pattern: str) -> set[str]:
    found: set[str] = set()
    for path in Path(SIMULATOR).glob("*.py"):
        found |= set(re.findall(pattern, path.read_text()))
    return found


# -- held to the simulator's enums and codes -----------------------------------------------------


def test_every_sub_code_the_simulator_writes_is_one_we_decide() -> None:
    written = simulator_strings(r'"((?:ACQ|isv|isp|aop)\.[A-Za-z_.-]+)"')

    assert written  # the scan found the codes
    assert written <= {code.value for code in SubCode}


def test_every_result_code_and_status_the_simulator_writes_is_mapped() -> None:
    codes = {
        protocol.SUCCESS["code"],
        protocol.system_error().code,
        protocol.missing("x", "y").code,
        protocol.invalid("x", "y").code,
        protocol.business("x", "y").code,
    }
    statuses = {
        notifications.WAIT_BUYER_PAY,
        notifications.TRADE_SUCCESS,
        notifications.TRADE_CLOSED,
    }

    assert codes <= {code.value for code in ResultCode}
    assert statuses <= {status.value for status in AlipayTradeStatus}
    assert simulator_strings(r'"(REFUND_[A-Z_]+)"') <= {s.value for s in AlipayRefundStatus}
    assert {bills.PAYMENT_TYPE, bills.REFUND_TYPE} == {kind.value for kind in BillKind}


# -- the mappings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "paid", "expected"),
    [
        (AlipayTradeStatus.WAIT_BUYER_PAY, False, ChannelPaymentStatus.PENDING),
        (AlipayTradeStatus.TRADE_SUCCESS, True, ChannelPaymentStatus.SUCCEEDED),
        (AlipayTradeStatus.TRADE_FINISHED, True, ChannelPaymentStatus.SUCCEEDED),
        (AlipayTradeStatus.TRADE_CLOSED, False, ChannelPaymentStatus.CLOSED),
        (AlipayTradeStatus.TRADE_CLOSED, True, ChannelPaymentStatus.SUCCEEDED),
    ],
)
def test_trade_statuses_map_and_a_closed_trade_that_was_paid_is_a_success(
    status: AlipayTradeStatus, paid: bool, expected: ChannelPaymentStatus
) -> None:
    assert to_payment_status(status, paid) is expected


def test_refund_statuses_map() -> None:
    assert to_refund_status(AlipayRefundStatus.REFUND_SUCCESS) is ChannelRefundStatus.SUCCEEDED
    assert to_refund_status(None) is ChannelRefundStatus.PENDING


def test_every_code_is_decided() -> None:
    assert {code: error_meaning(code) for code in SubCode}[SubCode.TRADE_NOT_EXIST] is (
        ErrorMeaning.NOT_FOUND
    )
    assert all(isinstance(result_meaning(code), ErrorMeaning) for code in ResultCode)


@pytest.mark.parametrize(
    ("code", "sub_code", "meaning"),
    [
        ("20000", "ACQ.SYSTEM_ERROR", ErrorMeaning.UNAVAILABLE),
        ("20000", "isp.unknow-error", ErrorMeaning.UNAVAILABLE),
        ("20000", "ACQ.TRADE_NOT_EXIST", ErrorMeaning.UNAVAILABLE),  # 20000 always: ask again
        ("40004", "ACQ.SYSTEM_ERROR", ErrorMeaning.UNAVAILABLE),
        ("40004", "ACQ.TRADE_NOT_EXIST", ErrorMeaning.NOT_FOUND),
        ("40004", "ACQ.TRADE_STATUS_ERROR", ErrorMeaning.TRADE_STATUS),
        ("40004", "ACQ.SELLER_BALANCE_NOT_ENOUGH", ErrorMeaning.REFUND_FAILED),
        ("40004", "isp.bill_not_exist", ErrorMeaning.NO_BILL),
        ("40004", "ACQ.CONTEXT_INCONSISTENT", ErrorMeaning.REJECTED),
        ("40004", "ACQ.SOMETHING_NEW", ErrorMeaning.REJECTED),
        ("40002", "isv.invalid-signature", ErrorMeaning.REJECTED),
        ("40002", None, ErrorMeaning.REJECTED),
        ("99999", None, ErrorMeaning.REJECTED),
    ],
)
def test_an_error_answer_means(code: str, sub_code: str | None, meaning: ErrorMeaning) -> None:
    assert meaning_of(code, sub_code) is meaning


# -- times and amounts ----------------------------------------------------------------------------


def test_beijing_time_is_utc_plus_eight_both_ways() -> None:
    moment = datetime(2026, 12, 6, 16, 30, 5, 900_000, tzinfo=UTC)

    assert beijing(moment) == "2026-12-07 00:30:05"  # seconds cut, never rounded up
    assert parse_beijing("2026-12-07 00:30:05") == datetime(2026, 12, 6, 16, 30, 5, tzinfo=UTC)
    assert parse_beijing("2026-12-07 00:30:05.123") == datetime(
        2026, 12, 6, 16, 30, 5, 123_000, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="naive"):
        beijing(datetime(2026, 12, 6))


@pytest.mark.parametrize(
    "text",
    ["", "2026-12-07", "2026-12-07T00:30:05", "2026-13-07 00:30:05", "2026-12-07 00:30:05.1"],
)
def test_other_times_are_unreadable(text: str) -> None:
    with pytest.raises(Unreadable):
        parse_beijing(text)


def test_yuan_strings_go_through_paycore_money() -> None:
    assert [yuan(1), yuan(1999), yuan(10_000), yuan(100_000_000_00)] == [
        "0.01",
        "19.99",
        "100.00",
        "100000000.00",
    ]
    assert [parse_yuan("0.01"), parse_yuan("19.9"), parse_yuan("20")] == [1, 1990, 2000]
    assert [parse_signed_yuan("-0.06"), parse_signed_yuan("0.00"), parse_signed_yuan("1.2")] == [
        -6,
        0,
        120,
    ]


@pytest.mark.parametrize("value", ["19.999", "-1", "+1", "1e3", " 1", "1,000", 19.99, None, "--1"])
def test_anything_but_a_plain_yuan_string_is_unreadable(value: object) -> None:
    with pytest.raises(Unreadable):
        parse_signed_yuan(value) if value == "--1" else parse_yuan(value)


# -- our page.pay order id ----------------------------------------------------------------------


def test_the_page_pay_order_id_carries_the_links_expiry() -> None:
    expires = datetime(2026, 12, 6, 1, 2, 3, 999_000, tzinfo=UTC)
    order_id = page_pay_order_id("pay_1", expires)

    assert order_id == "pay_1@20261206090203"
    assert handed_out_until("pay_1", order_id) == expires.replace(microsecond=0)
    assert handed_out_until("pay_1", None) is None
    assert handed_out_until("pay_1", "") is None
    forever = datetime.max.replace(tzinfo=UTC)
    assert handed_out_until("pay_1", "pay_1") == forever  # adopted: it exists, no expiry known
    assert handed_out_until("pay_1", "pay_2@20261206090203") == forever


# -- notifications and refund queries -----------------------------------------------------------

PAID = {
    "notify_type": "trade_status_sync",
    "notify_id": "n1",
    "out_trade_no": "pay_1",
    "trade_status": "TRADE_SUCCESS",
    "total_amount": "19.99",
    "trade_no": "2026120622001",
    "gmt_payment": "2026-12-06 10:00:00",
}


def test_a_payment_notification_and_a_refund_notification_are_told_apart() -> None:
    payment = read_notification(PAID)
    refund = read_notification(
        {
            **PAID,
            "trade_status": "TRADE_CLOSED",
            "out_biz_no": "rfd_1",
            "refund_fee": "19.99",
            "gmt_refund": "2026-12-06 10:05:00.120",
        }
    )

    assert payment == ChannelPaymentState(
        "pay_1",
        ChannelPaymentStatus.SUCCEEDED,
        amount=1999,
        currency="CNY",
        channel_transaction_id="2026120622001",
        notification_id="n1",
    )
    assert refund == ChannelRefundState(
        "rfd_1", "pay_1", ChannelRefundStatus.SUCCEEDED, currency="CNY", notification_id="n1"
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"notify_type": "trade_status_async"},
        {"notify_id": ""},
        {"trade_status": "PAID"},
        {"total_amount": "19.999"},
        {"trade_no": ""},
        {"out_biz_no": "rfd_1", "refund_fee": "1.00"},  # no gmt_refund
        {"out_biz_no": "rfd_1", "refund_fee": "x", "gmt_refund": "2026-12-06 10:05:00"},
        {
            "out_biz_no": "rfd_1",
            "refund_fee": "1.00",
            "gmt_refund": "2026-12-06 10:05:00",
            "trade_status": "WAIT_BUYER_PAY",
        },
    ],
)
def test_a_malformed_notification_is_unreadable(changes: dict[str, str]) -> None:
    with pytest.raises(Unreadable):
        read_notification({**PAID, **changes})


def test_refund_query_answers() -> None:
    nothing = refund_query_state({"code": "10000"}, "pay_1", "rfd_1")
    processing = refund_query_state({"refund_amount": "5.00"}, "pay_1", "rfd_1")
    done = refund_query_state(
        {"refund_amount": "5.00", "refund_status": "REFUND_SUCCESS", "out_request_no": "rfd_1"},
        "pay_1",
        "rfd_1",
    )

    assert nothing.status is ChannelRefundStatus.NOT_FOUND
    assert (processing.status, processing.amount) == (ChannelRefundStatus.PENDING, 500)
    assert (done.status, done.amount, done.currency) == (ChannelRefundStatus.SUCCEEDED, 500, "CNY")
    with pytest.raises(Unreadable):
        refund_query_state({"refund_amount": "5.00", "refund_status": "X"}, "pay_1", "rfd_1")
    with pytest.raises(Unreadable):
        refund_query_state({"refund_amount": "5.00", "out_request_no": "rfd_2"}, "pay_1", "rfd_1")


# -- the trade bill -----------------------------------------------------------------------------

DAY = date(2026, 12, 6)
HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,"
    "终端号,对方账户,订单金额(元),商家实收(元),支付宝红包(元),集分宝(元),支付宝优惠(元),"
    "商家优惠(元),券核销金额(元),券名称,商家红包消费金额(元),卡消费金额(元),退款批次号/请求号,"
    "服务费(元),分润(元),备注"
)


def row(
    trade_no: str,
    out_trade_no: str,
    kind: str,
    amount: str,
    *,
    request_no: str = "",
    fee: str,
    finished: str = "2026-12-06 10:00:05",
    subject: str = "Green tea",
) -> str:
    cells = [f"{trade_no}\t", f"{out_trade_no}\t", f"{kind}\t", subject, "2026-12-06 10:00:00",
             finished, "\t", "\t", "\t", "\t", "sim***@example.com\t", amount, amount, "0.00",
             "0.00", "0.00", "0.00", "0.00", "", "0.00\t", "0.00", f"{request_no}\t", fee, "0.00",
             ""]  # fmt: skip
    return ",".join(f'"{cell}"' if "," in cell else cell for cell in cells)


def detail(*rows: str, header: str = HEADER) -> str:
    return "\r\n".join(
        [
            "#支付宝业务明细查询",
            "#账号：[20881234567890120156]",
            "#起始日期：[2026年12月06日 00:00:00]   终止日期：[2026年12月07日 00:00:00]",
            "#-----------------------------------------业务明细列表----",
            header,
            *rows,
            "#-----------------------------------------业务明细列表结束----",
            "#交易合计：1笔，商家实收共100.00元，商家优惠共0.00元",
            "#导出时间：[2026年12月07日 09:00:00]",
            "",
        ]
    )


def gbk_named_zip(files: dict[str, str]) -> bytes:
    """A zip as Alipay writes it: GBK content and GBK member names without the UTF-8 flag
    (written under ASCII placeholders of the same length, then swapped in)."""
    buffer = io.BytesIO()
    swaps = []
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for index, (name, text) in enumerate(files.items()):
            raw_name = name.encode("gbk")
            placeholder = f"{index:02d}".encode().ljust(len(raw_name), b"x")
            swaps.append((placeholder, raw_name))
            archive.writestr(placeholder.decode(), text.encode("gbk"))
    content = buffer.getvalue()
    for placeholder, raw_name in swaps:
        assert content.count(placeholder) == 2  # the local header and the central directory
        content = content.replace(placeholder, raw_name)
    return content


def test_a_bill_as_alipay_writes_it_becomes_neutral_lines() -> None:
    text = detail(
        row("2026120622001", "pay_1", "交易", "100.00", fee="-0.60", subject="Tea, green"),
        row(
            "2026120622001",
            "pay_1",
            "退款",
            "-25.00",
            request_no="rfd_1",
            fee="0.15",
            finished="2026-12-06 23:59:59",
        ),
        row("2026120622002", "pay_2", "TRADE_CLOSED", "19.99", fee="-0.12"),
        row("2026120622003", "pay_3", "SOMETHING", "-0.01", fee="-0.00"),
    )
    content = gbk_named_zip(
        {
            "20881234567890120156_20261206_业务明细.csv": text,
            "20881234567890120156_20261206_业务明细(汇总).csv": "#汇总\r\n",
        }
    )

    lines = statement_lines(content, DAY)

    assert [(line.kind, line.reference, line.amount, line.fee) for line in lines] == [
        (StatementLineKind.PAYMENT, "pay_1", 10000, 60),
        (StatementLineKind.REFUND, "rfd_1", 2500, -15),
        (StatementLineKind.PAYMENT, "pay_2", 1999, 12),
        (StatementLineKind.PAYMENT, "pay_3", -1, 0),
    ]
    assert [(line.status, line.channel_status) for line in lines] == [
        (ChannelPaymentStatus.SUCCEEDED, "交易"),
        (ChannelRefundStatus.SUCCEEDED, "退款"),
        (ChannelPaymentStatus.CLOSED, "TRADE_CLOSED"),
        (ChannelPaymentStatus.FAILED, "SOMETHING"),
    ]
    assert lines[0].channel_transaction_id == "2026120622001"
    assert lines[0].occurred_at == "2026-12-06T02:00:05.000Z"
    assert lines[1].occurred_at == "2026-12-06T15:59:59.000Z"  # still the 6th in Beijing
    assert {line.currency for line in lines} == {"CNY"}


def test_full_width_headers_and_utf8_names_are_read_too() -> None:
    text = detail(
        row("2026120622001", "pay_1", "交易", "1.00", fee="-0.01"),
        header=HEADER.replace("(", "（").replace(")", "）"),
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x_20261206_业务明细.csv", text.encode("gbk"))

    assert [line.amount for line in statement_lines(buffer.getvalue(), DAY)] == [100]


def test_a_day_without_rows_has_no_lines() -> None:
    content = gbk_named_zip({"a_业务明细.csv": detail()})

    assert statement_lines(content, DAY) == ()


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"a_业务明细(汇总).csv": detail()}, "exactly one"),
        ({"a_业务明细.csv": detail(), "b_业务明细.csv": detail()}, "exactly one"),
        ({"a_业务明细.csv": detail(header=HEADER.replace("服务费", "手续费"))}, "column"),
        (
            {"a_业务明细.csv": detail(row("1", "pay_1", "交易", "1.00", fee="-0.01") + ",x")},
            "cells",
        ),
        ({"a_业务明细.csv": detail(row("1", "pay_1", "交易", "1.001", fee="-0.01"))}, "decimals"),
        (
            {
                "a_业务明细.csv": detail(
                    row("1", "pay_1", "交易", "1.00", fee="-0.01", finished="2026-12-07 00:00:00")
                )
            },
            "not on",
        ),
        ({"a_业务明细.csv": detail(row("1", "pay_1", "退款", "-1.00", fee="0.01"))}, "reference"),
        ({"a_业务明细.csv": detail(row("", "pay_1", "交易", "1.00", fee="-0.01"))}, "reference"),
    ],
)
def test_a_bill_that_is_not_alipays_shape_is_unreadable(
    files: dict[str, str], problem: str
) -> None:
    with pytest.raises(Unreadable, match=problem):
        statement_lines(gbk_named_zip(files), DAY)


def test_not_a_zip_is_unreadable() -> None:
    with pytest.raises(Unreadable, match="zip"):
        statement_lines(b"PK\x03\x04 nope", DAY)


def test_the_day_boundary_is_beijing_midnight() -> None:
    late = datetime(2026, 12, 6, 15, 59, 59, tzinfo=UTC)  # 23:59:59 in Beijing

    assert beijing(late).startswith("2026-12-06")
    assert beijing(late + timedelta(seconds=1)).startswith("2026-12-07")
