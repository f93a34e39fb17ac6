"""The daily trade bill (交易账单) of one merchant, type ALL, as WeChat Pay publishes it.

``GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL[&tar_type=GZIP]`` answers
``{"hash_type": "SHA1", "hash_value", "download_url"}``; the URL (valid 30 s, signed GET like
any call, answer not signed) gives the file, gzip-compressed with ``tar_type=GZIP``. The hash
is the SHA1 (lower-case hex) of the uncompressed file.

The file is UTF-8 CSV (``\\r\\n`` line ends): the detail header, one row per line of the day's
statement (Asia/Shanghai), the summary header and the summary row. Every value is prefixed
with a backtick (`` ` ``) so that spreadsheet programs keep long numbers as text; a value that
holds a comma or a quote is CSV-quoted (backtick inside the quotes). Amounts are yuan with two
decimals, the fee (手续费) with five; both may be negative (a refund's fee comes back).

- A payment row: 交易状态 ``SUCCESS`` (or the ``statement_status`` switch), 应结订单金额 and
  订单金额 the amount (``statement_amount_delta`` applied), 微信退款单号 and 商户退款单号 ``0``.
- A refund row (the day the refund succeeded, at that time): 交易状态 ``REFUND``, 应结订单金额
  and 订单金额 ``0.00``, 退款金额 and 申请退款金额 the refund, 退款类型 ``ORIGINAL``,
  退款状态 ``SUCCESS``, 手续费 the fee given back (negative).
- The fee is ``FEE_RATE_BPS`` (0.60%) of the row's amount, rounded half up to the fen.
"""

from __future__ import annotations

import csv
import io
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from local_runtime.simulators.common.trades import StatementLine, StatementLineKind
from local_runtime.simulators.wechatpay.merchants import MerchantAccount
from local_runtime.simulators.wechatpay.resources import (
    BANK_TYPE,
    CURRENCY,
    SHANGHAI,
    TRADE_TYPE,
    channel_fee,
    payer_openid,
)

FEE_RATE_BPS = 60  # 0.60%, WeChat Pay's standard rate
FEE_RATE_TEXT = "0.60%"
DOWNLOAD_TTL_SECONDS = 30.0

DETAIL_HEADER = (
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
SUMMARY_HEADER = (
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
)


def yuan(fen: int) -> str:
    """``1999`` -> ``19.99``, ``-5`` -> ``-0.05``."""
    sign = "-" if fen < 0 else ""
    major, minor = divmod(abs(fen), 100)
    return f"{sign}{major}.{minor:02d}"


def fee_yuan(fen: int) -> str:
    """A fee in fen with WeChat Pay's five decimals: ``12`` -> ``0.12000``."""
    return f"{yuan(fen)}000"


@dataclass(frozen=True)
class _Row:
    values: list[str]
    settled: int  # 应结订单金额
    refunded: int  # 退款金额
    fee: int
    ordered: int  # 订单金额
    asked: int  # 申请退款金额


def _row(merchant: MerchantAccount, line: StatementLine) -> _Row:
    trade = line.trade
    common = [
        line.occurred_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
        merchant.appid,
        merchant.mchid,
        "0",
        "",
        trade.transaction_id or "",
        trade.out_trade_no,
        payer_openid(trade),
        TRADE_TYPE,
    ]
    attach = str(trade.extra.get("attach") or "")
    if line.kind is StatementLineKind.PAYMENT:
        fee = channel_fee(line.amount, FEE_RATE_BPS)
        amount = yuan(line.amount)
        values = [
            *common,
            *(line.status, BANK_TYPE, CURRENCY, amount, "0.00", "0", "0", "0.00", "0.00"),
            *("", "", trade.subject, attach, fee_yuan(fee), FEE_RATE_TEXT, amount, "0.00", ""),
        ]
        return _Row(values, line.amount, 0, fee, line.amount, 0)
    refund = line.refund
    assert refund is not None
    fee = -channel_fee(line.amount, FEE_RATE_BPS)
    amount = yuan(line.amount)
    values = [
        *common,
        *("REFUND", BANK_TYPE, CURRENCY, "0.00", "0.00", refund.refund_id, refund.out_refund_no),
        *(amount, "0.00", "ORIGINAL", "SUCCESS", trade.subject, attach, fee_yuan(fee)),
        *(FEE_RATE_TEXT, "0.00", amount, ""),
    ]
    return _Row(values, 0, line.amount, fee, 0, line.amount)


def trade_bill(merchant: MerchantAccount, lines: Sequence[StatementLine]) -> bytes:
    """The ALL bill of ``lines`` (one account's day), UTF-8."""
    rows = [_row(merchant, line) for line in lines]
    summary = [
        str(len(rows)),
        yuan(sum(row.settled for row in rows)),
        yuan(sum(row.refunded for row in rows)),
        "0.00",
        fee_yuan(sum(row.fee for row in rows)),
        yuan(sum(row.ordered for row in rows)),
        yuan(sum(row.asked for row in rows)),
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(DETAIL_HEADER)
    for row in rows:
        writer.writerow([f"`{value}" for value in row.values])
    writer.writerow(SUMMARY_HEADER)
    writer.writerow([f"`{value}" for value in summary])
    return out.getvalue().encode("utf-8")


@dataclass(frozen=True)
class _Download:
    mchid: str
    content: bytes
    expires_at: datetime


class BillDownloads:
    """The files behind ``download_url`` tokens: each for its merchant, 30 s from issue."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._files: dict[str, _Download] = {}

    def publish(self, mchid: str, content: bytes) -> str:
        """A new token for ``content`` (the bytes exactly as downloaded)."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._files = {key: f for key, f in self._files.items() if f.expires_at > now}
            expires_at = now + timedelta(seconds=DOWNLOAD_TTL_SECONDS)
            self._files[token] = _Download(mchid, content, expires_at)
        return token

    def get(self, mchid: str, token: str) -> bytes | None:
        """The file, or None when the token is unknown, expired or another merchant's."""
        with self._lock:
            found = self._files.get(token)
        if found is None or found.mchid != mchid or found.expires_at <= self._clock():
            return None
        return found.content
