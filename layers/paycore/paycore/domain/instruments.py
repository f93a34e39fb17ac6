"""Internal instruments: a buyer's stored balance and coupons.

A balance is kept per merchant, buyer and currency: ``available`` can be spent, ``frozen`` is
reserved by payments still in flight. A coupon is worth its whole ``amount``, is used at most
once, and moves ``available`` -> ``locked`` (reserved by a payment) -> ``used``; a locked
coupon can be released back, a used one restored by a refund. Expiry is not written: an
available coupon past ``expires_at`` shows as ``expired`` when it is read.

The writes themselves are conditional DynamoDB updates (``paycore.dal.instruments``); these
classes are what was read, and their ``resource()`` is the merchant-facing JSON shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from paycore.clock import now, parse_rfc3339
from paycore.errors import Conflict


class CouponStatus(StrEnum):
    AVAILABLE = "available"
    LOCKED = "locked"
    USED = "used"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Balance:
    merchant_id: str
    buyer_id: str
    currency: str
    available: int = 0
    frozen: int = 0
    updated_at: str | None = None  # None: never credited (reads as zero)

    def resource(self) -> dict[str, Any]:
        return {
            "object": "balance",
            "buyer_id": self.buyer_id,
            "currency": self.currency,
            "available": self.available,
            "frozen": self.frozen,
        }


@dataclass(frozen=True)
class Coupon:
    id: str
    merchant_id: str
    buyer_id: str
    amount: int
    currency: str
    status: CouponStatus  # as stored: never EXPIRED (see effective_status)
    expires_at: str | None  # RFC 3339 UTC, milliseconds (clock.rfc3339); None: never expires
    created_at: str
    updated_at: str
    locked_by: str | None = None  # the payment holding (or having used) the coupon

    def is_expired(self, at: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        return parse_rfc3339(self.expires_at) <= (at or now())

    def effective_status(self, at: datetime | None = None) -> CouponStatus:
        """The status a reader sees: an available coupon past its expiry is expired."""
        if self.status is CouponStatus.AVAILABLE and self.is_expired(at):
            return CouponStatus.EXPIRED
        return self.status

    def usable_by(
        self, merchant_id: str, buyer_id: str, currency: str, at: datetime | None = None
    ) -> bool:
        """Whether a payment of this buyer in this currency may lock (or use) the coupon now:
        the same test ``lock_coupon``'s condition makes, for a friendly refusal up front."""
        return (
            self.merchant_id == merchant_id
            and self.buyer_id == buyer_id
            and self.currency == currency
            and self.effective_status(at) is CouponStatus.AVAILABLE
        )

    def resource(self, at: datetime | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "coupon",
            "buyer_id": self.buyer_id,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.effective_status(at).value,
            "expires_at": self.expires_at,
            "created_at": self.created_at,
        }


# -- instrument moves: what a payment or refund does to balances and coupons --------------------


class BalanceMoveKind(StrEnum):
    FREEZE = "freeze"  # available -> frozen (a payment in flight reserves it)
    DEBIT = "debit"  # spent from available at once (a payment with no channel part)
    SPEND_FROZEN = "spend_frozen"  # the payment succeeded: frozen is spent
    RELEASE_FROZEN = "release_frozen"  # the payment failed: frozen -> available
    CREDIT = "credit"  # a top-up, or a refund's balance part: + available


class CouponMoveKind(StrEnum):
    LOCK = "lock"  # available -> locked by a payment in flight
    USE_NOW = "use_now"  # available -> used (a payment with no channel part)
    USE = "use"  # locked -> used (the payment succeeded)
    RELEASE = "release"  # locked -> available (the payment failed)
    RESTORE = "restore"  # used -> available (refunds gave back all the coupon paid)


@dataclass(frozen=True)
class BalanceMove:
    """One conditional change of a buyer's stored balance. ``refusal`` is what to answer when
    its condition fails (not enough balance); None when a failure can only be a bug."""

    kind: BalanceMoveKind
    merchant_id: str
    buyer_id: str
    currency: str
    amount: int
    at: str
    refusal: Conflict | None = None


@dataclass(frozen=True)
class CouponMove:
    """One conditional change of a coupon's status. LOCK and USE_NOW check that it is
    available to this merchant, buyer and currency at ``at``; the others that ``payment_id``
    holds it."""

    kind: CouponMoveKind
    coupon_id: str
    payment_id: str
    at: str
    merchant_id: str = ""
    buyer_id: str = ""
    currency: str = ""
    refusal: Conflict | None = None


InstrumentMove = BalanceMove | CouponMove
