"""One atomic change as one DynamoDB ``TransactWriteItems``, and what its cancellation means.

The stores (``trade_store``, ``refund_store``, ``instruments``) turn a change of
``paycore.domain.changes`` into a ``Transaction``: each item is tagged with its part so that
a cancelled transaction can be read back in the domain's words:

- ``AGGREGATE``: a versioned write of an order, payment or refund; it fails when the object
  changed since it was read (a lost race: the caller re-reads);
- ``NEW``: a new object (``attribute_not_exists``); it fails when one with that id exists;
- ``INSTRUMENT``: a conditional balance or coupon move; it fails when the money or the coupon
  is not there (the move's refusal, or a bug when the aggregates were current);
- ``EVENT``: a new event, with an id derived from its cause;
- ``ENTRY``: the change's journal entry, new by its id (derived from the cause): it fails
  when the change was already made (then an aggregate fails too: a retried step);
- ``ACCOUNT``: an unconditional ``ADD`` to totals: a ledger account's shard, a settlement's
  figures (never fails).

A single Put or Update is sent as a plain PutItem or UpdateItem: the same guarantee for half
the write units (transactional writes are billed twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from paycore.dal.codec import to_item, to_values
from paycore.errors import PaycoreError, ServiceUnavailable

FAILED = "ConditionalCheckFailed"
_THROTTLES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
}


class Part(StrEnum):
    AGGREGATE = "aggregate"
    NEW = "new"
    INSTRUMENT = "instrument"
    EVENT = "event"
    ENTRY = "entry"
    ACCOUNT = "account"


def raise_unavailable(exc: ClientError) -> None:
    """Throttling and DynamoDB's own errors become a retryable ``ServiceUnavailable``."""
    if exc.response["Error"]["Code"] in _THROTTLES:
        raise ServiceUnavailable("the trade table is busy; retry shortly") from exc


@dataclass(frozen=True)
class Cancelled:
    """Which items of a cancelled transaction failed their condition."""

    parts: tuple[tuple[Part, PaycoreError | None], ...]
    codes: tuple[str, ...]

    def failed(self, part: Part) -> list[PaycoreError | None]:
        """The refusals of the failed items of ``part`` (None for an item without one)."""
        return [
            refusal
            for (kind, refusal), code in zip(self.parts, self.codes, strict=False)
            if kind is part and code == FAILED
        ]

    @property
    def aggregates_current(self) -> bool:
        """No versioned aggregate failed: nobody changed them since they were read."""
        return not self.failed(Part.AGGREGATE)

    @property
    def first_failed(self) -> Part | None:
        for (kind, _), code in zip(self.parts, self.codes, strict=False):
            if code == FAILED:
                return kind
        return None

    def instruments_not_as_read(self) -> bool:
        """An instrument move failed although every aggregate was current: a bug or a hand
        edit, never a race to retry away (the caller fails loudly; the alarm pages someone)."""
        return self.aggregates_current and bool(self.failed(Part.INSTRUMENT))

    def entry_without_its_change(self) -> bool:
        """The journal entry exists although the aggregates it changes were current and no
        new object existed: an entry posted without its state change, a bug (raise)."""
        return (
            self.aggregates_current
            and not self.failed(Part.NEW)
            and not self.failed(Part.INSTRUMENT)
            and bool(self.failed(Part.ENTRY))
        )


@dataclass
class Transaction:
    """The items of one atomic change, in order, each with its part."""

    table: str
    items: list[dict[str, Any]] = field(default_factory=list)
    parts: list[tuple[Part, PaycoreError | None]] = field(default_factory=list)

    def add(self, item: dict[str, Any], part: Part, refusal: PaycoreError | None = None) -> None:
        self.items.append(item)
        self.parts.append((part, refusal))

    def put_new(self, values: dict[str, Any], part: Part = Part.NEW) -> None:
        self.add(
            {
                "Put": {
                    "TableName": self.table,
                    "Item": to_item(values),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            part,
        )

    def put_versioned(self, values: dict[str, Any], expected_version: int) -> None:
        self.add(
            {
                "Put": {
                    "TableName": self.table,
                    "Item": to_item(values),
                    "ConditionExpression": "#v = :expected",
                    "ExpressionAttributeNames": {"#v": "version"},
                    "ExpressionAttributeValues": to_values({":expected": expected_version}),
                }
            },
            Part.AGGREGATE,
        )

    def extend(self, items: Sequence[dict[str, Any]], part: Part) -> None:
        for item in items:
            self.add(item, part)

    def write(self, ddb: Any) -> Cancelled | None:
        """Commit every item or none; None when it committed, else what failed."""
        codes = write_items(ddb, self.items)
        return None if codes is None else Cancelled(tuple(self.parts), tuple(codes))


def write_items(ddb: Any, items: Sequence[dict[str, Any]]) -> list[str] | None:
    """Apply ``items`` atomically: None when they committed, else the per-item cancellation
    codes (``ConditionalCheckFailed`` where a condition did not hold)."""
    try:
        if len(items) == 1 and "Put" in items[0]:
            ddb.put_item(**items[0]["Put"])
        elif len(items) == 1 and "Update" in items[0]:
            ddb.update_item(**items[0]["Update"])
        else:
            ddb.transact_write_items(TransactItems=list(items))
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code == "ConditionalCheckFailedException":
            return [FAILED]
        if code == "TransactionCanceledException":
            reasons = exc.response.get("CancellationReasons") or []
            codes = [str(reason.get("Code", "None")) for reason in reasons]
            if FAILED in codes:
                return codes
            raise ServiceUnavailable("the trade table is busy; retry shortly") from exc
        raise_unavailable(exc)
        raise
    return None
