"""The merchant's server-to-server methods at ``/gateway.do`` once a call is authenticated:
``alipay.trade.query``, ``.close``, ``.refund``, ``.fastpay.refund.query`` and
``alipay.data.dataservice.bill.downloadurl.query``. Each takes the account and the call's
``biz_content`` and returns the content of the answer, or raises ``AlipayError``.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from local_runtime.sandbox.orders import Clock
from local_runtime.simulators.alipay.accounts import AlipayAccount
from local_runtime.simulators.alipay.bills import (
    BillFile,
    BillRow,
    bill_file,
    fee_returned,
    service_fee,
)
from local_runtime.simulators.alipay.notifications import Buyer, trade_status
from local_runtime.simulators.alipay.protocol import (
    SHANGHAI,
    SUCCESS,
    AlipayError,
    beijing,
    business,
    invalid_parameter,
    out_request_no,
    parse_yuan,
    refund_key,
    system_error,
    yuan,
)
from local_runtime.simulators.common.trades import (
    RefundStatus,
    SimulatedFailure,
    StatementLine,
    StatementLineKind,
    Trade,
    TradeBook,
    TradeError,
    TradeErrorCode,
)

MERCHANT_NUMBER = re.compile(r"^[A-Za-z0-9_]{1,64}$")  # out_trade_no, out_request_no
BILL_LINK_SECONDS = 30.0  # Alipay's bill_download_url is valid for 30 seconds
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")

TRADE_NOT_EXIST = ("ACQ.TRADE_NOT_EXIST", "交易不存在")
TRADE_STATUS_ERROR = ("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")

Method = Callable[[AlipayAccount, Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class IssuedBill:
    file: BillFile
    expires_at: datetime


class BillDesk:
    """The bill files handed out by ``bill_download_url``: one file per link, valid
    ``BILL_LINK_SECONDS``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._issued: dict[str, IssuedBill] = {}

    def issue(self, file: BillFile) -> str:
        """A new file id for ``file``."""
        now = self._clock()
        file_id = secrets.token_urlsafe(18)
        with self._lock:
            self._issued = {
                key: bill for key, bill in self._issued.items() if bill.expires_at > now
            }
            self._issued[file_id] = IssuedBill(file, now + timedelta(seconds=BILL_LINK_SECONDS))
        return file_id

    def get(self, file_id: str) -> BillFile | None:
        """The file behind a link, or None when it is unknown or expired."""
        with self._lock:
            bill = self._issued.get(file_id)
        if bill is None or bill.expires_at <= self._clock():
            return None
        return bill.file


class TradeApi:
    """The JSON methods, over one simulator's trade book."""

    def __init__(self, book: TradeBook, buyer: Buyer, clock: Clock, bills: BillDesk) -> None:
        self._book = book
        self._buyer = buyer
        self._clock = clock
        self._bills = bills
        self.methods: dict[str, Method] = {
            "alipay.trade.query": self.query,
            "alipay.trade.close": self.close,
            "alipay.trade.refund": self.refund,
            "alipay.trade.fastpay.refund.query": self.refund_query,
        }

    # -- trades ------------------------------------------------------------------------------

    def query(self, account: AlipayAccount, biz: Mapping[str, Any]) -> dict[str, Any]:
        trade = self._find(account, biz)
        content: dict[str, Any] = SUCCESS | {
            "trade_no": trade.transaction_id,
            "out_trade_no": trade.out_trade_no,
            "trade_status": trade_status(trade),
            "total_amount": yuan(trade.amount),
        }
        if trade.paid_at is not None:
            paid = yuan(trade.amount)
            content |= {
                "buyer_logon_id": self._buyer.logon_id,
                "buyer_user_id": self._buyer.user_id,
                "buyer_pay_amount": paid,
                "invoice_amount": paid,
                "receipt_amount": paid,
                "point_amount": "0.00",
                "send_pay_date": beijing(trade.paid_at),
                "fund_bill_list": [{"fund_channel": "ALIPAYACCOUNT", "amount": paid}],
            }
        else:
            content |= {
                "buyer_pay_amount": "0.00",
                "invoice_amount": "0.00",
                "receipt_amount": "0.00",
                "point_amount": "0.00",
            }
        return _present(content)

    def close(self, account: AlipayAccount, biz: Mapping[str, Any]) -> dict[str, Any]:
        trade = self._find(account, biz)
        try:
            closed = self._book.close(account.account, trade.out_trade_no)
        except TradeError as exc:
            raise _trade_error(exc) from None
        return _present(
            SUCCESS | {"trade_no": closed.transaction_id, "out_trade_no": closed.out_trade_no}
        )

    # -- refunds -----------------------------------------------------------------------------

    def refund(self, account: AlipayAccount, biz: Mapping[str, Any]) -> dict[str, Any]:
        amount = _amount(biz, "refund_amount")
        reason = _text(biz, "refund_reason", limit=256)
        trade = self._find(account, biz)
        request_no = _text(biz, "out_request_no") or trade.out_trade_no
        if not MERCHANT_NUMBER.match(request_no):
            raise invalid_parameter("out_request_no 须为 1-64 位字母、数字或下划线")
        try:
            refund, created = self._book.refund(
                account.account,
                trade.out_trade_no,
                refund_key(trade.out_trade_no, request_no),
                amount=amount,
                extra={"refund_reason": reason} if reason else None,
            )
        except SimulatedFailure:
            raise system_error() from None
        except TradeError as exc:
            raise _trade_error(exc) from None
        if refund.status is RefundStatus.FAILED:
            raise business("ACQ.SELLER_BALANCE_NOT_ENOUGH", "卖家余额不足")
        now = self._book.get(account.account, trade.out_trade_no)
        succeeded = refund.status is RefundStatus.SUCCESS
        content = SUCCESS | {
            "trade_no": now.transaction_id,
            "out_trade_no": now.out_trade_no,
            "buyer_logon_id": self._buyer.logon_id,
            "buyer_user_id": self._buyer.user_id,
            "fund_change": "Y" if created and succeeded else "N",
            "refund_fee": yuan(now.amount_refunded),
            "send_back_fee": yuan(refund.amount) if succeeded else "0.00",
        }
        if succeeded and refund.finished_at is not None:
            content["gmt_refund_pay"] = beijing(refund.finished_at)
        return _present(content)

    def refund_query(self, account: AlipayAccount, biz: Mapping[str, Any]) -> dict[str, Any]:
        request_no = _text(biz, "out_request_no")
        if not request_no:
            raise invalid_parameter("out_request_no 不能为空")
        trade = self._find(account, biz)
        content: dict[str, Any] = SUCCESS | {
            "trade_no": trade.transaction_id,
            "out_trade_no": trade.out_trade_no,
        }
        try:
            refund = self._book.get_refund(
                account.account, refund_key(trade.out_trade_no, request_no)
            )
        except TradeError:
            return _present(content)
        if refund.status is RefundStatus.FAILED:
            return _present(content)  # not received, or failed: no refund fields
        content |= {
            "out_request_no": out_request_no(refund.out_refund_no),
            "total_amount": yuan(trade.amount),
            "refund_amount": yuan(refund.amount),
        }
        reason = refund.extra.get("refund_reason")
        if reason:
            content["refund_reason"] = reason
        if refund.status is RefundStatus.SUCCESS and refund.finished_at is not None:
            content["refund_status"] = "REFUND_SUCCESS"
            options = biz.get("query_options")
            if isinstance(options, list) and "gmt_refund_pay" in options:
                content["gmt_refund_pay"] = beijing(refund.finished_at)
        return _present(content)

    # -- bills -------------------------------------------------------------------------------

    def bill_download_url(
        self, account: AlipayAccount, biz: Mapping[str, Any], *, base_url: str
    ) -> dict[str, Any]:
        """A link (on ``base_url``, valid 30 s) to the day's bill of the account."""
        bill_type = _text(biz, "bill_type")
        if bill_type != "trade":
            raise invalid_parameter("bill_type 只模拟 trade")
        day = _bill_day(_text(biz, "bill_date"))
        if day not in self._book.statement_days(account.account, SHANGHAI):
            raise business("isp.bill_not_exist", "账单不存在")
        lines = self._book.statement_lines(account.account, day, SHANGHAI)
        file = bill_file(
            account,
            day,
            [BillRow(line, self._fee(account, line)) for line in lines],
            buyer_logon_id=self._buyer.logon_id,
            exported_at=self._clock(),
        )
        file_id = self._bills.issue(file)
        url = (
            f"{base_url}/downloadBillFile.resource?bizType=trade"
            f"&userId={account.pid}&fileType=csv.zip&bizDates={day:%Y%m%d}"
            f"&downloadFileName={file.name}&fileId={file_id}"
        )
        return SUCCESS | {"bill_download_url": url}

    def _fee(self, account: AlipayAccount, line: StatementLine) -> int:
        """The signed 服务费 of a bill row: charged on a payment, returned by a refund."""
        trade = line.trade
        if line.kind is StatementLineKind.PAYMENT or line.refund is None:
            return -service_fee(trade.amount)
        succeeded = sorted(
            (
                refund
                for refund in self._book.refunds_of(account.account, trade.out_trade_no)
                if refund.status is RefundStatus.SUCCESS and refund.finished_at is not None
            ),
            key=lambda refund: (refund.finished_at, refund.created_at),
        )
        before = 0
        for refund in succeeded:
            if refund.out_refund_no == line.refund.out_refund_no:
                break
            before += refund.amount
        return fee_returned(trade.amount, before, before + line.refund.amount)

    # -- helpers -----------------------------------------------------------------------------

    def _find(self, account: AlipayAccount, biz: Mapping[str, Any]) -> Trade:
        """The trade named by ``trade_no`` (preferred, as Alipay does) or ``out_trade_no``."""
        trade_no = _text(biz, "trade_no")
        out_trade_no = _text(biz, "out_trade_no")
        if not trade_no and not out_trade_no:
            raise invalid_parameter("out_trade_no 和 trade_no 不能同时为空")
        if trade_no:
            for trade in self._book.trades(account.account):
                if trade.transaction_id == trade_no:
                    return trade
            raise business(*TRADE_NOT_EXIST)
        try:
            return self._book.get(account.account, out_trade_no)
        except TradeError:
            raise business(*TRADE_NOT_EXIST) from None


def _trade_error(exc: TradeError) -> AlipayError:
    match exc.code:
        case TradeErrorCode.TRADE_NOT_FOUND:
            return business(*TRADE_NOT_EXIST)
        case TradeErrorCode.TRADE_PAID | TradeErrorCode.TRADE_NOT_PAID:
            return business(*TRADE_STATUS_ERROR)
        case TradeErrorCode.REFUND_PARAMS_MISMATCH:
            return business("ACQ.DISCORDANT_REPEAT_REQUEST", "不一致的请求")
        case TradeErrorCode.REFUND_EXCEEDS_PAID:
            return business("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
        case _:
            return business(*TRADE_STATUS_ERROR)


def _text(biz: Mapping[str, Any], name: str, *, limit: int = 64) -> str:
    """A string field of biz_content ("" when absent)."""
    value = biz.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise invalid_parameter(f"{name} 须为不超过 {limit} 个字符的字符串")
    return value


def _amount(biz: Mapping[str, Any], name: str) -> int:
    if name not in biz:
        raise invalid_parameter(f"{name} 不能为空")
    try:
        return parse_yuan(biz[name])
    except ValueError as exc:
        raise invalid_parameter(f"{name} {exc}") from None


def _bill_day(text: str) -> date:
    if _MONTH.match(text):
        raise invalid_parameter("bill_date: 月账单 (yyyy-MM) 未模拟, 请按日 (yyyy-MM-dd) 查询")
    if not _DAY.match(text):
        raise invalid_parameter("bill_date 须为 yyyy-MM-dd")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise invalid_parameter("bill_date 须为 yyyy-MM-dd") from None


def _present(content: dict[str, Any]) -> dict[str, Any]:
    """Alipay leaves out fields it has no value for."""
    return {name: value for name, value in content.items() if value is not None}
