"""Daily settlement: pending money that is due becomes available.

Settlement of day S (in the ``SETTLEMENT_TIME_ZONE``) makes available the pending money of every
order paid (instant) or confirmed (guaranteed) on or before day S - the merchant's
``settlement_delay_days``, not settled yet, less the refunds taken from it. Each such order
carries ``settle_on`` (its day plus the delay) and sits in the sparse index under ``SETTLE`` by
that date until settled, so a run reads exactly the orders due.

A run writes one merchant's orders of one currency in batches of ``BATCH_SIZE``; each batch is
one transaction: every order settled on the version it was read at, one settlement entry
(pending to available), the day's figures added to. A run is idempotent: a settled order left
the index, and an order that changed meanwhile (a refund, a concurrent run) fails the batch,
which is read again and retried. Running S while S is today settles what is due so far;
running it again later settles only what became due since. The schedule runs S at 00:00 of S.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from aws_lambda_powertools import Logger

from paycore.clock import local_date, now, now_rfc3339
from paycore.config import get_settings
from paycore.dal.trade_store import TradeStore
from paycore.domain.changes import SettlementBatch
from paycore.domain.models import Order
from paycore.errors import ConcurrentUpdate, ValidationFailed
from paycore.ledger.rules import SettlementFigures

logger = Logger(child=True)  # the calling function's logger (its service and keys)

# Orders per transaction: with the entry, its two account shards and the day's figures, a
# batch is at most 29 items (DynamoDB allows 100).
BATCH_SIZE = 25
_ATTEMPTS = 5


@dataclass(frozen=True)
class SettlementRun:
    """What one run of settlement ``date`` did."""

    date: str
    payments_count: int  # orders (payments) this run settled
    settlements_count: int  # merchant and currency pairs it added figures to

    def resource(self) -> dict[str, object]:
        return {
            "object": "settlement_run",
            "date": self.date,
            "payments_count": self.payments_count,
            "settlements_count": self.settlements_count,
        }


def today() -> date:
    """Today in the settlement time zone."""
    return local_date(now(), get_settings().settlement_time_zone)


def run_settlement(store: TradeStore, settlement_date: date) -> SettlementRun:
    """Run settlement ``settlement_date`` now, for every merchant (422 for a day after today:
    nothing of it is due yet)."""
    if settlement_date > today():
        raise ValidationFailed(
            f"settlement {settlement_date.isoformat()} is in the future",
            code="settlement_date_in_future",
            param="date",
        )
    day = settlement_date.isoformat()
    due = store.get_orders(store.orders_due_for_settlement(day))
    groups: dict[tuple[str, str], list[Order]] = defaultdict(list)
    for order in due:
        groups[(order.merchant_id, order.currency)].append(order)
    settled = 0
    touched = 0
    for orders in groups.values():
        orders.sort(key=lambda order: order.id)
        count = sum(
            _settle_batch(store, orders[start : start + BATCH_SIZE], day)
            for start in range(0, len(orders), BATCH_SIZE)
        )
        settled += count
        touched += bool(count)
    if settled:
        logger.info(
            "settlement run", extra={"date": day, "payments": settled, "settlements": touched}
        )
    return SettlementRun(day, settled, touched)


def _settle_batch(store: TradeStore, orders: list[Order], day: str) -> int:
    """Settle the orders of one batch that are still due; how many it settled."""
    for _ in range(_ATTEMPTS):
        due = [order for order in orders if order.awaits_settlement and str(order.settle_on) <= day]
        if not due:
            return 0
        try:
            store.settle_orders(SettlementBatch.of(due, day, now_rfc3339()))
        except ConcurrentUpdate:
            orders = store.get_orders([order.id for order in due])  # a refund, another run
            continue
        return len(due)
    raise ConcurrentUpdate(f"orders of settlement {day} keep changing; run it again")


def get_settlement(
    store: TradeStore, merchant_id: str, settlement_date: date, currency: str
) -> dict[str, object]:
    """Everything settlement ``settlement_date`` moved for the merchant in ``currency``,
    summed over all its runs."""
    figures: SettlementFigures = store.get_settlement(
        merchant_id, currency, settlement_date.isoformat()
    )
    return {
        "object": "settlement",
        "date": settlement_date.isoformat(),
        "currency": currency,
        **figures.as_dict(),
    }


def settlement_date_of(text: str) -> date:
    """``YYYY-MM-DD`` as a date (422 otherwise)."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise ValidationFailed(f"date {text!r} is not YYYY-MM-DD", param="date")
