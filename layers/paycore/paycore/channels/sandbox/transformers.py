"""The sandbox's words into ours: statuses, error codes and the JSON and CSV it writes.

Every mapping is an exhaustive ``match`` over the sandbox's own enums, so mypy proves that a
status or code the sandbox documents is never forgotten. A body that is not the shape the
protocol promises raises ``Unreadable``; the adapter decides what that means (an unknown
outcome for an answer, a rejection for a notification).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from datetime import date
from enum import Enum, StrEnum, auto
from typing import Any, assert_never

from paycore.channels.base import (
    ChannelOrder,
    ChannelPaymentState,
    ChannelPaymentStatus,
    ChannelRefundState,
    ChannelRefundStatus,
    NextAction,
    StatementLine,
    StatementLineKind,
)
from paycore.channels.reading import Unreadable, optional_text, text
from paycore.clock import parse_rfc3339, rfc3339
from paycore.money import AmountFormatError, from_minor_units

NOTIFY_TYPE = "trade.status_changed"
REFUND_NOTIFY_TYPE = "refund.status_changed"
STATEMENT_COLUMNS = (
    "kind",
    "reference",
    "transaction_id",
    "out_trade_no",
    "amount",
    "currency",
    "fee",
    "status",
    "occurred_at",
)
_DIGITS = re.compile(r"[0-9]{1,13}", re.ASCII)


class SandboxStatus(StrEnum):
    """The sandbox's own order statuses, as it writes them."""

    WAIT_BUYER_PAY = "WAIT_BUYER_PAY"
    SUCCESS = "SUCCESS"
    DECLINED = "DECLINED"
    CLOSED = "CLOSED"


class SandboxRefundStatus(StrEnum):
    """The sandbox's own refund statuses, as it writes them."""

    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


class SandboxErrorCode(StrEnum):
    """The sandbox's stable error codes (local_runtime/sandbox/README.md, "Errors")."""

    INVALID_PARAMETER = "INVALID_PARAMETER"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    SIGNATURE_MISSING = "SIGNATURE_MISSING"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    TIMESTAMP_OUT_OF_RANGE = "TIMESTAMP_OUT_OF_RANGE"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    PAY_LINK_NOT_FOUND = "PAY_LINK_NOT_FOUND"
    ROUTE_NOT_FOUND = "ROUTE_NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    ORDER_PARAMS_MISMATCH = "ORDER_PARAMS_MISMATCH"
    ORDER_PAID = "ORDER_PAID"
    ORDER_CLOSED = "ORDER_CLOSED"
    ORDER_DECLINED = "ORDER_DECLINED"
    ORDER_NOT_PAID = "ORDER_NOT_PAID"
    ORDER_AMBIGUOUS = "ORDER_AMBIGUOUS"
    REFUND_NOT_FOUND = "REFUND_NOT_FOUND"
    REFUND_PARAMS_MISMATCH = "REFUND_PARAMS_MISMATCH"
    REFUND_EXCEEDS_PAID = "REFUND_EXCEEDS_PAID"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class ErrorMeaning(Enum):
    """What a sandbox error answer means for the caller."""

    REJECTED = auto()  # the sandbox saw the request and refused it: final
    NOT_FOUND = auto()  # no such order or refund (a query's answer, not a failure)
    ALREADY_PAID = auto()  # closing a paid order: the paid order rides along
    UNAVAILABLE = auto()  # the sandbox failed: the outcome is unknown


class SandboxDeclineReason(StrEnum):
    BUYER_DECLINED = "BUYER_DECLINED"


class SandboxRefundFailure(StrEnum):
    REFUND_REJECTED = "REFUND_REJECTED"


def to_payment_status(status: SandboxStatus) -> ChannelPaymentStatus:
    """Map a sandbox order status into ours; mypy proves the match covers every status."""
    match status:
        case SandboxStatus.WAIT_BUYER_PAY:
            return ChannelPaymentStatus.PENDING
        case SandboxStatus.SUCCESS:
            return ChannelPaymentStatus.SUCCEEDED
        case SandboxStatus.DECLINED:
            return ChannelPaymentStatus.FAILED
        case SandboxStatus.CLOSED:
            return ChannelPaymentStatus.CLOSED
        case _:
            assert_never(status)


def to_refund_status(status: SandboxRefundStatus) -> ChannelRefundStatus:
    """Map a sandbox refund status into ours; mypy proves the match covers every status."""
    match status:
        case SandboxRefundStatus.PROCESSING:
            return ChannelRefundStatus.PENDING
        case SandboxRefundStatus.SUCCESS:
            return ChannelRefundStatus.SUCCEEDED
        case SandboxRefundStatus.FAILED:
            return ChannelRefundStatus.FAILED
        case _:
            assert_never(status)


def error_meaning(code: SandboxErrorCode) -> ErrorMeaning:
    """What each sandbox error code means for us; mypy proves every code is decided."""
    match code:
        case SandboxErrorCode.ORDER_NOT_FOUND | SandboxErrorCode.REFUND_NOT_FOUND:
            return ErrorMeaning.NOT_FOUND
        case SandboxErrorCode.ORDER_PAID:
            return ErrorMeaning.ALREADY_PAID
        case SandboxErrorCode.SYSTEM_ERROR | SandboxErrorCode.INTERNAL_ERROR:
            return ErrorMeaning.UNAVAILABLE
        case (
            SandboxErrorCode.INVALID_PARAMETER
            | SandboxErrorCode.BODY_TOO_LARGE
            | SandboxErrorCode.SIGNATURE_MISSING
            | SandboxErrorCode.SIGNATURE_INVALID
            | SandboxErrorCode.TIMESTAMP_OUT_OF_RANGE
            | SandboxErrorCode.PAY_LINK_NOT_FOUND
            | SandboxErrorCode.ROUTE_NOT_FOUND
            | SandboxErrorCode.METHOD_NOT_ALLOWED
            | SandboxErrorCode.ORDER_PARAMS_MISMATCH
            | SandboxErrorCode.ORDER_CLOSED
            | SandboxErrorCode.ORDER_DECLINED
            | SandboxErrorCode.ORDER_NOT_PAID
            | SandboxErrorCode.ORDER_AMBIGUOUS
            | SandboxErrorCode.REFUND_PARAMS_MISMATCH
            | SandboxErrorCode.REFUND_EXCEEDS_PAID
        ):
            return ErrorMeaning.REJECTED
        case _:
            assert_never(code)


def meaning_of(code: str) -> ErrorMeaning:
    """A code the sandbox wrote; one it does not document is still its refusal."""
    try:
        return error_meaning(SandboxErrorCode(code))
    except ValueError:
        return ErrorMeaning.REJECTED


def decline_code(reason: SandboxDeclineReason) -> str:
    """A documented decline reason in paycore's words (stable, lower-case codes)."""
    match reason:
        case SandboxDeclineReason.BUYER_DECLINED:
            return "buyer_declined"
        case _:
            assert_never(reason)


def refund_failure_code(reason: SandboxRefundFailure) -> str:
    match reason:
        case SandboxRefundFailure.REFUND_REJECTED:
            return "refund_rejected"
        case _:
            assert_never(reason)


# -- reading the sandbox's JSON ---------------------------------------------------------------


def _amount(body: Mapping[str, Any]) -> int:
    value = body.get("amount")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise Unreadable("amount must be a positive integer")
    return value


def _status(body: Mapping[str, Any]) -> ChannelPaymentStatus:
    try:
        return to_payment_status(SandboxStatus(text(body, "status")))
    except ValueError:
        raise Unreadable(f"unknown status {body.get('status')!r}") from None


def _pay_link(body: Mapping[str, Any]) -> NextAction | None:
    url = optional_text(body, "pay_url")
    return NextAction.redirect(url) if url else None


def read_order(body: Mapping[str, Any]) -> tuple[ChannelOrder, int, str]:
    """A create answer: the order, plus its amount and currency to compare with ours."""
    order = ChannelOrder(
        out_trade_no=text(body, "out_trade_no"),
        channel_order_id=text(body, "channel_order_id"),
        next_action=NextAction.redirect(text(body, "pay_url")),
    )
    return order, _amount(body), text(body, "currency")


def payment_state(
    body: Mapping[str, Any], notification_id: str | None = None
) -> ChannelPaymentState:
    """An order as a query, a close or a notification describes it."""
    status = _status(body)
    failed = status is ChannelPaymentStatus.FAILED
    channel_code = optional_text(body, "failure_code", empty_is_none=False)
    return ChannelPaymentState(
        out_trade_no=text(body, "out_trade_no"),
        status=status,
        amount=_amount(body),
        currency=text(body, "currency"),
        channel_order_id=text(body, "channel_order_id"),
        channel_transaction_id=optional_text(body, "transaction_id", empty_is_none=False),
        failure_code=_failure_code(channel_code) if failed else None,
        failure_message=_failure_message(channel_code, body) if failed else None,
        notification_id=notification_id,
        next_action=_pay_link(body),
    )


def refund_state(body: Mapping[str, Any], notification_id: str | None = None) -> ChannelRefundState:
    """A refund as a refund call, a query or a notification describes it."""
    try:
        status = to_refund_status(SandboxRefundStatus(text(body, "status")))
    except ValueError:
        raise Unreadable(f"unknown refund status {body.get('status')!r}") from None
    channel_code = optional_text(body, "failure_code", empty_is_none=False)
    code = message = None
    if status is ChannelRefundStatus.FAILED:
        try:
            code = refund_failure_code(SandboxRefundFailure(channel_code or ""))
            known = True
        except ValueError:
            code, known = "refund_failed", False
        message = optional_text(body, "failure_message") or "the sandbox rejected the refund"
        if channel_code is not None and not known:
            message = f"{message} (sandbox code {channel_code})"
    return ChannelRefundState(
        out_refund_no=text(body, "out_refund_no"),
        out_trade_no=text(body, "out_trade_no"),
        status=status,
        amount=_amount(body),
        currency=text(body, "currency"),
        channel_refund_id=text(body, "refund_id"),
        failure_code=code,
        failure_message=message,
        notification_id=notification_id,
    )


def _known_decline(channel_code: str | None) -> SandboxDeclineReason | None:
    try:
        return SandboxDeclineReason(channel_code or "")
    except ValueError:
        return None


def _failure_code(channel_code: str | None) -> str:
    """The sandbox's decline reason in paycore's words; an unknown one is a generic decline."""
    reason = _known_decline(channel_code)
    return decline_code(reason) if reason is not None else "payment_declined"


def _failure_message(channel_code: str | None, body: Mapping[str, Any]) -> str:
    message = optional_text(body, "failure_message") or "the sandbox declined the payment"
    if channel_code is not None and _known_decline(channel_code) is None:
        return f"{message} (sandbox code {channel_code})"
    return message


def read_notification(body: Mapping[str, Any]) -> ChannelPaymentState | ChannelRefundState:
    notify_type = body.get("notify_type")
    if notify_type == NOTIFY_TYPE:
        return payment_state(body, notification_id=text(body, "notify_id"))
    if notify_type == REFUND_NOTIFY_TYPE:
        return refund_state(body, notification_id=text(body, "notify_id"))
    raise Unreadable(f"notify_type must be {NOTIFY_TYPE!r} or {REFUND_NOTIFY_TYPE!r}")


# -- reading the statement file ------------------------------------------------------------------


def statement_lines(content: bytes, day: date) -> tuple[StatementLine, ...]:
    """The lines of a statement file (local_runtime/sandbox/README.md, "daily statement")."""
    try:
        rows = list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))
    except (UnicodeDecodeError, csv.Error):
        raise Unreadable("the statement is not a UTF-8 CSV file") from None
    if not rows or tuple(rows[0]) != STATEMENT_COLUMNS:
        raise Unreadable("the statement does not start with its header")
    lines = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(STATEMENT_COLUMNS):
            raise Unreadable(f"statement line {number} has {len(row)} fields")
        try:
            lines.append(_statement_line(dict(zip(STATEMENT_COLUMNS, row, strict=True)), day))
        except Unreadable as exc:
            raise Unreadable(f"statement line {number}: {exc}") from None
    return tuple(lines)


def _statement_line(row: dict[str, str], day: date) -> StatementLine:
    currency = row["currency"]
    try:
        amount = from_minor_units(_integer(row["amount"]), currency)
        fee = from_minor_units(_integer(row["fee"]), currency)
    except AmountFormatError as exc:
        raise Unreadable(str(exc)) from None
    status: ChannelPaymentStatus | ChannelRefundStatus
    try:
        match row["kind"]:
            case "PAYMENT":
                kind = StatementLineKind.PAYMENT
                status = to_payment_status(SandboxStatus(row["status"]))
            case "REFUND":
                kind = StatementLineKind.REFUND
                status = to_refund_status(SandboxRefundStatus(row["status"]))
            case other:
                raise Unreadable(f"unknown kind {other!r}")
    except ValueError as exc:
        if isinstance(exc, Unreadable):
            raise
        raise Unreadable(f"unknown status {row['status']!r}") from None
    try:
        occurred = parse_rfc3339(row["occurred_at"])
    except ValueError:
        raise Unreadable("occurred_at is not RFC 3339") from None
    if occurred.date() != day:
        raise Unreadable(f"occurred_at {row['occurred_at']} is not on {day}")
    if not row["reference"] or not row["transaction_id"]:
        raise Unreadable("reference and transaction_id must not be empty")
    return StatementLine(
        kind=kind,
        reference=row["reference"],
        channel_transaction_id=row["transaction_id"],
        amount=amount,
        currency=currency,
        fee=fee,
        status=status,
        channel_status=row["status"],
        occurred_at=rfc3339(occurred),
    )


def _integer(text: str) -> int:
    if not _DIGITS.fullmatch(text):
        raise Unreadable(f"{text!r} is not a whole number of minor units")
    return int(text)
