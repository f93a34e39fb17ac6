"""Webhook endpoints and their delivery history in the trade table.

Item layout (pk / sk), beside what ``TradeStore`` documents:
- ``MERCHANT#<mch>`` / ``WEBHOOK_ENDPOINT#<we>``: an endpoint, its signing secrets sealed
  (binary KMS ciphertext). A merchant's endpoints are one Query of its partition; the merchant
  item counts them (``webhook_endpoints``) so a create beyond
  ``MAX_ENDPOINTS_PER_MERCHANT`` fails in the same transaction, whatever races it.
- ``EVENT#<evt>`` / ``DELIVERY#<we>``: the attempts to deliver one event to one endpoint:
  ``attempts_made`` (every attempt ever, redeliveries included) and ``attempts``, the newest
  ``ATTEMPTS_KEPT`` of them, newest first. One atomic update appends an attempt and counts it,
  so attempt numbers need no second write: the entry at index i is attempt
  ``attempts_made - i``. Storage per event is bounded by endpoints x ``ATTEMPTS_KEPT``.

Merchants onboarded before endpoints existed kept their ``webhook_secret`` in clear on the
merchant item; ``migrate_legacy_secret`` moves it into their first endpoint (sealed) and
removes it, in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from paycore.dal.codec import from_item, to_item, to_values
from paycore.dal.trade_store import TradeStore, event_pk, merchant_from_item, merchant_pk
from paycore.domain.models import Merchant
from paycore.domain.webhook_endpoints import (
    MAX_ENDPOINTS_PER_MERCHANT,
    DeliveryAttempt,
    SealedSecret,
    WebhookEndpoint,
)
from paycore.errors import ConcurrentUpdate, Conflict, NotFound

ENDPOINT_SK_PREFIX = "WEBHOOK_ENDPOINT#"
DELIVERY_SK_PREFIX = "DELIVERY#"
ATTEMPTS_KEPT = 50
_COUNT = "webhook_endpoints"


class WebhookEndpointStore(TradeStore):
    """DynamoDB access for webhook endpoints and delivery attempts."""

    @classmethod
    def of(cls, store: TradeStore) -> WebhookEndpointStore:
        """The endpoint store on the same table as ``store``."""
        return store if isinstance(store, WebhookEndpointStore) else cls(store.table)

    # -- endpoints ---------------------------------------------------------------------------

    def endpoint_item(self, endpoint: WebhookEndpoint) -> dict[str, Any]:
        """The Put of a new endpoint (for a transaction that also counts it)."""
        return self._put_new(_endpoint_values(endpoint))

    def count_one_more(self, merchant_id: str) -> dict[str, Any]:
        """The merchant item's update that counts one more endpoint, refused at the limit."""
        return {
            "Update": {
                "TableName": self.table,
                "Key": _merchant_key(merchant_id),
                "UpdateExpression": "SET #n = if_not_exists(#n, :zero) + :one",
                "ConditionExpression": "attribute_exists(pk) AND "
                "(attribute_not_exists(#n) OR #n < :limit)",
                "ExpressionAttributeNames": {"#n": _COUNT},
                "ExpressionAttributeValues": to_values(
                    {":zero": 0, ":one": 1, ":limit": MAX_ENDPOINTS_PER_MERCHANT}
                ),
            }
        }

    def add_endpoint(self, endpoint: WebhookEndpoint) -> None:
        """Store a new endpoint of an existing merchant; ``Conflict``
        (``webhook_endpoint_limit_reached``) when it has ``MAX_ENDPOINTS_PER_MERCHANT``."""
        codes = self._transact(
            [self.count_one_more(endpoint.merchant_id), self.endpoint_item(endpoint)]
        )
        if codes is None:
            return
        if codes[0] == "ConditionalCheckFailed":
            if self.get_merchant(endpoint.merchant_id) is None:
                raise NotFound(f"no merchant {endpoint.merchant_id}", code="merchant_not_found")
            raise Conflict(
                f"a merchant has at most {MAX_ENDPOINTS_PER_MERCHANT} webhook endpoints; "
                "delete one first",
                code="webhook_endpoint_limit_reached",
            )
        raise Conflict(f"webhook endpoint {endpoint.id} already exists", code="conflict")

    def get_endpoint(self, merchant_id: str, endpoint_id: str) -> WebhookEndpoint | None:
        item = self._get(merchant_pk(merchant_id), ENDPOINT_SK_PREFIX + endpoint_id)
        return _endpoint(item) if item else None

    def endpoints_of(self, merchant_id: str) -> list[WebhookEndpoint]:
        """Every endpoint of the merchant (at most ``MAX_ENDPOINTS_PER_MERCHANT``), newest
        first."""
        return _newest_first(
            _endpoint(item) for item in self._partition(merchant_id, ENDPOINT_SK_PREFIX)
        )

    def merchant_and_endpoints(
        self, merchant_id: str
    ) -> tuple[Merchant, str | None, list[WebhookEndpoint]] | None:
        """The merchant, the ``webhook_secret`` it keeps in clear until it is migrated, and
        its endpoints (newest first): its whole partition in one Query. None when there is no
        such merchant."""
        merchant_item: dict[str, Any] | None = None
        endpoints: list[WebhookEndpoint] = []
        for item in self._partition(merchant_id, None):
            if item["sk"] == "MERCHANT":
                merchant_item = item
            elif str(item["sk"]).startswith(ENDPOINT_SK_PREFIX):
                endpoints.append(_endpoint(item))
        if merchant_item is None:
            return None
        legacy = merchant_item.get("webhook_secret")
        return (
            merchant_from_item(merchant_item),
            str(legacy) if legacy else None,
            _newest_first(endpoints),
        )

    def _partition(self, merchant_id: str, prefix: str | None) -> list[dict[str, Any]]:
        """The items of the merchant's partition (those whose sort key starts with
        ``prefix``, when given), strongly consistent."""
        values = {":pk": merchant_pk(merchant_id)}
        condition = "pk = :pk"
        if prefix is not None:
            values[":prefix"] = prefix
            condition += " AND begins_with(sk, :prefix)"
        query: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": to_values(values),
            "ConsistentRead": True,
        }
        found: list[dict[str, Any]] = []
        while True:
            answer = self._ddb.query(**query)
            found.extend(from_item(item) for item in answer.get("Items", []))
            if "LastEvaluatedKey" not in answer:
                return found
            query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def save_endpoint(self, endpoint: WebhookEndpoint) -> WebhookEndpoint:
        """Write a change of ``endpoint`` if nobody changed (or deleted) it since it was read."""
        saved = WebhookEndpoint(**{**_fields(endpoint), "version": endpoint.version + 1})
        if self._transact([self._put_versioned(_endpoint_values(saved), endpoint.version)]):
            raise ConcurrentUpdate(f"webhook endpoint {endpoint.id} changed meanwhile")
        return saved

    def delete_endpoint(self, merchant_id: str, endpoint_id: str) -> bool:
        """Delete the endpoint and count one fewer; False when it did not exist."""
        codes = self._transact(
            [
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": _endpoint_key(merchant_id, endpoint_id),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": _merchant_key(merchant_id),
                        "UpdateExpression": "SET #n = #n - :one",
                        "ConditionExpression": "#n > :zero",
                        "ExpressionAttributeNames": {"#n": _COUNT},
                        "ExpressionAttributeValues": to_values({":zero": 0, ":one": 1}),
                    }
                },
            ]
        )
        if codes is None:
            return True
        if codes[0] == "ConditionalCheckFailed":
            return False
        raise RuntimeError(f"merchant {merchant_id} counts no endpoint but has {endpoint_id}")

    # -- merchants onboarded before endpoints ------------------------------------------------

    def merchant_with_legacy_secret(self, merchant_id: str) -> tuple[Merchant, str | None] | None:
        """The merchant and, until it is migrated, the ``webhook_secret`` it keeps in clear;
        None when there is no such merchant."""
        item = self._get(merchant_pk(merchant_id), "MERCHANT")
        if item is None:
            return None
        merchant = merchant_from_item(item)
        legacy = item.get("webhook_secret")
        return merchant, str(legacy) if legacy else None

    def migrate_legacy_secret(
        self, merchant_id: str, legacy_secret: str, first_endpoint: WebhookEndpoint | None
    ) -> bool:
        """Remove the clear ``webhook_secret`` from the merchant item and, when the merchant
        has a ``webhook_url``, store its first endpoint signed with that secret (sealed), in
        one transaction. False when another migration did it first."""
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": _merchant_key(merchant_id),
            "UpdateExpression": "REMOVE webhook_secret",
            "ConditionExpression": "webhook_secret = :legacy",
            "ExpressionAttributeValues": to_values({":legacy": legacy_secret}),
        }
        if first_endpoint is None:
            try:
                self._ddb.update_item(**update)
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    return False
                raise
            return True
        update["UpdateExpression"] = (
            "REMOVE webhook_secret SET #n = if_not_exists(#n, :zero) + :one"
        )
        update["ExpressionAttributeNames"] = {"#n": _COUNT}
        update["ExpressionAttributeValues"] = to_values(
            {":legacy": legacy_secret, ":zero": 0, ":one": 1}
        )
        return self._transact([{"Update": update}, self.endpoint_item(first_endpoint)]) is None

    def merchant_ids_with_legacy_secret(
        self, limit: int, cursor: dict[str, Any] | None = None
    ) -> tuple[list[str], dict[str, Any] | None]:
        """One page of a scan for merchants still keeping a clear ``webhook_secret``: their
        ids and the cursor of the next page (None at the end)."""
        scan: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "sk = :merchant AND attribute_exists(webhook_secret)",
            "ProjectionExpression": "id",
            "ExpressionAttributeValues": to_values({":merchant": "MERCHANT"}),
            "Limit": limit,
        }
        if cursor:
            scan["ExclusiveStartKey"] = to_item(cursor)
        answer = self._ddb.scan(**scan)
        ids = [str(from_item(item)["id"]) for item in answer.get("Items", [])]
        last = answer.get("LastEvaluatedKey")
        return ids, from_item(last) if last else None

    # -- delivery attempts -------------------------------------------------------------------

    def record_attempt(
        self,
        event_id: str,
        endpoint_id: str,
        at: str,
        *,
        status_code: int | None,
        error: str | None,
    ) -> int:
        """Append one delivery attempt of ``event_id`` to ``endpoint_id``; its number."""
        entry = {
            key: value
            for key, value in (("at", at), ("status_code", status_code), ("error", error))
            if value is not None
        }
        answer = self._ddb.update_item(
            TableName=self.table,
            Key=to_item({"pk": event_pk(event_id), "sk": DELIVERY_SK_PREFIX + endpoint_id}),
            UpdateExpression="SET attempts_made = if_not_exists(attempts_made, :zero) + :one, "
            "attempts = list_append(:entry, if_not_exists(attempts, :empty)), "
            "endpoint_id = :endpoint",
            ExpressionAttributeValues=to_values(
                {
                    ":zero": 0,
                    ":one": 1,
                    ":entry": [entry],
                    ":empty": [],
                    ":endpoint": endpoint_id,
                }
            ),
            ReturnValues="UPDATED_NEW",
        )
        stored = from_item(answer["Attributes"])
        kept = len(stored["attempts"])
        if kept > ATTEMPTS_KEPT:
            self._forget_oldest(event_id, endpoint_id, kept)
        return int(stored["attempts_made"])

    def _forget_oldest(self, event_id: str, endpoint_id: str, kept: int) -> None:
        """Drop the attempts beyond ``ATTEMPTS_KEPT`` (the oldest), unless the list changed
        since it had ``kept`` entries: then the next attempt trims it."""
        removed = ", ".join(f"attempts[{index}]" for index in range(ATTEMPTS_KEPT, kept))
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key=to_item({"pk": event_pk(event_id), "sk": DELIVERY_SK_PREFIX + endpoint_id}),
                UpdateExpression=f"REMOVE {removed}",
                ConditionExpression="size(attempts) = :kept",
                ExpressionAttributeValues=to_values({":kept": kept}),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def delivery_attempts(self, event_id: str) -> list[DeliveryAttempt]:
        """Every kept attempt to deliver ``event_id``, to any endpoint, newest first."""
        answer = self._ddb.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues=to_values(
                {":pk": event_pk(event_id), ":prefix": DELIVERY_SK_PREFIX}
            ),
        )
        attempts: list[DeliveryAttempt] = []
        for item in (from_item(raw) for raw in answer.get("Items", [])):
            made = int(item["attempts_made"])
            for index, entry in enumerate(item.get("attempts", [])):
                attempts.append(
                    DeliveryAttempt(
                        endpoint_id=str(item["endpoint_id"]),
                        attempt=made - index,
                        at=str(entry["at"]),
                        status_code=entry.get("status_code"),
                        error=entry.get("error"),
                    )
                )
        return sorted(attempts, key=lambda a: (a.at, a.endpoint_id, a.attempt), reverse=True)


def _merchant_key(merchant_id: str) -> dict[str, Any]:
    return to_item({"pk": merchant_pk(merchant_id), "sk": "MERCHANT"})


def _endpoint_key(merchant_id: str, endpoint_id: str) -> dict[str, Any]:
    return to_item({"pk": merchant_pk(merchant_id), "sk": ENDPOINT_SK_PREFIX + endpoint_id})


def _fields(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {name: getattr(endpoint, name) for name in WebhookEndpoint.__dataclass_fields__}


def _endpoint_values(endpoint: WebhookEndpoint) -> dict[str, Any]:
    values = _fields(endpoint)
    values["enabled_events"] = list(endpoint.enabled_events)
    values["secret"] = endpoint.secret.ciphertext
    values["previous_secret"] = (
        endpoint.previous_secret.ciphertext if endpoint.previous_secret else None
    )
    values.update(pk=merchant_pk(endpoint.merchant_id), sk=ENDPOINT_SK_PREFIX + endpoint.id)
    return values


def _newest_first(endpoints: Iterable[WebhookEndpoint]) -> list[WebhookEndpoint]:
    return sorted(endpoints, key=lambda e: (e.created_at, e.id), reverse=True)


def _endpoint(item: dict[str, Any]) -> WebhookEndpoint:
    previous = item.get("previous_secret")
    return WebhookEndpoint(
        id=str(item["id"]),
        merchant_id=str(item["merchant_id"]),
        url=str(item["url"]),
        enabled_events=tuple(item["enabled_events"]),
        description=item.get("description"),
        disabled=bool(item["disabled"]),
        created_at=str(item["created_at"]),
        updated_at=str(item["updated_at"]),
        secret=SealedSecret(bytes(item["secret"])),
        previous_secret=SealedSecret(bytes(previous)) if previous is not None else None,
        previous_secret_expires_at=item.get("previous_secret_expires_at"),
        version=int(item["version"]),
    )
