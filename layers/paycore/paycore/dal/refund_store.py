"""Refunds in the trade table, written together with their order, event and instrument moves.

Item layout (pk / sk), beside what ``TradeStore`` documents:
- ``REFUND#<rfd>`` / ``REFUND``: the refund (``paycore.domain.refunds.Refund``). While it
  waits for its channel, the item also holds the refund state machine's task token
  (``task_token``), written by the step that asks the channel on the condition that the
  refund is still processing at the version it holds, so the channel's notification reads
  refund and token in one read. The token is never part of the ``Refund`` (it never reaches
  an answer, a log or a snapshot); the refund's next write (its settlement) drops it. The
  item also lists the fingerprints of the signed notifications taken for the refund
  (``notification_fingerprints``, absent while empty): the callback adds one and reads the
  refund and its token in one conditional update (``take_notification_of_refund``), which
  refuses the same message twice.
- ``REFUND#<rfd>`` / ``TASKTOKEN``: held the token apart before: still read for a refund that
  started then.

Per-instrument refund totals live on the order (``Order.refund_allocated`` and
``Order.refunded_by_instrument``), not in a list of the order's refunds: every refund write
is a conditional write on the order's version, so the next refund's allocation is computed
from exactly the totals it is written against, and two racing refunds cannot both take the
same money. A late-payment refund does not touch the order (it never counted against it).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from paycore.dal.codec import to_item, to_values
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

    def wait_for_channel(self, refund: Refund, task_token: str) -> bool:
        """Keep the waiting execution's ``task_token`` on the refund's item, on the condition
        that the refund is still processing at the version ``refund`` holds: one write that
        lets the channel's notification resume the execution and proves the refund is not
        final yet. The refund itself (and its version) is unchanged. False when the refund
        is not as held (read it again)."""
        transaction = self._transaction()
        transaction.add(
            {
                "Update": {
                    "TableName": self.table,
                    "Key": to_item({"pk": _refund_pk(refund.id), "sk": REFUND_SK}),
                    "UpdateExpression": "SET task_token = :token",
                    "ConditionExpression": "#v = :version AND #s = :processing",
                    "ExpressionAttributeNames": {"#v": "version", "#s": "status"},
                    "ExpressionAttributeValues": to_values(
                        {
                            ":token": task_token,
                            ":version": refund.version,
                            ":processing": RefundStatus.PROCESSING.value,
                        }
                    ),
                }
            },
            Part.AGGREGATE,
        )
        return self._write(transaction)

    def get_refund_and_token(self, refund_id: str) -> tuple[Refund | None, str | None]:
        """The refund and the task token of the execution waiting for its channel (None
        when none waits, or the refund started when the token was kept apart), in one
        read."""
        item = self._get(_refund_pk(refund_id), REFUND_SK)
        if item is None:
            return None, None
        token = item.get("task_token")
        return _refund(item), str(token) if token else None

    def take_notification_of_refund(
        self,
        refund_id: str,
        payment_id: str,
        channel: str,
        account_id: str,
        fingerprint: str,
    ) -> tuple[Refund, str | None]:
        """Add the fingerprint of a signed notification about the refund to its item and
        return the refund and the task token of the execution waiting for its channel (None
        when none waits, or the refund started when the token was kept apart), in one
        conditional update (the one ``TradeStore.take_notification`` makes for a payment):
        the refund exists, refunds ``payment_id``, is of ``channel``, is held by its
        ``account_id`` (or by no account yet), and does not hold ``fingerprint`` yet.
        Otherwise ``CallbackRejected``: a replay (the refund holds it) or no refund of this
        channel account.

        Not a state change: the version stays. The refund's later whole-item writes keep the
        fingerprints because they write the ``Refund`` as read, or as the notification handed
        it to the execution (SettleRefund). A write from a refund read before this update (a
        settlement resumed by the request's own answer or a query while a notification was
        taken) drops the fingerprint again: that genuine message can then be taken once more
        while its signature is fresh, and finds the refund final (acknowledged, nothing
        resumed), as the channel's own re-delivery would."""
        item = self._take_notification(
            _refund_pk(refund_id),
            REFUND_SK,
            fingerprint,
            held_by={"payment_id": payment_id, "channel": channel},
            held_by_or_unset={"channel_account": account_id},
            subject="refund",
        )
        token = item.get("task_token")
        return _refund(item), str(token) if token else None

    def get_refund_task_token(self, refund_id: str) -> str | None:
        """The task token of a refund that started when it was kept on its own item."""
        item = self._get(_refund_pk(refund_id), TASK_TOKEN_SK)
        return str(item["token"]) if item else None

    def _refund_values(self, refund: Refund) -> dict[str, Any]:
        values = asdict(refund)
        values["status"] = refund.status.value
        values["kind"] = refund.kind.value
        if not refund.notification_fingerprints:
            del values["notification_fingerprints"]  # absent while empty: no bytes to write
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
