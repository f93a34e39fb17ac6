"""Journal entries: immutable, identified by their cause, balanced per currency by construction.

An entry's id is ``je_{cause_id}_{event}`` (``je_pay_01jd..._payment_succeeded``): the same
cause always gives the same id, so an entry written with ``attribute_not_exists`` in the
transaction of the state change that causes it is written at most once, however often the step
that causes it is retried. A correction is a new entry (``reversal`` makes the mirror image).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from paycore.ledger.accounts import Account, Side

_CAUSE_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
_METADATA_TYPES = (str, int)  # exactly: not bool, not an enum (store its value)


class LedgerError(ValueError):
    """A journal entry or a fold that would break the books (a bug, never a user's error)."""


class UnbalancedEntry(LedgerError):
    pass


class EntryConflict(LedgerError):
    """Another entry with the same id (the same cause) but different content."""


class Event(StrEnum):
    """The money events; each names the posting rule that makes its entry."""

    BALANCE_CREDITED = "balance_credited"
    COUPON_ISSUED = "coupon_issued"
    PAYMENT_RESERVED = "payment_reserved"
    PAYMENT_RELEASED = "payment_released"
    PAYMENT_SUCCEEDED = "payment_succeeded"
    REFUND_STARTED = "refund_started"
    REFUND_SUCCEEDED = "refund_succeeded"
    REFUND_FAILED = "refund_failed"
    LATE_PAYMENT_REFUND_STARTED = "late_payment_refund_started"
    LATE_PAYMENT_REFUND_SUCCEEDED = "late_payment_refund_succeeded"
    TRADE_CONFIRMED = "trade_confirmed"
    SETTLEMENT = "settlement"
    RECONCILIATION_SUSPENSE = "reconciliation_suspense"
    REVERSAL = "reversal"


def entry_id(event: Event, cause_id: str) -> str:
    return f"je_{cause_id}_{event.value}"


@dataclass(frozen=True)
class Posting:
    account: Account
    side: Side
    amount: int  # minor units of the account's currency, > 0

    def __post_init__(self) -> None:
        if not isinstance(self.account, Account) or not isinstance(self.side, Side):
            raise LedgerError("a posting needs an Account and a Side")
        if type(self.amount) is not int or self.amount <= 0:  # bool is not an amount
            raise LedgerError(f"a posting amount must be a positive integer, not {self.amount!r}")

    @property
    def currency(self) -> str:
        return self.account.currency

    def record(self) -> dict[str, Any]:
        return {
            "account": self.account.id,
            "side": self.side.value,
            "amount": self.amount,
            "currency": self.currency,
        }


@dataclass(frozen=True)
class JournalEntry:
    """What one money event moved. ``postings`` may be empty when the event moved nothing
    (a refund of part of a coupon's share, a confirmation of an order paid without a
    channel): such an entry need not be written (``is_empty``)."""

    event: Event
    cause_id: str
    postings: tuple[Posting, ...]
    metadata: Mapping[str, str | int] = field(default_factory=dict)
    id: str = field(init=False, compare=False)  # je_{cause_id}_{event}

    def __post_init__(self) -> None:
        if not isinstance(self.event, Event):
            raise LedgerError(f"unknown event {self.event!r}")
        if not isinstance(self.cause_id, str) or not _CAUSE_ID.match(self.cause_id):
            raise LedgerError(f"cause id {self.cause_id!r} is not [A-Za-z0-9_-]{{1,200}}")
        postings = tuple(self.postings)
        if not all(isinstance(posting, Posting) for posting in postings):
            raise LedgerError("postings must be Posting objects")
        for key, value in self.metadata.items():
            if type(key) is not str or type(value) not in _METADATA_TYPES:
                raise LedgerError(f"metadata {key!r} must map to a string or an integer")
        object.__setattr__(self, "postings", postings)
        object.__setattr__(self, "metadata", MappingProxyType(dict(sorted(self.metadata.items()))))
        object.__setattr__(self, "id", entry_id(self.event, self.cause_id))
        unbalanced = {currency: net for currency, net in self.net_by_currency().items() if net != 0}
        if unbalanced:
            raise UnbalancedEntry(
                f"{self.id} does not balance: debits - credits = {unbalanced} per currency"
            )

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def is_empty(self) -> bool:
        return not self.postings

    def net_by_currency(self) -> dict[str, int]:
        """Debits minus credits per currency (zero for every currency of a valid entry)."""
        net: dict[str, int] = {}
        for posting in self.postings:
            currency = posting.account.currency
            amount = posting.amount if posting.side is Side.DEBIT else -posting.amount
            net[currency] = net.get(currency, 0) + amount
        return net

    def record(self) -> dict[str, Any]:
        """A plain form to store (and ``from_record`` to read back)."""
        return {
            "id": self.id,
            "event": self.event.value,
            "cause_id": self.cause_id,
            "postings": [posting.record() for posting in self.postings],
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> JournalEntry:
        entry = cls(
            Event(record["event"]),
            str(record["cause_id"]),
            tuple(
                Posting(Account.parse(str(p["account"])), Side(p["side"]), int(p["amount"]))
                for p in record["postings"]
            ),
            {str(key): value for key, value in dict(record.get("metadata") or {}).items()},
        )
        if "id" in record and record["id"] != entry.id:
            raise LedgerError(f"record id {record['id']!r} is not its cause's id {entry.id!r}")
        return entry


def build(
    event: Event,
    cause_id: str,
    moves: Iterable[tuple[Account, Account, int]],
    metadata: Mapping[str, str | int] | None = None,
) -> JournalEntry:
    """An entry from ``(debit account, credit account, amount)`` moves; moves of zero are left
    out (nothing moved), negative ones are a bug."""
    postings: list[Posting] = []
    for debit, credit, amount in moves:
        if amount < 0:
            raise LedgerError(f"{event.value} {cause_id}: a move of {amount} is negative")
        if amount:
            postings.append(Posting(debit, Side.DEBIT, amount))
            postings.append(Posting(credit, Side.CREDIT, amount))
    return JournalEntry(event, cause_id, tuple(postings), metadata or {})


def reversal(entry: JournalEntry, reason: str) -> JournalEntry:
    """The correction that undoes ``entry``: the same postings on the opposite sides."""
    return JournalEntry(
        Event.REVERSAL,
        entry.id,
        tuple(Posting(p.account, p.side.opposite, p.amount) for p in entry.postings),
        {"reverses": entry.id, "reason": reason},
    )
