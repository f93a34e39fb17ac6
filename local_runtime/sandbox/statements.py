"""The daily statement (对账单) of one channel account: every trade that moved money on one UTC
day, as the CSV file a merchant downloads to reconcile, the way Alipay and WeChat Pay publish
trade bills.

One line per paid order (``PAYMENT``, on the day of ``paid_at``) and per successful refund
(``REFUND``, on the day of ``finished_at``), oldest first, under this header::

    kind,reference,transaction_id,out_trade_no,amount,currency,fee,status,occurred_at

``reference`` is the merchant's number (``out_trade_no`` of a payment, ``out_refund_no`` of a
refund), ``transaction_id`` the sandbox's (``transaction_id``, ``refund_id``), ``amount`` and
``fee`` integers in minor units (the sandbox charges no fee: 0), ``status`` the sandbox's word
(``SUCCESS``), ``occurred_at`` RFC 3339 UTC.

The order's statement switches make discrepancies on purpose: ``statement: "omit"`` leaves the
order's lines out, ``statement_amount_delta`` shifts its payment line's amount (never below 0),
``statement_status`` replaces its payment line's status word.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, date

from local_runtime.sandbox.orders import Order, Refund, RefundStatus, TradeStatus, rfc3339

COLUMNS = (
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


def statement_csv(
    orders: Iterable[Order], refunds: Iterable[Refund], account: str, day: date
) -> bytes:
    """The statement file of ``account`` for ``day`` (UTC), UTF-8 CSV with CRLF line ends."""
    mine = {order.out_trade_no: order for order in orders if order.account == account}
    rows: list[tuple[str, list[str]]] = []
    for order in mine.values():
        if order.status is not TradeStatus.SUCCESS or order.paid_at is None:
            continue
        if order.paid_at.astimezone(UTC).date() != day or order.behaviour.statement == "omit":
            continue
        amount = max(0, order.amount + (order.behaviour.statement_amount_delta or 0))
        status = order.behaviour.statement_status or order.status.value
        occurred = str(rfc3339(order.paid_at))
        rows.append(
            (
                occurred,
                [
                    "PAYMENT",
                    order.out_trade_no,
                    str(order.transaction_id),
                    order.out_trade_no,
                    str(amount),
                    order.currency,
                    "0",
                    status,
                    occurred,
                ],
            )
        )
    for refund in refunds:
        refunded = mine.get(refund.out_trade_no)
        if refund.account != account or refunded is None or refunded.behaviour.statement == "omit":
            continue
        if refund.status is not RefundStatus.SUCCESS or refund.finished_at is None:
            continue
        if refund.finished_at.astimezone(UTC).date() != day:
            continue
        occurred = str(rfc3339(refund.finished_at))
        rows.append(
            (
                occurred,
                [
                    "REFUND",
                    refund.out_refund_no,
                    refund.refund_id,
                    refund.out_trade_no,
                    str(refund.amount),
                    refund.currency,
                    "0",
                    refund.status.value,
                    occurred,
                ],
            )
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(row for _, row in sorted(rows, key=lambda item: item[0]))
    return out.getvalue().encode("utf-8")
