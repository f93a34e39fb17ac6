# Alipay's bill is Chinese text with full-width punctuation, read exactly as Alipay writes it.
# ruff: noqa: RUF001
"""Alipay's words into ours: result and error codes, trade statuses, times, amounts, the
answers of ``alipay.trade.*``, notifications and the daily trade bill.

Every mapping is an exhaustive ``match`` over Alipay's own enums, so mypy proves that a status
or code never goes undecided. A body that is not the shape the protocol promises raises
``Unreadable``; the adapter decides what that means (an unknown outcome for an answer, a
rejection for a notification).

Times: Alipay writes Beijing time without a zone (``yyyy-MM-dd HH:mm:ss``). Asia/Shanghai has
been UTC+8 without daylight saving since 1991, so a fixed offset is exact for every date a
payment can have, and needs no time-zone database on Lambda. Amounts are yuan strings, read and
written through ``paycore.money`` only.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from enum import Enum, StrEnum, auto
from typing import Any, assert_never

from paycore.channels.base import (
    ChannelPaymentState,
    ChannelPaymentStatus,
    ChannelRefundState,
    ChannelRefundStatus,
    StatementLine,
    StatementLineKind,
)
from paycore.channels.reading import Unreadable, optional_text
from paycore.channels.reading import text as text_field
from paycore.clock import rfc3339
from paycore.money import AmountFormatError, from_major_units, to_major_units

CURRENCY = "CNY"  # alipay.trade.page.pay takes and pays yuan only
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
NOTIFY_TYPE = "trade_status_sync"
_BEIJING_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", re.ASCII)
_ORDER_ID = re.compile(r"([A-Za-z0-9_]{1,64})@([0-9]{14})", re.ASCII)


# -- Alipay's enums ------------------------------------------------------------------------------


class AlipayTradeStatus(StrEnum):
    """``trade_status`` of a query or a notification."""

    WAIT_BUYER_PAY = "WAIT_BUYER_PAY"  # created, not paid yet
    TRADE_SUCCESS = "TRADE_SUCCESS"  # paid (refundable)
    TRADE_FINISHED = "TRADE_FINISHED"  # paid, no longer refundable
    TRADE_CLOSED = "TRADE_CLOSED"  # closed unpaid (closed, expired), or paid and fully refunded


class AlipayRefundStatus(StrEnum):
    """``refund_status`` of ``alipay.trade.fastpay.refund.query``: the only value Alipay writes
    (a refund still processing has none; one not received or failed has no refund fields)."""

    REFUND_SUCCESS = "REFUND_SUCCESS"


class ResultCode(StrEnum):
    """The gateway's ``code``."""

    SUCCESS = "10000"
    SERVICE_UNAVAILABLE = "20000"  # Alipay could not answer: call again with the same values
    INSUFFICIENT_TOKEN_PERMISSIONS = "20001"  # noqa: S105 - a result code, not a secret
    MISSING_ARGUMENTS = "40001"
    INVALID_ARGUMENTS = "40002"
    BUSINESS_FAILED = "40004"  # see sub_code
    INSUFFICIENT_PERMISSIONS = "40006"


class SubCode(StrEnum):
    """The ``sub_code``s this adapter tells apart (each Alipay documents for these methods and
    the simulator writes); any other is decided by its ``code``."""

    SYSTEM_ERROR = "ACQ.SYSTEM_ERROR"
    AOP_SYSTEM_ERROR = "aop.ACQ.SYSTEM_ERROR"
    UNKNOWN_ERROR = "isp.unknow-error"  # Alipay's spelling
    TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
    TRADE_STATUS_ERROR = "ACQ.TRADE_STATUS_ERROR"
    TRADE_HAS_CLOSE = "ACQ.TRADE_HAS_CLOSE"
    TRADE_HAS_FINISHED = "ACQ.TRADE_HAS_FINISHED"
    CONTEXT_INCONSISTENT = "ACQ.CONTEXT_INCONSISTENT"
    INVALID_PARAMETER = "ACQ.INVALID_PARAMETER"
    REFUND_AMT_NOT_EQUAL_TOTAL = "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    DISCORDANT_REPEAT_REQUEST = "ACQ.DISCORDANT_REPEAT_REQUEST"
    SELLER_BALANCE_NOT_ENOUGH = "ACQ.SELLER_BALANCE_NOT_ENOUGH"
    BILL_NOT_EXIST = "isp.bill_not_exist"
    MISSING_METHOD = "isv.missing-method"
    MISSING_APP_ID = "isv.missing-app-id"
    MISSING_SIGNATURE = "isv.missing-signature"
    MISSING_SIGNATURE_TYPE = "isv.missing-signature-type"
    MISSING_TIMESTAMP = "isv.missing-timestamp"
    MISSING_VERSION = "isv.missing-version"
    INVALID_APP_ID = "isv.invalid-app-id"
    INVALID_METHOD = "isv.invalid-method"
    INVALID_PARAMETER_ISV = "isv.invalid-parameter"
    INVALID_SIGNATURE_TYPE = "isv.invalid-signature-type"
    INVALID_CHARSET = "isv.invalid-charset"
    INVALID_FORMAT = "isv.invalid-format"
    INVALID_SIGNATURE = "isv.invalid-signature"
    INVALID_TIMESTAMP = "isv.invalid-timestamp"


class BillKind(StrEnum):
    """业务类型 of a trade bill row."""

    PAYMENT = "交易"
    REFUND = "退款"


class ErrorMeaning(Enum):
    """What an error answer means for us."""

    UNAVAILABLE = auto()  # no usable answer: the outcome is unknown, ask again
    NOT_FOUND = auto()  # Alipay has no such trade
    TRADE_STATUS = auto()  # the trade is not in a state for this call (paid / not paid)
    REFUND_FAILED = auto()  # the refund was received and failed: nothing refunded
    NO_BILL = auto()  # no bill for that day
    REJECTED = auto()  # a final "no"


# -- the mappings ------------------------------------------------------------------------------


def to_payment_status(status: AlipayTradeStatus, paid: bool) -> ChannelPaymentStatus:
    """Map a trade status into ours; ``paid`` tells a TRADE_CLOSED that was paid (then fully
    refunded: the buyer's money was taken) from one closed unpaid. Alipay has no "declined":
    a buyer who gives up leaves the trade to close. mypy proves every status is mapped."""
    match status:
        case AlipayTradeStatus.WAIT_BUYER_PAY:
            return ChannelPaymentStatus.PENDING
        case AlipayTradeStatus.TRADE_SUCCESS | AlipayTradeStatus.TRADE_FINISHED:
            return ChannelPaymentStatus.SUCCEEDED
        case AlipayTradeStatus.TRADE_CLOSED:
            return ChannelPaymentStatus.SUCCEEDED if paid else ChannelPaymentStatus.CLOSED
        case _:
            assert_never(status)


def to_refund_status(status: AlipayRefundStatus | None) -> ChannelRefundStatus:
    """A refund query's ``refund_status`` (None: received, still processing)."""
    match status:
        case AlipayRefundStatus.REFUND_SUCCESS:
            return ChannelRefundStatus.SUCCEEDED
        case None:
            return ChannelRefundStatus.PENDING
        case _:
            assert_never(status)


def result_meaning(code: ResultCode) -> ErrorMeaning:
    """What a non-success ``code`` means when its sub_code does not decide."""
    match code:
        case ResultCode.SERVICE_UNAVAILABLE:
            return ErrorMeaning.UNAVAILABLE
        case (
            ResultCode.SUCCESS
            | ResultCode.INSUFFICIENT_TOKEN_PERMISSIONS
            | ResultCode.MISSING_ARGUMENTS
            | ResultCode.INVALID_ARGUMENTS
            | ResultCode.BUSINESS_FAILED
            | ResultCode.INSUFFICIENT_PERMISSIONS
        ):
            return ErrorMeaning.REJECTED
        case _:
            assert_never(code)


def error_meaning(code: SubCode) -> ErrorMeaning:
    """What each sub_code means; mypy proves every one is decided."""
    match code:
        case SubCode.SYSTEM_ERROR | SubCode.AOP_SYSTEM_ERROR | SubCode.UNKNOWN_ERROR:
            return ErrorMeaning.UNAVAILABLE
        case SubCode.TRADE_NOT_EXIST:
            return ErrorMeaning.NOT_FOUND
        case SubCode.TRADE_STATUS_ERROR:
            return ErrorMeaning.TRADE_STATUS
        case SubCode.SELLER_BALANCE_NOT_ENOUGH:
            return ErrorMeaning.REFUND_FAILED
        case SubCode.BILL_NOT_EXIST:
            return ErrorMeaning.NO_BILL
        case (
            SubCode.TRADE_HAS_CLOSE
            | SubCode.TRADE_HAS_FINISHED
            | SubCode.CONTEXT_INCONSISTENT
            | SubCode.INVALID_PARAMETER
            | SubCode.REFUND_AMT_NOT_EQUAL_TOTAL
            | SubCode.DISCORDANT_REPEAT_REQUEST
            | SubCode.MISSING_METHOD
            | SubCode.MISSING_APP_ID
            | SubCode.MISSING_SIGNATURE
            | SubCode.MISSING_SIGNATURE_TYPE
            | SubCode.MISSING_TIMESTAMP
            | SubCode.MISSING_VERSION
            | SubCode.INVALID_APP_ID
            | SubCode.INVALID_METHOD
            | SubCode.INVALID_PARAMETER_ISV
            | SubCode.INVALID_SIGNATURE_TYPE
            | SubCode.INVALID_CHARSET
            | SubCode.INVALID_FORMAT
            | SubCode.INVALID_SIGNATURE
            | SubCode.INVALID_TIMESTAMP
        ):
            return ErrorMeaning.REJECTED
        case _:
            assert_never(code)


def meaning_of(code: str, sub_code: str | None) -> ErrorMeaning:
    """An error answer's meaning: a 20000 is always "ask again"; otherwise the sub_code
    decides when it is one we know, else the code (one Alipay does not document: a refusal)."""
    try:
        result = ResultCode(code)
    except ValueError:
        return ErrorMeaning.REJECTED
    if result is ResultCode.SERVICE_UNAVAILABLE:
        return ErrorMeaning.UNAVAILABLE
    try:
        return error_meaning(SubCode(sub_code or ""))
    except ValueError:
        return result_meaning(result)


def bill_kind(word: str) -> BillKind | None:
    try:
        return BillKind(word)
    except ValueError:
        return None


# -- times and amounts -------------------------------------------------------------------------


def beijing(moment: datetime) -> str:
    """An aware moment as Alipay writes it: ``2026-12-06 09:30:00`` (Beijing time)."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no Beijing time")
    return moment.astimezone(BEIJING).strftime(TIME_FORMAT)


def parse_beijing(text: str) -> datetime:
    """An Alipay time (Beijing ``yyyy-MM-dd HH:mm:ss``, ``gmt_refund`` adds ``.SSS``) as an
    aware UTC datetime."""
    head, _, millis = text.partition(".")
    if not _BEIJING_TIME.fullmatch(head) or (millis and not re.fullmatch(r"[0-9]{3}", millis)):
        raise Unreadable(f"{text!r} is not an Alipay time")
    try:
        local = datetime.strptime(head, TIME_FORMAT).replace(tzinfo=BEIJING)
    except ValueError:
        raise Unreadable(f"{text!r} is not an Alipay time") from None
    return (local + timedelta(milliseconds=int(millis or 0))).astimezone(UTC)


def beijing_day(moment: datetime) -> date:
    return moment.astimezone(BEIJING).date()


def yuan(amount: int) -> str:
    """Minor units of CNY as Alipay's yuan string (``1999`` -> ``"19.99"``)."""
    return to_major_units(amount, CURRENCY)


def parse_yuan(text: object) -> int:
    """A non-negative yuan string as fen."""
    if not isinstance(text, str):
        raise Unreadable(f"an amount must be a yuan string, not {text!r}")
    try:
        return from_major_units(text, CURRENCY)
    except AmountFormatError as exc:
        raise Unreadable(str(exc)) from None


def parse_signed_yuan(text: str) -> int:
    """A bill cell such as ``-0.06`` or ``19.99`` as signed fen."""
    negative = text.startswith("-")
    value = parse_yuan(text[1:] if negative else text)
    return -value if negative else value


# -- the channel order id -----------------------------------------------------------------------


def page_pay_order_id(out_trade_no: str, expires_at: datetime) -> str:
    """Our id of a page.pay order whose link the buyer got: ``<out_trade_no>@<its
    time_expire, yyyyMMddHHmmss Beijing>``. Alipay has no id of its own until the trade is
    paid (``trade_no``), and only creates the trade once the buyer opens the page; this id
    proves the buyer got a link and says until when it can be paid."""
    return f"{out_trade_no}@{expires_at.astimezone(BEIJING):%Y%m%d%H%M%S}"


def handed_out_until(out_trade_no: str, channel_order_id: str | None) -> datetime | None:
    """When the page.pay link of this order expires, if ``channel_order_id`` is one of our
    page.pay ids for it; ``datetime.max`` (UTC) for an order the buyer got without a known
    expiry (e.g. adopted by a query); None when the buyer never got a link from us."""
    if not channel_order_id:
        return None
    found = _ORDER_ID.fullmatch(channel_order_id)
    if found is None or found.group(1) != out_trade_no:
        return datetime.max.replace(tzinfo=UTC)
    try:
        local = datetime.strptime(found.group(2), "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)
    return local.astimezone(UTC)


# -- answers ------------------------------------------------------------------------------------


def trade_status(body: Mapping[str, Any]) -> AlipayTradeStatus:
    try:
        return AlipayTradeStatus(text_field(body, "trade_status"))
    except ValueError:
        raise Unreadable(f"unknown trade_status {body.get('trade_status')!r}") from None


def _paid(body: Mapping[str, Any]) -> bool:
    """Whether the trade was paid: Alipay writes when (``send_pay_date`` in a query,
    ``gmt_payment`` in a notification) only for a paid trade."""
    return bool(optional_text(body, "send_pay_date") or optional_text(body, "gmt_payment"))


def payment_state(
    body: Mapping[str, Any],
    *,
    channel_order_id: str | None = None,
    notification_id: str | None = None,
) -> ChannelPaymentState:
    """A trade as ``alipay.trade.query`` or a notification describes it."""
    status = to_payment_status(trade_status(body), _paid(body))
    trade_no = optional_text(body, "trade_no")
    if status is ChannelPaymentStatus.SUCCEEDED and trade_no is None:
        raise Unreadable("a paid trade has a trade_no")
    return ChannelPaymentState(
        out_trade_no=text_field(body, "out_trade_no"),
        status=status,
        amount=parse_yuan(body.get("total_amount")),
        currency=CURRENCY,
        channel_order_id=channel_order_id,
        channel_transaction_id=trade_no,
        notification_id=notification_id,
    )


def refund_query_state(
    body: Mapping[str, Any], out_trade_no: str, out_refund_no: str
) -> ChannelRefundState:
    """A successful ``alipay.trade.fastpay.refund.query`` answer: no refund fields means
    Alipay did not receive the refund or it failed (NOT_FOUND: ask for it again with the same
    out_request_no, which either refunds or answers the failure)."""
    if body.get("refund_amount") is None and body.get("refund_status") is None:
        return ChannelRefundState(out_refund_no, out_trade_no, ChannelRefundStatus.NOT_FOUND)
    answered = optional_text(body, "out_request_no")
    if answered is not None and answered != out_refund_no:
        raise Unreadable(f"the answer is about refund {answered}")
    raw_status = optional_text(body, "refund_status")
    try:
        refund_status = AlipayRefundStatus(raw_status) if raw_status is not None else None
    except ValueError:
        raise Unreadable(f"unknown refund_status {raw_status!r}") from None
    return ChannelRefundState(
        out_refund_no=out_refund_no,
        out_trade_no=out_trade_no,
        status=to_refund_status(refund_status),
        amount=parse_yuan(body.get("refund_amount")),
        currency=CURRENCY,
    )


def read_notification(fields: Mapping[str, str]) -> ChannelPaymentState | ChannelRefundState:
    """A verified notification: a refund's when it carries ``out_biz_no`` (the refund's
    out_request_no; Alipay notifies a refund only once it succeeded), else the trade's."""
    if fields.get("notify_type") != NOTIFY_TYPE:
        raise Unreadable(f"notify_type must be {NOTIFY_TYPE!r}")
    notify_id = text_field(fields, "notify_id")
    out_biz_no = optional_text(fields, "out_biz_no")
    if out_biz_no is None:
        return payment_state(fields, notification_id=notify_id)
    state = payment_state(fields)  # the trade's fields must be whole as well
    parse_yuan(fields.get("refund_fee"))
    parse_beijing(text_field(fields, "gmt_refund"))
    if state.status is not ChannelPaymentStatus.SUCCEEDED:
        raise Unreadable("a refund notification is about a paid trade")
    return ChannelRefundState(
        out_refund_no=out_biz_no,
        out_trade_no=state.out_trade_no,
        status=ChannelRefundStatus.SUCCEEDED,
        currency=CURRENCY,
        notification_id=notify_id,
    )


# -- the trade bill -----------------------------------------------------------------------------

_MAX_BILL_MEMBERS = 16
_MAX_BILL_BYTES = 64 * 1024 * 1024
_UTF8_NAMES = 0x800  # zip flag bit 11: the member name is UTF-8
_COLUMNS = {
    "trade_no": "支付宝交易号",
    "out_trade_no": "商户订单号",
    "kind": "业务类型",
    "finished": "完成时间",
    "amount": "订单金额(元)",
    "out_request_no": "退款批次号/请求号",
    "fee": "服务费(元)",
}


def _member_name(info: zipfile.ZipInfo) -> str:
    """A member's name; Alipay's own zips write GBK names without the UTF-8 flag, which
    Python then reads as cp437."""
    if info.flag_bits & _UTF8_NAMES:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gbk")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def bill_detail(content: bytes) -> str:
    """The business-detail CSV (``..._业务明细.csv``, not its ``(汇总)`` summary) of a trade
    bill ``.csv.zip``, decoded from GBK."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, ValueError):
        raise Unreadable("the bill is not a zip file") from None
    with archive:
        members = archive.infolist()
        if len(members) > _MAX_BILL_MEMBERS:
            raise Unreadable(f"the bill has {len(members)} files")
        details = [
            info
            for info in members
            if _member_name(info).endswith("业务明细.csv") and "汇总" not in _member_name(info)
        ]
        if len(details) != 1:
            raise Unreadable("the bill does not hold exactly one business-detail file")
        try:
            with archive.open(details[0]) as member:
                raw = member.read(_MAX_BILL_BYTES + 1)
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError):
            raise Unreadable("the bill's detail file cannot be read") from None
    if len(raw) > _MAX_BILL_BYTES:
        raise Unreadable("the bill's detail file is too large")
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError:
        raise Unreadable("the bill's detail file is not GBK text") from None


def _header_name(cell: str) -> str:
    return cell.strip().replace("（", "(").replace("）", ")")


def statement_lines(content: bytes, day: date) -> tuple[StatementLine, ...]:
    """The lines of a trade bill (``bill_type=trade``) of ``day`` (Beijing): one per 交易 row
    (a payment: 商户订单号 is the reference) and per 退款 row (a refund: 退款批次号/请求号 is the
    reference), amounts positive, the fee what Alipay kept (a refund's returned fee is
    negative). Comment lines (``#``) are skipped; cells are stripped (Alipay pads identifiers
    with a tab)."""
    text = bill_detail(content)
    try:
        rows = [
            [cell.strip() for cell in row]
            for row in csv.reader(io.StringIO(text, newline=""))
            if row and not row[0].lstrip().startswith("#")
        ]
    except csv.Error:
        raise Unreadable("the bill's detail file is not CSV") from None
    if not rows:
        raise Unreadable("the bill's detail file has no header")
    header = [_header_name(cell) for cell in rows[0]]
    try:
        where = {key: header.index(name) for key, name in _COLUMNS.items()}
    except ValueError:
        raise Unreadable("the bill's header lacks a column this adapter reads") from None
    lines = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise Unreadable(f"bill row {number} has {len(row)} cells, not {len(header)}")
        try:
            lines.append(_bill_line({key: row[index] for key, index in where.items()}, day))
        except Unreadable as exc:
            raise Unreadable(f"bill row {number}: {exc}") from None
    return tuple(lines)


def _bill_line(row: dict[str, str], day: date) -> StatementLine:
    word = row["kind"]
    refund_number = row["out_request_no"]
    status: ChannelPaymentStatus | ChannelRefundStatus
    match bill_kind(word):
        case BillKind.PAYMENT:
            kind, status = StatementLineKind.PAYMENT, ChannelPaymentStatus.SUCCEEDED
        case BillKind.REFUND:
            kind, status = StatementLineKind.REFUND, ChannelRefundStatus.SUCCEEDED
        case None:
            kind, status = _other_row(word, refund_number)
        case other:
            assert_never(other)
    reference = refund_number if kind is StatementLineKind.REFUND else row["out_trade_no"]
    if not reference or not row["trade_no"]:
        raise Unreadable("the reference and 支付宝交易号 must not be empty")
    signed = parse_signed_yuan(row["amount"])
    occurred = parse_beijing(row["finished"])
    if beijing_day(occurred) != day:
        raise Unreadable(f"完成时间 {row['finished']} is not on {day}")
    return StatementLine(
        kind=kind,
        reference=reference,
        channel_transaction_id=row["trade_no"],
        amount=-signed if kind is StatementLineKind.REFUND else signed,
        currency=CURRENCY,
        fee=-parse_signed_yuan(row["fee"]),
        status=status,
        channel_status=word,
        occurred_at=rfc3339(occurred),
    )


def _other_row(
    word: str, refund_number: str
) -> tuple[StatementLineKind, ChannelPaymentStatus | ChannelRefundStatus]:
    """A row whose 业务类型 is neither 交易 nor 退款: a refund when it names a refund number,
    else a payment; a trade-status word is mapped as such (unpaid), any other word is not
    money we may count as taken (FAILED), its word kept in ``channel_status``."""
    if refund_number:
        return StatementLineKind.REFUND, ChannelRefundStatus.FAILED
    try:
        return StatementLineKind.PAYMENT, to_payment_status(AlipayTradeStatus(word), False)
    except ValueError:
        return StatementLineKind.PAYMENT, ChannelPaymentStatus.FAILED
