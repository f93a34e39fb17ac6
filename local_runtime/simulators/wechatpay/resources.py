"""What WeChat Pay shows of a trade and a refund: the transaction and refund resources of its
answers and notifications, its ids, status values and Beijing-time timestamps.

A trade of the kit's book becomes a WeChat Pay Native transaction:

| book | trade_state | note |
|---|---|---|
| WAIT_BUYER_PAY | NOTPAY | |
| SUCCESS | SUCCESS, or REFUND once a refund is PROCESSING or SUCCESS | both mean paid |
| DECLINED | PAYERROR | the ``decline`` switch; WeChat Pay sends no notification for it |
| CLOSED, merchant closed | CLOSED | |
| CLOSED, expired | NOTPAY until the merchant closes it, then CLOSED | the buyer cannot pay it |

A refund: PROCESSING, SUCCESS, or CLOSED (the book's FAILED: nothing was refunded, the amount
is free again). WeChat Pay's ABNORMAL (money stuck at the buyer's bank) is never produced.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from local_runtime.simulators.common.keys import random_digits
from local_runtime.simulators.common.trades import (
    CloseReason,
    Refund,
    RefundStatus,
    Trade,
    TradeStatus,
)
from local_runtime.simulators.wechatpay.merchants import MerchantAccount

SHANGHAI = ZoneInfo("Asia/Shanghai")
CURRENCY = "CNY"
TRADE_TYPE = "NATIVE"
BANK_TYPE = "OTHERS"
USER_RECEIVED_ACCOUNT = "支付用户零钱"
CODE_URL_PREFIX = "weixin://wxpay/bizpayurl?pr="

TRADE_STATE_DESC = {
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "NOTPAY": "订单未支付",
    "CLOSED": "订单已关闭",
    "PAYERROR": "支付失败, 请重新下单支付",
}
REFUND_STATUS = {
    RefundStatus.PROCESSING: "PROCESSING",
    RefundStatus.SUCCESS: "SUCCESS",
    RefundStatus.FAILED: "CLOSED",
}


def beijing_time(moment: datetime) -> str:
    """RFC 3339 in Beijing time, as WeChat Pay writes it: ``2024-06-08T10:34:56+08:00``."""
    return moment.astimezone(SHANGHAI).isoformat(timespec="seconds")


def new_transaction_id(paid_at: datetime) -> str:
    """A 28-digit WeChat Pay order number (``4200`` + 6 + the Beijing date + 10 digits)."""
    day = paid_at.astimezone(SHANGHAI).strftime("%Y%m%d")
    return f"4200{random_digits(6, first='0')}{day}{random_digits(10, first='0')}"


def new_refund_id(created_at: datetime) -> str:
    """A 29-digit WeChat Pay refund number (``50`` + 8 + the Beijing date + 11 digits)."""
    day = created_at.astimezone(SHANGHAI).strftime("%Y%m%d")
    return f"50{random_digits(8, first='0')}{day}{random_digits(11, first='0')}"


def code_url(pay_token: str) -> str:
    """The Native ``code_url`` the buyer scans; the token after ``pr=`` finds the trade."""
    return f"{CODE_URL_PREFIX}{pay_token}"


def pay_token_of(scanned: str) -> str | None:
    """The token inside a ``code_url``, or None when it is not one of ours."""
    if not scanned.startswith(CODE_URL_PREFIX):
        return None
    return scanned.removeprefix(CODE_URL_PREFIX) or None


def payer_openid(trade: Trade) -> str:
    """The paying buyer's openid for this merchant: stable per trade, 28 characters."""
    digest = hashlib.sha256(f"{trade.account}\n{trade.out_trade_no}".encode()).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode("ascii")[:27]


def trade_state(trade: Trade, *, refunded: bool, merchant_closed: bool) -> str:
    """WeChat Pay's ``trade_state`` (module docstring). ``refunded``: a refund of the trade is
    PROCESSING or SUCCESS; ``merchant_closed``: the merchant's close call was answered 204."""
    match trade.status:
        case TradeStatus.WAIT_BUYER_PAY:
            return "NOTPAY"
        case TradeStatus.SUCCESS:
            return "REFUND" if refunded else "SUCCESS"
        case TradeStatus.DECLINED:
            return "PAYERROR"
        case TradeStatus.CLOSED:
            expired = trade.close_reason is CloseReason.EXPIRED
            return "NOTPAY" if expired and not merchant_closed else "CLOSED"


def transaction_resource(merchant: MerchantAccount, trade: Trade, state: str) -> dict[str, Any]:
    """The transaction as the query answers and TRANSACTION.SUCCESS carries it."""
    paid = trade.transaction_id is not None and trade.paid_at is not None
    body: dict[str, Any] = {
        "appid": merchant.appid,
        "mchid": merchant.mchid,
        "out_trade_no": trade.out_trade_no,
    }
    if paid:
        body["transaction_id"] = trade.transaction_id
    if paid or state == "PAYERROR":
        body["trade_type"] = TRADE_TYPE
    body["trade_state"] = state
    body["trade_state_desc"] = TRADE_STATE_DESC[state]
    if paid:
        body["bank_type"] = BANK_TYPE
    attach = trade.extra.get("attach")
    if attach:
        body["attach"] = attach
    amount: dict[str, Any] = {"total": trade.amount, "currency": CURRENCY}
    if paid and trade.paid_at is not None:
        body["success_time"] = beijing_time(trade.paid_at)
        body["payer"] = {"openid": payer_openid(trade)}
        amount["payer_total"] = trade.amount
        amount["payer_currency"] = CURRENCY
    body["amount"] = amount
    return body


def channel_fee(amount: int, fee_rate_bps: int) -> int:
    """The fee on ``amount`` fen at ``fee_rate_bps`` (60 = 0.60%), in fen, half away from 0."""
    scaled = abs(amount) * fee_rate_bps
    fee = (scaled + 5_000) // 10_000
    return fee if amount >= 0 else -fee


def refund_resource(
    trade: Trade, refund: Refund, *, fee_rate_bps: int, funds_account: str
) -> dict[str, Any]:
    """The refund as the refund call and the refund query answer it."""
    status = REFUND_STATUS[refund.status]
    body: dict[str, Any] = {
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": trade.transaction_id,
        "out_trade_no": trade.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": USER_RECEIVED_ACCOUNT,
        "create_time": beijing_time(refund.created_at),
        "status": status,
        "funds_account": funds_account,
        "amount": {
            "total": trade.amount,
            "refund": refund.amount,
            "from": [],
            "payer_total": trade.amount,
            "payer_refund": refund.amount,
            "settlement_refund": refund.amount,
            "settlement_total": trade.amount,
            "discount_refund": 0,
            "currency": CURRENCY,
            "refund_fee": channel_fee(refund.amount, fee_rate_bps),
        },
        "promotion_detail": [],
    }
    if refund.status is RefundStatus.SUCCESS and refund.finished_at is not None:
        body["success_time"] = beijing_time(refund.finished_at)
    return body


def refund_notification_resource(
    merchant: MerchantAccount, trade: Trade, refund: Refund, status: str
) -> dict[str, Any]:
    """The refund as REFUND.SUCCESS / REFUND.CLOSED carry it (``refund_status``, not
    ``status``; only the four amounts)."""
    body: dict[str, Any] = {
        "mchid": merchant.mchid,
        "out_trade_no": trade.out_trade_no,
        "transaction_id": trade.transaction_id,
        "out_refund_no": refund.out_refund_no,
        "refund_id": refund.refund_id,
        "refund_status": status,
    }
    if status == "SUCCESS" and refund.finished_at is not None:
        body["success_time"] = beijing_time(refund.finished_at)
    body["user_received_account"] = USER_RECEIVED_ACCOUNT
    body["amount"] = {
        "total": trade.amount,
        "refund": refund.amount,
        "payer_total": trade.amount,
        "payer_refund": refund.amount,
    }
    return body
