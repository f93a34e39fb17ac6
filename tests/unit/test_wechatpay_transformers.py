"""WeChat Pay's words into ours: every trade state, refund status and error code it documents (held
to the simulator's own), its JSON, and the ALL trade bill with its yuan amounts and fees."""

from __future__ import annotations

import ast
import csv
import io
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from local_runtime.simulators.wechatpay import bills as simulator_bills
from local_runtime.simulators.wechatpay.notifications import REFUND_EVENTS
from local_runtime.simulators.wechatpay.resources import REFUND_STATUS, TRADE_STATE_DESC
from paycore.channels.base import (
    ChannelPaymentStatus,
    ChannelRefundStatus,
    StatementLineKind,
)
from paycore.channels.wechatpay.adapter import _fen
from paycore.channels.wechatpay.transformers import (
    BILL_COLUMNS,
    BILL_SUMMARY_COLUMNS,
    BillRefundStatus,
    ErrorCode,
    ErrorMeaning,
    RefundStatus,
    TradeState,
    Unreadable,
    bill_lines,
    bill_link,
    bill_refund_status,
    error_meaning,
    meaning_of,
    notification_envelope,
    payment_state,
    refund_answer,
    refund_notification,
    to_payment_status,
    to_refund_status,
)
from paycore.errors import ChannelRejected
from paycore.money import MAX_AMOUNT
from tests.support import ROOT

MCHID = "1900000109"
DAY = date(2030, 1, 1)
SIMULATOR = ROOT / "local_runtime" / "simulators" / "wechatpay"


def _simulator_error_codes() -> set[str]:
    """Every error code the simulator's source can answer: the second argument of each
    ``WechatPayError(status, code, ...)``."""
    codes = set()
    for path in SIMULATOR.glob("*.py"):
        for node in ast.walk(ast.parse(Path(path).read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "WechatPayError"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
            ):
                codes.add(str(node.args[1].value))
    return codes


def test_the_adapter_knows_every_word_the_simulator_writes() -> None:
    assert set(TRADE_STATE_DESC) <= {state.value for state in TradeState}
    # The two it never writes exist at WeChat Pay for payment-code pay only.
    assert {state.value for state in TradeState} - set(TRADE_STATE_DESC) == {
        "REVOKED",
        "USERPAYING",
    }
    refund_words = set(REFUND_STATUS.values()) | set(REFUND_EVENTS)
    assert {status.value for status in RefundStatus} == refund_words
    assert "SUCCESS" in {status.value for status in BillRefundStatus}
    simulator_codes = _simulator_error_codes()
    assert len(simulator_codes) >= 10, simulator_codes
    assert simulator_codes <= {code.value for code in ErrorCode}
    assert BILL_COLUMNS == simulator_bills.DETAIL_HEADER
    assert BILL_SUMMARY_COLUMNS == simulator_bills.SUMMARY_HEADER


@pytest.mark.parametrize(
    ("state", "ours"),
    [
        (TradeState.NOTPAY, ChannelPaymentStatus.PENDING),
        (TradeState.USERPAYING, ChannelPaymentStatus.PENDING),
        (TradeState.SUCCESS, ChannelPaymentStatus.SUCCEEDED),
        (TradeState.REFUND, ChannelPaymentStatus.SUCCEEDED),
        (TradeState.PAYERROR, ChannelPaymentStatus.FAILED),
        (TradeState.CLOSED, ChannelPaymentStatus.CLOSED),
        (TradeState.REVOKED, ChannelPaymentStatus.CLOSED),
    ],
)
def test_every_trade_state_maps_to_ours(state: TradeState, ours: ChannelPaymentStatus) -> None:
    assert to_payment_status(state) is ours


@pytest.mark.parametrize(
    ("status", "ours"),
    [
        (RefundStatus.PROCESSING, ChannelRefundStatus.PENDING),
        (RefundStatus.ABNORMAL, ChannelRefundStatus.PENDING),
        (RefundStatus.SUCCESS, ChannelRefundStatus.SUCCEEDED),
        (RefundStatus.CLOSED, ChannelRefundStatus.FAILED),
    ],
)
def test_every_refund_status_maps_to_ours(status: RefundStatus, ours: ChannelRefundStatus) -> None:
    assert to_refund_status(status) is ours


@pytest.mark.parametrize(
    ("status", "ours"),
    [
        (BillRefundStatus.SUCCESS, ChannelRefundStatus.SUCCEEDED),
        (BillRefundStatus.PROCESSING, ChannelRefundStatus.PENDING),
        (BillRefundStatus.CHANGE, ChannelRefundStatus.PENDING),
        (BillRefundStatus.REFUNDCLOSE, ChannelRefundStatus.FAILED),
    ],
)
def test_every_bill_refund_status_maps_to_ours(
    status: BillRefundStatus, ours: ChannelRefundStatus
) -> None:
    assert bill_refund_status(status) is ours


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        ("ORDER_NOT_EXIST", ErrorMeaning.NOT_FOUND),
        ("RESOURCE_NOT_EXISTS", ErrorMeaning.NOT_FOUND),
        ("ORDERPAID", ErrorMeaning.ALREADY_PAID),
        ("NO_STATEMENT_EXIST", ErrorMeaning.NO_STATEMENT),
        ("SYSTEM_ERROR", ErrorMeaning.UNAVAILABLE),
        ("FREQUENCY_LIMITED", ErrorMeaning.UNAVAILABLE),
        ("BANKERROR", ErrorMeaning.UNAVAILABLE),
        ("STATEMENT_CREATING", ErrorMeaning.UNAVAILABLE),
        ("PARAM_ERROR", ErrorMeaning.REJECTED),
        ("INVALID_REQUEST", ErrorMeaning.REJECTED),
        ("ORDER_CLOSED", ErrorMeaning.REJECTED),
        ("SIGN_ERROR", ErrorMeaning.REJECTED),
        ("APPID_MCHID_NOT_MATCH", ErrorMeaning.REJECTED),
        ("NOT_ENOUGH", ErrorMeaning.REJECTED),
        ("SOMETHING_NEW", ErrorMeaning.REJECTED),
    ],
)
def test_error_codes_mean_what_wechatpay_documents(code: str, meaning: ErrorMeaning) -> None:
    assert meaning_of(code) is meaning


def test_every_error_code_is_decided() -> None:
    assert {error_meaning(code) for code in ErrorCode} == set(ErrorMeaning)


# -- JSON ------------------------------------------------------------------------------------------


def _transaction(**more: Any) -> dict[str, Any]:
    return {
        "appid": "wx1",
        "mchid": MCHID,
        "out_trade_no": "pay_1234567",
        "transaction_id": "4200000001",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "amount": {"total": 1999, "currency": "CNY", "payer_total": 1999},
        **more,
    }


def test_a_paid_transaction_is_succeeded_with_its_fen_and_ids() -> None:
    state = payment_state(_transaction(), mchid=MCHID, notification_id="n-1")

    assert state.status is ChannelPaymentStatus.SUCCEEDED
    assert (state.amount, state.currency) == (1999, "CNY")
    assert state.channel_transaction_id == "4200000001"
    assert state.channel_order_id == "pay_1234567"
    assert state.notification_id == "n-1"
    assert state.failure_code is None


def test_an_unpaid_transaction_has_no_transaction_id_and_is_pending() -> None:
    body = _transaction(trade_state="NOTPAY", trade_state_desc="订单未支付")
    del body["transaction_id"]

    state = payment_state(body, mchid=MCHID)

    assert state.status is ChannelPaymentStatus.PENDING
    assert state.channel_transaction_id is None


def test_payerror_is_a_declined_payment_with_wechatpays_reason() -> None:
    body = _transaction(trade_state="PAYERROR", trade_state_desc="支付失败, 请重新下单支付")

    state = payment_state(body, mchid=MCHID)

    assert state.status is ChannelPaymentStatus.FAILED
    assert state.failure_code == "payment_declined"
    assert state.failure_message == "支付失败, 请重新下单支付 (WeChat Pay PAYERROR)"


@pytest.mark.parametrize(
    "change",
    [
        {"trade_state": "PAID"},
        {"trade_state": None},
        {"mchid": "1900000999"},
        {"amount": {"total": "1999", "currency": "CNY"}},  # fen are integers
        {"amount": {"total": 19.99, "currency": "CNY"}},
        {"amount": {"total": True, "currency": "CNY"}},
        {"amount": {"total": 0, "currency": "CNY"}},
        {"amount": {"total": 1999, "currency": "USD"}},
        {"amount": {"total": 1999}},
        {"out_trade_no": ""},
    ],
)
def test_a_transaction_that_is_not_the_documented_shape_is_unreadable(
    change: dict[str, Any],
) -> None:
    with pytest.raises(Unreadable):
        payment_state(_transaction(**change), mchid=MCHID)


def _refund(**more: Any) -> dict[str, Any]:
    return {
        "refund_id": "5000000001",
        "out_refund_no": "rfd_1",
        "transaction_id": "4200000001",
        "out_trade_no": "pay_1234567",
        "status": "SUCCESS",
        "amount": {"total": 1999, "refund": 500, "currency": "CNY", "refund_fee": 3},
        **more,
    }


def test_a_refund_answer_reads_status_and_its_notification_reads_refund_status() -> None:
    answer = refund_answer(_refund())
    notified = refund_notification(
        {
            **_refund(refund_status="CLOSED", mchid=MCHID),
            "status": "SUCCESS",  # not the field a notification is decided on
            "amount": {"total": 1999, "refund": 500, "payer_total": 1999, "payer_refund": 500},
        },
        mchid=MCHID,
        notification_id="n-2",
    )

    assert (answer.status, answer.amount, answer.currency) == (
        ChannelRefundStatus.SUCCEEDED,
        500,
        "CNY",
    )
    assert answer.channel_refund_id == "5000000001"
    assert notified.status is ChannelRefundStatus.FAILED
    assert notified.failure_code == "refund_rejected"
    assert (notified.amount, notified.currency, notified.notification_id) == (500, "CNY", "n-2")
    with pytest.raises(Unreadable):
        refund_answer({**_refund(), "status": None, "refund_status": "SUCCESS"})
    with pytest.raises(Unreadable):
        refund_notification(_refund(mchid=MCHID), mchid=MCHID, notification_id="n")


def test_a_refund_notification_of_another_merchant_is_unreadable() -> None:
    with pytest.raises(Unreadable):
        refund_notification(
            _refund(refund_status="SUCCESS", mchid="1"), mchid=MCHID, notification_id="n"
        )


def test_the_envelope_must_be_an_encrypted_aead_resource() -> None:
    envelope = {
        "id": "n-1",
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "resource": {
            "original_type": "transaction",
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": "QUJD",
            "associated_data": "transaction",
            "nonce": "abcdefghijkl",
        },
    }
    read = notification_envelope(envelope)
    assert (read.id, read.event_type, read.original_type) == (
        "n-1",
        "TRANSACTION.SUCCESS",
        "transaction",
    )
    for broken in (
        {**envelope, "resource_type": "plain"},
        {**envelope, "resource": {**envelope["resource"], "algorithm": "AES_128_CBC"}},
        {**envelope, "id": ""},
        {**envelope, "resource": "QUJD"},
    ):
        with pytest.raises(Unreadable):
            notification_envelope(broken)


def test_a_bill_link_carries_a_sha1() -> None:
    link = bill_link({"hash_type": "SHA1", "hash_value": "A" * 40, "download_url": "https://x"})
    assert link.hash_value == "a" * 40
    with pytest.raises(Unreadable):
        bill_link({"hash_type": "SM3", "hash_value": "a" * 40, "download_url": "https://x"})
    with pytest.raises(Unreadable):
        bill_link({"hash_type": "SHA1", "hash_value": "a" * 39, "download_url": "https://x"})


# -- the ALL trade bill ----------------------------------------------------------------------------


def _row(**values: str) -> list[str]:
    row = dict.fromkeys(BILL_COLUMNS, "")
    row.update(
        {
            "交易时间": "2030-01-01 10:00:00",
            "公众账号ID": "wx1",
            "商户号": MCHID,
            "特约商户号": "0",
            "微信订单号": "4200000001",
            "商户订单号": "pay_1234567",
            "用户标识": "o-1",
            "交易类型": "NATIVE",
            "交易状态": "SUCCESS",
            "付款银行": "OTHERS",
            "货币种类": "CNY",
            "应结订单金额": "19.99",
            "代金券金额": "0.00",
            "微信退款单号": "0",
            "商户退款单号": "0",
            "退款金额": "0.00",
            "充值券退款金额": "0.00",
            "商品名称": "Green tea 绿茶",
            "商户数据包": '{"decline":false,"x":"a,b"}',
            "手续费": "0.12000",
            "费率": "0.60%",
            "订单金额": "19.99",
            "申请退款金额": "0.00",
        }
    )
    row.update(values)
    return [row[column] for column in BILL_COLUMNS]


REFUND_ROW = {
    "交易时间": "2030-01-01 23:59:59",
    "交易状态": "REFUND",
    "应结订单金额": "0.00",
    "微信退款单号": "5000000001",
    "商户退款单号": "rfd_1",
    "退款金额": "5.00",
    "退款类型": "ORIGINAL",
    "退款状态": "SUCCESS",
    "手续费": "-0.03000",
    "订单金额": "0.00",
    "申请退款金额": "5.00",
}


def _bill(rows: list[list[str]], summary: list[str] | None = None, tick: str = "`") -> bytes:
    if summary is None:
        index = {column: i for i, column in enumerate(BILL_COLUMNS)}

        def total(column: str, five: bool = False) -> str:
            fen = 0
            for row in rows:
                text = row[index[column]][:-3] if five else row[index[column]]
                sign = -1 if text.startswith("-") else 1
                whole, cents = text.lstrip("-").split(".")
                fen += sign * (int(whole) * 100 + int(cents))
            sign = "-" if fen < 0 else ""
            text = f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"
            return text + "000" if five else text

        summary = [
            str(len(rows)),
            total("应结订单金额"),
            total("退款金额"),
            total("充值券退款金额"),
            total("手续费", five=True),
            total("订单金额"),
            total("申请退款金额"),
        ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(BILL_COLUMNS)
    for row in rows:
        writer.writerow([f"{tick}{value}" for value in row])
    writer.writerow(BILL_SUMMARY_COLUMNS)
    writer.writerow([f"{tick}{value}" for value in summary])
    return out.getvalue().encode()


def test_a_bill_gives_a_line_per_payment_and_refund_in_fen_with_signed_fees() -> None:
    lines = bill_lines(_bill([_row(), _row(**REFUND_ROW)]), DAY, MCHID)

    payment, refund = lines
    assert payment.kind is StatementLineKind.PAYMENT
    assert (payment.reference, payment.channel_transaction_id) == ("pay_1234567", "4200000001")
    assert (payment.amount, payment.currency, payment.fee) == (1999, "CNY", 12)
    assert (payment.status, payment.channel_status) == (ChannelPaymentStatus.SUCCEEDED, "SUCCESS")
    assert payment.occurred_at == "2030-01-01T02:00:00.000Z"  # 10:00 in Beijing
    assert refund.kind is StatementLineKind.REFUND
    assert (refund.reference, refund.channel_transaction_id) == ("rfd_1", "5000000001")
    assert (refund.amount, refund.fee) == (500, -3)  # the fee given back
    assert (refund.status, refund.channel_status) == (ChannelRefundStatus.SUCCEEDED, "SUCCESS")
    assert refund.occurred_at == "2030-01-01T15:59:59.000Z"


def test_a_bill_without_rows_has_no_lines() -> None:
    assert bill_lines(_bill([]), DAY, MCHID) == ()


def test_a_payment_row_showing_another_status_word_keeps_it() -> None:
    (line,) = bill_lines(_bill([_row(交易状态="CLOSED")]), DAY, MCHID)
    assert (line.status, line.channel_status) == (ChannelPaymentStatus.CLOSED, "CLOSED")


@pytest.mark.parametrize(
    "row",
    [
        {"交易时间": "2030-01-02 00:00:00"},  # the next Beijing day
        {"交易时间": "2030-01-01T10:00:00"},
        {"商户号": "1900000999"},
        {"货币种类": "USD"},
        {"交易状态": "PAID"},
        {"手续费": "0.12300"},  # not whole fen
        {"手续费": "0.12"},
        {"订单金额": "19.999"},
        {"订单金额": "-19.99"},
        {"订单金额": "1,999.00"},
        {"微信订单号": ""},
        {**REFUND_ROW, "退款状态": "DONE"},
    ],
)
def test_a_row_that_is_not_the_documented_shape_makes_the_bill_unreadable(
    row: dict[str, str],
) -> None:
    summary = ["1", "19.99", "0.00", "0.00", "0.12000", "19.99", "0.00"]
    with pytest.raises(Unreadable, match="bill line 2"):
        bill_lines(_bill([_row(**row)], summary), DAY, MCHID)


def test_a_bill_whose_summary_disagrees_or_whose_values_lack_the_backtick_is_unreadable() -> None:
    rows = [_row(), _row(**REFUND_ROW)]
    good = _bill(rows)
    assert bill_lines(good, DAY, MCHID)
    wrong_count = ["3", "19.99", "5.00", "0.00", "0.09000", "19.99", "5.00"]
    wrong_fee = ["2", "19.99", "5.00", "0.00", "0.15000", "19.99", "5.00"]
    for broken in (
        _bill(rows, wrong_count),
        _bill(rows, wrong_fee),
        _bill(rows, tick=""),
        good.replace("交易时间".encode(), "时间".encode(), 1),
        good.split("总交易单数".encode())[0],
        good + b"`1,`2\r\n",
        b"\xff\xfe" + good,
    ):
        with pytest.raises(Unreadable):
            bill_lines(broken, DAY, MCHID)


# -- money: one conversion each way (paycore.money) -------------------------------------------------


def test_api_amounts_are_fen_integers_and_bill_amounts_yuan_text() -> None:
    assert _fen(1999, "CNY") == 1999  # fen are CNY's minor unit: the integer passes unchanged
    assert _fen(MAX_AMOUNT, "CNY") == MAX_AMOUNT
    for amount, currency in ((1999, "USD"), (100, "JPY"), (MAX_AMOUNT + 1, "CNY"), (-1, "CNY")):
        with pytest.raises(ChannelRejected):
            _fen(amount, currency)
    with pytest.raises(ChannelRejected):
        _fen(True, "CNY")
    (line,) = bill_lines(
        _bill([_row(订单金额="0.01", 应结订单金额="0.01", 手续费="0.00000")]), DAY, MCHID
    )
    assert (line.amount, line.fee) == (1, 0)
    (line,) = bill_lines(
        _bill([_row(订单金额="10000000.00", 应结订单金额="10000000.00", 手续费="60000.00000")]),
        DAY,
        MCHID,
    )
    assert (line.amount, line.fee) == (1_000_000_000, 6_000_000)
