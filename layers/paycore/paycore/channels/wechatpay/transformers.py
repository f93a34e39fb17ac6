"""WeChat Pay's words into ours: trade states, refund statuses, error codes, and the JSON and
bill file it writes.

Every mapping is an exhaustive ``match`` over WeChat Pay's own enums, so mypy proves that a
word WeChat Pay documents is never forgotten. A body that is not the shape the protocol
promises raises ``Unreadable``; the adapter decides what that means (an unknown outcome for an
answer, a rejection for a notification).

What the words mean for a Native order:

| trade_state | ours | why |
|---|---|---|
| NOTPAY | PENDING | not paid yet; an order past ``time_expire`` stays NOTPAY until closed |
| USERPAYING | PENDING | the buyer is entering the password (payment-code pay) |
| SUCCESS | SUCCEEDED | |
| REFUND | SUCCEEDED | paid, then (partly) refunded: the payment itself succeeded |
| PAYERROR | FAILED | the payment failed (bank refusal...); only a query tells it |
| CLOSED | CLOSED | closed by the merchant before payment |
| REVOKED | CLOSED | a payment-code order revoked: nothing taken |

A refund is PROCESSING (ours PENDING), SUCCESS, CLOSED (ours FAILED: nothing was refunded, the
amount is free again) or ABNORMAL (ours PENDING: the money left the merchant but could not reach
the buyer's card; the merchant resolves it at WeChat Pay, which then reports SUCCESS).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum, StrEnum, auto
from typing import Any, assert_never
from zoneinfo import ZoneInfo

from paycore.channels.base import (
    ChannelPaymentState,
    ChannelPaymentStatus,
    ChannelRefundState,
    ChannelRefundStatus,
    StatementLine,
    StatementLineKind,
)
from paycore.channels.reading import Unreadable, optional_text, text
from paycore.clock import rfc3339
from paycore.money import AmountFormatError, from_major_units, from_minor_units

SHANGHAI = ZoneInfo("Asia/Shanghai")  # WeChat Pay's days and bill times are Beijing time
CURRENCY = "CNY"  # a domestic (境内) Native payment and its refunds are in fen of CNY

TRANSACTION_EVENT_PREFIX = "TRANSACTION."
REFUND_EVENT_PREFIX = "REFUND."
ENCRYPTED_RESOURCE = "encrypt-resource"

# The ALL trade bill's columns (交易账单), as WeChat Pay publishes them.
BILL_COLUMNS = (
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
)
BILL_SUMMARY_COLUMNS = (
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
)
# Row columns summed by the summary row's columns (after the count).
_SUMMED = (
    ("应结订单金额", "应结订单总金额"),
    ("退款金额", "退款总金额"),
    ("充值券退款金额", "充值券退款总金额"),
    ("手续费", "手续费总金额"),
    ("订单金额", "订单总金额"),
    ("申请退款金额", "申请退款总金额"),
)
_NO_REFUND = ("", "0")  # 微信退款单号 / 商户退款单号 of a payment row
_BILL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", re.ASCII)
# A bill fee: yuan with five decimals, the last three always 0 (fees are whole fen), signed
# (a refund row gives the fee back).
_FEE = re.compile(r"(-?)((?:0|[1-9][0-9]*)\.[0-9]{2})000", re.ASCII)
_SIGNED_YUAN = re.compile(r"(-?)((?:0|[1-9][0-9]*)\.[0-9]{2})", re.ASCII)


class TradeState(StrEnum):
    """``trade_state`` of a transaction (and 交易状态 of a bill's payment row)."""

    SUCCESS = "SUCCESS"
    REFUND = "REFUND"
    NOTPAY = "NOTPAY"
    CLOSED = "CLOSED"
    REVOKED = "REVOKED"
    USERPAYING = "USERPAYING"
    PAYERROR = "PAYERROR"


class RefundStatus(StrEnum):
    """A refund's ``status`` (answers) or ``refund_status`` (notifications)."""

    SUCCESS = "SUCCESS"
    CLOSED = "CLOSED"
    PROCESSING = "PROCESSING"
    ABNORMAL = "ABNORMAL"


class BillRefundStatus(StrEnum):
    """退款状态 of a bill's refund row (the bill keeps the older API's words)."""

    SUCCESS = "SUCCESS"
    REFUNDCLOSE = "REFUNDCLOSE"
    PROCESSING = "PROCESSING"
    CHANGE = "CHANGE"


class ErrorCode(StrEnum):
    """The error ``code`` values WeChat Pay documents for the calls this adapter makes."""

    PARAM_ERROR = "PARAM_ERROR"
    INVALID_REQUEST = "INVALID_REQUEST"
    APPID_MCHID_NOT_MATCH = "APPID_MCHID_NOT_MATCH"
    MCH_NOT_EXISTS = "MCH_NOT_EXISTS"
    SIGN_ERROR = "SIGN_ERROR"
    NO_AUTH = "NO_AUTH"
    RULE_LIMIT = "RULE_LIMIT"
    TRADE_ERROR = "TRADE_ERROR"
    OUT_TRADE_NO_USED = "OUT_TRADE_NO_USED"
    ORDERPAID = "ORDERPAID"
    ORDER_CLOSED = "ORDER_CLOSED"
    ORDER_NOT_EXIST = "ORDER_NOT_EXIST"
    ORDERNOTEXIST = "ORDERNOTEXIST"
    RESOURCE_NOT_EXISTS = "RESOURCE_NOT_EXISTS"
    NOT_ENOUGH = "NOT_ENOUGH"
    NOTENOUGH = "NOTENOUGH"
    ACCOUNTERROR = "ACCOUNTERROR"
    USER_ACCOUNT_ABNORMAL = "USER_ACCOUNT_ABNORMAL"
    NO_STATEMENT_EXIST = "NO_STATEMENT_EXIST"
    STATEMENT_CREATING = "STATEMENT_CREATING"
    FREQUENCY_LIMITED = "FREQUENCY_LIMITED"
    USERPAYING = "USERPAYING"
    BANKERROR = "BANKERROR"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    NOT_FOUND = "NOT_FOUND"  # no such API path
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"


class ErrorMeaning(Enum):
    """What a WeChat Pay error answer means for the caller."""

    REJECTED = auto()  # WeChat Pay saw the request and refused it: final
    NOT_FOUND = auto()  # no such order or refund (a query's answer, not a failure)
    ALREADY_PAID = auto()  # the order is paid: close or create again cannot apply; query it
    NO_STATEMENT = auto()  # no bill for that day: the account had no trade
    UNAVAILABLE = auto()  # WeChat Pay failed or is busy: the outcome is unknown


def to_payment_status(state: TradeState) -> ChannelPaymentStatus:
    """A ``trade_state`` in our words (module docstring); mypy proves the match is whole."""
    match state:
        case TradeState.NOTPAY | TradeState.USERPAYING:
            return ChannelPaymentStatus.PENDING
        case TradeState.SUCCESS | TradeState.REFUND:
            return ChannelPaymentStatus.SUCCEEDED
        case TradeState.PAYERROR:
            return ChannelPaymentStatus.FAILED
        case TradeState.CLOSED | TradeState.REVOKED:
            return ChannelPaymentStatus.CLOSED
        case _:
            assert_never(state)


def to_refund_status(status: RefundStatus) -> ChannelRefundStatus:
    """A refund status in our words; mypy proves the match is whole."""
    match status:
        case RefundStatus.PROCESSING | RefundStatus.ABNORMAL:
            return ChannelRefundStatus.PENDING
        case RefundStatus.SUCCESS:
            return ChannelRefundStatus.SUCCEEDED
        case RefundStatus.CLOSED:
            return ChannelRefundStatus.FAILED
        case _:
            assert_never(status)


def bill_refund_status(status: BillRefundStatus) -> ChannelRefundStatus:
    """A bill row's 退款状态 in our words; mypy proves the match is whole."""
    match status:
        case BillRefundStatus.PROCESSING | BillRefundStatus.CHANGE:
            return ChannelRefundStatus.PENDING
        case BillRefundStatus.SUCCESS:
            return ChannelRefundStatus.SUCCEEDED
        case BillRefundStatus.REFUNDCLOSE:
            return ChannelRefundStatus.FAILED
        case _:
            assert_never(status)


def error_meaning(code: ErrorCode) -> ErrorMeaning:
    """What each error code means for us; mypy proves every code is decided."""
    match code:
        case ErrorCode.ORDER_NOT_EXIST | ErrorCode.ORDERNOTEXIST | ErrorCode.RESOURCE_NOT_EXISTS:
            return ErrorMeaning.NOT_FOUND
        case ErrorCode.ORDERPAID:
            return ErrorMeaning.ALREADY_PAID
        case ErrorCode.NO_STATEMENT_EXIST:
            return ErrorMeaning.NO_STATEMENT
        case (
            ErrorCode.SYSTEM_ERROR
            | ErrorCode.BANKERROR
            | ErrorCode.FREQUENCY_LIMITED
            | ErrorCode.STATEMENT_CREATING
            | ErrorCode.USERPAYING
        ):
            return ErrorMeaning.UNAVAILABLE
        case (
            ErrorCode.PARAM_ERROR
            | ErrorCode.INVALID_REQUEST
            | ErrorCode.APPID_MCHID_NOT_MATCH
            | ErrorCode.MCH_NOT_EXISTS
            | ErrorCode.SIGN_ERROR
            | ErrorCode.NO_AUTH
            | ErrorCode.RULE_LIMIT
            | ErrorCode.TRADE_ERROR
            | ErrorCode.OUT_TRADE_NO_USED
            | ErrorCode.ORDER_CLOSED
            | ErrorCode.NOT_ENOUGH
            | ErrorCode.NOTENOUGH
            | ErrorCode.ACCOUNTERROR
            | ErrorCode.USER_ACCOUNT_ABNORMAL
            | ErrorCode.NOT_FOUND
            | ErrorCode.METHOD_NOT_ALLOWED
        ):
            return ErrorMeaning.REJECTED
        case _:
            assert_never(code)


def meaning_of(code: str) -> ErrorMeaning:
    """A code WeChat Pay wrote; one it does not document is still its refusal."""
    try:
        return error_meaning(ErrorCode(code))
    except ValueError:
        return ErrorMeaning.REJECTED


def payment_failure(state: TradeState) -> str | None:
    """paycore's failure code of a trade state (None unless it failed)."""
    match state:
        case TradeState.PAYERROR:
            return "payment_declined"
        case (
            TradeState.SUCCESS
            | TradeState.REFUND
            | TradeState.NOTPAY
            | TradeState.CLOSED
            | TradeState.REVOKED
            | TradeState.USERPAYING
        ):
            return None
        case _:
            assert_never(state)


def refund_failure(status: RefundStatus) -> tuple[str, str] | None:
    """paycore's failure code and message of a refund status (None unless it failed)."""
    match status:
        case RefundStatus.CLOSED:
            return (
                "refund_rejected",
                "WeChat Pay closed the refund (退款关闭): nothing was refunded",
            )
        case RefundStatus.SUCCESS | RefundStatus.PROCESSING | RefundStatus.ABNORMAL:
            return None
        case _:
            assert_never(status)


# -- reading WeChat Pay's JSON -------------------------------------------------------------------


def _object(body: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = body.get(key)
    if not isinstance(value, dict):
        raise Unreadable(f"{key} must be an object")
    return value


def _fen(amount: Mapping[str, Any], key: str, currency: str) -> int:
    """An amount in fen, through the one minor-unit conversion (``paycore.money``)."""
    try:
        value = from_minor_units(amount.get(key), currency)
    except AmountFormatError as exc:
        raise Unreadable(f"amount.{key}: {exc}") from None
    if value <= 0:
        raise Unreadable(f"amount.{key} must be positive")
    return value


def _currency(amount: Mapping[str, Any], default: str | None = None) -> str:
    value = amount.get("currency", default)
    if value != CURRENCY:
        raise Unreadable(f"amount.currency must be {CURRENCY}, not {value!r}")
    return CURRENCY


def _check_mchid(body: Mapping[str, Any], mchid: str) -> None:
    given = body.get("mchid")
    if given is not None and given != mchid:
        raise Unreadable("the answer is about another merchant (mchid)")


def code_url(body: Mapping[str, Any]) -> str:
    """The ``code_url`` of a Native create answer (what the buyer scans)."""
    return text(body, "code_url")


def trade_state(body: Mapping[str, Any]) -> TradeState:
    try:
        return TradeState(text(body, "trade_state"))
    except ValueError:
        raise Unreadable(f"unknown trade_state {body.get('trade_state')!r}") from None


def payment_state(
    body: Mapping[str, Any], *, mchid: str, notification_id: str | None = None
) -> ChannelPaymentState:
    """A transaction as a query or a notification's resource shows it."""
    _check_mchid(body, mchid)
    state = trade_state(body)
    status = to_payment_status(state)
    amount = _object(body, "amount")
    currency = _currency(amount)
    failure = payment_failure(state)
    description = optional_text(body, "trade_state_desc")
    return ChannelPaymentState(
        out_trade_no=text(body, "out_trade_no"),
        status=status,
        amount=_fen(amount, "total", currency),
        currency=currency,
        # A Native order has no WeChat Pay id before it is paid: it is known by its
        # out_trade_no (the adapter's channel_order_id).
        channel_order_id=text(body, "out_trade_no"),
        channel_transaction_id=optional_text(body, "transaction_id"),
        failure_code=failure,
        failure_message=(
            f"{description or 'the payment failed'} (WeChat Pay {state.value})" if failure else None
        ),
        notification_id=notification_id,
    )


def _refund_state(
    body: Mapping[str, Any],
    status_key: str,
    currency: str,
    notification_id: str | None,
) -> ChannelRefundState:
    try:
        status = RefundStatus(text(body, status_key))
    except ValueError:
        raise Unreadable(f"unknown {status_key} {body.get(status_key)!r}") from None
    failure = refund_failure(status)
    return ChannelRefundState(
        out_refund_no=text(body, "out_refund_no"),
        out_trade_no=text(body, "out_trade_no"),
        status=to_refund_status(status),
        amount=_fen(_object(body, "amount"), "refund", currency),
        currency=currency,
        channel_refund_id=text(body, "refund_id"),
        failure_code=failure[0] if failure else None,
        failure_message=failure[1] if failure else None,
        notification_id=notification_id,
    )


def refund_answer(body: Mapping[str, Any]) -> ChannelRefundState:
    """A refund as the refund call and the refund query answer it (``status``)."""
    return _refund_state(body, "status", _currency(_object(body, "amount")), None)


def refund_notification(
    body: Mapping[str, Any], *, mchid: str, notification_id: str
) -> ChannelRefundState:
    """A refund as a REFUND.* notification's resource shows it (``refund_status``; the amount
    carries no currency: a domestic refund is in CNY)."""
    _check_mchid(body, mchid)
    return _refund_state(body, "refund_status", CURRENCY, notification_id)


def error_code(body: Mapping[str, Any]) -> str | None:
    """The ``code`` of an error answer ``{"code", "message"[, "detail"]}``, if it is one."""
    code, message = body.get("code"), body.get("message")
    if isinstance(code, str) and code and isinstance(message, str):
        return code
    return None


@dataclass(frozen=True)
class Notification:
    """A verified notification's envelope, with its resource still sealed."""

    id: str
    event_type: str
    original_type: str
    nonce: str
    ciphertext: str
    associated_data: str


def notification_envelope(body: Mapping[str, Any]) -> Notification:
    """The envelope ``{"id", "create_time", "resource_type", "event_type", "summary",
    "resource": {"original_type", "algorithm", "ciphertext", "associated_data", "nonce"}}``."""
    if body.get("resource_type") != ENCRYPTED_RESOURCE:
        raise Unreadable(f"resource_type must be {ENCRYPTED_RESOURCE!r}")
    resource = _object(body, "resource")
    if resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise Unreadable("resource.algorithm must be AEAD_AES_256_GCM")
    associated = resource.get("associated_data", "")
    if not isinstance(associated, str):
        raise Unreadable("resource.associated_data must be a string")
    return Notification(
        id=text(body, "id"),
        event_type=text(body, "event_type"),
        original_type=text(resource, "original_type"),
        nonce=text(resource, "nonce"),
        ciphertext=text(resource, "ciphertext"),
        associated_data=associated,
    )


@dataclass(frozen=True)
class BillLink:
    """A trade bill answer: where to download the file and the SHA1 of its plain bytes."""

    hash_type: str
    hash_value: str
    download_url: str


def bill_link(body: Mapping[str, Any]) -> BillLink:
    hash_type = text(body, "hash_type")
    if hash_type != "SHA1":
        raise Unreadable(f"hash_type {hash_type!r} is not SHA1")
    hash_value = text(body, "hash_value").lower()
    if not re.fullmatch(r"[0-9a-f]{40}", hash_value):
        raise Unreadable("hash_value is not a SHA1")
    return BillLink(hash_type, hash_value, text(body, "download_url"))


# -- reading the trade bill ----------------------------------------------------------------------


def _unquote(value: str, where: str) -> str:
    """A bill value without its leading backtick (WeChat Pay prefixes every value)."""
    if not value.startswith("`"):
        raise Unreadable(f"{where}: a value does not start with a backtick")
    return value[1:]


def _yuan(text: str, column: str) -> int:
    """A non-negative bill amount in yuan (``19.99``) as fen."""
    try:
        return from_major_units(text, CURRENCY)
    except AmountFormatError as exc:
        raise Unreadable(f"{column}: {exc}") from None


def _signed(pattern: re.Pattern[str], text: str, column: str) -> int:
    """A signed bill amount in yuan (the fee has five decimals) as fen."""
    found = pattern.fullmatch(text)
    if found is None:
        raise Unreadable(f"{column}: {text!r} is not an amount")
    value = _yuan(found.group(2), column)
    return -value if found.group(1) else value


def _amount(row: Mapping[str, str], column: str) -> int:
    if column == "手续费":
        return _signed(_FEE, row[column], column)
    return _yuan(row[column], column)


def _summary_amount(row: Mapping[str, str], column: str) -> int:
    pattern = _FEE if column == "手续费总金额" else _SIGNED_YUAN
    return _signed(pattern, row[column], column)


def bill_lines(content: bytes, day: date, mchid: str) -> tuple[StatementLine, ...]:
    """The lines of an ALL trade bill (UTF-8 CSV, every value backtick-prefixed, yuan amounts,
    Beijing times): one per payment row and per refund row, its fee in fen (negative on a
    refund row: WeChat Pay gives that part of the fee back). The summary rows must agree with
    the detail rows (their count and every total), and every row must be of ``mchid`` and of
    ``day`` (Beijing)."""
    try:
        text = content.decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except (UnicodeDecodeError, csv.Error):
        raise Unreadable("the bill is not a UTF-8 CSV file") from None
    rows = [row for row in rows if row]
    if not rows or tuple(rows[0]) != BILL_COLUMNS:
        raise Unreadable("the bill does not start with the ALL bill's header")
    try:
        end = next(i for i, row in enumerate(rows) if tuple(row) == BILL_SUMMARY_COLUMNS)
    except StopIteration:
        raise Unreadable("the bill has no summary") from None
    if len(rows) != end + 2 or len(rows[end + 1]) != len(BILL_SUMMARY_COLUMNS):
        raise Unreadable("the bill does not end with one summary row")
    details: list[dict[str, str]] = []
    for number, row in enumerate(rows[1:end], start=2):
        where = f"bill line {number}"
        if len(row) != len(BILL_COLUMNS):
            raise Unreadable(f"{where} has {len(row)} fields")
        details.append(
            {
                column: _unquote(value, where)
                for column, value in zip(BILL_COLUMNS, row, strict=True)
            }
        )
    summary = {
        column: _unquote(value, "the summary")
        for column, value in zip(BILL_SUMMARY_COLUMNS, rows[end + 1], strict=True)
    }
    lines = []
    for number, detail in enumerate(details, start=2):
        try:
            lines.append(_bill_line(detail, day, mchid))
        except Unreadable as exc:
            raise Unreadable(f"bill line {number}: {exc}") from None
    _check_summary(details, summary)
    return tuple(lines)


def _check_summary(details: list[dict[str, str]], summary: Mapping[str, str]) -> None:
    if summary["总交易单数"] != str(len(details)):
        raise Unreadable(f"the summary counts {summary['总交易单数']} rows, not {len(details)}")
    for column, total in _SUMMED:
        if sum(_amount(row, column) for row in details) != _summary_amount(summary, total):
            raise Unreadable(f"{total} is not the sum of {column}")


def _bill_line(row: Mapping[str, str], day: date, mchid: str) -> StatementLine:
    if row["商户号"] != mchid:
        raise Unreadable("a row of another merchant (商户号)")
    if row["货币种类"] != CURRENCY:
        raise Unreadable(f"货币种类 {row['货币种类']!r} is not {CURRENCY}")
    if not _BILL_TIME.fullmatch(row["交易时间"]):
        raise Unreadable(f"交易时间 {row['交易时间']!r} is not YYYY-MM-DD HH:MM:SS")
    try:
        occurred = datetime.fromisoformat(row["交易时间"]).replace(tzinfo=SHANGHAI)
    except ValueError:
        raise Unreadable(f"交易时间 {row['交易时间']!r} is not a time") from None
    if occurred.date() != day:
        raise Unreadable(f"交易时间 {row['交易时间']} is not on {day} (Beijing)")
    fee = _amount(row, "手续费")
    status: ChannelPaymentStatus | ChannelRefundStatus
    if row["商户退款单号"] in _NO_REFUND:
        kind, reference, channel_id = (
            StatementLineKind.PAYMENT,
            row["商户订单号"],
            row["微信订单号"],
        )
        word = row["交易状态"]
        try:
            status = to_payment_status(TradeState(word))
        except ValueError:
            raise Unreadable(f"unknown 交易状态 {word!r}") from None
        amount = _amount(row, "订单金额")
    else:
        kind, reference, channel_id = (
            StatementLineKind.REFUND,
            row["商户退款单号"],
            row["微信退款单号"],
        )
        word = row["退款状态"]
        try:
            status = bill_refund_status(BillRefundStatus(word))
        except ValueError:
            raise Unreadable(f"unknown 退款状态 {word!r}") from None
        amount = _amount(row, "申请退款金额")
    if not reference or channel_id in _NO_REFUND:
        raise Unreadable("a row without the merchant's number or WeChat Pay's")
    return StatementLine(
        kind=kind,
        reference=reference,
        channel_transaction_id=channel_id,
        amount=amount,
        currency=CURRENCY,
        fee=fee,
        status=status,
        channel_status=word,
        occurred_at=rfc3339(occurred),
    )
