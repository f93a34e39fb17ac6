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
- ``PAYMENT#<pay>`` / ``PAYMENT``: the payment; ``PAYMENT#<pay>`` / ``TASKTOKEN`` holds the
  state machine's task token apart, so it never travels with the payment.
- ``EVENT#<evt>`` / ``EVENT``: the event; gsi1 ``MERCHANT#<mch>#EVENTS`` by creation time.
- Open orders (``created`` or ``paying``) are also in the sparse index gsi2, partition
  ``OPEN#<shard>`` (one of ``OPEN_SHARDS``, so no hot key) sorted by ``expires_at``: the expiry
  sweeper finds the orders due without a scan. A paid or closed order leaves the index.

Every change of an order or payment is a conditional write on the version it was read at;
a state change and its event are written in one transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

from botocore.exceptions import ClientError

from paycore.aws import client
from paycore.config import get_settings
from paycore.dal.codec import from_item, to_item, to_values
from paycore.domain import cashier
from paycore.domain.models import Event, Merchant, Order, Payment
from paycore.domain.status import OrderStatus, PaymentStatus
from paycore.errors import ConcurrentUpdate, Conflict, NotFound, ServiceUnavailable

GSI = "gsi1"
EXPIRY_INDEX = "gsi2"
OPEN_SHARDS = 8
_THROTTLES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
}


def _key(pk: str, sk: str) -> dict[str, Any]:
    return to_item({"pk": pk, "sk": sk})


def _merchant_pk(merchant_id: str) -> str:
    return f"MERCHANT#{merchant_id}"


def _order_pk(order_id: str) -> str:
    return f"ORDER#{order_id}"


def _payment_pk(payment_id: str) -> str:
    return f"PAYMENT#{payment_id}"


def _event_pk(event_id: str) -> str:
    return f"EVENT#{event_id}"


def _mono_pk(merchant_id: str, merchant_order_no: str) -> str:
    return f"MONO#{merchant_id}#{merchant_order_no}"


def _cashier_pk(token: str) -> str:
    return f"CASHIER#{cashier.digest(token)}"


def instruments_not_as_read(codes: list[str], aggregates: int, instruments: int) -> bool:
    """Whether a cancelled transaction failed on an instrument move although its first
    ``aggregates`` items (the versioned payment/refund and order) were current.

    A lost race fails the aggregates (and often the instruments too: the winner already
    moved them), so the caller re-reads. Aggregates current but an instrument not as reserved
    is a bug or a hand edit, never a race to retry away: the caller fails loudly (the
    alarm pages someone)."""
    if any(code == "ConditionalCheckFailed" for code in codes[:aggregates]):
        return False
    return any(
        code == "ConditionalCheckFailed" for code in codes[aggregates : aggregates + instruments]
    )


def _open_shard(order_id: str) -> str:
    return f"OPEN#{int(hashlib.sha256(order_id.encode()).hexdigest(), 16) % OPEN_SHARDS}"


def _cancellation_codes(exc: ClientError) -> list[str]:
    reasons = exc.response.get("CancellationReasons") or []
    return [str(reason.get("Code", "None")) for reason in reasons]


def _raise_unavailable(exc: ClientError) -> None:
    if exc.response["Error"]["Code"] in _THROTTLES:
        raise ServiceUnavailable("the trade table is busy; retry shortly") from exc


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
            _raise_unavailable(exc)
            raise
        item = answer.get("Item")
        return from_item(item) if item else None

    def _transact(self, items: list[dict[str, Any]]) -> list[str] | None:
        """Run a transaction; None when it committed, else the per-item cancellation codes.

        A single conditional put is sent as a plain PutItem: same guarantee, half the cost
        (transactional writes are billed twice)."""
        if len(items) == 1:
            return self._put_one(items[0]["Put"])
        try:
            self._ddb.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                codes = _cancellation_codes(exc)
                if "ConditionalCheckFailed" in codes:
                    return codes
                raise ServiceUnavailable("the trade table is busy; retry shortly") from exc
            _raise_unavailable(exc)
            raise
        return None

    def _put_one(self, put: dict[str, Any]) -> list[str] | None:
        try:
            self._ddb.put_item(**put)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return ["ConditionalCheckFailed"]
            _raise_unavailable(exc)
            raise
        return None

    def _put_new(self, values: dict[str, Any]) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table,
                "Item": to_item(values),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def _put_versioned(self, values: dict[str, Any], expected_version: int) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table,
                "Item": to_item(values),
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": to_values({":expected": expected_version}),
            }
        }

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
            "pk": _merchant_pk(merchant.id),
            "sk": "MERCHANT",
            **asdict(merchant),
            "api_key_hash": api_key_hash,
            "webhook_endpoints": len(webhook_endpoints),
        }
        items = [self._put_new(values), self._put_new(_key_values(merchant.id, api_key_hash))]
        if self._transact([*items, *webhook_endpoints]) is not None:
            raise Conflict("merchant or API key already exists", code="merchant_exists")

    def get_merchant(self, merchant_id: str) -> Merchant | None:
        item = self._get(_merchant_pk(merchant_id), "MERCHANT", consistent=False)
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
        merchant = self._get(_merchant_pk(merchant_id), "MERCHANT")
        if merchant is None:
            raise NotFound(f"no merchant {merchant_id}", code="merchant_not_found")
        current = str(merchant.get("api_key_hash") or caller_key_hash)
        merchant_key = {"pk": _merchant_pk(merchant_id), "sk": "MERCHANT"}
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
        items = [self._put_new(values), self._put_new(mono)]
        if cashier_token is not None:
            link = {"pk": _cashier_pk(cashier_token), "sk": "CASHIER", "order_id": order.id}
            items.append(self._put_new(link))
        codes = self._transact(items)
        if codes is not None and codes[1:2] == ["ConditionalCheckFailed"]:
            raise Conflict(
                f"an order with merchant_order_no {order.merchant_order_no!r} already exists",
                code="duplicate_merchant_order_no",
                param="merchant_order_no",
            )
        if codes is not None:  # an id or a 256-bit token drawn twice: never in practice
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

    def save_order(self, order: Order, event: Event | None = None) -> Order:
        """Write ``order`` (and the event its change caused) if nobody changed the order since
        it was read (its version)."""
        saved = replace(order, version=order.version + 1)
        items = [self._put_versioned(self._order_values(saved), order.version)]
        if event is not None:
            items.append(self._put_new(self._event_values(event)))
        if self._transact(items):
            raise ConcurrentUpdate(f"order {order.id} changed while it was being updated")
        return saved

    def list_orders(
        self, merchant_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[Order], bool]:
        owner = f"{_merchant_pk(merchant_id)}#ORDERS"
        start = (
            self._start_key(_order_pk(starting_after), "ORDER", owner) if starting_after else None
        )
        items, has_more = self._page(owner, limit, start)
        return [_order(item) for item in items], has_more

    def _order_values(self, order: Order) -> dict[str, Any]:
        values = asdict(order)
        values["status"] = order.status.value
        values.update(
            pk=_order_pk(order.id),
            sk="ORDER",
            gsi1pk=f"{_merchant_pk(order.merchant_id)}#ORDERS",
            gsi1sk=f"{order.created_at}#{order.id}",
        )
        if order.is_open:
            values.update(gsi2pk=_open_shard(order.id), gsi2sk=f"{order.expires_at}#{order.id}")
        return values

    def expired_order_ids(self, now_rfc3339: str, limit: int = 100) -> list[str]:
        """Ids of open orders whose ``expires_at`` is at or before ``now_rfc3339``."""
        found: list[str] = []
        for shard in range(OPEN_SHARDS):
            query: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": EXPIRY_INDEX,
                "KeyConditionExpression": "gsi2pk = :pk AND gsi2sk <= :now",
                "ExpressionAttributeValues": to_values(
                    {":pk": f"OPEN#{shard}", ":now": f"{now_rfc3339}#~"}
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

    def start_payment(
        self,
        order: Order,
        payment: Payment,
        reservations: tuple[tuple[dict[str, Any], Conflict], ...] = (),
        event: Event | None = None,
    ) -> tuple[Order, Payment]:
        """Create ``payment``, move ``order`` (already transitioned) and make the internal
        instruments' reservations in one transaction: all of it happens, or nothing.

        ``reservations`` pairs each instrument write with the conflict to raise when its
        condition fails (not enough balance, a coupon no longer available)."""
        saved_order = replace(order, version=order.version + 1)
        items = [
            self._put_new(self._payment_values(payment)),
            self._put_versioned(self._order_values(saved_order), order.version),
            *(item for item, _ in reservations),
        ]
        if event is not None:
            items.append(self._put_new(self._event_values(event)))
        codes = self._transact(items)
        if codes is not None:
            order_changed = Conflict(
                "the order changed while the payment was being started (another payment of "
                "it, or a close)",
                code="order_not_payable",
            )
            # The order first: a twin payment that won the race also spent the balance or the
            # coupon this one wanted, and the answer is that the order is taken, not the money.
            if codes[1] == "ConditionalCheckFailed":
                raise order_changed
            for code, (_, conflict) in zip(codes[2:], reservations, strict=False):
                if code == "ConditionalCheckFailed":
                    raise conflict
            raise order_changed
        return saved_order, payment

    def get_payment(self, payment_id: str) -> Payment | None:
        item = self._get(_payment_pk(payment_id), "PAYMENT")
        return _payment(item) if item else None

    def save_payment(self, payment: Payment) -> Payment:
        saved = replace(payment, version=payment.version + 1)
        if self._transact([self._put_versioned(self._payment_values(saved), payment.version)]):
            raise ConcurrentUpdate(f"payment {payment.id} changed while it was being updated")
        return saved

    def put_task_token(self, payment_id: str, task_token: str) -> None:
        """Keep the state machine's task token apart from the payment (it is a credential)."""
        self._ddb.put_item(
            TableName=self.table,
            Item=to_item({"pk": _payment_pk(payment_id), "sk": "TASKTOKEN", "token": task_token}),
        )

    def get_task_token(self, payment_id: str) -> str | None:
        item = self._get(_payment_pk(payment_id), "TASKTOKEN")
        return str(item["token"]) if item else None

    def finish_payment(
        self,
        payment: Payment,
        order: Order,
        event: Event | None,
        *,
        more_events: tuple[Event, ...] = (),
        instrument_items: tuple[dict[str, Any], ...] = (),
    ) -> bool:
        """Write a final payment, its order, its events and the confirmation or release of
        its internal instruments together.

        Both aggregates were read and transitioned by the caller; False when either changed
        meanwhile (the caller re-reads: a retry of the same settlement finds it done).
        """
        saved_payment = replace(payment, version=payment.version + 1)
        saved_order = replace(order, version=order.version + 1)
        items = [
            self._put_versioned(self._payment_values(saved_payment), payment.version),
            self._put_versioned(self._order_values(saved_order), order.version),
            *instrument_items,
        ]
        for each in (event, *more_events):
            if each is not None:
                items.append(self._put_new(self._event_values(each)))
        codes = self._transact(items)
        if codes is not None and instruments_not_as_read(codes, 2, len(instrument_items)):
            raise RuntimeError(f"payment {payment.id}: instrument reservation not found")
        return codes is None

    def _payment_values(self, payment: Payment) -> dict[str, Any]:
        values = asdict(payment)
        values["status"] = payment.status.value
        # The simulate switches may hold fractions (a delay of 0.5 s); DynamoDB numbers here
        # are money only, so these two travel as JSON text.
        for name in _PAYMENT_JSON_FIELDS:
            values[name] = json.dumps(values[name], separators=(",", ":"))
        values.update(pk=_payment_pk(payment.id), sk="PAYMENT")
        return values

    # -- events ------------------------------------------------------------------------------

    def put_event(self, event: Event) -> bool:
        """Store ``event`` unless it exists already (ids are derived from their cause)."""
        return self._transact([self._put_new(self._event_values(event))]) is None

    def get_event(self, event_id: str) -> Event | None:
        item = self._get(_event_pk(event_id), "EVENT")
        return _event(item) if item else None

    def list_events(
        self, merchant_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[Event], bool]:
        owner = f"{_merchant_pk(merchant_id)}#EVENTS"
        start = (
            self._start_key(_event_pk(starting_after), "EVENT", owner) if starting_after else None
        )
        items, has_more = self._page(owner, limit, start)
        return [_event(item) for item in items], has_more

    def _event_values(self, event: Event) -> dict[str, Any]:
        return {
            "pk": _event_pk(event.id),
            "sk": "EVENT",
            "gsi1pk": f"{_merchant_pk(event.merchant_id)}#EVENTS",
            "gsi1sk": f"{event.created_at}#{event.id}",
            "id": event.id,
            "merchant_id": event.merchant_id,
            "type": event.type,
            "created_at": event.created_at,
            # Stored as JSON text: the snapshot keeps its exact shape (nulls included).
            "data_object": json.dumps(event.data_object, separators=(",", ":")),
        }


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


def _event(item: dict[str, Any]) -> Event:
    return Event(
        id=item["id"],
        merchant_id=item["merchant_id"],
        type=item["type"],
        created_at=item["created_at"],
        data_object=json.loads(item["data_object"]),
    )
