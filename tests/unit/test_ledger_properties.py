"""Property tests of the ledger's pure core, with hypothesis.

Each example is a random journey of money events, from a seed hypothesis draws: up to twelve
chosen among balance credits, coupons, payments with random instrument mixes (instant or
guaranteed trade), their success or failure, refunds within what is left (in flight, then
succeeded or failed), confirmations, settlements, late payments and reconciliation suspense,
with fee rates and amounts at the edges; then every flow still in flight is finished. A
reference model written with plain integers from the contract's rules says what every account
should hold, and each account is compared with it after every entry.

Every example checks all five invariants, so 10,000 examples are 10,000 cases of each:

1. every journal entry balances per currency (and one made unbalanced is refused);
2. a balance is the fold of its entries in any order;
3. a replayed entry changes nothing; a different entry with the same id is refused;
4. clearing accounts of finished flows return to zero;
5. bounded accounts never go below zero (checked after every event).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paycore.ledger import accounts as ledger_accounts
from paycore.ledger import rules
from paycore.ledger.accounts import Account, AccountKind, Holding, Side
from paycore.ledger.books import AccountTotals, Ledger, fold
from paycore.ledger.entries import EntryConflict, JournalEntry, Posting, UnbalancedEntry
from paycore.ledger.fees import ChannelMoney
from paycore.ledger.rules import (
    ChannelPart,
    CouponReturn,
    CouponUse,
    PaymentFacts,
    RefundFacts,
    SettlementLine,
)
from paycore.money import MAX_AMOUNT

# database=None: no .hypothesis/ directory in the working tree; the examples are random anew
# each run (a failure prints the seed that reproduces it).
JOURNEYS = settings(
    max_examples=10_000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

MERCHANTS = ("mch_a", "mch_b")
BUYERS = ("buyer-1", "buyer-2")
CURRENCIES = ("CNY", "JPY")
CHANNELS = (("sandbox", "default"), ("alipay", "primary"))
RATES = (0, 1, 60, 3333, 5000, 9999, 10_000)
AMOUNT_EDGES = (1, 2, 3, 99, 100, 101, 1999)
MAX_EVENTS = 10


class _CachedAccounts:
    """The account constructors, each account built once: the model asks for the same few
    accounts again and again."""

    def __getattr__(self, name: str) -> Callable[..., Account]:
        made = functools.cache(getattr(ledger_accounts, name))
        setattr(self, name, made)
        return made


accounts = _CachedAccounts()


# -- the contract's rules, written again for the model ------------------------------------------


def contract_fee(channel_amount: int, bps: int) -> int:
    return (channel_amount * bps + 5_000) // 10_000


def contract_fee_back(fee: int, channel_amount: int, refunded: int) -> int:
    return (fee * refunded * 2 + channel_amount) // (2 * channel_amount) if channel_amount else 0


# -- the choices of one journey ----------------------------------------------------------------


class Draw:
    """The choices of one journey, from a seed hypothesis draws. Hypothesis costs about as much
    per draw as a whole journey does, so one draw per example keeps 10,000 examples within
    seconds; the seed of a failing journey reproduces it."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def below(self, n: int) -> int:
        return self.rng.getrandbits(20) % n  # n is small: the bias is negligible, and cheap

    def amount(self, high: int) -> int:
        """1..high, often at an edge (1, small amounts, ``high`` itself, the largest)."""
        kind = self.below(8)
        if kind < 3:
            return min(high, AMOUNT_EDGES[self.below(len(AMOUNT_EDGES))])
        if kind == 3:
            return high
        if kind == 4:
            return max(1, high - self.below(3))
        return self.rng.randint(1, min(high, 10 ** self.rng.randint(1, 12)))


# -- the model ----------------------------------------------------------------------------------


@dataclass
class Pay:
    facts: PaymentFacts
    guaranteed: bool
    bps: int
    status: str = "processing"
    fee: int = 0
    holding: Holding = Holding.PENDING
    late_refunded: bool = False
    allocated: dict[str, int] = field(default_factory=lambda: {"ch": 0, "bal": 0, "cpn": 0})
    returned: dict[str, int] = field(default_factory=lambda: {"ch": 0, "bal": 0, "cpn": 0})
    fee_back: int = 0
    channel_refunds: int = 0

    @property
    def channel_amount(self) -> int:
        return self.facts.channel.amount if self.facts.channel else 0

    @property
    def held(self) -> int:
        """What the merchant still holds from this payment, by the model's own sums."""
        return self.channel_amount - self.fee - self.returned["ch"] + self.fee_back


@dataclass
class Ref:
    facts: RefundFacts
    pay: Pay
    parts: dict[str, int]


@dataclass
class Coupon:
    merchant: str
    buyer: str
    currency: str
    face: int
    status: str = "available"


class Journey:
    """Runs valid money events through the posting rules, keeping a model beside the ledger."""

    def __init__(self, seed: int) -> None:
        self.draw = Draw(seed)
        self.ledger = Ledger()
        self.entries: list[JournalEntry] = []
        self.expect: dict[Account, int] = {}  # each account's balance, by the model
        self.bps = {m: RATES[self.draw.below(len(RATES))] for m in MERCHANTS}
        self.buyer: dict[tuple[str, str, str], list[int]] = {}  # [available, frozen]
        self.coupons: dict[str, Coupon] = {}
        self.payments: list[Pay] = []
        self.refunds: list[Ref] = []
        self.late: list[tuple[RefundFacts, Pay]] = []
        self.owed_late: dict[Account, int] = {}
        self.serial = 0
        self.day = 0

    # -- bookkeeping --------------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}_{self.serial}"

    def add(self, account: Account, amount: int) -> None:
        self.expect[account] = self.expect.get(account, 0) + amount

    def post(self, entry: JournalEntry) -> None:
        check_balanced(entry)  # invariant 1
        assert self.ledger.post(entry), f"{entry.id} was posted before"
        self.entries.append(entry)
        for posting in entry.postings:
            account = posting.account
            balance = self.ledger.balance(account)
            if account.spec.bounded:  # invariant 5, after every event
                assert balance >= 0, f"{account} went below zero after {entry.id}"
            assert balance == self.expect.get(account, 0), f"{account} after {entry.id}"

    # -- events -------------------------------------------------------------------------------

    def run(self) -> None:
        # most journeys start with money in the first buyer's hands, so that payments mix
        # instruments
        home = (MERCHANTS[0], BUYERS[0], CURRENCIES[0])
        if self.draw.below(4):
            self.credit(home)
        if self.draw.below(2):
            self.issue_coupon(home)
        for _ in range(1 + self.draw.below(MAX_EVENTS)):
            choices = self.possible_events()
            choices[self.draw.below(len(choices))]()
        self.drain()

    def possible_events(self) -> list[Callable[[], None]]:
        """The events whose preconditions hold now, weighted so that most journeys pay,
        refund, confirm and settle."""
        events = [self.credit, self.issue_coupon, self.start_payment, self.start_payment]
        payments = self.payments
        if any(p.status == "processing" for p in payments):
            events += [self.finish_payment] * 3
        if self.refundable():
            events += [self.start_refund] * 3
        if self.refunds:
            events += [self.finish_refund] * 3
        if self.confirmable():
            events += [self.confirm] * 2
        if self.settleable():
            events += [self.settle] * 2
        if self.late_payable():
            events.append(self.late_payment)
        if self.late:
            events.append(self.finish_late_refund)
        if not self.draw.below(4):
            events.append(self.suspense)
        if self.entries:
            events.append(self.replay)
        return events

    def pick_owner(self) -> tuple[str, str, str]:
        """Mostly the first merchant, buyer and currency, so that money meets money."""
        d = self.draw
        if d.below(4):
            return MERCHANTS[0], BUYERS[0], CURRENCIES[0]
        return MERCHANTS[d.below(2)], BUYERS[d.below(2)], CURRENCIES[d.below(2)]

    def credit(self, owner: tuple[str, str, str] | None = None) -> None:
        merchant, buyer, currency = owner or self.pick_owner()
        amount = self.draw.amount(MAX_AMOUNT)
        self.buyer.setdefault((merchant, buyer, currency), [0, 0])[0] += amount
        self.add(accounts.buyer_available(merchant, buyer, currency), amount)
        self.add(accounts.merchant_issued_value(merchant, currency), amount)
        cause = self.new_id("crd")
        self.post(rules.balance_credited(cause, merchant, buyer, currency, amount))

    def issue_coupon(self, owner: tuple[str, str, str] | None = None) -> None:
        merchant, buyer, currency = owner or self.pick_owner()
        face = self.draw.amount(MAX_AMOUNT)
        coupon_id = self.new_id("cpn")
        self.coupons[coupon_id] = Coupon(merchant, buyer, currency, face)
        self.add(accounts.coupon(coupon_id, currency), face)
        self.add(accounts.merchant_issued_value(merchant, currency), face)
        self.post(rules.coupon_issued(coupon_id, merchant, buyer, currency, face))

    def start_payment(self) -> None:
        d = self.draw
        merchant, buyer, currency = self.pick_owner()
        amount = d.amount(MAX_AMOUNT)
        coupon_use = None
        if d.below(3):
            usable = [
                cid
                for cid, c in self.coupons.items()
                if (c.merchant, c.buyer, c.currency, c.status)
                == (merchant, buyer, currency, "available")
            ]
            if usable:
                cid = usable[d.below(len(usable))]
                face = self.coupons[cid].face
                coupon_use = CouponUse(cid, min(face, amount), face)
        wallet = self.buyer.setdefault((merchant, buyer, currency), [0, 0])
        rest = amount - (coupon_use.amount if coupon_use else 0)
        balance = min(wallet[0], rest, d.amount(MAX_AMOUNT)) if d.below(3) else 0
        channel_amount = rest - balance
        channel = ChannelPart(*CHANNELS[d.below(2)], channel_amount) if channel_amount else None
        facts = PaymentFacts(
            self.new_id("pay"),
            self.new_id("ord"),
            merchant,
            currency,
            buyer_id=buyer,
            channel=channel,
            balance_amount=balance,
            coupon=coupon_use,
        )
        pay = Pay(facts, guaranteed=bool(d.below(2)), bps=self.bps[merchant])
        self.payments.append(pay)
        if coupon_use:
            self.coupons[coupon_use.coupon_id].status = "locked"
        if channel is None:  # internal instruments pay the whole order at once
            wallet[0] -= balance
            self.add(accounts.buyer_available(merchant, buyer, currency), -balance)
            self.succeed(pay, reserved=False)
            return
        wallet[0] -= balance
        wallet[1] += balance
        self.add(accounts.buyer_available(merchant, buyer, currency), -balance)
        self.add(accounts.buyer_frozen(merchant, buyer, currency), balance)
        self.post(rules.payment_reserved(facts))

    def succeed(self, pay: Pay, *, reserved: bool) -> None:
        facts = pay.facts
        merchant, currency, buyer = facts.merchant_id, facts.currency, str(facts.buyer_id)
        pay.status = "succeeded"
        pay.holding = Holding.ESCROW if pay.guaranteed else Holding.PENDING
        if facts.channel:
            pay.fee = contract_fee(facts.channel.amount, pay.bps)
            self.add(_clearing(facts.channel, currency), facts.channel.amount)
            self.add(accounts.platform_fees(currency), pay.fee)
            self.add(accounts.merchant_holding(merchant, pay.holding, currency), pay.held)
        if reserved:
            self.buyer[(merchant, buyer, currency)][1] -= facts.balance_amount
            self.add(accounts.buyer_frozen(merchant, buyer, currency), -facts.balance_amount)
        self.add(accounts.merchant_issued_value(merchant, currency), -facts.balance_amount)
        if facts.coupon:
            self.coupons[facts.coupon.coupon_id].status = "used"
            self.add(accounts.coupon(facts.coupon.coupon_id, currency), -facts.coupon.face_value)
            self.add(accounts.merchant_issued_value(merchant, currency), -facts.coupon.face_value)
        self.post(
            rules.payment_succeeded(
                facts, fee_rate_bps=pay.bps, into=pay.holding, reserved=reserved
            )
        )

    def fail(self, pay: Pay) -> None:
        facts = pay.facts
        merchant, currency, buyer = facts.merchant_id, facts.currency, str(facts.buyer_id)
        pay.status = "failed"
        wallet = self.buyer[(merchant, buyer, currency)]
        wallet[0] += facts.balance_amount
        wallet[1] -= facts.balance_amount
        self.add(accounts.buyer_available(merchant, buyer, currency), facts.balance_amount)
        self.add(accounts.buyer_frozen(merchant, buyer, currency), -facts.balance_amount)
        if facts.coupon:
            self.coupons[facts.coupon.coupon_id].status = "available"
        self.post(rules.payment_released(facts))

    def finish_payment(self, outcome: int | None = None) -> None:
        processing = [p for p in self.payments if p.status == "processing"]
        pay = processing[self.draw.below(len(processing))]
        ok = self.draw.below(3) if outcome is None else outcome  # two in three succeed
        self.succeed(pay, reserved=True) if ok else self.fail(pay)

    def refundable(self) -> list[Pay]:
        return [
            p
            for p in self.payments
            if p.status == "succeeded" and sum(p.allocated.values()) < p.facts.amount
        ]

    def start_refund(self) -> None:
        refundable = self.refundable()
        pay = refundable[self.draw.below(len(refundable))]
        facts = pay.facts
        left = facts.amount - sum(pay.allocated.values())
        remaining = self.draw.amount(left)
        paid = {
            "ch": pay.channel_amount,
            "bal": facts.balance_amount,
            "cpn": facts.coupon.amount if facts.coupon else 0,
        }
        parts = {}
        for key in ("ch", "bal", "cpn"):  # channel first, then balance, then coupon
            take = min(paid[key] - pay.allocated[key], remaining)
            parts[key] = take
            remaining -= take
        assert remaining == 0
        for key, take in parts.items():
            pay.allocated[key] += take
        coupon = None
        if parts["cpn"] and facts.coupon:
            use = facts.coupon
            before = pay.returned["cpn"]
            coupon = CouponReturn(use.coupon_id, parts["cpn"], use.amount, before, use.face_value)
        channel = (
            ChannelPart(facts.channel.channel, facts.channel.account, parts["ch"])
            if parts["ch"] and facts.channel
            else None
        )
        refund = RefundFacts(
            self.new_id("rfd"),
            facts.payment_id,
            facts.order_id,
            facts.merchant_id,
            facts.currency,
            buyer_id=facts.buyer_id,
            channel=channel,
            balance_amount=parts["bal"],
            coupon=coupon,
        )
        flight = Ref(refund, pay, parts)
        if channel is None:  # internal instruments only: succeeds at once
            self.refund_succeeds(flight)
            return
        self.refunds.append(flight)
        self.add(_clearing(channel, facts.currency), -channel.amount)
        self.add(_refunding(channel, facts.currency), channel.amount)
        self.post(rules.refund_started(refund))

    def refund_succeeds(self, flight: Ref) -> None:
        pay, parts = flight.pay, flight.parts
        facts = pay.facts
        merchant, currency, buyer = facts.merchant_id, facts.currency, str(facts.buyer_id)
        refund = flight.facts
        # the coupon share as the data layer sees it now: succeeded refunds so far
        if refund.coupon:
            refund = _with_coupon_before(refund, pay.returned["cpn"])
        money = ChannelMoney(pay.channel_amount, pay.fee, pay.returned["ch"])
        taken_from = pay.holding
        if parts["ch"]:
            fee_total_after = contract_fee_back(
                pay.fee, pay.channel_amount, pay.returned["ch"] + parts["ch"]
            )
            back = fee_total_after - pay.fee_back
            share = parts["ch"] - back
            assert 0 <= back <= parts["ch"]
            pay.fee_back = fee_total_after
            pay.channel_refunds += 1
            self.add(_refunding(_channel(refund), currency), -parts["ch"])
            self.add(accounts.platform_fees(currency), -back)
            self.add(accounts.merchant_holding(merchant, taken_from, currency), -share)
        if parts["bal"]:
            self.buyer[(merchant, buyer, currency)][0] += parts["bal"]
            self.add(accounts.buyer_available(merchant, buyer, currency), parts["bal"])
            self.add(accounts.merchant_issued_value(merchant, currency), parts["bal"])
        restores = facts.coupon and pay.returned["cpn"] + parts["cpn"] == facts.coupon.amount
        if parts["cpn"] and facts.coupon and restores:
            face = facts.coupon.face_value
            self.coupons[facts.coupon.coupon_id].status = "available"
            self.add(accounts.coupon(facts.coupon.coupon_id, currency), face)
            self.add(accounts.merchant_issued_value(merchant, currency), face)
        for key, take in parts.items():
            pay.returned[key] += take
        assert pay.held >= 0, "an order's money in the merchant's balance went below zero"
        self.post(rules.refund_succeeded(refund, money=money, taken_from=taken_from))

    def finish_refund(self, outcome: int | None = None) -> None:
        flight = self.refunds.pop(self.draw.below(len(self.refunds)))
        ok = self.draw.below(2) if outcome is None else outcome
        if ok:
            self.refund_succeeds(flight)
            return
        channel, currency = _channel(flight.facts), flight.facts.currency
        for key, take in flight.parts.items():
            flight.pay.allocated[key] -= take
        self.add(_refunding(channel, currency), -channel.amount)
        self.add(_clearing(channel, currency), channel.amount)
        self.post(rules.refund_failed(flight.facts))

    def confirmable(self) -> list[Pay]:
        """Paid guaranteed orders not confirmed yet and not fully refunded."""
        return [
            p
            for p in self.payments
            if p.status == "succeeded"
            and p.holding is Holding.ESCROW
            and sum(p.returned.values()) < p.facts.amount
        ]

    def confirm(self) -> None:
        waiting = self.confirmable()
        pay = waiting[self.draw.below(len(waiting))]
        facts = pay.facts
        self.add(accounts.merchant_escrow(facts.merchant_id, facts.currency), -pay.held)
        self.add(accounts.merchant_pending(facts.merchant_id, facts.currency), pay.held)
        pay.holding = Holding.PENDING
        money = ChannelMoney(pay.channel_amount, pay.fee, pay.returned["ch"])
        self.post(
            rules.trade_confirmed(
                facts.order_id, facts.payment_id, facts.merchant_id, facts.currency, money
            )
        )

    def settleable(self) -> list[Pay]:
        """Payments whose channel money is pending (instant, or confirmed)."""
        return [
            p
            for p in self.payments
            if p.status == "succeeded" and p.holding is Holding.PENDING and p.channel_amount
        ]

    def settle(self) -> None:
        """Settle every due payment of one merchant and currency (all of them are due: the
        calendar is the data layer's business)."""
        pending = self.settleable()
        first = pending[self.draw.below(len(pending))].facts
        merchant, currency = first.merchant_id, first.currency
        due = [
            p for p in pending if (p.facts.merchant_id, p.facts.currency) == (merchant, currency)
        ]
        lines = [
            SettlementLine(
                p.facts.payment_id,
                ChannelMoney(p.channel_amount, p.fee, p.returned["ch"]),
                p.channel_refunds,
            )
            for p in due
        ]
        moved = sum(p.held for p in due)
        for pay in due:
            pay.holding = Holding.AVAILABLE
        self.add(accounts.merchant_pending(merchant, currency), -moved)
        self.add(accounts.merchant_available(merchant, currency), moved)
        self.day += 1
        day = (date(2026, 12, 1) + timedelta(days=self.day)).isoformat()
        entry = rules.settlement(merchant, currency, day, lines)
        assert entry.metadata["net"] == moved
        self.post(entry)

    def late_payable(self) -> list[Pay]:
        """Failed payments whose channel may still take money (once)."""
        return [
            p
            for p in self.payments
            if p.status == "failed" and p.facts.channel and not p.late_refunded
        ]

    def late_payment(self) -> None:
        failed = self.late_payable()
        pay = failed[self.draw.below(len(failed))]
        pay.late_refunded = True
        facts = pay.facts
        assert facts.channel
        taken = self.draw.amount(MAX_AMOUNT)  # the channel may have taken another amount
        channel = ChannelPart(facts.channel.channel, facts.channel.account, taken)
        refund = RefundFacts(
            f"rfd_late_{facts.payment_id}",
            facts.payment_id,
            facts.order_id,
            facts.merchant_id,
            facts.currency,
            channel=channel,
        )
        self.late.append((refund, pay))
        late = _late(channel, facts.currency)
        self.owed_late[late] = self.owed_late.get(late, 0) + taken
        self.add(late, taken)
        self.add(_refunding(channel, facts.currency), taken)
        self.post(rules.late_payment_refund_started(refund))

    def finish_late_refund(self, outcome: int | None = None) -> None:
        refund, _ = self.late.pop(self.draw.below(len(self.late)))
        channel, currency = _channel(refund), refund.currency
        self.add(_refunding(channel, currency), -channel.amount)
        ok = self.draw.below(2) if outcome is None else outcome
        if ok:
            late = _late(channel, currency)
            self.owed_late[late] -= channel.amount
            self.add(late, -channel.amount)
            self.post(rules.late_payment_refund_succeeded(refund))
        else:  # the money stays at the channel, owed to the buyer
            self.add(_clearing(channel, currency), channel.amount)
            self.post(rules.refund_failed(refund))

    def suspense(self) -> None:
        channel, account = CHANNELS[self.draw.below(2)]
        currency = CURRENCIES[self.draw.below(2)]
        difference = self.draw.amount(MAX_AMOUNT) * (1 if self.draw.below(2) else -1)
        self.add(accounts.channel_clearing(channel, account, currency), difference)
        self.add(accounts.platform_suspense(currency), -difference)
        cause = self.new_id("dsc")
        self.post(rules.reconciliation_suspense(cause, channel, account, currency, difference))

    def replay(self) -> None:
        """A retried step posts its entry again: nothing changes (invariant 3, mid-journey)."""
        entry = self.entries[self.draw.below(len(self.entries))]
        before = [self.ledger.totals(p.account) for p in entry.postings]
        assert self.ledger.post(entry) is False
        assert [self.ledger.totals(p.account) for p in entry.postings] == before

    def drain(self) -> None:
        """Finish every flow still in flight: payments and refunds either way, late refunds
        successfully (a failed one stays owed, by design)."""
        turn = 0
        while any(p.status == "processing" for p in self.payments):
            self.finish_payment(outcome=turn % 2)
            turn += 1
        while self.refunds:
            self.finish_refund(outcome=turn % 2)
            turn += 1
        while self.late:
            self.finish_late_refund(outcome=1)


def _clearing(part: ChannelPart, currency: str) -> Account:
    return accounts.channel_clearing(part.channel, part.account, currency)


def _refunding(part: ChannelPart, currency: str) -> Account:
    return accounts.channel_refunding(part.channel, part.account, currency)


def _late(part: ChannelPart, currency: str) -> Account:
    return accounts.channel_late_payments(part.channel, part.account, currency)


def _channel(refund: RefundFacts) -> ChannelPart:
    assert refund.channel is not None
    return refund.channel


def _with_coupon_before(refund: RefundFacts, before: int) -> RefundFacts:
    coupon = refund.coupon
    assert coupon is not None
    current = CouponReturn(coupon.coupon_id, coupon.amount, coupon.paid, before, coupon.face_value)
    return RefundFacts(
        refund.refund_id,
        refund.payment_id,
        refund.order_id,
        refund.merchant_id,
        refund.currency,
        refund.buyer_id,
        refund.channel,
        refund.balance_amount,
        current,
    )


# -- the invariants -----------------------------------------------------------------------------


def check_balanced(entry: JournalEntry) -> None:
    """1. Debits equal credits in each currency, summed here from the postings."""
    debits: dict[str, int] = {}
    credits: dict[str, int] = {}
    for posting in entry.postings:
        sums = debits if posting.side is Side.DEBIT else credits
        sums[posting.currency] = sums.get(posting.currency, 0) + posting.amount
    assert debits == credits, f"{entry.id} does not balance"


def check_unbalanced_refused(entry: JournalEntry) -> None:
    """1. The same postings with one amount changed are refused."""
    first, *rest = entry.postings
    changed = (Posting(first.account, first.side, first.amount + 1), *rest)
    with pytest.raises(UnbalancedEntry):
        JournalEntry(entry.event, entry.cause_id, changed, entry.metadata)


def check_fold_in_any_order(
    journey: Journey, expected: dict[str, AccountTotals], rng: random.Random
) -> None:
    """2. Folding the same entries in another order gives the same balances."""
    shuffled = journey.entries[:]
    rng.shuffle(shuffled)
    assert fold(shuffled).snapshot() == expected


def check_replays(journey: Journey, expected: dict[str, AccountTotals], rng: random.Random) -> None:
    """3. Every entry again changes nothing; another entry with a used id is refused."""
    ledger = journey.ledger
    assert not any(ledger.post(entry) for entry in journey.entries)
    assert ledger.snapshot() == expected
    moving = [entry for entry in journey.entries if entry.postings]
    if moving:
        original = moving[rng.randrange(len(moving))]
        doubled = tuple(Posting(p.account, p.side, p.amount * 2) for p in original.postings)
        forged = JournalEntry(original.event, original.cause_id, doubled, original.metadata)
        assert forged.id == original.id
        with pytest.raises(EntryConflict):
            ledger.post(forged)
        assert ledger.snapshot() == expected
        check_unbalanced_refused(original)


def check_finished_flows(journey: Journey) -> None:
    """4. With every flow finished, the clearing accounts are at zero, except late payments
    whose refund failed: still owed to the buyer, and exactly that."""
    open_accounts = journey.ledger.open_clearing()
    owed = {account: amount for account, amount in journey.owed_late.items() if amount}
    assert {account: journey.ledger.balance(account) for account in open_accounts} == owed
    for account in journey.ledger.accounts():
        if account.kind in (AccountKind.BUYER_FROZEN, AccountKind.CHANNEL_REFUNDING):
            assert journey.ledger.balance(account) == 0


def check_the_books(journey: Journey) -> None:
    """Every account as the model says; bounded ones (5) at or above zero; the trial balance
    agrees; each party holds what the contract says it should."""
    ledger = journey.ledger
    for account in {*ledger.accounts(), *journey.expect}:
        assert ledger.balance(account) == journey.expect.get(account, 0), account
    assert ledger.below_zero() == []
    for currency in CURRENCIES:
        trial = ledger.trial_balance(currency)
        assert trial.total_debits == trial.total_credits
    # the merchant's balance: its payments' channel parts less fees and refunds
    owed: dict[tuple[str, str], int] = {}
    for pay in journey.payments:
        if pay.status == "succeeded":
            key = (pay.facts.merchant_id, pay.facts.currency)
            owed[key] = owed.get(key, 0) + pay.held
            assert pay.fee_back == contract_fee_back(
                pay.fee, pay.channel_amount, pay.returned["ch"]
            )
            if pay.channel_amount and pay.returned["ch"] == pay.channel_amount:
                assert pay.fee_back == pay.fee  # a full refund returned the whole fee
    for (merchant, currency), amount in owed.items():
        held = sum(
            ledger.balance(accounts.merchant_holding(merchant, holding, currency))
            for holding in Holding
        )
        assert held == amount
    # the merchant's issued value is what its buyers still hold: balances and unused coupons
    value: dict[tuple[str, str], int] = {}
    for (merchant, buyer, currency), (available, frozen) in journey.buyer.items():
        assert ledger.balance(accounts.buyer_available(merchant, buyer, currency)) == available
        assert frozen == 0
        value[merchant, currency] = value.get((merchant, currency), 0) + available
    for coupon in journey.coupons.values():
        if coupon.status == "available":
            key = (coupon.merchant, coupon.currency)
            value[key] = value.get(key, 0) + coupon.face
    for (merchant, currency), amount in value.items():
        assert ledger.balance(accounts.merchant_issued_value(merchant, currency)) == amount


@JOURNEYS
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_random_money_journeys_keep_every_invariant(seed: int) -> None:
    journey = Journey(seed)
    journey.run()  # invariants 1 and 5 after every event, and replays along the way
    rng = random.Random(seed + 1)
    check_finished_flows(journey)
    check_the_books(journey)
    balances = journey.ledger.snapshot()
    check_fold_in_any_order(journey, balances, rng)
    check_replays(journey, balances, rng)
