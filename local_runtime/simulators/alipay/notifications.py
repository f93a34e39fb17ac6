"""Alipay's asynchronous notifications (``notify_type=trade_status_sync``) and the buyer's
signed return to ``return_url``, built from the trade book's neutral trades.

A notification is a form POST (``application/x-www-form-urlencoded; charset=utf-8``) to the
``notify_url`` of the page.pay call, signed RSA2 by Alipay over every field but ``sign`` and
``sign_type``; acknowledged by the body ``success``. Alipay sends one when a trade is paid
(``TRADE_SUCCESS``), when it closes unpaid (``TRADE_CLOSED``; here: the buyer declined) and
when a refund of it succeeds (``TRADE_SUCCESS`` after a partial refund, ``TRADE_CLOSED`` once
fully refunded, with ``out_biz_no`` = the refund's ``out_request_no``, ``refund_fee`` = the
total refunded so far and ``gmt_refund``). Every attempt of one notification has the same
``notify_id`` and a fresh ``notify_time`` and signature.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from local_runtime.simulators.alipay.accounts import AlipayAccount
from local_runtime.simulators.alipay.protocol import (
    SIGN_TYPE,
    beijing,
    beijing_millis,
    out_request_no,
    sign_params,
    yuan,
)
from local_runtime.simulators.common.trades import Refund, Trade, TradeStatus

NOTIFY_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
RETURN_METHOD = "alipay.trade.page.pay.return"

TRADE_SUCCESS = "TRADE_SUCCESS"
TRADE_CLOSED = "TRADE_CLOSED"
WAIT_BUYER_PAY = "WAIT_BUYER_PAY"


@dataclass(frozen=True)
class Buyer:
    """The simulated Alipay buyer who pays every trade (one per simulator)."""

    user_id: str  # 2088 + 12 digits
    logon_id: str  # masked, as merchants see it


def trade_status(trade: Trade) -> str:
    """The trade's Alipay ``trade_status``: a declined trade is closed (Alipay has no
    decline), and a paid trade refunded in full is ``TRADE_CLOSED`` too."""
    match trade.status:
        case TradeStatus.WAIT_BUYER_PAY:
            return WAIT_BUYER_PAY
        case TradeStatus.SUCCESS:
            return TRADE_CLOSED if trade.amount_refunded >= trade.amount else TRADE_SUCCESS
        case TradeStatus.DECLINED | TradeStatus.CLOSED:
            return TRADE_CLOSED


def closed_at(trade: Trade) -> datetime | None:
    """When Alipay considers the trade closed (declined, closed, expired), if it is."""
    if trade.status is TradeStatus.DECLINED:
        return trade.declined_at
    return trade.closed_at


def new_notify_id() -> str:
    return secrets.token_hex(17)


def notification_fields(
    account: AlipayAccount,
    trade: Trade,
    buyer: Buyer,
    *,
    status: str,
    notify_id: str,
    now: datetime,
    refund: Refund | None = None,
    refunded: int | None = None,
) -> dict[str, str]:
    """Every field of one notification but ``sign``. ``refund`` (with ``refunded``, the
    trade's total refunded once it succeeded) makes it a refund's notification."""
    paid = trade.paid_at is not None
    fields: dict[str, str | None] = {
        "notify_time": beijing(now),
        "notify_type": "trade_status_sync",
        "notify_id": notify_id,
        "app_id": account.app_id,
        "auth_app_id": account.app_id,
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": SIGN_TYPE,
        "trade_no": trade.transaction_id,
        "out_trade_no": trade.out_trade_no,
        "seller_id": account.pid,
        "trade_status": status,
        "total_amount": yuan(trade.amount),
        "subject": trade.subject,
        "body": trade.extra.get("body"),
        "gmt_create": beijing(trade.created_at),
        "passback_params": trade.extra.get("passback_params"),
    }
    if paid and trade.paid_at is not None:
        fields |= {
            "buyer_id": buyer.user_id,
            "buyer_logon_id": buyer.logon_id,
            "receipt_amount": yuan(trade.amount),
            "invoice_amount": yuan(trade.amount),
            "buyer_pay_amount": yuan(trade.amount),
            "point_amount": "0.00",
            "gmt_payment": beijing(trade.paid_at),
            "fund_bill_list": json.dumps(
                [{"amount": yuan(trade.amount), "fundChannel": "ALIPAYACCOUNT"}],
                separators=(",", ":"),
            ),
        }
    if refund is not None and refund.finished_at is not None and refunded is not None:
        fields |= {
            "out_biz_no": out_request_no(refund.out_refund_no),
            "refund_fee": yuan(refunded),
            "gmt_refund": beijing_millis(refund.finished_at),
        }
        if status == TRADE_CLOSED:
            fields["gmt_close"] = beijing(refund.finished_at)
    elif status == TRADE_CLOSED:
        closed = closed_at(trade)
        if closed is not None:
            fields["gmt_close"] = beijing(closed)
    return {name: value for name, value in fields.items() if value}


def form_request(
    account: AlipayAccount, fields: Callable[[], Mapping[str, str]]
) -> Callable[[], tuple[bytes, Mapping[str, str]]]:
    """A request builder for the deliverer: ``fields()`` (fresh ``notify_time``) signed by
    Alipay's key for the app, form-encoded."""

    def build() -> tuple[bytes, Mapping[str, str]]:
        values = dict(fields())
        values["sign"] = sign_params(account.alipay_key, values)
        return urlencode(values).encode("ascii"), {"Content-Type": NOTIFY_CONTENT_TYPE}

    return build


def is_ack(status: int, body: bytes) -> bool:
    """Alipay stops resending once the merchant answers the seven characters ``success``
    (surrounding whitespace tolerated)."""
    return status == 200 and body.strip() == b"success"


def return_url_for(account: AlipayAccount, trade: Trade, now: datetime) -> str | None:
    """Where the buyer's browser goes after choosing: for a paid trade the page.pay
    ``return_url`` with Alipay's signed synchronous-return parameters; after a decline the
    ``return_url`` as given (Alipay itself never returns an unpaid buyer)."""
    target = trade.extra.get("return_url")
    if not isinstance(target, str) or not target:
        return None
    if trade.status is not TradeStatus.SUCCESS or trade.transaction_id is None:
        return target
    params = {
        "charset": "utf-8",
        "out_trade_no": trade.out_trade_no,
        "method": RETURN_METHOD,
        "total_amount": yuan(trade.amount),
        "trade_no": trade.transaction_id,
        "auth_app_id": account.app_id,
        "version": "1.0",
        "app_id": account.app_id,
        "sign_type": SIGN_TYPE,
        "seller_id": account.pid,
        "timestamp": beijing(now),
    }
    params["sign"] = sign_params(account.alipay_key, params)
    separator = "&" if "?" in target else "?"
    return f"{target}{separator}{urlencode(params)}"
