# Alipay's bill is Chinese text with full-width punctuation, written exactly as Alipay does.
# ruff: noqa: RUF001, RUF002
"""The daily trade bill (``bill_type=trade``) in Alipay's format: a ``.csv.zip`` holding two
GBK-encoded CSV files, the business detail (``..._业务明细.csv``) and its summary
(``..._业务明细(汇总).csv``), for one day in Asia/Shanghai.

The detail file, as Alipay writes it::

    #支付宝业务明细查询
    #账号：[20881234567890120156]
    #起始日期：[2026年12月06日 00:00:00]   终止日期：[2026年12月07日 00:00:00]
    #-----------------------------------------业务明细列表----------------------------------------
    支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,...,备注
    2026120622001...\t,pay_01...\t,交易\t,Green tea,2026-12-06 10:00:00,2026-12-06 10:00:05,...
    #-----------------------------------------业务明细列表结束------------------------------------
    #交易合计：1笔，商家实收共19.99元，商家优惠共0.00元
    #退款合计：0笔，商家实收退款共0.00元，商家优惠退款共0.00元
    #导出时间：[2026年12月07日 09:00:00]

Identifiers and some text cells carry a trailing tab (so spreadsheets keep them as text);
payment rows (业务类型 ``交易``) have positive amounts and a negative 服务费, refund rows
(``退款``) negative amounts, the refund's ``out_request_no`` in 退款批次号/请求号 and the
service fee returned (positive). The statement switches act on a payment row: ``omit`` leaves
it out, ``statement_amount_delta`` changes 订单金额 and 商家实收, ``statement_status`` is written
in 业务类型 instead of ``交易``.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from local_runtime.simulators.alipay.accounts import AlipayAccount
from local_runtime.simulators.alipay.protocol import SHANGHAI, beijing, out_request_no, yuan
from local_runtime.simulators.common.trades import StatementLine, StatementLineKind

# Alipay's standard service fee for computer-website payments: 0.6 %, half up to the fen.
FEE_RATE_BPS = 60

PAYMENT_TYPE = "交易"
REFUND_TYPE = "退款"

DETAIL_COLUMNS = (
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
)
SUMMARY_COLUMNS = (
    "门店编号",
    "门店名称",
    "交易订单总笔数",
    "退款订单总笔数",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "卡消费金额（元）",
    "服务费（元）",
    "分润（元）",
    "实收净额（元）",
)
_RULE = "-" * 41  # the dashes around the section titles, as many as Alipay's files have


def service_fee(amount: int) -> int:
    """Alipay's fee on a payment of ``amount`` fen."""
    return (amount * FEE_RATE_BPS + 5_000) // 10_000


def fee_returned(paid: int, refunded_before: int, refunded_after: int) -> int:
    """The fee a refund returns: the fee in proportion to what is refunded so far, half up,
    less what earlier refunds returned (a full refund returns all of it)."""
    fee = service_fee(paid)

    def share(refunded: int) -> int:
        return (fee * refunded * 2 + paid) // (2 * paid)

    return share(refunded_after) - share(refunded_before)


@dataclass(frozen=True)
class BillRow:
    """One detail row before it is written: the line, and the fee it shows (signed)."""

    line: StatementLine
    fee: int


@dataclass(frozen=True)
class BillFile:
    name: str  # e.g. 20881234567890120156_20261206.csv.zip
    content: bytes


def bill_file(
    account: AlipayAccount,
    day: date,
    rows: Sequence[BillRow],
    *,
    buyer_logon_id: str,
    exported_at: datetime,
) -> BillFile:
    """The day's ``.csv.zip`` for the account."""
    stem = f"{account.bill_account}_{day:%Y%m%d}"
    detail = _detail(account, day, rows, buyer_logon_id, exported_at)
    summary = _summary(account, day, rows, exported_at)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{stem}_业务明细.csv", detail.encode("gbk", errors="replace"))
        archive.writestr(f"{stem}_业务明细(汇总).csv", summary.encode("gbk", errors="replace"))
    return BillFile(f"{stem}.csv.zip", buffer.getvalue())


def _kind(line: StatementLine) -> str:
    """业务类型: 交易 for a payment (or the ``statement_status`` text), 退款 for a refund."""
    if line.kind is StatementLineKind.REFUND:
        return REFUND_TYPE
    return PAYMENT_TYPE if line.status == "SUCCESS" else line.status


def _signed_amount(line: StatementLine) -> int:
    return -line.amount if line.kind is StatementLineKind.REFUND else line.amount


def _period(day: date) -> str:
    start = datetime.combine(day, time(0), tzinfo=SHANGHAI)
    end = start + timedelta(days=1)
    return f"#起始日期：[{_chinese(start)}]   终止日期：[{_chinese(end)}]"


def _chinese(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y年%m月%d日 %H:%M:%S")


def _detail(
    account: AlipayAccount,
    day: date,
    rows: Sequence[BillRow],
    buyer_logon_id: str,
    exported_at: datetime,
) -> str:
    out = io.StringIO()
    out.write("#支付宝业务明细查询\r\n")
    out.write(f"#账号：[{account.bill_account}]\r\n")
    out.write(f"{_period(day)}\r\n")
    out.write(f"#{_RULE}业务明细列表{_RULE[:40]}\r\n")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(DETAIL_COLUMNS)
    payments = refunds = 0
    paid_total = refunded_total = 0
    for row in rows:
        line = row.line
        trade = line.trade
        refund = line.refund
        kind = _kind(line)
        amount = _signed_amount(line)
        if kind == PAYMENT_TYPE:
            payments += 1
            paid_total += amount
        elif kind == REFUND_TYPE:
            refunds += 1
            refunded_total += amount
        writer.writerow(
            (
                f"{trade.transaction_id or ''}\t",
                f"{trade.out_trade_no}\t",
                f"{kind}\t",
                trade.subject,
                beijing(trade.created_at),
                beijing(line.occurred_at),
                "\t",
                "\t",
                "\t",
                "\t",
                f"{buyer_logon_id}\t",
                yuan(amount),
                yuan(amount),
                "0.00",
                "0.00",
                "0.00",
                "0.00",
                "0.00",
                "",
                "0.00\t",
                "0.00",
                f"{out_request_no(refund.out_refund_no) if refund is not None else ''}\t",
                yuan(row.fee),
                "0.00",
                "",
            )
        )
    out.write(f"#{_RULE}业务明细列表结束{_RULE[:36]}\r\n")
    out.write(f"#交易合计：{payments}笔，商家实收共{yuan(paid_total)}元，商家优惠共0.00元\r\n")
    out.write(
        f"#退款合计：{refunds}笔，商家实收退款共{yuan(refunded_total)}元，商家优惠退款共0.00元\r\n"
    )
    out.write(f"#导出时间：[{_chinese(exported_at)}]\r\n")
    return out.getvalue()


def _summary(
    account: AlipayAccount, day: date, rows: Sequence[BillRow], exported_at: datetime
) -> str:
    """The totals of the detail's 交易 and 退款 rows (a row whose 业务类型 a
    ``statement_status`` replaced is in neither)."""
    payments = [row for row in rows if _kind(row.line) == PAYMENT_TYPE]
    refunds = [row for row in rows if _kind(row.line) == REFUND_TYPE]
    amount = sum(_signed_amount(row.line) for row in (*payments, *refunds))
    fees = sum(row.fee for row in (*payments, *refunds))
    totals = (
        str(len(payments)),
        str(len(refunds)),
        yuan(amount),
        yuan(amount),
        "0.00",
        "0.00",
        "0.00",
        yuan(fees),
        "0.00",
        yuan(amount + fees),
    )
    out = io.StringIO()
    out.write("#支付宝业务汇总查询\r\n")
    out.write(f"#账号：[{account.bill_account}]\r\n")
    out.write(f"{_period(day)}\r\n")
    out.write(f"#{_RULE}业务汇总列表{_RULE[:40]}\r\n")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(SUMMARY_COLUMNS)
    if rows:
        writer.writerow(("\t", "\t", *totals))
    writer.writerow(("合计", "", *totals))
    out.write(f"#{_RULE}业务汇总列表结束{_RULE[:36]}\r\n")
    out.write(f"#导出时间：[{_chinese(exported_at)}]\r\n")
    return out.getvalue()
