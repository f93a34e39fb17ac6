"""The books as the platform reads them: the trial balance of a currency."""

from __future__ import annotations

from paycore.dal.ledger import LedgerStore
from paycore.ledger.books import TrialBalance


def trial_balance(store: LedgerStore, currency: str) -> TrialBalance:
    """Every account of ``currency`` with its total debits and credits (always equal)."""
    return store.trial_balance(currency)
