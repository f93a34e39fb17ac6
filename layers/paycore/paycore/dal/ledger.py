"""The ledger in the trade table: journal entries and account balances, written in the same
transaction as the state change that causes them.

Item layout (pk / sk):
- ``ENTRY#<entry id>`` / ``ENTRY``: one journal entry (its event, cause, postings and metadata;
  the postings and metadata as JSON text). Written with ``attribute_not_exists``: an entry's id
  derives from its cause, so the transaction of a retried step fails on it instead of posting
  twice (its versioned aggregates fail too: the caller re-reads and finds the step done).
- ``ACCOUNT#<account id>`` / ``SHARD#<nn>``: one shard of an account's balance, ``debits`` and
  ``credits`` added to (``ADD``) in the entry's transaction, with ``account`` and
  ``currency``. A hot account (fee income, a channel account's clearing and refunds in flight,
  a merchant's escrow, pending, available and issued value) has several shards and each entry
  updates the one its id hashes to, so no single item takes every payment (``SHARDS``; see
  docs/ledger.md for the write rates). Every other account has one shard.
- The shards are listed per currency in the sparse, keys-only index gsi2 under
  ``LEDGER#<CUR>#<kk>`` (``kk``: a hash of the account id modulo ``INDEX_PARTITIONS``), so
  listing every account of a currency reads 16 index partitions and no partition is hot. The
  index keys are set with ``if_not_exists``: the index is written when a shard is created,
  never again when its balance changes.

Bounded accounts are checked in the same transaction by the items that already hold them (a
buyer's balance item, a coupon's status, the order's version for what an order put in escrow
or pending); the account items themselves are unconditional totals.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from paycore.aws import client
from paycore.clock import now_rfc3339
from paycore.config import get_settings
from paycore.dal.codec import from_item, to_item, to_values
from paycore.dal.transaction import Part, Transaction, raise_unavailable
from paycore.errors import ServiceUnavailable
from paycore.ledger import accounts
from paycore.ledger.accounts import Account, AccountKind, Holding, Side
from paycore.ledger.books import TrialBalance, TrialBalanceLine
from paycore.ledger.entries import JournalEntry
from paycore.money import CURRENCY_EXPONENTS

ENTRY_SK = "ENTRY"
LEDGER_INDEX = "gsi2"
INDEX_PARTITIONS = 16
# Shards per hot account kind; every other kind has one.
SHARDS: dict[AccountKind, int] = {
    AccountKind.PLATFORM_FEES: 16,
    AccountKind.CHANNEL_CLEARING: 16,
    AccountKind.CHANNEL_REFUNDING: 16,
    AccountKind.MERCHANT_ESCROW: 8,
    AccountKind.MERCHANT_PENDING: 8,
    AccountKind.MERCHANT_AVAILABLE: 8,
    AccountKind.MERCHANT_ISSUED_VALUE: 8,
}
_BATCH_GET = 100  # keys per BatchGetItem
_TRIAL_BALANCE_READS = 5


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def shard_count(account: Account) -> int:
    return SHARDS.get(account.kind, 1)


def shard_for(account: Account, entry_id: str) -> int:
    """The shard of ``account`` that entry ``entry_id`` updates."""
    count = shard_count(account)
    return 0 if count == 1 else _hash(entry_id) % count


def entry_pk(entry_id: str) -> str:
    return f"ENTRY#{entry_id}"


def account_pk(account_id: str) -> str:
    return f"ACCOUNT#{account_id}"


def shard_sk(shard: int) -> str:
    return f"SHARD#{shard:02d}"


def index_partition(account_id: str, currency: str) -> str:
    return f"LEDGER#{currency}#{_hash(account_id) % INDEX_PARTITIONS:02d}"


def _entry_values(entry: JournalEntry, at: str) -> dict[str, Any]:
    record = entry.record()
    return {
        "pk": entry_pk(entry.id),
        "sk": ENTRY_SK,
        "id": entry.id,
        "event": record["event"],
        "cause_id": record["cause_id"],
        "postings": json.dumps(record["postings"], separators=(",", ":")),
        "metadata": json.dumps(record["metadata"], separators=(",", ":"), sort_keys=True),
        "created_at": at,
    }


def account_moves(entry: JournalEntry) -> dict[tuple[Account, int], tuple[int, int]]:
    """What ``entry`` adds to each account shard: ``{(account, shard): (debits, credits)}``
    (an account posted twice by one entry is one update: a transaction writes an item once)."""
    moves: dict[tuple[Account, int], tuple[int, int]] = {}
    for posting in entry.postings:
        key = (posting.account, shard_for(posting.account, entry.id))
        debits, credits = moves.get(key, (0, 0))
        if posting.side is Side.DEBIT:
            debits += posting.amount
        else:
            credits += posting.amount
        moves[key] = (debits, credits)
    return moves


def _account_update(
    table: str, account: Account, shard: int, debits: int, credits: int
) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": to_item({"pk": account_pk(account.id), "sk": shard_sk(shard)}),
            "UpdateExpression": "ADD #debits :debits, #credits :credits"
            " SET #account = if_not_exists(#account, :account),"
            " #currency = if_not_exists(#currency, :currency),"
            " #gsi2pk = if_not_exists(#gsi2pk, :gsi2pk),"
            " #gsi2sk = if_not_exists(#gsi2sk, :gsi2sk)",
            "ExpressionAttributeNames": {
                name: name[1:]
                for name in ("#debits", "#credits", "#account", "#currency", "#gsi2pk", "#gsi2sk")
            },
            "ExpressionAttributeValues": to_values(
                {
                    ":debits": debits,
                    ":credits": credits,
                    ":account": account.id,
                    ":currency": account.currency,
                    ":gsi2pk": index_partition(account.id, account.currency),
                    ":gsi2sk": f"{account.id}#{shard:02d}",
                }
            ),
        }
    }


def add_entry(transaction: Transaction, entry: JournalEntry | None) -> None:
    """Add ``entry`` (new, by its id) and its account shards' updates to ``transaction``."""
    if entry is None or entry.is_empty:
        return
    transaction.add(
        {
            "Put": {
                "TableName": transaction.table,
                "Item": to_item(_entry_values(entry, now_rfc3339())),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
        Part.ENTRY,
    )
    for (account, shard), (debits, credits) in account_moves(entry).items():
        transaction.add(
            _account_update(transaction.table, account, shard, debits, credits), Part.ACCOUNT
        )


def entry_from_item(item: dict[str, Any]) -> JournalEntry:
    return JournalEntry.from_record(
        {
            "id": item["id"],
            "event": item["event"],
            "cause_id": item["cause_id"],
            "postings": json.loads(item["postings"]),
            "metadata": json.loads(item["metadata"]),
        }
    )


class LedgerStore:
    """Reads of the ledger: entries, account balances, the trial balance."""

    def __init__(self, table_name: str | None = None) -> None:
        self.table = table_name or get_settings().trade_table_name
        self._ddb = client("dynamodb")

    def get_entry(self, entry_id: str) -> JournalEntry | None:
        try:
            answer = self._ddb.get_item(
                TableName=self.table,
                Key=to_item({"pk": entry_pk(entry_id), "sk": ENTRY_SK}),
                ConsistentRead=True,
            )
        except ClientError as exc:
            raise_unavailable(exc)
            raise
        item = answer.get("Item")
        return entry_from_item(from_item(item)) if item else None

    def _shard_keys(self, currency: str) -> list[dict[str, Any]]:
        keys: list[dict[str, Any]] = []
        for partition in range(INDEX_PARTITIONS):
            query: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": LEDGER_INDEX,
                "KeyConditionExpression": "gsi2pk = :pk",
                "ExpressionAttributeValues": to_values(
                    {":pk": f"LEDGER#{currency}#{partition:02d}"}
                ),
            }
            while True:
                answer = self._ddb.query(**query)
                keys.extend({"pk": item["pk"], "sk": item["sk"]} for item in answer["Items"])
                if "LastEvaluatedKey" not in answer:
                    break
                query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
        return keys

    def read_shards(self, keys: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The account shard items of ``keys`` (DynamoDB keys), read consistently; missing
        ones are left out."""
        pending = list(keys)
        found: list[dict[str, Any]] = []
        while pending:
            chunk, pending = pending[:_BATCH_GET], pending[_BATCH_GET:]
            request: dict[str, Any] = {
                self.table: {"Keys": chunk, "ConsistentRead": True},
            }
            for attempt in range(8):
                answer = self._ddb.batch_get_item(RequestItems=request)
                found.extend(from_item(item) for item in answer["Responses"].get(self.table, []))
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)
            else:
                raise ServiceUnavailable("the ledger is busy; retry shortly")
        return found

    def trial_balance(self, currency: str) -> TrialBalance:
        """Every account of ``currency`` with its debits and credits (its shards summed).

        Each transaction updates the accounts of its entry together, but a read of many items
        is not one snapshot: a read taken while entries are being written can see one side of
        an entry and not the other. Such a read is taken again; a trial balance that still
        does not balance after a few reads is refused (503), never answered."""
        for attempt in range(_TRIAL_BALANCE_READS):
            totals: dict[str, list[int]] = {}
            for item in self.read_shards(self._shard_keys(currency)):
                line = totals.setdefault(str(item["account"]), [0, 0])
                line[0] += int(item.get("debits", 0))
                line[1] += int(item.get("credits", 0))
            balance = TrialBalance(
                currency,
                tuple(
                    TrialBalanceLine(account, debits, credits)
                    for account, (debits, credits) in sorted(totals.items())
                ),
            )
            if balance.total_debits == balance.total_credits:
                return balance
            time.sleep(0.05 * 2**attempt)
        raise ServiceUnavailable(
            f"the {currency} books are being written faster than they can be read; retry"
        )

    def merchant_holdings(self, merchant_id: str) -> dict[str, dict[Holding, int]]:
        """The merchant's escrow, pending and available per currency it has touched (any of
        the three has an account item), each on its normal side (credit: what is owed to the
        merchant; available may be negative). Reads every shard of the three accounts in
        every supported currency, consistently: 3 x 8 x 11 keys, three BatchGetItem calls."""
        keys: list[dict[str, Any]] = []
        for currency in CURRENCY_EXPONENTS:
            for holding in Holding:
                account = accounts.merchant_holding(merchant_id, holding, currency)
                keys.extend(
                    to_item({"pk": account_pk(account.id), "sk": shard_sk(shard)})
                    for shard in range(shard_count(account))
                )
        found: dict[str, dict[Holding, int]] = {}
        for item in self.read_shards(keys):
            account = Account.parse(str(item["account"]))
            holding = Holding(account.kind.value.removeprefix("merchant_"))
            line = found.setdefault(account.currency, dict.fromkeys(Holding, 0))
            line[holding] += int(item.get("credits", 0)) - int(item.get("debits", 0))
        return dict(sorted(found.items()))
