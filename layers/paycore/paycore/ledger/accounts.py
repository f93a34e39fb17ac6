"""The chart of accounts: typed account ids, each with its normal side and how it is kept.

An account id is a few ``:``-separated segments ending in the currency, for example
``merchant:mch_1:pending:CNY`` or ``channel:alipay:primary:clearing:CNY``. ``CHART`` holds one
``AccountSpec`` per kind of account: its template, its normal side (the side that increases
it), whether it is BOUNDED (its balance may never go below zero) and HOT (touched by every
payment at the platform's or a merchant's rate), whether it is a CLEARING account (zero once
the flows through it are finished), and how the data layer keeps it (``Upkeep``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from paycore.money import is_supported_currency

# An id segment: the characters of paycore's ids, merchant order numbers and buyer ids.
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Side(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"

    @property
    def opposite(self) -> Side:
        return Side.CREDIT if self is Side.DEBIT else Side.DEBIT


class Upkeep(StrEnum):
    """How the data layer keeps an account's balance and checks its bound. Every account's
    debits and credits are also kept in its ledger account items (sharded when the account is
    hot), updated in the entry's transaction (``paycore.dal.ledger``)."""

    # Bounded: the account's own item (a buyer's balance, a coupon) is updated with a condition
    # in the same transaction as the entry, so the bound is checked before anything commits.
    BALANCE_ITEM = "balance_item"
    # Bounded per order: each order's share is checked on the order's item (its version) in
    # the entry's transaction; the merchant's total is in sharded account items (it is hot).
    ORDER_ITEM = "order_item"
    # Unbounded: only the account items (sharded when hot); nothing to check.
    SHARDED = "sharded"


class Holding(StrEnum):
    """Where a paid order's money sits in the merchant's balance."""

    ESCROW = "escrow"  # guaranteed trade, not confirmed yet
    PENDING = "pending"  # instant, or confirmed; not settled yet
    AVAILABLE = "available"  # settled


class AccountKind(StrEnum):
    CHANNEL_CLEARING = "channel_clearing"
    CHANNEL_REFUNDING = "channel_refunding"
    CHANNEL_LATE_PAYMENTS = "channel_late_payments"
    PLATFORM_FEES = "platform_fees"
    PLATFORM_SUSPENSE = "platform_suspense"
    MERCHANT_ESCROW = "merchant_escrow"
    MERCHANT_PENDING = "merchant_pending"
    MERCHANT_AVAILABLE = "merchant_available"
    MERCHANT_ISSUED_VALUE = "merchant_issued_value"
    BUYER_AVAILABLE = "buyer_available"
    BUYER_FROZEN = "buyer_frozen"
    COUPON = "coupon"


@dataclass(frozen=True)
class AccountSpec:
    template: tuple[str, ...]  # segments before the currency; "{name}" is a placeholder
    title: str
    normal: Side
    bounded: bool
    hot: bool
    clearing: bool
    upkeep: Upkeep
    meaning: str
    placeholders: tuple[str, ...] = field(init=False)  # the template's "{name}"s, in order
    id_format: str = field(init=False, repr=False)  # "merchant:{}:pending:{}"

    def __post_init__(self) -> None:
        names = tuple(part[1:-1] for part in self.template if part.startswith("{"))
        object.__setattr__(self, "placeholders", names)
        parts = ("{}" if part.startswith("{") else part for part in self.template)
        object.__setattr__(self, "id_format", ":".join((*parts, "{}")))

    @property
    def pattern(self) -> str:
        """The id as the documentation writes it: ``merchant:{merchant}:pending:{CUR}``."""
        return ":".join((*self.template, "{CUR}"))


def _spec(
    template: str,
    title: str,
    normal: Side,
    *,
    bounded: bool = False,
    hot: bool = False,
    clearing: bool = False,
    upkeep: Upkeep = Upkeep.SHARDED,
    meaning: str,
) -> AccountSpec:
    return AccountSpec(
        tuple(template.split(":")), title, normal, bounded, hot, clearing, upkeep, meaning
    )


_CHART: dict[AccountKind, AccountSpec] = {
    AccountKind.CHANNEL_CLEARING: _spec(
        "channel:{channel}:{account}:clearing",
        "Channel clearing",
        Side.DEBIT,
        hot=True,
        meaning="What the channel account holds for the platform: money buyers paid "
        "through it, less refunds sent back through it. Paid out to the platform's bank "
        "by the channel outside paycore.",
    ),
    AccountKind.CHANNEL_REFUNDING: _spec(
        "channel:{channel}:{account}:refunding",
        "Refunds in flight",
        Side.DEBIT,
        clearing=True,
        meaning="Refunds handed to the channel that it has not confirmed or refused yet. "
        "Zero when no refund is in flight.",
    ),
    AccountKind.CHANNEL_LATE_PAYMENTS: _spec(
        "channel:{channel}:{account}:late_payments",
        "Late payments to return",
        Side.CREDIT,
        clearing=True,
        meaning="Money a channel took for a payment that was already final without it "
        "(closed, expired, wrong amount): owed back to the buyer. Zero once refunded.",
    ),
    AccountKind.PLATFORM_FEES: _spec(
        "platform:fees",
        "Fee income",
        Side.CREDIT,
        hot=True,
        meaning="Fees charged to merchants on channel-collected money, less fees "
        "returned on refunds.",
    ),
    AccountKind.PLATFORM_SUSPENSE: _spec(
        "platform:suspense",
        "Reconciliation suspense",
        Side.DEBIT,
        meaning="Differences between a channel's statement and the books that "
        "reconciliation could not explain (debit: the channel holds less than the books "
        "say; credit: more). Zero when everything is explained.",
    ),
    AccountKind.MERCHANT_ESCROW: _spec(
        "merchant:{merchant}:escrow",
        "Merchant escrow",
        Side.CREDIT,
        bounded=True,
        hot=True,
        upkeep=Upkeep.ORDER_ITEM,
        meaning="Net money of paid guaranteed orders not confirmed yet: owed to the "
        "merchant once the buyer confirms.",
    ),
    AccountKind.MERCHANT_PENDING: _spec(
        "merchant:{merchant}:pending",
        "Merchant pending",
        Side.CREDIT,
        bounded=True,
        hot=True,
        upkeep=Upkeep.ORDER_ITEM,
        meaning="Net money of paid instant (or confirmed guaranteed) orders waiting for "
        "their settlement day.",
    ),
    AccountKind.MERCHANT_AVAILABLE: _spec(
        "merchant:{merchant}:available",
        "Merchant available",
        Side.CREDIT,
        hot=True,
        meaning="Settled money owed to the merchant. May go negative when a refund of a "
        "settled order takes more than the merchant has.",
    ),
    AccountKind.MERCHANT_ISSUED_VALUE: _spec(
        "merchant:{merchant}:issued_value",
        "Merchant-issued buyer value",
        Side.DEBIT,
        meaning="Stored balance and coupons the merchant has given its buyers and they "
        "have not spent: the merchant's own value, never the platform's money. Equals the "
        "sum of that merchant's buyer balances and unused coupons.",
    ),
    AccountKind.BUYER_AVAILABLE: _spec(
        "buyer:{merchant}:{buyer}:available",
        "Buyer stored balance",
        Side.CREDIT,
        bounded=True,
        upkeep=Upkeep.BALANCE_ITEM,
        meaning="A buyer's spendable stored balance with one merchant.",
    ),
    AccountKind.BUYER_FROZEN: _spec(
        "buyer:{merchant}:{buyer}:frozen",
        "Buyer balance reserved",
        Side.CREDIT,
        bounded=True,
        clearing=True,
        upkeep=Upkeep.BALANCE_ITEM,
        meaning="Stored balance reserved by the buyer's payments in flight. Zero when the "
        "buyer has no payment in flight.",
    ),
    AccountKind.COUPON: _spec(
        "coupon:{coupon}",
        "Coupon",
        Side.CREDIT,
        bounded=True,
        upkeep=Upkeep.BALANCE_ITEM,
        meaning="The value of one coupon while its buyer can still use it (its whole "
        "amount); zero once a payment has used it.",
    ),
}
CHART: Mapping[AccountKind, AccountSpec] = MappingProxyType(_CHART)


@dataclass(frozen=True)
class Account:
    kind: AccountKind
    scope: tuple[str, ...]  # the template's placeholders, in order
    currency: str
    id: str = field(init=False, compare=False)  # e.g. merchant:mch_1:pending:CNY
    spec: AccountSpec = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        spec = _CHART[self.kind]
        if len(self.scope) != len(spec.placeholders):
            wanted = ", ".join(spec.placeholders) or "no scope"
            raise ValueError(f"{self.kind.value} needs {wanted}")
        for value in self.scope:
            if not isinstance(value, str) or not _SEGMENT.match(value):
                raise ValueError(f"account segment {value!r} is not [A-Za-z0-9_-]{{1,64}}")
        if not is_supported_currency(self.currency):
            raise ValueError(f"currency {self.currency!r} is not supported")
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "id", spec.id_format.format(*self.scope, self.currency))

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def normal(self) -> Side:
        return self.spec.normal

    def __str__(self) -> str:
        return self.id

    @classmethod
    def parse(cls, account_id: str) -> Account:
        """The account an id names; ``ValueError`` for an id outside the chart."""
        *parts, currency = account_id.split(":")
        for kind, spec in CHART.items():
            if len(parts) != len(spec.template):
                continue
            if all(t.startswith("{") or t == p for t, p in zip(spec.template, parts, strict=True)):
                scope = tuple(p for t, p in zip(spec.template, parts, strict=True) if t[0] == "{")
                return cls(kind, scope, currency)
        raise ValueError(f"{account_id!r} is not an account of the chart")


# -- constructors, one per kind -----------------------------------------------------------------


def channel_clearing(channel: str, account: str, currency: str) -> Account:
    return Account(AccountKind.CHANNEL_CLEARING, (channel, account), currency)


def channel_refunding(channel: str, account: str, currency: str) -> Account:
    return Account(AccountKind.CHANNEL_REFUNDING, (channel, account), currency)


def channel_late_payments(channel: str, account: str, currency: str) -> Account:
    return Account(AccountKind.CHANNEL_LATE_PAYMENTS, (channel, account), currency)


def platform_fees(currency: str) -> Account:
    return Account(AccountKind.PLATFORM_FEES, (), currency)


def platform_suspense(currency: str) -> Account:
    return Account(AccountKind.PLATFORM_SUSPENSE, (), currency)


_HOLDING_KINDS = {
    Holding.ESCROW: AccountKind.MERCHANT_ESCROW,
    Holding.PENDING: AccountKind.MERCHANT_PENDING,
    Holding.AVAILABLE: AccountKind.MERCHANT_AVAILABLE,
}


def merchant_holding(merchant_id: str, holding: Holding, currency: str) -> Account:
    return Account(_HOLDING_KINDS[holding], (merchant_id,), currency)


def merchant_escrow(merchant_id: str, currency: str) -> Account:
    return merchant_holding(merchant_id, Holding.ESCROW, currency)


def merchant_pending(merchant_id: str, currency: str) -> Account:
    return merchant_holding(merchant_id, Holding.PENDING, currency)


def merchant_available(merchant_id: str, currency: str) -> Account:
    return merchant_holding(merchant_id, Holding.AVAILABLE, currency)


def merchant_issued_value(merchant_id: str, currency: str) -> Account:
    return Account(AccountKind.MERCHANT_ISSUED_VALUE, (merchant_id,), currency)


def buyer_available(merchant_id: str, buyer_id: str, currency: str) -> Account:
    return Account(AccountKind.BUYER_AVAILABLE, (merchant_id, buyer_id), currency)


def buyer_frozen(merchant_id: str, buyer_id: str, currency: str) -> Account:
    return Account(AccountKind.BUYER_FROZEN, (merchant_id, buyer_id), currency)


def coupon(coupon_id: str, currency: str) -> Account:
    return Account(AccountKind.COUPON, (coupon_id,), currency)
