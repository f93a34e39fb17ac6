"""Refunds in the trade table, written together with their order, event and instrument moves.

Item layout (pk / sk), beside what ``TradeStore`` documents:
- ``REFUND#<rfd>`` / ``REFUND``: the refund (``paycore.domain.refunds.Refund``).
- ``REFUND#<rfd>`` / ``TASKTOKEN``: the refund state machine's task token, kept apart.

Per-instrument refund totals live on the order (``Order.refund_allocated`` and
``Order.refunded_by_instrument``), not in a list of the order's refunds: every refund write
is a conditional write on the order's version, so the next refund's allocation is computed
from exactly the totals it is written against, and two racing refunds cannot both take the
same money. A late-payment refund does not touch the order (it never counted against it).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from paycore.dal.codec import to_item
from paycore.dal.instruments import add_moves
from paycore.dal.ledger import add_entry
from paycore.dal.trade_store import TradeStore, check_entry
from paycore.dal.transaction import Part
from paycore.domain.changes import RefundSettlement, RefundStart
from paycore.domain.refunds import Refund, RefundKind, RefundStatus
from paycore.errors import ConcurrentUpdate, Conflict

REFUND_SK = "REFUND"
TASK_TOKEN_SK = "TASKTOKEN"  # noqa: S105 - a sort key, not a secret


def _refund_pk(refund_id: str) -> str:
    return f"REFUND#{refund_id}"


class RefundStore(TradeStore):
    """DynamoDB access for refunds (and everything a refund changes in one transaction)."""

    @classmethod
    def of(cls, store: TradeStore) -> RefundStore:
        """The refund store on the same table as ``store``."""
        return store if isinstance(store, RefundStore) else cls(store.table)

    def create_refund(self, start: RefundStart) -> None:
        """Record a new refund and its order (already changed by the caller: the amount
        reserved, or for a refund that completes at once, refunded) in one transaction, with
        the event and instrument moves of a refund that completes at once.

        Raises ``Conflict`` (``refund_exists``) when the refund id is taken (a repeated
        late-payment refund) and ``ConcurrentUpdate`` when the order changed since it was
        read."""
        refund, order = start.refund, start.order
        transaction = self._transaction()
        transaction.put_new(self._refund_values(refund))
        if order is not None:
            saved_order = replace(order, version=order.version + 1)
            transaction.put_versioned(self._order_values(saved_order), order.version)
        add_moves(transaction, start.moves)
        if start.event is not None:
            transaction.put_new(self._event_values(start.event), Part.EVENT)
        add_entry(transaction, start.entry)
        cancelled = transaction.write(self._ddb)
        if cancelled is None:
            return
        check_entry(refund.id, cancelled)
        if cancelled.failed(Part.NEW):
            raise Conflict(f"refund {refund.id} already exists", code="refund_exists")
        _check_instruments(refund.id, cancelled.instruments_not_as_read())
        raise ConcurrentUpdate(f"order {refund.order_id} changed while the refund was recorded")

    def get_refund(self, refund_id: str) -> Refund | None:
        item = self._get(_refund_pk(refund_id), REFUND_SK)
        return _refund(item) if item else None

    def save_refund(self, refund: Refund) -> Refund:
        """Write a change of ``refund`` alone (no status change), on its version."""
        saved = replace(refund, version=refund.version + 1)
        transaction = self._transaction()
        transaction.put_versioned(self._refund_values(saved), refund.version)
        if not self._write(transaction):
            raise ConcurrentUpdate(f"refund {refund.id} changed while it was being updated")
        return saved

    def finish_refund(self, settlement: RefundSettlement) -> bool:
        """Write a final refund, its order's amounts (merchant refunds), its event and the
        instrument credits together. False when the refund or the order changed since they
        were read (the caller re-reads: a retried settlement then finds the refund final).
        An instrument whose condition fails is a bug or a hand edit, never a race: it raises
        (the settlement's alarm pages a person)."""
        refund, order = settlement.refund, settlement.order
        saved_refund = replace(refund, version=refund.version + 1)
        transaction = self._transaction()
        transaction.put_versioned(self._refund_values(saved_refund), refund.version)
        if order is not None:
            saved_order = replace(order, version=order.version + 1)
            transaction.put_versioned(self._order_values(saved_order), order.version)
        add_moves(transaction, settlement.moves)
        if settlement.event is not None:
            transaction.put_new(self._event_values(settlement.event), Part.EVENT)
        add_entry(transaction, settlement.entry)
        cancelled = transaction.write(self._ddb)
        if cancelled is None:
            return True
        _check_instruments(refund.id, cancelled.instruments_not_as_read())
        check_entry(refund.id, cancelled)
        return False

    def put_refund_task_token(self, refund_id: str, task_token: str) -> None:
        """Keep the state machine's task token apart from the refund (it is a credential)."""
        self._ddb.put_item(
            TableName=self.table,
            Item=to_item({"pk": _refund_pk(refund_id), "sk": TASK_TOKEN_SK, "token": task_token}),
        )

    def get_refund_task_token(self, refund_id: str) -> str | None:
        item = self._get(_refund_pk(refund_id), TASK_TOKEN_SK)
        return str(item["token"]) if item else None

    def _refund_values(self, refund: Refund) -> dict[str, Any]:
        values = asdict(refund)
        values["status"] = refund.status.value
        values["kind"] = refund.kind.value
        values.update(pk=_refund_pk(refund.id), sk=REFUND_SK)
        return values


def _check_instruments(refund_id: str, not_as_read: bool) -> None:
    """Raise when an instrument move failed its condition although the refund and the order
    were current (``Cancelled.instruments_not_as_read``); a lost race only re-reads."""
    if not_as_read:
        raise RuntimeError(f"refund {refund_id}: an instrument is not as the payment left it")


_REFUND_FIELDS = tuple(Refund.__dataclass_fields__)


def refund_snapshot(refund: Refund) -> dict[str, Any]:
    """``refund`` as JSON-ready values (a step carries it in the execution's input)."""
    values = asdict(refund)
    values["status"] = refund.status.value
    values["kind"] = refund.kind.value
    return values


def refund_from_snapshot(values: dict[str, Any]) -> Refund:
    return _refund(values)


def _refund(item: dict[str, Any]) -> Refund:
    values = {name: item[name] for name in _REFUND_FIELDS if name in item}
    values["status"] = RefundStatus(values["status"])
    values["kind"] = RefundKind(values["kind"])
    return Refund(**values)
