"""The refund aggregate, its status table and the rule that splits a refund over instruments.

A refund gives back part or all of what a payment took. A payment may have been paid with
several instruments (a channel, the buyer's stored balance, a coupon); ``allocate`` decides
how much of a refund goes back to each: the channel first, then the balance, then the coupon,
and never more to an instrument than it paid (minus what earlier refunds already took from
it). Only the channel part needs the channel; the internal parts are credited in the same
transaction that records the refund as succeeded.

Instrument keys: ``"channel"``, ``"balance"`` and ``"coupon:<coupon id>"``. The order keeps
per-key totals (``Order.refund_allocated`` for refunds not failed, ``Order.refunded_by_instrument``
for succeeded ones), so the next refund's allocation is computed from the order it is written
against: the order's version check then serialises racing refunds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from paycore.errors import Conflict

if TYPE_CHECKING:  # models imports this module (the order keeps refund totals)
    from paycore.domain.models import Payment

CHANNEL = "channel"
BALANCE = "balance"
COUPON = "coupon"
# Refunds go back to instruments in this order.
_ALLOCATION_ORDER = (CHANNEL, BALANCE, COUPON)


class RefundStatus(StrEnum):
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RefundKind(StrEnum):
    MERCHANT = "merchant"  # asked for by the merchant; counts against the order
    LATE_PAYMENT = "late_payment"  # gives back a payment the channel took after we gave up


REFUND_TRANSITIONS: dict[RefundStatus, frozenset[RefundStatus]] = {
    RefundStatus.PROCESSING: frozenset({RefundStatus.SUCCEEDED, RefundStatus.FAILED}),
    RefundStatus.SUCCEEDED: frozenset(),
    RefundStatus.FAILED: frozenset(),
}


def can_transition_refund(current: RefundStatus, target: RefundStatus) -> bool:
    return target in REFUND_TRANSITIONS[current]


def check_refund_transition(current: RefundStatus, target: RefundStatus) -> None:
    if not can_transition_refund(current, target):
        raise Conflict(
            f"refund is {current.value}; it cannot become {target.value}",
            code="refund_not_processing",
        )


def allocation_key(allocation: Mapping[str, Any]) -> str:
    """The instrument an allocation (or a payment instrument) belongs to."""
    kind = str(allocation["type"])
    return f"{COUPON}:{allocation['coupon_id']}" if kind == COUPON else kind


def paid_by_instrument(payment: Payment) -> dict[str, int]:
    """What each instrument of ``payment`` paid, by instrument key, in allocation order."""
    paid: dict[str, int] = {}
    for instrument in payment.instruments:
        amount = instrument.get("amount")
        if amount is None and instrument.get("type") == CHANNEL:
            amount = payment.amount - sum(
                int(other.get("amount") or 0) for other in payment.instruments
            )
        key = allocation_key(instrument)
        paid[key] = paid.get(key, 0) + int(amount or 0)
    if not paid and payment.channel:  # a payment recorded without its instruments
        paid[CHANNEL] = payment.amount
    return dict(sorted(paid.items(), key=lambda item: _rank(item[0])))


def _rank(key: str) -> int:
    return _ALLOCATION_ORDER.index(key.split(":", 1)[0])


def allocate(
    payment: Payment, previous_refunds_allocations: Mapping[str, int], amount: int
) -> list[dict[str, Any]]:
    """Split ``amount`` over the instruments of ``payment``: the channel first, then the
    balance, then coupons, each up to what it paid minus what refunds that have not failed
    already took from it (``previous_refunds_allocations``, by instrument key).

    Raises ``Conflict`` (``refund_exceeds_paid``) when the instruments cannot cover it."""
    if amount <= 0:
        raise ValueError("a refund amount must be positive")
    remaining = amount
    allocations: list[dict[str, Any]] = []
    for key, paid in paid_by_instrument(payment).items():
        room = paid - previous_refunds_allocations.get(key, 0)
        take = min(room, remaining)
        if take <= 0:
            continue
        kind, _, coupon_id = key.partition(":")
        allocation: dict[str, Any] = {"type": kind, "amount": take}
        if coupon_id:
            allocation["coupon_id"] = coupon_id
        allocations.append(allocation)
        remaining -= take
        if remaining == 0:
            return allocations
    raise Conflict(
        f"a refund of {amount} exceeds what is left to refund of payment {payment.id}",
        code="refund_exceeds_paid",
        param="amount",
    )


def add_allocations(
    totals: Mapping[str, int], allocations: Iterable[Mapping[str, Any]], sign: int = 1
) -> dict[str, int]:
    """``totals`` (by instrument key) with ``allocations`` added (``sign=-1``: taken away)."""
    result = dict(totals)
    for allocation in allocations:
        key = allocation_key(allocation)
        result[key] = result.get(key, 0) + sign * int(allocation["amount"])
        if result[key] < 0:
            raise Conflict(f"refund totals of {key} would go negative", code="refund_mismatch")
        if result[key] == 0:
            del result[key]
    return result


@dataclass(frozen=True)
class Refund:
    id: str
    merchant_id: str
    order_id: str
    payment_id: str
    amount: int
    currency: str
    status: RefundStatus
    kind: RefundKind
    allocations: list[dict[str, Any]]
    created_at: str
    updated_at: str
    reason: str | None = None
    channel: str | None = None  # the payment's channel, when the refund has a channel part
    channel_account: str | None = None
    channel_refund_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    # The payment's fee this refund returned (the cumulative rule of paycore.ledger.fees);
    # set when it succeeds.
    fee_refunded: int | None = None
    # The signed channel notifications taken for this refund (short fingerprints, see
    # paycore.services.callbacks): the same message again is a replay. Internal: never in the
    # resource (so never in an answer or an event). Added by the callback's conditional update,
    # which leaves the version alone; carried here so that every later whole-item write keeps
    # them.
    notification_fingerprints: list[str] = field(default_factory=list)
    version: int = 0  # optimistic lock: every write expects it and stores it + 1

    @property
    def is_final(self) -> bool:
        return self.status is not RefundStatus.PROCESSING

    def part(self, kind: str) -> int:
        """What this refund gives back through instruments of ``kind``."""
        return sum(int(a["amount"]) for a in self.allocations if a["type"] == kind)

    @property
    def channel_amount(self) -> int:
        return self.part(CHANNEL)

    @property
    def balance_amount(self) -> int:
        return self.part(BALANCE)

    def coupon_parts(self) -> Sequence[Mapping[str, Any]]:
        return [a for a in self.allocations if a["type"] == COUPON]

    def succeed(self, channel_refund_id: str | None, at: str, *, fee_refunded: int) -> Refund:
        check_refund_transition(self.status, RefundStatus.SUCCEEDED)
        return replace(
            self,
            status=RefundStatus.SUCCEEDED,
            channel_refund_id=channel_refund_id or self.channel_refund_id,
            fee_refunded=fee_refunded,
            updated_at=at,
        )

    def fail(self, code: str, message: str, at: str) -> Refund:
        check_refund_transition(self.status, RefundStatus.FAILED)
        return replace(
            self,
            status=RefundStatus.FAILED,
            failure_code=code,
            failure_message=message,
            updated_at=at,
        )

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "refund",
            "order_id": self.order_id,
            "payment_id": self.payment_id,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status.value,
            "reason": self.reason,
            "kind": self.kind.value,
            "allocations": [dict(a) for a in self.allocations],
            "fee_refunded": self.fee_refunded,
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
