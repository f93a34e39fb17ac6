"""The posting rules: one pure function per money event, from neutral facts to the journal
entry the data layer writes in the same transaction as the state change that causes it.

Who owns what:
- a channel part is money a channel collected: the merchant's net (in escrow for guaranteed
  trade, in pending otherwise) plus the platform's fee;
- stored balance and coupons are the merchant's own value (``issued_value``): spending them
  pays the order without fee and never touches the merchant's escrow, pending or available.

A refund's channel part leaves the channel clearing account when the refund is handed to the
channel (``refund_started``) and sits in ``refunding`` until the channel answers: on success
the merchant's money (less the fee returned, taken from wherever the order's money sits) and
the returned fee pay for it; on failure it goes back to the channel clearing account. The fee
returned is computed when the refund succeeds, from the refunds succeeded before it, as the
fee rule requires; the merchant's money for a refund moves only then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date as Date
from typing import Protocol

from paycore.ledger import accounts
from paycore.ledger.accounts import Account, Holding
from paycore.ledger.entries import Event, JournalEntry, build
from paycore.ledger.fees import ChannelMoney
from paycore.money import MAX_AMOUNT

Move = tuple[Account, Account, int]  # (debit, credit, amount)


def _amount(name: str, value: int, *, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer of minor units, not {value!r}")
    if value < (1 if positive else 0) or value > MAX_AMOUNT:
        low = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be {low} and at most {MAX_AMOUNT}, not {value}")


class _Part(Protocol):
    @property
    def amount(self) -> int: ...


class _CouponPart(_Part, Protocol):
    @property
    def coupon_id(self) -> str: ...


class _Split(Protocol):
    """What a payment's and a refund's facts share: an amount split over the instruments."""

    @property
    def merchant_id(self) -> str: ...
    @property
    def order_id(self) -> str: ...
    @property
    def currency(self) -> str: ...
    @property
    def buyer_id(self) -> str | None: ...
    @property
    def channel(self) -> _Part | None: ...
    @property
    def balance_amount(self) -> int: ...
    @property
    def coupon(self) -> _CouponPart | None: ...
    @property
    def amount(self) -> int: ...


def _split_amount(split: _Split) -> int:
    return (
        (split.channel.amount if split.channel else 0)
        + split.balance_amount
        + (split.coupon.amount if split.coupon else 0)
    )


def _check_split(kind: str, object_id: str, split: _Split) -> None:
    _amount("balance part", split.balance_amount)
    if (split.balance_amount or split.coupon) and not split.buyer_id:
        raise ValueError(f"{kind} {object_id}: balance and coupon parts need a buyer")
    _amount(f"{kind} amount", split.amount, positive=True)


def _split_meta(split: _Split, ids: dict[str, str]) -> dict[str, str | int]:
    """The entry's metadata: who, which objects, and the amount of each part."""
    meta: dict[str, str | int] = {
        "merchant_id": split.merchant_id,
        "order_id": split.order_id,
        **ids,
        "currency": split.currency,
        "amount": split.amount,
    }
    if split.buyer_id:
        meta["buyer_id"] = split.buyer_id
    if split.channel:
        meta["channel_amount"] = split.channel.amount
    if split.balance_amount:
        meta["balance_amount"] = split.balance_amount
    if split.coupon:
        meta["coupon_id"] = split.coupon.coupon_id
        meta["coupon_amount"] = split.coupon.amount
    return meta


# -- the facts the data layer passes in ---------------------------------------------------------


@dataclass(frozen=True)
class ChannelPart:
    """The part of a payment or refund that goes through one channel account."""

    channel: str
    account: str
    amount: int

    def __post_init__(self) -> None:
        _amount("channel part", self.amount, positive=True)


@dataclass(frozen=True)
class CouponUse:
    """A coupon paying ``amount`` of an order. A coupon is used whole: its ``face_value`` (its
    whole amount) is spent even when the order needed less."""

    coupon_id: str
    amount: int
    face_value: int

    def __post_init__(self) -> None:
        _amount("coupon part", self.amount, positive=True)
        _amount("coupon face value", self.face_value, positive=True)
        if self.amount > self.face_value:
            raise ValueError(f"a coupon worth {self.face_value} cannot pay {self.amount}")


@dataclass(frozen=True)
class PaymentFacts:
    """A payment as split over its instruments (``paycore.domain``'s ``Payment`` maps onto it)."""

    payment_id: str
    order_id: str
    merchant_id: str
    currency: str
    buyer_id: str | None = None
    channel: ChannelPart | None = None
    balance_amount: int = 0
    coupon: CouponUse | None = None

    def __post_init__(self) -> None:
        _check_split("payment", self.payment_id, self)

    @property
    def amount(self) -> int:
        return _split_amount(self)

    def _meta(self) -> dict[str, str | int]:
        meta = _split_meta(self, {"payment_id": self.payment_id})
        if self.coupon:
            meta["coupon_face_value"] = self.coupon.face_value
        return meta


@dataclass(frozen=True)
class CouponReturn:
    """A refund's share given back through the coupon that paid ``paid`` of the order. The
    coupon becomes usable again (its whole face value) when refunds, this one included, have
    given back all it paid; a smaller share gives nothing back yet."""

    coupon_id: str
    amount: int
    paid: int
    refunded_before: int  # given back through this coupon by earlier succeeded refunds
    face_value: int

    def __post_init__(self) -> None:
        _amount("coupon refund", self.amount, positive=True)
        _amount("coupon refunded before", self.refunded_before)
        CouponUse(self.coupon_id, self.paid, self.face_value)  # validates paid and face value
        if self.refunded_before + self.amount > self.paid:
            raise ValueError(
                f"coupon {self.coupon_id}: refunds of {self.refunded_before + self.amount} "
                f"exceed the {self.paid} it paid"
            )

    @property
    def restores(self) -> bool:
        return self.refunded_before + self.amount == self.paid


@dataclass(frozen=True)
class RefundFacts:
    """A refund as allocated over the payment's instruments (``paycore.domain.refunds``)."""

    refund_id: str
    payment_id: str
    order_id: str
    merchant_id: str
    currency: str
    buyer_id: str | None = None
    channel: ChannelPart | None = None
    balance_amount: int = 0
    coupon: CouponReturn | None = None

    def __post_init__(self) -> None:
        _check_split("refund", self.refund_id, self)

    @property
    def amount(self) -> int:
        return _split_amount(self)

    def _meta(self) -> dict[str, str | int]:
        return _split_meta(self, {"payment_id": self.payment_id, "refund_id": self.refund_id})


def _clearing(part: ChannelPart, currency: str) -> Account:
    return accounts.channel_clearing(part.channel, part.account, currency)


def _refunding(part: ChannelPart, currency: str) -> Account:
    return accounts.channel_refunding(part.channel, part.account, currency)


# -- internal instruments -----------------------------------------------------------------------


def balance_credited(
    credit_id: str, merchant_id: str, buyer_id: str, currency: str, amount: int
) -> JournalEntry:
    """A merchant tops up a buyer's stored balance (its own value: no money reaches paycore)."""
    _amount("credit", amount, positive=True)
    return build(
        Event.BALANCE_CREDITED,
        credit_id,
        [
            (
                accounts.merchant_issued_value(merchant_id, currency),
                accounts.buyer_available(merchant_id, buyer_id, currency),
                amount,
            )
        ],
        {"merchant_id": merchant_id, "buyer_id": buyer_id, "currency": currency},
    )


def coupon_issued(
    coupon_id: str, merchant_id: str, buyer_id: str, currency: str, amount: int
) -> JournalEntry:
    """A merchant gives a buyer a coupon worth ``amount`` (its own value)."""
    _amount("coupon", amount, positive=True)
    return build(
        Event.COUPON_ISSUED,
        coupon_id,
        [
            (
                accounts.merchant_issued_value(merchant_id, currency),
                accounts.coupon(coupon_id, currency),
                amount,
            )
        ],
        {"merchant_id": merchant_id, "buyer_id": buyer_id, "currency": currency},
    )


# -- payments -----------------------------------------------------------------------------------


def _frozen(payment: PaymentFacts) -> Account:
    return accounts.buyer_frozen(payment.merchant_id, str(payment.buyer_id), payment.currency)


def _available(merchant_id: str, buyer_id: str | None, currency: str) -> Account:
    return accounts.buyer_available(merchant_id, str(buyer_id), currency)


def payment_reserved(payment: PaymentFacts) -> JournalEntry:
    """A payment with a channel part starts: its balance part is frozen until the channel
    answers. (Its coupon is locked, a status: the coupon's value moves only when used.)"""
    moves: list[Move] = []
    if payment.balance_amount:
        available = _available(payment.merchant_id, payment.buyer_id, payment.currency)
        moves.append((available, _frozen(payment), payment.balance_amount))
    return build(Event.PAYMENT_RESERVED, payment.payment_id, moves, payment._meta())


def payment_released(payment: PaymentFacts) -> JournalEntry:
    """A reserved payment failed (declined, closed, expired): its frozen balance part goes
    back to the buyer's available balance. Nothing else had moved."""
    moves: list[Move] = []
    if payment.balance_amount:
        available = _available(payment.merchant_id, payment.buyer_id, payment.currency)
        moves.append((_frozen(payment), available, payment.balance_amount))
    return build(Event.PAYMENT_RELEASED, payment.payment_id, moves, payment._meta())


def payment_succeeded(
    payment: PaymentFacts, *, fee_rate_bps: int, into: Holding, reserved: bool = True
) -> JournalEntry:
    """A payment succeeded. Its channel part moves from the channel clearing account to the
    merchant (``into`` escrow for guaranteed trade, pending otherwise) less the fee, which is
    the platform's income. Its balance part (frozen when ``reserved``; spent straight from the
    available balance when internal instruments paid the whole order at once) and its coupon
    (the whole face value) go back to the merchant's issued value: no fee, no merchant
    balance."""
    if into is Holding.AVAILABLE:
        raise ValueError("a payment's money goes to escrow or pending, never straight to available")
    merchant, currency = payment.merchant_id, payment.currency
    meta = payment._meta()
    meta["holding"] = into.value
    moves: list[Move] = []
    if payment.channel:
        money = ChannelMoney.charged(payment.channel.amount, fee_rate_bps)
        clearing = _clearing(payment.channel, currency)
        moves.append((clearing, accounts.merchant_holding(merchant, into, currency), money.net))
        moves.append((clearing, accounts.platform_fees(currency), money.fee))
        meta.update(fee_rate_bps=fee_rate_bps, fee=money.fee, net=money.net)
    issued_value = accounts.merchant_issued_value(merchant, currency)
    if payment.balance_amount:
        source = _frozen(payment) if reserved else _available(merchant, payment.buyer_id, currency)
        moves.append((source, issued_value, payment.balance_amount))
    if payment.coupon:
        coupon = accounts.coupon(payment.coupon.coupon_id, currency)
        moves.append((coupon, issued_value, payment.coupon.face_value))
    return build(Event.PAYMENT_SUCCEEDED, payment.payment_id, moves, meta)


# -- refunds ------------------------------------------------------------------------------------


def refund_started(refund: RefundFacts) -> JournalEntry:
    """A refund with a channel part is handed to the channel: that part leaves the channel
    clearing account and is in flight. (A refund of internal instruments only succeeds at
    once: its entry is ``refund_succeeded`` alone, and this one is empty.)"""
    moves: list[Move] = []
    if refund.channel:
        part = refund.channel
        moves.append(
            (_refunding(part, refund.currency), _clearing(part, refund.currency), part.amount)
        )
    return build(Event.REFUND_STARTED, refund.refund_id, moves, refund._meta())


def refund_failed(refund: RefundFacts) -> JournalEntry:
    """The channel refused (or never made) the refund: its channel part comes back to the
    channel clearing account. Nothing else had moved. (Also for late-payment refunds, whose
    money then stays owed to the buyer in ``late_payments``.)"""
    moves: list[Move] = []
    if refund.channel:
        part = refund.channel
        moves.append(
            (_clearing(part, refund.currency), _refunding(part, refund.currency), part.amount)
        )
    return build(Event.REFUND_FAILED, refund.refund_id, moves, refund._meta())


def refund_succeeded(
    refund: RefundFacts, *, money: ChannelMoney | None = None, taken_from: Holding | None = None
) -> JournalEntry:
    """A merchant's refund succeeded.

    Its channel part (in flight since ``refund_started``) is paid by the merchant, less the
    fee it returns, from wherever that order's money sits (``taken_from``: escrow, pending,
    or available, which may go negative), and by the platform's fee income for the returned
    fee. ``money`` is the payment's channel part before this refund (gross, fee, and what
    succeeded refunds gave back), from which the fee returned is computed.

    Its balance part goes back to the buyer's available balance, out of the merchant's issued
    value. Its coupon share gives the coupon back (its whole face value) once all it paid has
    been refunded; a smaller share moves nothing yet."""
    merchant, currency = refund.merchant_id, refund.currency
    meta = refund._meta()
    moves: list[Move] = []
    if refund.channel:
        if money is None or taken_from is None:
            raise ValueError("a refund's channel part needs the payment's money and its holding")
        part = refund.channel
        if part.amount > money.gross - money.refunded:
            raise ValueError(
                f"refund {refund.refund_id}: {part.amount} exceeds what is left of the channel "
                f"part ({money.gross - money.refunded})"
            )
        returned_fee = money.fee_refunded_by(part.amount)
        merchant_share = part.amount - returned_fee
        refunding = _refunding(part, currency)
        holding = accounts.merchant_holding(merchant, taken_from, currency)
        moves.append((holding, refunding, merchant_share))
        moves.append((accounts.platform_fees(currency), refunding, returned_fee))
        meta.update(fee_refunded=returned_fee, holding=taken_from.value)
    issued_value = accounts.merchant_issued_value(merchant, currency)
    if refund.balance_amount:
        available = _available(merchant, refund.buyer_id, currency)
        moves.append((issued_value, available, refund.balance_amount))
    if refund.coupon and refund.coupon.restores:
        coupon = accounts.coupon(refund.coupon.coupon_id, currency)
        moves.append((issued_value, coupon, refund.coupon.face_value))
        meta["coupon_restored"] = refund.coupon.face_value
    return build(Event.REFUND_SUCCEEDED, refund.refund_id, moves, meta)


def _late_part(refund: RefundFacts) -> ChannelPart:
    if refund.channel is None or refund.balance_amount or refund.coupon:
        raise ValueError("a late-payment refund gives back a channel part only")
    return refund.channel


def late_payment_refund_started(refund: RefundFacts) -> JournalEntry:
    """The channel took money for a payment that was already final without it: the money
    came in (channel clearing, owed back to the buyer in ``late_payments``) and goes straight
    back out through a refund in flight. The merchant never sees it."""
    part = _late_part(refund)
    clearing, currency = _clearing(part, refund.currency), refund.currency
    late = accounts.channel_late_payments(part.channel, part.account, currency)
    moves: list[Move] = [
        (clearing, late, part.amount),
        (_refunding(part, currency), clearing, part.amount),
    ]
    return build(Event.LATE_PAYMENT_REFUND_STARTED, refund.refund_id, moves, refund._meta())


def late_payment_refund_succeeded(refund: RefundFacts) -> JournalEntry:
    """The channel gave the late payment back: the buyer is paid, nothing is owed."""
    part = _late_part(refund)
    late = accounts.channel_late_payments(part.channel, part.account, refund.currency)
    moves: list[Move] = [(late, _refunding(part, refund.currency), part.amount)]
    return build(Event.LATE_PAYMENT_REFUND_SUCCEEDED, refund.refund_id, moves, refund._meta())


# -- guaranteed trade and settlement ------------------------------------------------------------


def trade_confirmed(
    order_id: str, payment_id: str, merchant_id: str, currency: str, money: ChannelMoney
) -> JournalEntry:
    """A guaranteed order is confirmed (by the buyer, or automatically): what the merchant
    still holds from its payment (``money.net``: less refunds taken from escrow) moves from
    escrow to pending."""
    moves: list[Move] = [
        (
            accounts.merchant_escrow(merchant_id, currency),
            accounts.merchant_pending(merchant_id, currency),
            money.net,
        )
    ]
    meta: dict[str, str | int] = {
        "merchant_id": merchant_id,
        "order_id": order_id,
        "payment_id": payment_id,
        "currency": currency,
        "net": money.net,
    }
    return build(Event.TRADE_CONFIRMED, order_id, moves, meta)


@dataclass(frozen=True)
class SettlementLine:
    """One payment a settlement makes available: its channel money when settled and how many
    succeeded refunds (with a channel part) were taken from it before."""

    payment_id: str
    money: ChannelMoney
    refunds_count: int = 0

    def __post_init__(self) -> None:
        if self.refunds_count < 0 or (self.refunds_count == 0) != (self.money.refunded == 0):
            raise ValueError(
                f"{self.payment_id}: {self.refunds_count} refunds cannot have given back "
                f"{self.money.refunded}"
            )


@dataclass(frozen=True)
class SettlementFigures:
    """What settlements moved, in the merchant's words: ``net = gross - fees - refunds +
    fee_refunded`` became available. Figures of several runs of one day add up (``+``)."""

    payments_count: int = 0
    gross: int = 0
    fees: int = 0
    refunds_count: int = 0
    refunds: int = 0
    fee_refunded: int = 0

    @property
    def net(self) -> int:
        return self.gross - self.fees - self.refunds + self.fee_refunded

    @classmethod
    def of(cls, lines: Sequence[SettlementLine]) -> SettlementFigures:
        return cls(
            payments_count=len(lines),
            gross=sum(line.money.gross for line in lines),
            fees=sum(line.money.fee for line in lines),
            refunds_count=sum(line.refunds_count for line in lines),
            refunds=sum(line.money.refunded for line in lines),
            fee_refunded=sum(line.money.fee_refunded for line in lines),
        )

    def __add__(self, other: SettlementFigures) -> SettlementFigures:
        return SettlementFigures(
            self.payments_count + other.payments_count,
            self.gross + other.gross,
            self.fees + other.fees,
            self.refunds_count + other.refunds_count,
            self.refunds + other.refunds,
            self.fee_refunded + other.fee_refunded,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "payments_count": self.payments_count,
            "gross": self.gross,
            "fees": self.fees,
            "refunds_count": self.refunds_count,
            "refunds": self.refunds,
            "fee_refunded": self.fee_refunded,
            "net": self.net,
        }


def settlement_cause_id(
    merchant_id: str, currency: str, settlement_date: str, payment_ids: Sequence[str]
) -> str:
    """The cause of one settlement write: the merchant, currency and day, and the payments it
    settles (a retried batch of the same payments is the same entry)."""
    digest = hashlib.sha256("\x1f".join(sorted(payment_ids)).encode()).hexdigest()[:16]
    return f"{merchant_id}_{currency}_{settlement_date.replace('-', '')}_{digest}"


def settlement(
    merchant_id: str, currency: str, settlement_date: str, lines: Sequence[SettlementLine]
) -> JournalEntry:
    """Settlement of day ``settlement_date`` (``YYYY-MM-DD``) makes the due payments' money
    available: for each, what is still pending (its net less the refunds taken from it).
    One entry per batch of payments written together (a transaction holds at most 100 items:
    the entry, and each payment marked settled)."""
    if len(settlement_date) != 10 or Date.fromisoformat(settlement_date).isoformat() != (
        settlement_date
    ):
        raise ValueError(f"settlement date {settlement_date!r} is not YYYY-MM-DD")
    if not lines:
        raise ValueError("a settlement entry needs at least one payment")
    ids = [line.payment_id for line in lines]
    if len(set(ids)) != len(ids):
        raise ValueError("a payment is settled once per entry")
    figures = SettlementFigures.of(lines)
    meta: dict[str, str | int] = {
        "merchant_id": merchant_id,
        "currency": currency,
        "date": settlement_date,
        "payments": ",".join(sorted(ids)),
        **figures.as_dict(),
    }
    moves: list[Move] = [
        (
            accounts.merchant_pending(merchant_id, currency),
            accounts.merchant_available(merchant_id, currency),
            figures.net,
        )
    ]
    cause = settlement_cause_id(merchant_id, currency, settlement_date, ids)
    return build(Event.SETTLEMENT, cause, moves, meta)


# -- reconciliation -----------------------------------------------------------------------------


def reconciliation_suspense(
    discrepancy_id: str, channel: str, account: str, currency: str, difference: int
) -> JournalEntry:
    """Reconciliation parks a difference it cannot explain (挂账): ``difference`` is what the
    channel's statement shows minus what the books say for that channel account. Positive
    (long: the channel holds more), the channel clearing account is debited; negative (short:
    it holds less), credited; suspense takes the other side until the difference is explained
    and the entry reversed or reclassified."""
    if isinstance(difference, bool) or not isinstance(difference, int) or difference == 0:
        raise ValueError(f"a suspense difference must be a non-zero integer, not {difference!r}")
    _amount("suspense difference", abs(difference), positive=True)
    clearing = accounts.channel_clearing(channel, account, currency)
    suspense = accounts.platform_suspense(currency)
    move: Move = (
        (clearing, suspense, difference) if difference > 0 else (suspense, clearing, -difference)
    )
    meta: dict[str, str | int] = {
        "discrepancy_id": discrepancy_id,
        "channel": channel,
        "account": account,
        "currency": currency,
        "difference": difference,
    }
    return build(Event.RECONCILIATION_SUSPENSE, discrepancy_id, [move], meta)
