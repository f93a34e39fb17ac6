"""The sandbox's words into ours: every status, error code and statement field it documents."""

from __future__ import annotations

from datetime import date

import pytest

from local_runtime.sandbox.errors import ErrorCode
from local_runtime.sandbox.orders import RefundStatus, TradeStatus
from local_runtime.sandbox.statements import COLUMNS
from paycore.channels.base import (
    ChannelPaymentStatus,
    ChannelRefundStatus,
    StatementLine,
    StatementLineKind,
)
from paycore.channels.sandbox.transformers import (
    STATEMENT_COLUMNS,
    ErrorMeaning,
    SandboxErrorCode,
    SandboxRefundStatus,
    SandboxStatus,
    Unreadable,
    error_meaning,
    meaning_of,
    statement_lines,
    to_payment_status,
    to_refund_status,
)

DAY = date(2030, 1, 1)
HEADER = ",".join(STATEMENT_COLUMNS)


def test_the_adapter_knows_every_word_the_sandbox_writes() -> None:
    assert {s.value for s in SandboxStatus} == {s.value for s in TradeStatus}
    assert {s.value for s in SandboxRefundStatus} == {s.value for s in RefundStatus}
    assert {c.value for c in SandboxErrorCode} == {c.value for c in ErrorCode}
    assert STATEMENT_COLUMNS == COLUMNS


@pytest.mark.parametrize(
    ("sandbox_status", "ours"),
    [
        (SandboxStatus.WAIT_BUYER_PAY, ChannelPaymentStatus.PENDING),
        (SandboxStatus.SUCCESS, ChannelPaymentStatus.SUCCEEDED),
        (SandboxStatus.DECLINED, ChannelPaymentStatus.FAILED),
        (SandboxStatus.CLOSED, ChannelPaymentStatus.CLOSED),
    ],
)
def test_every_order_status_maps_to_ours(
    sandbox_status: SandboxStatus, ours: ChannelPaymentStatus
) -> None:
    assert to_payment_status(sandbox_status) is ours


@pytest.mark.parametrize(
    ("sandbox_status", "ours"),
    [
        (SandboxRefundStatus.PROCESSING, ChannelRefundStatus.PENDING),
        (SandboxRefundStatus.SUCCESS, ChannelRefundStatus.SUCCEEDED),
        (SandboxRefundStatus.FAILED, ChannelRefundStatus.FAILED),
    ],
)
def test_every_refund_status_maps_to_ours(
    sandbox_status: SandboxRefundStatus, ours: ChannelRefundStatus
) -> None:
    assert to_refund_status(sandbox_status) is ours


EXPECTED_MEANINGS = {
    SandboxErrorCode.ORDER_NOT_FOUND: ErrorMeaning.NOT_FOUND,
    SandboxErrorCode.REFUND_NOT_FOUND: ErrorMeaning.NOT_FOUND,
    SandboxErrorCode.ORDER_PAID: ErrorMeaning.ALREADY_PAID,
    SandboxErrorCode.SYSTEM_ERROR: ErrorMeaning.UNAVAILABLE,
    SandboxErrorCode.INTERNAL_ERROR: ErrorMeaning.UNAVAILABLE,
}


@pytest.mark.parametrize("code", list(SandboxErrorCode))
def test_every_error_code_has_a_meaning(code: SandboxErrorCode) -> None:
    assert error_meaning(code) is EXPECTED_MEANINGS.get(code, ErrorMeaning.REJECTED)
    assert meaning_of(code.value) is error_meaning(code)


def test_an_undocumented_error_code_is_still_a_refusal() -> None:
    assert meaning_of("SOMETHING_NEW") is ErrorMeaning.REJECTED


def test_a_statement_is_read_into_neutral_lines() -> None:
    content = (
        f"{HEADER}\r\n"
        "PAYMENT,pay_1,sbxt_1,pay_1,1999,CNY,0,SUCCESS,2030-01-01T08:00:00.000Z\r\n"
        "REFUND,rfd_1,sbxr_1,pay_1,500,CNY,0,SUCCESS,2030-01-01T09:00:00.000Z\r\n"
        "PAYMENT,pay_2,sbxt_2,pay_2,1500,JPY,3,CLOSED,2030-01-01T23:59:59.999Z\r\n"
    ).encode()

    lines = statement_lines(content, DAY)

    assert lines == (
        StatementLine(
            kind=StatementLineKind.PAYMENT,
            reference="pay_1",
            channel_transaction_id="sbxt_1",
            amount=1999,
            currency="CNY",
            fee=0,
            status=ChannelPaymentStatus.SUCCEEDED,
            channel_status="SUCCESS",
            occurred_at="2030-01-01T08:00:00.000Z",
        ),
        StatementLine(
            kind=StatementLineKind.REFUND,
            reference="rfd_1",
            channel_transaction_id="sbxr_1",
            amount=500,
            currency="CNY",
            fee=0,
            status=ChannelRefundStatus.SUCCEEDED,
            channel_status="SUCCESS",
            occurred_at="2030-01-01T09:00:00.000Z",
        ),
        StatementLine(
            kind=StatementLineKind.PAYMENT,
            reference="pay_2",
            channel_transaction_id="sbxt_2",
            amount=1500,
            currency="JPY",
            fee=3,
            status=ChannelPaymentStatus.CLOSED,
            channel_status="CLOSED",
            occurred_at="2030-01-01T23:59:59.999Z",
        ),
    )


def test_a_statement_without_trades_has_no_lines() -> None:
    assert statement_lines(f"{HEADER}\r\n".encode(), DAY) == ()


@pytest.mark.parametrize(
    "line",
    [
        "PAYMENT,pay_1,sbxt_1,pay_1,19.99,CNY,0,SUCCESS,2030-01-01T08:00:00Z",  # major units
        "PAYMENT,pay_1,sbxt_1,pay_1,-1,CNY,0,SUCCESS,2030-01-01T08:00:00Z",
        "PAYMENT,pay_1,sbxt_1,pay_1,1999,XXX,0,SUCCESS,2030-01-01T08:00:00Z",
        "PAYMENT,pay_1,sbxt_1,pay_1,1999,CNY,,SUCCESS,2030-01-01T08:00:00Z",
        "PAYMENT,pay_1,sbxt_1,pay_1,1999,CNY,0,PROCESSING,2030-01-01T08:00:00Z",
        "REFUND,rfd_1,sbxr_1,pay_1,1,CNY,0,WAIT_BUYER_PAY,2030-01-01T08:00:00Z",
        "CHARGEBACK,pay_1,sbxt_1,pay_1,1999,CNY,0,SUCCESS,2030-01-01T08:00:00Z",
        "PAYMENT,pay_1,sbxt_1,pay_1,1999,CNY,0,SUCCESS,yesterday",
        "PAYMENT,pay_1,sbxt_1,pay_1,1999,CNY,0,SUCCESS,2030-01-02T08:00:00Z",  # another day
        "PAYMENT,,sbxt_1,pay_1,1999,CNY,0,SUCCESS,2030-01-01T08:00:00Z",
        "PAYMENT,pay_1,sbxt_1,pay_1,1999,CNY,0,SUCCESS",
    ],
)
def test_a_line_that_is_not_the_documented_shape_makes_the_statement_unreadable(
    line: str,
) -> None:
    with pytest.raises(Unreadable, match="line 2"):
        statement_lines(f"{HEADER}\r\n{line}\r\n".encode(), DAY)


@pytest.mark.parametrize("content", [b"", b"kind,reference\r\n", b"\xff\xfe", b"<html></html>"])
def test_a_file_that_is_not_a_statement_is_unreadable(content: bytes) -> None:
    with pytest.raises(Unreadable):
        statement_lines(content, DAY)
