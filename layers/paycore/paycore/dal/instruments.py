"""Stored balances and coupons in the trade table, and the conditional writes that move them.

Item layout (pk / sk):
- ``BALANCE#<merchant_id>#<buyer_id>#<currency>`` / ``BALANCE``: merchant_id, buyer_id,
  currency, available, frozen (integers, minor units), updated_at. Created by the first credit.
- ``COUPON#<cpn_id>`` / ``COUPON``: id, merchant_id, buyer_id, amount, currency, status
  (available | locked | used; expiry is applied when read), expires_at (absent: never),
  locked_by (the payment that locked or used it; absent when available), created_at,
  updated_at; in gsi1 under ``MERCHANT#<mch>#BUYER#<buyer_id>#COUPONS`` (newest first), so
  the hosted cashier can list a buyer's coupons.

The module-level builders (``freeze_balance`` ... ``restore_coupon``) each return one
DynamoDB ``TransactWriteItems`` entry (``{"Update": {...}}``) whose condition is the whole
rule of that move (enough money, right owner, right state), so a payment, order or refund
write and the instrument moves it needs commit together or not at all. Each also runs alone as
``update_item(**entry["Update"])``. ``move_item`` builds the one a domain move
(``paycore.domain.instruments.BalanceMove`` / ``CouponMove``) asks for. Amounts must be
positive integers (``ValueError`` if not). Time strings must be ``paycore.clock`` RFC 3339
(UTC, milliseconds, ``Z``): expiry is compared as text in the condition, which is exact for
that one fixed-width form.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError

from paycore import clock
from paycore.aws import client
from paycore.config import get_settings
from paycore.dal.codec import from_item, to_item, to_values
from paycore.dal.ledger import add_entry
from paycore.dal.transaction import Part, Transaction, raise_unavailable, write_items
from paycore.domain.changes import BalanceCredit, CouponIssue
from paycore.domain.instruments import (
    Balance,
    BalanceMove,
    BalanceMoveKind,
    Coupon,
    CouponMoveKind,
    CouponStatus,
    InstrumentMove,
)
from paycore.errors import Conflict

BALANCE_SK = "BALANCE"
COUPON_SK = "COUPON"

_CANONICAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def balance_pk(merchant_id: str, buyer_id: str, currency: str) -> str:
    return f"BALANCE#{merchant_id}#{buyer_id}#{currency}"


def coupon_pk(coupon_id: str) -> str:
    return f"COUPON#{coupon_id}"


def balance_key(merchant_id: str, buyer_id: str, currency: str) -> dict[str, Any]:
    return to_item({"pk": balance_pk(merchant_id, buyer_id, currency), "sk": BALANCE_SK})


def _buyer_coupons_pk(merchant_id: str, buyer_id: str) -> str:
    return f"MERCHANT#{merchant_id}#BUYER#{buyer_id}#COUPONS"


def coupon_key(coupon_id: str) -> dict[str, Any]:
    return to_item({"pk": coupon_pk(coupon_id), "sk": COUPON_SK})


# -- item builders (TransactWriteItems entries) -------------------------------------------------


def _positive(amount: int) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError(f"an instrument amount must be a positive integer, not {amount!r}")
    return amount


def _time(value: str | None) -> str:
    if value is None:
        return clock.now_rfc3339()
    if not _CANONICAL_TIME.match(value):
        raise ValueError(f"time {value!r} is not paycore.clock RFC 3339 (UTC, ms, Z)")
    return value


def _update(
    table: str,
    key: dict[str, Any],
    update: str,
    condition: str | None,
    values: dict[str, Any],
) -> dict[str, Any]:
    """One Update entry; every attribute is named through ``#name`` (``status`` and others
    are reserved words), and only the names the expressions use are sent (DynamoDB refuses
    unused ones)."""
    names = {token: token[1:] for token in re.findall(r"#\w+", f"{update} {condition or ''}")}
    body: dict[str, Any] = {
        "TableName": table,
        "Key": key,
        "UpdateExpression": update,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": to_values(values),
    }
    if condition:
        body["ConditionExpression"] = condition
    return {"Update": body}


def freeze_balance(
    table: str,
    merchant_id: str,
    buyer_id: str,
    currency: str,
    amount: int,
    *,
    at: str | None = None,
) -> dict[str, Any]:
    """Reserve ``amount`` for a payment in flight: available -= a, frozen += a.
    Fails (ConditionalCheckFailed) unless the balance exists and available >= a."""
    return _update(
        table,
        balance_key(merchant_id, buyer_id, currency),
        "SET #available = #available - :amount, #frozen = #frozen + :amount, #updated_at = :at",
        "attribute_exists(pk) AND #available >= :amount",
        {":amount": _positive(amount), ":at": _time(at)},
    )


def debit_balance(
    table: str,
    merchant_id: str,
    buyer_id: str,
    currency: str,
    amount: int,
    *,
    at: str | None = None,
) -> dict[str, Any]:
    """Spend ``amount`` at once (a payment with no channel part): available -= a.
    Fails unless the balance exists and available >= a."""
    return _update(
        table,
        balance_key(merchant_id, buyer_id, currency),
        "SET #available = #available - :amount, #updated_at = :at",
        "attribute_exists(pk) AND #available >= :amount",
        {":amount": _positive(amount), ":at": _time(at)},
    )


def settle_frozen_balance(
    table: str,
    merchant_id: str,
    buyer_id: str,
    currency: str,
    amount: int,
    *,
    at: str | None = None,
) -> dict[str, Any]:
    """The payment succeeded: the reserved money is spent, frozen -= a.
    Fails unless the balance exists and frozen >= a."""
    return _update(
        table,
        balance_key(merchant_id, buyer_id, currency),
        "SET #frozen = #frozen - :amount, #updated_at = :at",
        "attribute_exists(pk) AND #frozen >= :amount",
        {":amount": _positive(amount), ":at": _time(at)},
    )


def release_frozen_balance(
    table: str,
    merchant_id: str,
    buyer_id: str,
    currency: str,
    amount: int,
    *,
    at: str | None = None,
) -> dict[str, Any]:
    """The payment failed: the reserved money goes back, frozen -= a, available += a.
    Fails unless the balance exists and frozen >= a."""
    return _update(
        table,
        balance_key(merchant_id, buyer_id, currency),
        "SET #frozen = #frozen - :amount, #available = #available + :amount, #updated_at = :at",
        "attribute_exists(pk) AND #frozen >= :amount",
        {":amount": _positive(amount), ":at": _time(at)},
    )


def credit_balance(
    table: str,
    merchant_id: str,
    buyer_id: str,
    currency: str,
    amount: int,
    *,
    at: str | None = None,
) -> dict[str, Any]:
    """Add ``amount`` to available (a top-up or a refund to balance); the first credit
    creates the balance with frozen 0. Unconditional: a credit never fails on state."""
    return _update(
        table,
        balance_key(merchant_id, buyer_id, currency),
        "SET #merchant_id = if_not_exists(#merchant_id, :merchant_id),"
        " #buyer_id = if_not_exists(#buyer_id, :buyer_id),"
        " #currency = if_not_exists(#currency, :currency),"
        " #frozen = if_not_exists(#frozen, :zero), #updated_at = :at"
        " ADD #available :amount",
        None,
        {
            ":merchant_id": merchant_id,
            ":buyer_id": buyer_id,
            ":currency": currency,
            ":zero": 0,
            ":amount": _positive(amount),
            ":at": _time(at),
        },
    )


_COUPON_USABLE = (
    "#status = :available AND #merchant_id = :merchant_id AND #buyer_id = :buyer_id"
    " AND #currency = :currency AND (attribute_not_exists(#expires_at)"
    " OR attribute_type(#expires_at, :null_type) OR #expires_at > :now)"
)


def _take_coupon(
    table: str,
    coupon_id: str,
    *,
    merchant_id: str,
    buyer_id: str,
    currency: str,
    payment_id: str,
    now_rfc3339: str,
    status: CouponStatus,
) -> dict[str, Any]:
    now = _time(now_rfc3339)
    return _update(
        table,
        coupon_key(coupon_id),
        "SET #status = :status, #locked_by = :payment_id, #updated_at = :now",
        _COUPON_USABLE,
        {
            ":status": status.value,
            ":available": CouponStatus.AVAILABLE.value,
            ":merchant_id": merchant_id,
            ":buyer_id": buyer_id,
            ":currency": currency,
            ":null_type": "NULL",
            ":payment_id": payment_id,
            ":now": now,
        },
    )


def lock_coupon(  # noqa: PLR0917 - positional signature fixed by the shared design
    table: str,
    coupon_id: str,
    merchant_id: str,
    buyer_id: str,
    currency: str,
    payment_id: str,
    now_rfc3339: str,
) -> dict[str, Any]:
    """Reserve the coupon for ``payment_id``: available -> locked, locked_by = payment.
    Fails unless it is available, of this merchant, buyer and currency, and not expired at
    ``now_rfc3339`` (no expires_at, or expires_at > now)."""
    return _take_coupon(
        table,
        coupon_id,
        merchant_id=merchant_id,
        buyer_id=buyer_id,
        currency=currency,
        payment_id=payment_id,
        now_rfc3339=now_rfc3339,
        status=CouponStatus.LOCKED,
    )


def use_coupon_now(  # noqa: PLR0917 - same signature as lock_coupon
    table: str,
    coupon_id: str,
    merchant_id: str,
    buyer_id: str,
    currency: str,
    payment_id: str,
    now_rfc3339: str,
) -> dict[str, Any]:
    """Use the coupon at once (a payment with no channel part): available -> used,
    locked_by = payment. Same conditions as ``lock_coupon``."""
    return _take_coupon(
        table,
        coupon_id,
        merchant_id=merchant_id,
        buyer_id=buyer_id,
        currency=currency,
        payment_id=payment_id,
        now_rfc3339=now_rfc3339,
        status=CouponStatus.USED,
    )


def use_coupon(
    table: str, coupon_id: str, payment_id: str, *, at: str | None = None
) -> dict[str, Any]:
    """The payment that locked the coupon succeeded: locked -> used (locked_by stays, naming
    the payment). Fails unless it is locked by ``payment_id``."""
    return _update(
        table,
        coupon_key(coupon_id),
        "SET #status = :used, #updated_at = :at",
        "#status = :locked AND #locked_by = :payment_id",
        {
            ":used": CouponStatus.USED.value,
            ":locked": CouponStatus.LOCKED.value,
            ":payment_id": payment_id,
            ":at": _time(at),
        },
    )


def release_coupon(
    table: str, coupon_id: str, payment_id: str, *, at: str | None = None
) -> dict[str, Any]:
    """The payment that locked the coupon failed: locked -> available, locked_by removed.
    Fails unless it is locked by ``payment_id``. (Expired meanwhile? It reads as expired.)"""
    return _update(
        table,
        coupon_key(coupon_id),
        "SET #status = :available, #updated_at = :at REMOVE #locked_by",
        "#status = :locked AND #locked_by = :payment_id",
        {
            ":available": CouponStatus.AVAILABLE.value,
            ":locked": CouponStatus.LOCKED.value,
            ":payment_id": payment_id,
            ":at": _time(at),
        },
    )


def restore_coupon(
    table: str,
    coupon_id: str,
    *,
    payment_id: str | None = None,
    at: str | None = None,
) -> dict[str, Any]:
    """A refund gave the coupon's whole amount back: used -> available, locked_by removed.
    Fails unless it is used; with ``payment_id``, also unless that payment used it (so a
    retried refund cannot restore a coupon another payment has used since)."""
    condition = "#status = :used"
    values: dict[str, Any] = {
        ":available": CouponStatus.AVAILABLE.value,
        ":used": CouponStatus.USED.value,
        ":at": _time(at),
    }
    if payment_id is not None:
        condition += " AND #locked_by = :payment_id"
        values[":payment_id"] = payment_id
    return _update(
        table,
        coupon_key(coupon_id),
        "SET #status = :available, #updated_at = :at REMOVE #locked_by",
        condition,
        values,
    )


def move_item(table: str, move: InstrumentMove) -> dict[str, Any]:
    """The conditional write that makes ``move`` (see the builders above)."""
    if isinstance(move, BalanceMove):
        build = _BALANCE_BUILDERS[move.kind]
        return build(table, move.merchant_id, move.buyer_id, move.currency, move.amount, at=move.at)
    match move.kind:
        case CouponMoveKind.LOCK | CouponMoveKind.USE_NOW:
            take = lock_coupon if move.kind is CouponMoveKind.LOCK else use_coupon_now
            return take(
                table,
                move.coupon_id,
                move.merchant_id,
                move.buyer_id,
                move.currency,
                move.payment_id,
                move.at,
            )
        case CouponMoveKind.USE:
            return use_coupon(table, move.coupon_id, move.payment_id, at=move.at)
        case CouponMoveKind.RELEASE:
            return release_coupon(table, move.coupon_id, move.payment_id, at=move.at)
        case CouponMoveKind.RESTORE:
            return restore_coupon(table, move.coupon_id, payment_id=move.payment_id, at=move.at)


_BALANCE_BUILDERS = {
    BalanceMoveKind.FREEZE: freeze_balance,
    BalanceMoveKind.DEBIT: debit_balance,
    BalanceMoveKind.SPEND_FROZEN: settle_frozen_balance,
    BalanceMoveKind.RELEASE_FROZEN: release_frozen_balance,
    BalanceMoveKind.CREDIT: credit_balance,
}


def add_moves(transaction: Transaction, moves: tuple[InstrumentMove, ...]) -> None:
    """Add the instrument moves to ``transaction``, each with its refusal."""
    for move in moves:
        transaction.add(move_item(transaction.table, move), Part.INSTRUMENT, move.refusal)


# -- the store ----------------------------------------------------------------------------------


class InstrumentStore:
    """Reads of balances and coupons, and the merchant's own changes of them (a credit, a new
    coupon). Payments and refunds put their moves into their own transactions."""

    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or get_settings().trade_table_name
        self._ddb = client("dynamodb")

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        try:
            answer = self._ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        except ClientError as exc:
            raise_unavailable(exc)
            raise
        item = answer.get("Item")
        return from_item(item) if item else None

    def write(self, items: list[dict[str, Any]]) -> list[str] | None:
        """Apply builder entries atomically: None when they committed, else the per-entry
        cancellation codes (``"ConditionalCheckFailed"`` where a condition did not hold).
        One entry is sent as a plain UpdateItem (same guarantee, half the cost)."""
        return write_items(self._ddb, items)

    # -- balances ----------------------------------------------------------------------------

    def get_balance(self, merchant_id: str, buyer_id: str, currency: str) -> Balance | None:
        item = self._get(balance_key(merchant_id, buyer_id, currency))
        return _balance(item) if item else None

    def credit_balance(self, credit: BalanceCredit) -> Balance:
        """Write the credit (creating the balance) with its journal entry; the balance as
        read right after."""
        transaction = Transaction(self.table)
        add_moves(transaction, (credit.move,))
        add_entry(transaction, credit.entry)
        if transaction.write(self._ddb) is not None:
            raise RuntimeError(f"credit {credit.id} was posted already")
        found = self.get_balance(credit.merchant_id, credit.buyer_id, credit.currency)
        if found is None:  # pragma: no cover - just written
            raise RuntimeError("the credited balance is not there")
        return found

    # -- coupons -----------------------------------------------------------------------------

    def create_coupon(self, issue: CouponIssue) -> None:
        coupon = issue.coupon
        values: dict[str, Any] = {
            "pk": coupon_pk(coupon.id),
            "sk": COUPON_SK,
            "id": coupon.id,
            "merchant_id": coupon.merchant_id,
            "buyer_id": coupon.buyer_id,
            "amount": coupon.amount,
            "currency": coupon.currency,
            "status": coupon.status.value,
            "expires_at": coupon.expires_at,
            "locked_by": coupon.locked_by,
            "created_at": coupon.created_at,
            "updated_at": coupon.updated_at,
            "gsi1pk": _buyer_coupons_pk(coupon.merchant_id, coupon.buyer_id),
            "gsi1sk": f"{coupon.created_at}#{coupon.id}",
        }
        transaction = Transaction(self.table)
        transaction.put_new(values)
        add_entry(transaction, issue.entry)
        if transaction.write(self._ddb) is not None:
            raise Conflict(f"coupon {coupon.id} already exists", code="coupon_exists")

    def get_coupon(self, coupon_id: str) -> Coupon | None:
        item = self._get(coupon_key(coupon_id))
        return _coupon(item) if item else None

    def list_coupons(self, merchant_id: str, buyer_id: str, limit: int = 50) -> list[Coupon]:
        """The buyer's newest ``limit`` coupons at this merchant, in any status (the index is
        eventually consistent: a coupon issued a moment ago may be missing)."""
        try:
            answer = self._ddb.query(
                TableName=self.table,
                IndexName="gsi1",
                KeyConditionExpression="gsi1pk = :pk",
                ExpressionAttributeValues=to_values(
                    {":pk": _buyer_coupons_pk(merchant_id, buyer_id)}
                ),
                ScanIndexForward=False,
                Limit=limit,
            )
        except ClientError as exc:
            raise_unavailable(exc)
            raise
        return [_coupon(from_item(item)) for item in answer.get("Items", [])]


def _balance(item: dict[str, Any]) -> Balance:
    return Balance(
        merchant_id=item["merchant_id"],
        buyer_id=item["buyer_id"],
        currency=item["currency"],
        available=int(item.get("available", 0)),
        frozen=int(item.get("frozen", 0)),
        updated_at=item.get("updated_at"),
    )


def _coupon(item: dict[str, Any]) -> Coupon:
    return Coupon(
        id=item["id"],
        merchant_id=item["merchant_id"],
        buyer_id=item["buyer_id"],
        amount=int(item["amount"]),
        currency=item["currency"],
        status=CouponStatus(item["status"]),
        expires_at=item.get("expires_at"),
        created_at=item["created_at"],
        updated_at=item["updated_at"],
        locked_by=item.get("locked_by"),
    )
