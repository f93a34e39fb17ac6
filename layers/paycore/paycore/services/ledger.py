"""The books as their readers see them: the platform's trial balance of a currency, and a
merchant's balance (escrow, pending, available per currency)."""

from __future__ import annotations

from paycore.dal.ledger import LedgerStore
from paycore.ledger.accounts import Holding
from paycore.ledger.books import TrialBalance


def trial_balance(store: LedgerStore, currency: str) -> TrialBalance:
    """Every account of ``currency`` with its total debits and credits (always equal)."""
    return store.trial_balance(currency)


def merchant_balance(store: LedgerStore, merchant_id: str) -> list[dict[str, int | str]]:
    """Per currency the merchant has touched: its money in ``escrow`` (guaranteed trade not
    confirmed yet), ``pending`` (waiting for its settlement day) and ``available`` (settled;
    may be negative), in minor units."""
    return [
        {
            "currency": currency,
            "escrow": held[Holding.ESCROW],
            "pending": held[Holding.PENDING],
            "available": held[Holding.AVAILABLE],
        }
        for currency, held in store.merchant_holdings(merchant_id).items()
    ]
