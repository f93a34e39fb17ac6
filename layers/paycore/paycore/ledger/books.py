"""Balances: journal entries folded into per-account debits and credits, and the trial balance.

``Ledger`` is the reference fold: each entry counts once (by id: the same entry again changes
nothing; a different entry with the same id is refused), and the result does not depend on the
order the entries arrive in. The data layer's account items (``paycore.dal.ledger``) must
hold the same totals; the chaos run folds every stored entry here and compares.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from paycore.ledger.accounts import Account, Side
from paycore.ledger.entries import EntryConflict, JournalEntry


@dataclass(frozen=True)
class AccountTotals:
    debits: int = 0
    credits: int = 0

    def balance(self, normal: Side) -> int:
        """The balance on the ``normal`` side: positive is the usual state of the account."""
        return self.debits - self.credits if normal is Side.DEBIT else self.credits - self.debits


class Ledger:
    """Per-account totals folded from journal entries, each entry once."""

    def __init__(self, entries: Iterable[JournalEntry] = ()) -> None:
        self._entries: dict[str, JournalEntry] = {}
        self._totals: dict[Account, list[int]] = {}  # [debits, credits]
        for entry in entries:
            self.post(entry)

    def post(self, entry: JournalEntry) -> bool:
        """Fold ``entry`` in; False when it was already folded (a replay changes nothing).
        ``EntryConflict`` when another entry with its id was: nothing is changed then."""
        seen = self._entries.get(entry.id)
        if seen is not None:
            if seen != entry:
                raise EntryConflict(f"{entry.id} was already posted with different content")
            return False
        self._entries[entry.id] = entry
        for posting in entry.postings:
            totals = self._totals.setdefault(posting.account, [0, 0])
            totals[0 if posting.side is Side.DEBIT else 1] += posting.amount
        return True

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> tuple[JournalEntry, ...]:
        return tuple(self._entries.values())

    def totals(self, account: Account) -> AccountTotals:
        debits, credits = self._totals.get(account, _NONE)
        return AccountTotals(debits, credits)

    def balance(self, account: Account) -> int:
        """The account's balance on its normal side."""
        debits, credits = self._totals.get(account, _NONE)
        return debits - credits if account.normal is Side.DEBIT else credits - debits

    def accounts(self, currency: str | None = None) -> list[Account]:
        """Every account with postings (of ``currency``), sorted by id."""
        found = (a for a in self._totals if currency is None or a.currency == currency)
        return sorted(found, key=lambda account: account.id)

    def snapshot(self) -> dict[str, AccountTotals]:
        """Every account's totals by account id (two folds are equal when these are)."""
        return {account.id: self.totals(account) for account in self.accounts()}

    def trial_balance(self, currency: str) -> TrialBalance:
        lines = tuple(
            TrialBalanceLine(account.id, *self._totals[account])
            for account in self.accounts(currency)
        )
        return TrialBalance(currency, lines)

    def below_zero(self) -> list[Account]:
        """BOUNDED accounts whose balance is below zero (always empty for correct books)."""
        return [a for a in self.accounts() if a.spec.bounded and self.balance(a) < 0]

    def open_clearing(self) -> list[Account]:
        """CLEARING accounts not at zero: flows still in flight, or a missing entry."""
        return [a for a in self.accounts() if a.spec.clearing and self.balance(a) != 0]


_NONE = (0, 0)


def fold(entries: Iterable[JournalEntry]) -> Ledger:
    return Ledger(entries)


@dataclass(frozen=True)
class TrialBalanceLine:
    account: str
    debits: int
    credits: int


@dataclass(frozen=True)
class TrialBalance:
    """Every account of one currency with its total debits and credits; the two totals are
    equal because every entry balances."""

    currency: str
    lines: tuple[TrialBalanceLine, ...]

    @property
    def total_debits(self) -> int:
        return sum(line.debits for line in self.lines)

    @property
    def total_credits(self) -> int:
        return sum(line.credits for line in self.lines)

    def resource(self) -> dict[str, Any]:
        """The ``GET /v1/ledger/trial_balance`` body."""
        return {
            "object": "trial_balance",
            "currency": self.currency,
            "accounts": [
                {"account": line.account, "debits": line.debits, "credits": line.credits}
                for line in self.lines
            ],
            "total_debits": self.total_debits,
            "total_credits": self.total_credits,
        }
