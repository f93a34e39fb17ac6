"""The trade table: merchants, API keys, orders, payments and events in one DynamoDB table.

Item layout (pk / sk):
- ``MERCHANT#<mch>`` / ``MERCHANT``: the merchant, with the hash of its current API key
  (``api_key_hash``) and how many webhook endpoints it has (``paycore.dal.webhook_endpoint_store``
  keeps those, in the same partition).
- ``APIKEY#<sha256 of key>`` / ``APIKEY``: points to the merchant; keys are never stored. A
  rolled key carries ``expires_at`` (refused from then on) and ``ttl`` (DynamoDB deletes the
  item some time after).
- ``ORDER#<ord>`` / ``ORDER``: the order; gsi1 ``MERCHANT#<mch>#ORDERS`` by creation time.
- ``MONO#<mch>#<merchant_order_no>`` / ``MONO``: makes merchant order numbers unique.
- ``CASHIER#<sha256 of token>`` / ``CASHIER``: leads from a cashier link to its order
  (paycore.domain.cashier); written with the order, so a link never exists without it.
- ``PAYMENT#<pay>`` / ``PAYMENT``: the payment. While it waits for its channel, the item also
  holds the state machine's task token (``task_token``), written by the step that records the
  channel order, so the callback reads payment and token in one read; the token is never part
  of the ``Payment`` (it never reaches an answer, a log or a snapshot). ``PAYMENT#<pay>`` /
  ``TASKTOKEN`` held it apart before: still read for a payment that started then. The item
  also lists the fingerprints of the signed notifications taken for the payment
  (``notification_fingerprints``, absent while empty): the callback adds one and reads the
  payment and its token in one conditional update (``take_notification``), which refuses the
  same message twice.
- ``EVENT#<evt>`` / ``EVENT``: the event; gsi1 ``MERCHANT#<mch>#EVENTS`` by creation time.
- Orders with a deadline are also in the sparse, keys-only index gsi2, partitioned
  ``<KIND>#<shard>`` (one of ``OPEN_SHARDS``, so no hot key) and sorted by the deadline, so a
  sweep finds the orders due without a scan: open orders (``created`` or ``paying``) under
  ``OPEN`` by ``expires_at`` (the expiry sweep); paid guaranteed orders not confirmed yet under
  ``CONFIRM`` by ``auto_confirm_at`` (the auto-confirm sweep); orders whose money is pending
  under ``SETTLE`` by ``settle_on``, the settlement day it is due (the settlement run). An order
  leaves the index when its deadline no longer applies (paid or closed; confirmed or refunded
  in full; settled). The ledger's account items share the index under ``LEDGER#...``
  (``paycore.dal.ledger``).
- ``SETTLEMENT#<mch>#<CUR>`` / ``<YYYY-MM-DD>``: what settlement of that day moved for the
  merchant, added to (``ADD``) by each batch of each run in the batch's transaction.

Every change of an order or payment is a conditional write on the version it was read at;
a state change and its event are written in one transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from botocore.exceptions import ClientError

from paycore.aws import client
from paycore.config import get_settings
from paycore.dal.codec import from_item, to_item, to_values
from paycore.dal.instruments import add_moves
from paycore.dal.ledger import add_entry
from paycore.dal.transaction import (
    FAILED,
    Cancelled,
    Part,
    Transaction,
    raise_unavailable,
    write_items,
)
from paycore.domain import cashier
from paycore.domain.changes import (
    OrderClosing,
    PaymentSettlement,
    PaymentStart,
    SettlementBatch,
    TradeConfirmation,
)
from paycore.domain.models import Event, Merchant, Order, Payment, TradeType
from paycore.domain.status import OrderStatus, PaymentStatus
from paycore.errors import CallbackRejected, ConcurrentUpdate, Conflict, NotFound
from paycore.ledger.rules import SettlementFigures

GSI = "gsi1"
EXPIRY_INDEX = "gsi2"
OPEN_SHARDS = 8
OPEN = "OPEN"  # gsi2 partitions of open orders, by expires_at
CONFIRM = "CONFIRM"  # ... of paid guaranteed orders not confirmed yet, by auto_confirm_at
SETTLE = "SETTLE"  # ... of orders whose money is pending, by the settlement day it is due
_BATCH_GET = 100


def _key(pk: str, sk: str) -> dict[str, Any]:
    return to_item({"pk": pk, "sk": sk})


def merchant_pk(merchant_id: str) -> str:
    return f"MERCHANT#{merchant_id}"


def _order_pk(order_id: str) -> str:
    return f"ORDER#{order_id}"


def _payment_pk(payment_id: str) -> str:
    return f"PAYMENT#{payment_id}"


def event_pk(event_id: str) -> str:
    return f"EVENT#{event_id}"


def _settlement_pk(merchant_id: str, currency: str) -> str:
    return f"SETTLEMENT#{merchant_id}#{currency}"


def _mono_pk(merchant_id: str, merchant_order_no: str) -> str:
    return f"MONO#{merchant_id}#{merchant_order_no}"


def _deadline_shard(kind: str, order_id: str) -> str:
    return f"{kind}#{int(hashlib.sha256(order_id.encode()).hexdigest(), 16) % OPEN_SHARDS}"


def _cashier_pk(token: str) -> str:
    return f"CASHIER#{cashier.digest(token)}"


class TradeStore:
    """DynamoDB access for the trade aggregates."""

    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or get_settings().trade_table_name
        self._ddb = client("dynamodb")

    # -- generic -----------------------------------------------------------------------------

    def _get(self, pk: str, sk: str, *, consistent: bool = True) -> dict[str, Any] | None:
        try:
            answer = self._ddb.get_item(
                TableName=self.table, Key=_key(pk, sk), ConsistentRead=consistent
            )
        except ClientError as exc:
            raise_unavailable(exc)
            raise
        item = answer.get("Item")
        return from_item(item) if item else None

    def _transaction(self) -> Transaction:
        return Transaction(self.table)

    def _write(self, transaction: Transaction) -> bool:
        """Commit ``transaction``; False when a condition failed."""
        return transaction.write(self._ddb) is None

    # The webhook endpoint store's writes (an endpoint, its count on the merchant, a rolled
    # key) are items of no journal entry: it builds them one by one and commits them here.

    def _put_new(self, values: dict[str, Any]) -> dict[str, Any]:
        """The Put of a new item (refused when the key exists)."""
        transaction = self._transaction()
        transaction.put_new(values)
        return transaction.items[0]

    def _put_versioned(self, values: dict[str, Any], expected_version: int) -> dict[str, Any]:
        """The Put that replaces the item at ``expected_version``."""
        transaction = self._transaction()
        transaction.put_versioned(values, expected_version)
        return transaction.items[0]

    def _transact(self, items: Sequence[dict[str, Any]]) -> list[str] | None:
        """Commit ``items`` atomically: None when committed, else the cancellation codes."""
        return write_items(self._ddb, items)

    def _page(
        self, index_pk: str, limit: int, start_key: dict[str, Any] | None
    ) -> tuple[list[dict[str, Any]], bool]:
        query: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": GSI,
            "KeyConditionExpression": "gsi1pk = :pk",
            "ExpressionAttributeValues": to_values({":pk": index_pk}),
            "ScanIndexForward": False,
            "Limit": limit + 1,
        }
        if start_key:
            query["ExclusiveStartKey"] = to_item(start_key)
        items: list[dict[str, Any]] = []
        while True:
            answer = self._ddb.query(**query)
            items.extend(from_item(item) for item in answer.get("Items", []))
            last = answer.get("LastEvaluatedKey")
            if len(items) > limit or not last:
                break
            query["ExclusiveStartKey"] = last
        return items[:limit], len(items) > limit

    def _start_key(self, pk: str, sk: str, owner_pk: str) -> dict[str, Any]:
        """The index position of ``starting_after``; it must belong to the same list."""
        item = self._get(pk, sk)
        if item is None or item.get("gsi1pk") != owner_pk:
            raise NotFound("starting_after names no object of this list", param="starting_after")
        return {key: item[key] for key in ("pk", "sk", "gsi1pk", "gsi1sk")}

    # -- merchants ---------------------------------------------------------------------------

    def create_merchant(
        self,
        merchant: Merchant,
        api_key_hash: str,
        *,
        webhook_endpoints: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Store a new merchant, its API key and (``webhook_endpoints``: the Puts
        ``WebhookEndpointStore.endpoint_item`` makes) its first endpoints, in one transaction."""
        values = {
            "pk": merchant_pk(merchant.id),
            "sk": "MERCHANT",
            **asdict(merchant),
            "api_key_hash": api_key_hash,
            "webhook_endpoints": len(webhook_endpoints),
        }
        transaction = self._transaction()
        transaction.put_new(values)
        transaction.put_new(_key_values(merchant.id, api_key_hash))
        transaction.extend(webhook_endpoints, Part.NEW)
        if not self._write(transaction):
            raise Conflict("merchant or API key already exists", code="merchant_exists")

    def get_merchant(self, merchant_id: str) -> Merchant | None:
        item = self._get(merchant_pk(merchant_id), "MERCHANT", consistent=False)
        return _merchant(item) if item else None

    def merchant_id_for_key(self, api_key_hash: str, now_rfc3339: str) -> str | None:
        """The merchant whose API key hashes to ``api_key_hash``, unless the key has expired
        (it was rolled) by ``now_rfc3339``."""
        item = self._get(f"APIKEY#{api_key_hash}", "APIKEY", consistent=False)
        if item is None:
            return None
        expires_at = item.get("expires_at")
        if expires_at is not None and str(expires_at) <= now_rfc3339:
            return None
        return str(item["merchant_id"])

    def roll_api_key(
        self,
        merchant_id: str,
        new_key_hash: str,
        *,
        caller_key_hash: str,
        old_key_expires_at: str,
        old_key_ttl: int,
    ) -> None:
        """Make ``new_key_hash`` the merchant's current key and let the current one expire at
        ``old_key_expires_at``, in one transaction. A merchant onboarded before keys were
        rolled has no ``api_key_hash``: its only key is the caller's. ``ConcurrentUpdate`` when
        another roll won the race."""
        merchant = self._get(merchant_pk(merchant_id), "MERCHANT")
        if merchant is None:
            raise NotFound(f"no merchant {merchant_id}", code="merchant_not_found")
        current = str(merchant.get("api_key_hash") or caller_key_hash)
        merchant_key = {"pk": merchant_pk(merchant_id), "sk": "MERCHANT"}
        condition = (
            "api_key_hash = :current"
            if merchant.get("api_key_hash")
            else "attribute_not_exists(api_key_hash)"
        )
        items = [
            self._put_new(_key_values(merchant_id, new_key_hash)),
            {
                "Update": {
                    "TableName": self.table,
                    "Key": to_item({"pk": f"APIKEY#{current}", "sk": "APIKEY"}),
                    "UpdateExpression": "SET expires_at = :at, #ttl = :ttl",
                    "ConditionExpression": "merchant_id = :merchant AND "
                    "attribute_not_exists(expires_at)",
                    "ExpressionAttributeNames": {"#ttl": "ttl"},
                    "ExpressionAttributeValues": to_values(
                        {":at": old_key_expires_at, ":ttl": old_key_ttl, ":merchant": merchant_id}
                    ),
                }
            },
            {
                "Update": {
                    "TableName": self.table,
                    "Key": to_item(merchant_key),
                    "UpdateExpression": "SET api_key_hash = :new",
                    "ConditionExpression": condition,
                    "ExpressionAttributeValues": to_values(
                        {":new": new_key_hash}
                        | ({":current": current} if merchant.get("api_key_hash") else {})
                    ),
                }
            },
        ]
        codes = self._transact(items)
        if codes is not None:
            raise ConcurrentUpdate(f"merchant {merchant_id}'s API key changed meanwhile; retry")

    # -- orders ------------------------------------------------------------------------------

    def create_order(self, order: Order, cashier_token: str | None = None) -> None:
        """Write a new order, its merchant order number and (given its token) the item that
        leads from its cashier link to it, all or nothing."""
        values = self._order_values(order)
        mono = {
            "pk": _mono_pk(order.merchant_id, order.merchant_order_no),
            "sk": "MONO",
            "order_id": order.id,
        }
        transaction = self._transaction()
        transaction.put_new(values)
        transaction.put_new(mono)
        if cashier_token is not None:
            link = {"pk": _cashier_pk(cashier_token), "sk": "CASHIER", "order_id": order.id}
            transaction.put_new(link)
        cancelled = transaction.write(self._ddb)
        if cancelled is not None and cancelled.codes[1:2] == (FAILED,):
            raise Conflict(
                f"an order with merchant_order_no {order.merchant_order_no!r} already exists",
                code="duplicate_merchant_order_no",
                param="merchant_order_no",
            )
        if cancelled is not None:  # an id or a 256-bit token drawn twice: never in practice
            raise ConcurrentUpdate(f"order {order.id} could not be created; retry")

    def order_id_for_cashier_token(self, token: str) -> str | None:
        item = self._get(_cashier_pk(token), "CASHIER")
        return str(item["order_id"]) if item else None

    def get_order(self, order_id: str) -> Order | None:
        item = self._get(_order_pk(order_id), "ORDER")
        return _order(item) if item else None

    def order_id_for_merchant_order_no(
        self, merchant_id: str, merchant_order_no: str
    ) -> str | None:
        item = self._get(_mono_pk(merchant_id, merchant_order_no), "MONO")
        return str(item["order_id"]) if item else None

    def close_order(self, closing: OrderClosing) -> Order:
        """Write the closed order and its event if nobody changed the order since it was read
        (its version); the order as stored."""
        order = closing.order
        saved = replace(order, version=order.version + 1)
        transaction = self._transaction()
        transaction.put_versioned(self._order_values(saved), order.version)
        transaction.put_new(self._event_values(closing.event), Part.EVENT)
        if not self._write(transaction):
            raise ConcurrentUpdate(f"order {order.id} changed while it was being updated")
        return saved

    def confirm_order(self, confirmation: TradeConfirmation) -> Order:
        """Write the confirmed order, its event and its entry if nobody changed the order
        since it was read; the order as stored."""
        order = confirmation.order
        saved = replace(order, version=order.version + 1)
        transaction = self._transaction()
        transaction.put_versioned(self._order_values(saved), order.version)
        transaction.put_new(self._event_values(confirmation.event), Part.EVENT)
        add_entry(transaction, confirmation.entry)
        cancelled = transaction.write(self._ddb)
        if cancelled is not None:
            check_entry(order.id, cancelled)
            raise ConcurrentUpdate(f"order {order.id} changed while it was being confirmed")
        return saved

    def list_orders(
        self, merchant_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[Order], bool]:
        owner = f"{merchant_pk(merchant_id)}#ORDERS"
        start = (
            self._start_key(_order_pk(starting_after), "ORDER", owner) if starting_after else None
        )
        items, has_more = self._page(owner, limit, start)
        return [_order(item) for item in items], has_more

    def _order_values(self, order: Order) -> dict[str, Any]:
        values = asdict(order)
        values["status"] = order.status.value
        values["trade_type"] = order.trade_type.value
        values.update(
            pk=_order_pk(order.id),
            sk="ORDER",
            gsi1pk=f"{merchant_pk(order.merchant_id)}#ORDERS",
            gsi1sk=f"{order.created_at}#{order.id}",
        )
        if order.is_open:
            values.update(
                gsi2pk=_deadline_shard(OPEN, order.id), gsi2sk=f"{order.expires_at}#{order.id}"
            )
        elif order.is_confirmable:
            values.update(
                gsi2pk=_deadline_shard(CONFIRM, order.id),
                gsi2sk=f"{order.auto_confirm_at}#{order.id}",
            )
        elif order.awaits_settlement:
            values.update(
                gsi2pk=_deadline_shard(SETTLE, order.id), gsi2sk=f"{order.settle_on}#{order.id}"
            )
        return values

    def expired_order_ids(self, now_rfc3339: str, limit: int = 100) -> list[str]:
        """Ids of open orders whose ``expires_at`` is at or before ``now_rfc3339``."""
        return self._due_order_ids(OPEN, now_rfc3339, limit)

    def orders_to_confirm(self, now_rfc3339: str, limit: int = 100) -> list[str]:
        """Ids of paid guaranteed orders whose ``auto_confirm_at`` is at or before
        ``now_rfc3339`` and that are not confirmed yet."""
        return self._due_order_ids(CONFIRM, now_rfc3339, limit)

    def orders_due_for_settlement(self, settlement_date: str) -> list[str]:
        """Ids of every order whose pending money is due by settlement ``settlement_date``
        (``settle_on`` on or before it) and not settled yet."""
        found: list[str] = []
        for shard in range(OPEN_SHARDS):
            query: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": EXPIRY_INDEX,
                "KeyConditionExpression": "gsi2pk = :pk AND gsi2sk <= :due",
                "ExpressionAttributeValues": to_values(
                    {":pk": f"{SETTLE}#{shard}", ":due": f"{settlement_date}#~"}
                ),
            }
            while True:
                answer = self._ddb.query(**query)
                found.extend(
                    str(from_item(item)["pk"]).removeprefix("ORDER#")
                    for item in answer.get("Items", [])
                )
                if "LastEvaluatedKey" not in answer:
                    break
                query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return found

    def get_orders(self, order_ids: list[str]) -> list[Order]:
        """The orders of ``order_ids`` that exist, read consistently (BatchGetItem)."""
        found: list[Order] = []
        for start in range(0, len(order_ids), _BATCH_GET):
            chunk = order_ids[start : start + _BATCH_GET]
            keys = [_key(_order_pk(order_id), "ORDER") for order_id in chunk]
            request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                answer = self._ddb.batch_get_item(RequestItems=request)
                found.extend(
                    _order(from_item(item)) for item in answer["Responses"].get(self.table, [])
                )
                request = answer.get("UnprocessedKeys") or {}
        return found

    def settle_orders(self, batch: SettlementBatch) -> None:
        """Write a settlement batch: every order settled (each on the version it was read
        at), the entry making their money available, and the day's figures, in one
        transaction. ``ConcurrentUpdate`` when an order changed meanwhile (a refund, another
        run): nothing is written then."""
        transaction = self._transaction()
        for order in batch.orders:
            saved = replace(order, version=order.version + 1)
            transaction.put_versioned(self._order_values(saved), order.version)
        add_entry(transaction, batch.entry)
        figures = batch.figures.as_dict()
        transaction.add(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": _key(_settlement_pk(batch.merchant_id, batch.currency), batch.date),
                    "UpdateExpression": "ADD "
                    + ", ".join(f"#{name} :{name}" for name in figures)
                    + " SET #merchant_id = :merchant_id, #currency = :currency, #date = :date",
                    "ExpressionAttributeNames": {
                        f"#{name}": name for name in (*figures, "merchant_id", "currency", "date")
                    },
                    "ExpressionAttributeValues": to_values(
                        {
                            **{f":{name}": value for name, value in figures.items()},
                            ":merchant_id": batch.merchant_id,
                            ":currency": batch.currency,
                            ":date": batch.date,
                        }
                    ),
                }
            },
            Part.ACCOUNT,
        )
        cancelled = transaction.write(self._ddb)
        if cancelled is not None:
            check_entry(f"settlement {batch.date} of {batch.merchant_id}", cancelled)
            raise ConcurrentUpdate(f"an order of {batch.merchant_id} changed while settling")

    def get_settlement(
        self, merchant_id: str, currency: str, settlement_date: str
    ) -> SettlementFigures:
        """What settlement ``settlement_date`` moved for the merchant in ``currency``,
        summed over its runs (zero when it moved nothing)."""
        item = self._get(_settlement_pk(merchant_id, currency), settlement_date)
        if item is None:
            return SettlementFigures()
        return SettlementFigures(
            **{name: int(item.get(name, 0)) for name in SettlementFigures.__dataclass_fields__}
        )

    def _due_order_ids(self, kind: str, now_rfc3339: str, limit: int) -> list[str]:
        found: list[str] = []
        for shard in range(OPEN_SHARDS):
            query: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": EXPIRY_INDEX,
                "KeyConditionExpression": "gsi2pk = :pk AND gsi2sk <= :now",
                "ExpressionAttributeValues": to_values(
                    {":pk": f"{kind}#{shard}", ":now": f"{now_rfc3339}#~"}
                ),
                "Limit": limit,
            }
            answer = self._ddb.query(**query)
            found.extend(
                str(from_item(item)["pk"]).removeprefix("ORDER#")
                for item in answer.get("Items", [])
            )
        return found[: limit * OPEN_SHARDS]

    # -- payments ----------------------------------------------------------------------------

    def start_payment(self, start: PaymentStart) -> tuple[Order, Payment]:
        """Create the payment, move its order (already transitioned) and make the internal
        instruments' reservations in one transaction: all of it happens, or nothing. A
        reservation whose condition fails raises its refusal (not enough balance, a coupon
        no longer available); anything else is a 409 ``order_not_payable``."""
        order, payment = start.order, start.payment
        saved_order = replace(order, version=order.version + 1)
        transaction = self._transaction()
        transaction.put_new(self._payment_values(payment))
        transaction.put_versioned(self._order_values(saved_order), order.version)
        add_moves(transaction, start.moves)
        if start.event is not None:
            transaction.put_new(self._event_values(start.event), Part.EVENT)
        add_entry(transaction, start.entry)
        cancelled = transaction.write(self._ddb)
        if cancelled is not None:
            check_entry(payment.id, cancelled)
            order_changed = Conflict(
                "the order changed while the payment was being started (another payment of "
                "it, or a close)",
                code="order_not_payable",
            )
            # The order first: a twin payment that won the race also spent the balance or the
            # coupon this one wanted, and the answer is that the order is taken, not the money.
            if not cancelled.aggregates_current:
                raise order_changed
            for refusal in cancelled.failed(Part.INSTRUMENT):
                if refusal is not None:
                    raise refusal
            raise order_changed
        return saved_order, payment

    def get_payment(self, payment_id: str) -> Payment | None:
        item = self._get(_payment_pk(payment_id), "PAYMENT")
        return _payment(item) if item else None

    def get_payment_and_token(self, payment_id: str) -> tuple[Payment | None, str | None]:
        """The payment and the task token of the execution waiting for its channel (None
        when none waits), in one read."""
        item = self._get(_payment_pk(payment_id), "PAYMENT")
        if item is None:
            return None, None
        token = item.get("task_token")
        return _payment(item), str(token) if token else None

    def take_notification(
        self, payment_id: str, channel: str, account_id: str, fingerprint: str
    ) -> tuple[Payment, str | None]:
        """Add the fingerprint of a signed notification about the payment to its item and
        return the payment and the task token of the execution waiting for its channel (None
        when none waits), in one conditional update: the payment exists, is held by
        ``channel``'s ``account_id``, and does not hold ``fingerprint`` yet. Otherwise
        ``CallbackRejected``: a replay (the payment holds it) or no payment of this account.

        Not a state change: the version stays, so the payment's versioned writes are not
        disturbed; they keep the fingerprints because they write the ``Payment`` as read (or
        as carried from this answer). A write from a payment read before this update drops
        the fingerprint again: a step that raced the notification, or Settle writing the
        payment an earlier notification handed it while a second one was taken. That message
        can then be taken once more while its signature is fresh. It is a genuine message of
        this payment's channel account and by then it normally finds the payment past waiting
        (final: acknowledged, nothing resumed); in any case it does no more than the
        channel's own re-delivery of the same outcome would."""
        item = self._take_notification(
            _payment_pk(payment_id),
            "PAYMENT",
            fingerprint,
            held_by={"channel": channel, "channel_account": account_id},
            subject="payment",
        )
        token = item.get("task_token")
        return _payment(item), str(token) if token else None

    def _take_notification(
        self,
        pk: str,
        sk: str,
        fingerprint: str,
        *,
        held_by: Mapping[str, str],
        held_by_or_unset: Mapping[str, str] | None = None,
        subject: str,
    ) -> dict[str, Any]:
        """The one conditional update that takes a signed notification about the item
        ``pk``/``sk`` (a payment or a refund): it appends ``fingerprint`` to the item's
        ``notification_fingerprints`` on condition that the item exists, each attribute of
        ``held_by`` has its value, each of ``held_by_or_unset`` has its value or none yet, and
        the item does not hold ``fingerprint`` yet; it answers the item as updated. The
        version is not changed.

        A failed condition is ``CallbackRejected``: a replay when the item as it was (ALL_OLD)
        belongs to the notification's channel account and holds ``fingerprint`` already, else
        the notification names no ``subject`` of this channel account."""
        either = dict(held_by_or_unset or {})
        names = {"#fps": "notification_fingerprints"}
        values: dict[str, Any] = {":none": [], ":new": [fingerprint], ":fingerprint": fingerprint}
        conditions = ["attribute_exists(pk)"]
        for n, (attribute, value) in enumerate({**held_by, **either}.items()):
            names[f"#a{n}"], values[f":a{n}"] = attribute, value
            equal = f"#a{n} = :a{n}"
            conditions.append(
                f"(attribute_not_exists(#a{n}) OR {equal})" if attribute in either else equal
            )
        conditions.append("NOT contains(#fps, :fingerprint)")
        try:
            answer = self._ddb.update_item(
                TableName=self.table,
                Key=_key(pk, sk),
                UpdateExpression="SET #fps = list_append(if_not_exists(#fps, :none), :new)",
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_values(values),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise_unavailable(exc)
                raise
            old = from_item(exc.response["Item"]) if exc.response.get("Item") else None
            if (
                old is not None
                and all(old.get(name) == value for name, value in held_by.items())
                and all(old.get(name) in (None, value) for name, value in either.items())
                and fingerprint in (old.get("notification_fingerprints") or ())
            ):
                raise CallbackRejected(
                    "this exact notification was already received (a replay)"
                ) from None
            raise CallbackRejected(
                f"the notification names no {subject} of this channel account"
            ) from None
        return from_item(answer["Attributes"])

    def save_payment(self, payment: Payment, *, task_token: str | None = None) -> Payment:
        """Write ``payment`` if nobody changed it since it was read (its version), with the
        waiting execution's ``task_token`` when given (a write without one drops it)."""
        saved = replace(payment, version=payment.version + 1)
        values = self._payment_values(saved)
        if task_token is not None:
            values["task_token"] = task_token
        transaction = self._transaction()
        transaction.put_versioned(values, payment.version)
        if not self._write(transaction):
            raise ConcurrentUpdate(f"payment {payment.id} changed while it was being updated")
        return saved

    def get_task_token(self, payment_id: str) -> str | None:
        """The task token of a payment that started when it was kept on its own item."""
        item = self._get(_payment_pk(payment_id), "TASKTOKEN")
        return str(item["token"]) if item else None

    def settle_payment(self, settlement: PaymentSettlement) -> bool:
        """Write a final payment, its order, its events and the spending or release of its
        internal instruments together.

        Both aggregates were read and transitioned by the caller; False when either changed
        meanwhile (the caller re-reads: a retry of the same settlement finds it done). An
        instrument not as the payment left it, with both aggregates current, is a bug: it
        raises."""
        payment, order = settlement.payment, settlement.order
        saved_payment = replace(payment, version=payment.version + 1)
        saved_order = replace(order, version=order.version + 1)
        transaction = self._transaction()
        transaction.put_versioned(self._payment_values(saved_payment), payment.version)
        transaction.put_versioned(self._order_values(saved_order), order.version)
        add_moves(transaction, settlement.moves)
        for event in settlement.events:
            transaction.put_new(self._event_values(event), Part.EVENT)
        add_entry(transaction, settlement.entry)
        cancelled = transaction.write(self._ddb)
        if cancelled is None:
            return True
        if cancelled.instruments_not_as_read():
            raise RuntimeError(f"payment {payment.id}: instrument reservation not found")
        check_entry(payment.id, cancelled)
        return False

    def _payment_values(self, payment: Payment) -> dict[str, Any]:
        values = asdict(payment)
        values["status"] = payment.status.value
        # The simulate switches may hold fractions (a delay of 0.5 s); DynamoDB numbers here
        # are money only, so these two travel as JSON text.
        for name in _PAYMENT_JSON_FIELDS:
            values[name] = json.dumps(values[name], separators=(",", ":"))
        if not payment.notification_fingerprints:
            del values["notification_fingerprints"]  # absent while empty: no bytes to write
        values.update(pk=_payment_pk(payment.id), sk="PAYMENT")
        return values

    # -- events ------------------------------------------------------------------------------

    def put_event(self, event: Event) -> bool:
        """Store ``event`` unless it exists already (ids are derived from their cause)."""
        transaction = self._transaction()
        transaction.put_new(self._event_values(event), Part.EVENT)
        return self._write(transaction)

    def get_event(self, event_id: str) -> Event | None:
        item = self._get(event_pk(event_id), "EVENT")
        return _event(item) if item else None

    def list_events(
        self, merchant_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[Event], bool]:
        owner = f"{merchant_pk(merchant_id)}#EVENTS"
        start = (
            self._start_key(event_pk(starting_after), "EVENT", owner) if starting_after else None
        )
        items, has_more = self._page(owner, limit, start)
        return [_event(item) for item in items], has_more

    def _event_values(self, event: Event) -> dict[str, Any]:
        return {
            "pk": event_pk(event.id),
            "sk": "EVENT",
            "gsi1pk": f"{merchant_pk(event.merchant_id)}#EVENTS",
            "gsi1sk": f"{event.created_at}#{event.id}",
            "id": event.id,
            "merchant_id": event.merchant_id,
            "type": event.type,
            "created_at": event.created_at,
            # Stored as JSON text: the snapshot keeps its exact shape (nulls included).
            "data_object": json.dumps(event.data_object, separators=(",", ":")),
        }


def check_entry(cause_id: str, cancelled: Cancelled) -> None:
    """Raise when the change's journal entry exists but its state change was not made."""
    if cancelled.entry_without_its_change():
        raise RuntimeError(f"{cause_id}: its journal entry exists without its state change")


def _fields(item: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: item[name] for name in names if name in item}


_ORDER_FIELDS = tuple(Order.__dataclass_fields__)
_PAYMENT_FIELDS = tuple(Payment.__dataclass_fields__)
_MERCHANT_FIELDS = tuple(Merchant.__dataclass_fields__)


def _key_values(merchant_id: str, api_key_hash: str) -> dict[str, Any]:
    return {"pk": f"APIKEY#{api_key_hash}", "sk": "APIKEY", "merchant_id": merchant_id}


def merchant_from_item(item: dict[str, Any]) -> Merchant:
    """The merchant a stored item holds (the data layer's other stores read it too)."""
    return _merchant(item)


def _merchant(item: dict[str, Any]) -> Merchant:
    values = _fields(item, _MERCHANT_FIELDS)
    values.setdefault("webhook_url", None)
    return Merchant(**values)


def _order(item: dict[str, Any]) -> Order:
    values = _fields(item, _ORDER_FIELDS)
    values["status"] = OrderStatus(values["status"])
    values["trade_type"] = TradeType(values.get("trade_type", TradeType.INSTANT))
    return Order(**values)


_PAYMENT_JSON_FIELDS = ("instruments", "simulate")


def _payment(item: dict[str, Any]) -> Payment:
    values = _fields(item, _PAYMENT_FIELDS)
    values["status"] = PaymentStatus(values["status"])
    values.setdefault("channel", None)  # None values are not stored
    for name in _PAYMENT_JSON_FIELDS:
        if isinstance(values.get(name), str):
            values[name] = json.loads(values[name])
    return Payment(**values)


def order_snapshot(order: Order) -> dict[str, Any]:
    """``order`` as JSON-ready values (a step carries it in the execution's input)."""
    values = asdict(order)
    values["status"] = order.status.value
    values["trade_type"] = order.trade_type.value
    return values


def order_from_snapshot(values: dict[str, Any]) -> Order:
    return _order(values)


def payment_snapshot(payment: Payment) -> dict[str, Any]:
    """``payment`` as JSON-ready values (never with its task token)."""
    values = asdict(payment)
    values["status"] = payment.status.value
    return values


def payment_from_snapshot(values: dict[str, Any]) -> Payment:
    return _payment(values)


def _event(item: dict[str, Any]) -> Event:
    return Event(
        id=item["id"],
        merchant_id=item["merchant_id"],
        type=item["type"],
        created_at=item["created_at"],
        data_object=json.loads(item["data_object"]),
    )
