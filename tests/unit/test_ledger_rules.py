"""The posting rules, event by event, with figures worked out by hand.

The running example: merchant mch_1 charges 0.60% (60 bps). Buyer buyer-1 has 10.00 CNY of
stored balance and a 4.00 CNY coupon; order ord_1 of 108.00 CNY is paid with 100.00 through
the sandbox channel, 5.00 of balance and the coupon (which pays 3.00 of it: a coupon is used
whole). The fee is 0.60 on the channel part only; the merchant's net is 99.40."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from paycore.ledger import accounts, rules
from paycore.ledger.accounts import Account, Holding, Side
from paycore.ledger.books import Ledger, fold
from paycore.ledger.entries import Event, JournalEntry
from paycore.ledger.fees import ChannelMoney
from paycore.ledger.rules import (
    ChannelPart,
    CouponReturn,
    CouponUse,
    PaymentFacts,
    RefundFacts,
    SettlementFigures,
    SettlementLine,
)
from paycore.money import MAX_AMOUNT

M, B, CUR = "mch_1", "buyer-1", "CNY"
CLEARING = accounts.channel_clearing("sandbox", "default", CUR)
REFUNDING = accounts.channel_refunding("sandbox", "default", CUR)
LATE = accounts.channel_late_payments("sandbox", "default", CUR)
FEES = accounts.platform_fees(CUR)
ESCROW = accounts.merchant_escrow(M, CUR)
PENDING = accounts.merchant_pending(M, CUR)
MERCHANT_AVAILABLE = accounts.merchant_available(M, CUR)
ISSUED = accounts.merchant_issued_value(M, CUR)
BUYER = accounts.buyer_available(M, B, CUR)
FROZEN = accounts.buyer_frozen(M, B, CUR)
COUPON = accounts.coupon("cpn_1", CUR)

SANDBOX = ("sandbox", "default")
PAYMENT = PaymentFacts(
    payment_id="pay_1",
    order_id="ord_1",
    merchant_id=M,
    currency=CUR,
    buyer_id=B,
    channel=ChannelPart(*SANDBOX, 10_000),
    balance_amount=500,
    coupon=CouponUse("cpn_1", amount=300, face_value=400),
)
PAID = ChannelMoney.charged(10_000, 60)  # fee 60, net 9,940


def lines(entry: JournalEntry) -> list[tuple[str, str, int]]:
    return [(p.side.value, p.account.id, p.amount) for p in entry.postings]


def balances(ledger: Ledger, *watched: Account) -> dict[str, int]:
    return {account.id: ledger.balance(account) for account in watched}


def refund(
    refund_id: str = "rfd_1",
    *,
    channel: int = 0,
    balance: int = 0,
    coupon: CouponReturn | None = None,
) -> RefundFacts:
    return RefundFacts(
        refund_id=refund_id,
        payment_id="pay_1",
        order_id="ord_1",
        merchant_id=M,
        currency=CUR,
        buyer_id=B,
        channel=ChannelPart(*SANDBOX, channel) if channel else None,
        balance_amount=balance,
        coupon=coupon,
    )


def paid_ledger(into: Holding = Holding.PENDING) -> Ledger:
    return fold(
        [
            rules.balance_credited("crd_1", M, B, CUR, 1_000),
            rules.coupon_issued("cpn_1", M, B, CUR, 400),
            rules.payment_reserved(PAYMENT),
            rules.payment_succeeded(PAYMENT, fee_rate_bps=60, into=into),
        ]
    )


def assert_trial_balances(entries: Iterable[JournalEntry]) -> None:
    trial = fold(entries).trial_balance(CUR)
    assert trial.total_debits == trial.total_credits


# -- internal instruments -----------------------------------------------------------------------


def test_a_balance_credit_is_merchant_issued_value_given_to_the_buyer() -> None:
    entry = rules.balance_credited("crd_1", M, B, CUR, 1_000)
    assert entry.id == "je_crd_1_balance_credited"
    assert lines(entry) == [
        ("debit", "merchant:mch_1:issued_value:CNY", 1_000),
        ("credit", "buyer:mch_1:buyer-1:available:CNY", 1_000),
    ]


def test_a_coupon_holds_its_value_from_issue() -> None:
    entry = rules.coupon_issued("cpn_1", M, B, CUR, 400)
    assert entry.id == "je_cpn_1_coupon_issued"
    assert lines(entry) == [
        ("debit", "merchant:mch_1:issued_value:CNY", 400),
        ("credit", "coupon:cpn_1:CNY", 400),
    ]


# -- payments -----------------------------------------------------------------------------------


def test_a_payment_freezes_its_balance_part_at_start_and_releases_it_on_failure() -> None:
    reserved = rules.payment_reserved(PAYMENT)
    assert reserved.id == "je_pay_1_payment_reserved"
    assert lines(reserved) == [
        ("debit", BUYER.id, 500),
        ("credit", FROZEN.id, 500),
    ]
    released = rules.payment_released(PAYMENT)
    assert lines(released) == [("debit", FROZEN.id, 500), ("credit", BUYER.id, 500)]
    ledger = fold([rules.balance_credited("crd_1", M, B, CUR, 1_000), reserved, released])
    assert balances(ledger, BUYER, FROZEN) == {BUYER.id: 1_000, FROZEN.id: 0}


def test_a_channel_only_payment_reserves_nothing() -> None:
    channel_only = PaymentFacts("pay_2", "ord_2", M, CUR, channel=ChannelPart(*SANDBOX, 10))
    assert rules.payment_reserved(channel_only).is_empty
    assert rules.payment_released(channel_only).is_empty


def test_a_combined_payment_posts_each_instrument() -> None:
    entry = rules.payment_succeeded(PAYMENT, fee_rate_bps=60, into=Holding.PENDING)
    assert entry.id == "je_pay_1_payment_succeeded"
    assert lines(entry) == [
        ("debit", CLEARING.id, 9_940),
        ("credit", PENDING.id, 9_940),
        ("debit", CLEARING.id, 60),
        ("credit", FEES.id, 60),
        ("debit", FROZEN.id, 500),
        ("credit", ISSUED.id, 500),
        ("debit", COUPON.id, 400),  # the coupon's whole value, though it paid 3.00
        ("credit", ISSUED.id, 400),
    ]
    assert (entry.metadata["fee"], entry.metadata["net"], entry.metadata["amount"]) == (
        60,
        9_940,
        10_800,
    )


def test_after_a_combined_payment_each_party_holds_its_share() -> None:
    ledger = paid_ledger()
    assert balances(ledger, CLEARING, PENDING, FEES, BUYER, FROZEN, COUPON, ISSUED) == {
        CLEARING.id: 10_000,  # the channel holds what it collected
        PENDING.id: 9_940,  # the merchant is owed the net of the channel part only
        FEES.id: 60,
        BUYER.id: 500,
        FROZEN.id: 0,
        COUPON.id: 0,
        ISSUED.id: 500,  # = what its buyers still hold: 5.00 of balance, no coupon
    }
    assert ledger.below_zero() == [] and ledger.open_clearing() == []


def test_a_guaranteed_payment_is_held_in_escrow() -> None:
    entry = rules.payment_succeeded(PAYMENT, fee_rate_bps=60, into=Holding.ESCROW)
    assert ("credit", ESCROW.id, 9_940) in lines(entry)
    assert PENDING.id not in {account for _, account, _ in lines(entry)}


def test_a_payment_never_goes_straight_to_available() -> None:
    with pytest.raises(ValueError, match="escrow or pending"):
        rules.payment_succeeded(PAYMENT, fee_rate_bps=60, into=Holding.AVAILABLE)


def test_an_order_paid_at_once_by_balance_spends_the_available_balance() -> None:
    internal = PaymentFacts("pay_3", "ord_3", M, CUR, buyer_id=B, balance_amount=700)
    entry = rules.payment_succeeded(internal, fee_rate_bps=60, into=Holding.PENDING, reserved=False)
    assert lines(entry) == [("debit", BUYER.id, 700), ("credit", ISSUED.id, 700)]
    assert "fee" not in entry.metadata  # no channel part, no fee


@pytest.mark.parametrize("bps", [0, 10_000])
def test_the_fee_rate_edges(bps: int) -> None:
    entry = rules.payment_succeeded(PAYMENT, fee_rate_bps=bps, into=Holding.PENDING)
    merchant = sum(p.amount for p in entry.postings if p.account == PENDING)
    fee = sum(p.amount for p in entry.postings if p.account == FEES)
    assert (merchant, fee) == ((10_000, 0) if bps == 0 else (0, 10_000))


def test_payment_facts_refuse_what_cannot_be() -> None:
    with pytest.raises(ValueError, match="need a buyer"):
        PaymentFacts("pay_4", "ord_4", M, CUR, balance_amount=5)
    with pytest.raises(ValueError, match="cannot pay"):
        CouponUse("cpn_1", amount=500, face_value=400)
    with pytest.raises(ValueError, match="payment amount"):
        PaymentFacts("pay_4", "ord_4", M, CUR)
    with pytest.raises(ValueError, match="payment amount"):
        PaymentFacts(
            "pay_4",
            "ord_4",
            M,
            CUR,
            buyer_id=B,
            channel=ChannelPart(*SANDBOX, MAX_AMOUNT),
            balance_amount=1,
        )
    with pytest.raises(ValueError, match="channel part"):
        ChannelPart(*SANDBOX, 0)


# -- refunds ------------------------------------------------------------------------------------


def test_a_refund_in_flight_has_left_the_channel_and_nothing_else_moved() -> None:
    started = rules.refund_started(refund(channel=2_500))
    assert started.id == "je_rfd_1_refund_started"
    assert lines(started) == [("debit", REFUNDING.id, 2_500), ("credit", CLEARING.id, 2_500)]
    ledger = paid_ledger()
    ledger.post(started)
    assert balances(ledger, CLEARING, REFUNDING, PENDING) == {
        CLEARING.id: 7_500,
        REFUNDING.id: 2_500,
        PENDING.id: 9_940,
    }


def test_a_succeeded_refund_is_paid_by_the_merchant_less_the_fee_it_returns() -> None:
    # 25.00 of the 100.00 channel part: the fee returned is 0.15 (0.25 x 0.60).
    facts = refund(channel=2_500)
    succeeded = rules.refund_succeeded(facts, money=PAID, taken_from=Holding.PENDING)
    assert lines(succeeded) == [
        ("debit", PENDING.id, 2_485),
        ("credit", REFUNDING.id, 2_485),
        ("debit", FEES.id, 15),
        ("credit", REFUNDING.id, 15),
    ]
    assert succeeded.metadata["fee_refunded"] == 15
    ledger = paid_ledger()
    ledger.post(rules.refund_started(facts))
    ledger.post(succeeded)
    assert balances(ledger, CLEARING, REFUNDING, PENDING, FEES) == {
        CLEARING.id: 7_500,
        REFUNDING.id: 0,
        PENDING.id: 7_455,  # 99.40 - (25.00 - 0.15)
        FEES.id: 45,
    }


def test_a_failed_refund_puts_the_money_back_at_the_channel() -> None:
    facts = refund(channel=2_500)
    failed = rules.refund_failed(facts)
    assert lines(failed) == [("debit", CLEARING.id, 2_500), ("credit", REFUNDING.id, 2_500)]
    ledger = paid_ledger()
    before = {account.id: ledger.balance(account) for account in ledger.accounts()}
    ledger.post(rules.refund_started(facts))
    ledger.post(failed)
    after = {account.id: ledger.balance(account) for account in ledger.accounts()}
    assert after == {**before, REFUNDING.id: 0}


def test_a_full_refund_gives_every_instrument_back_and_the_whole_fee() -> None:
    # 108.00 back: 100.00 through the channel, 5.00 to the balance, 3.00 through the coupon,
    # which comes back whole (4.00).
    facts = refund(
        channel=10_000,
        balance=500,
        coupon=CouponReturn("cpn_1", 300, paid=300, refunded_before=0, face_value=400),
    )
    ledger = paid_ledger()
    ledger.post(rules.refund_started(facts))
    ledger.post(rules.refund_succeeded(facts, money=PAID, taken_from=Holding.PENDING))
    assert balances(ledger, CLEARING, REFUNDING, PENDING, FEES, BUYER, COUPON, ISSUED) == {
        CLEARING.id: 0,
        REFUNDING.id: 0,
        PENDING.id: 0,
        FEES.id: 0,
        BUYER.id: 1_000,
        COUPON.id: 400,
        ISSUED.id: 1_400,  # the buyer holds again all the merchant gave
    }


def test_part_of_the_coupon_share_gives_nothing_back_until_all_of_it_is_refunded() -> None:
    first = refund("rfd_1", coupon=CouponReturn("cpn_1", 100, 300, 0, 400))
    assert not first.coupon or not first.coupon.restores
    entry = rules.refund_succeeded(first)
    assert entry.is_empty
    last = refund("rfd_2", coupon=CouponReturn("cpn_1", 200, 300, 100, 400))
    assert lines(rules.refund_succeeded(last)) == [
        ("debit", ISSUED.id, 400),
        ("credit", COUPON.id, 400),
    ]
    with pytest.raises(ValueError, match="exceed"):
        CouponReturn("cpn_1", 201, 300, 100, 400)


def test_a_refund_of_a_settled_order_is_taken_from_available() -> None:
    facts = refund(channel=10_000)
    ledger = paid_ledger()
    ledger.post(rules.settlement(M, CUR, "2026-12-07", [SettlementLine("pay_1", PAID)]))
    assert balances(ledger, PENDING, MERCHANT_AVAILABLE) == {
        PENDING.id: 0,
        MERCHANT_AVAILABLE.id: 9_940,
    }
    ledger.post(rules.refund_started(facts))
    succeeded = rules.refund_succeeded(facts, money=PAID, taken_from=Holding.AVAILABLE)
    assert ("debit", MERCHANT_AVAILABLE.id, 9_940) in lines(succeeded)
    ledger.post(succeeded)
    assert balances(ledger, PENDING, MERCHANT_AVAILABLE, FEES) == {
        PENDING.id: 0,
        MERCHANT_AVAILABLE.id: 0,
        FEES.id: 0,
    }


def test_available_is_not_bounded_a_negative_balance_is_shown_not_refused() -> None:
    # Nothing in paycore pays available out yet; once something does, a later refund of a
    # settled order can take it below zero, and the contract lets the merchant see that.
    ledger = Ledger()  # available holds nothing: as if it had been paid out
    facts = refund(channel=10_000)
    ledger.post(rules.refund_started(facts))
    ledger.post(rules.refund_succeeded(facts, money=PAID, taken_from=Holding.AVAILABLE))
    assert ledger.balance(MERCHANT_AVAILABLE) == -9_940
    assert ledger.below_zero() == []


def test_a_refund_cannot_return_more_than_is_left_of_the_channel_part() -> None:
    with pytest.raises(ValueError, match="exceeds what is left"):
        rules.refund_succeeded(
            refund(channel=2_501), money=PAID.after_refund(7_500), taken_from=Holding.PENDING
        )
    with pytest.raises(ValueError, match="needs the payment's money"):
        rules.refund_succeeded(refund(channel=1))


def test_the_fee_returned_depends_on_the_refunds_succeeded_before() -> None:
    # C = 3 at 33.33%: fee 1. A first refund of 1 returns 0 (0.33), the second 1 (0.67 -> 1).
    money = ChannelMoney.charged(3, 3333)
    first = rules.refund_succeeded(refund("r1", channel=1), money=money, taken_from=Holding.PENDING)
    second = rules.refund_succeeded(
        refund("r2", channel=1), money=money.after_refund(1), taken_from=Holding.PENDING
    )
    assert (first.metadata["fee_refunded"], second.metadata["fee_refunded"]) == (0, 1)


# -- late payments ------------------------------------------------------------------------------


def late(refund_id: str = "rfd_late") -> RefundFacts:
    return RefundFacts(refund_id, "pay_1", "ord_1", M, CUR, channel=ChannelPart(*SANDBOX, 777))


def test_a_late_payment_comes_in_and_goes_straight_back() -> None:
    started = rules.late_payment_refund_started(late())
    assert lines(started) == [
        ("debit", CLEARING.id, 777),
        ("credit", LATE.id, 777),
        ("debit", REFUNDING.id, 777),
        ("credit", CLEARING.id, 777),
    ]
    done = rules.late_payment_refund_succeeded(late())
    ledger = fold([started, done])
    assert all(ledger.balance(a) == 0 for a in ledger.accounts())


def test_a_failed_late_refund_leaves_the_money_owed_to_the_buyer() -> None:
    ledger = fold([rules.late_payment_refund_started(late()), rules.refund_failed(late())])
    assert balances(ledger, CLEARING, LATE, REFUNDING) == {
        CLEARING.id: 777,
        LATE.id: 777,
        REFUNDING.id: 0,
    }
    assert ledger.open_clearing() == [LATE]  # visible until someone gives it back


def test_a_late_refund_is_all_channel() -> None:
    with pytest.raises(ValueError, match="channel part only"):
        rules.late_payment_refund_started(refund(balance=5))


# -- guaranteed trade and settlement ------------------------------------------------------------


def test_confirmation_moves_what_is_left_in_escrow_to_pending() -> None:
    facts = refund(channel=2_500)
    ledger = paid_ledger(into=Holding.ESCROW)
    ledger.post(rules.refund_started(facts))
    ledger.post(rules.refund_succeeded(facts, money=PAID, taken_from=Holding.ESCROW))
    confirmed = rules.trade_confirmed("ord_1", "pay_1", M, CUR, PAID.after_refund(2_500))
    assert confirmed.id == "je_ord_1_trade_confirmed"
    assert lines(confirmed) == [("debit", ESCROW.id, 7_455), ("credit", PENDING.id, 7_455)]
    ledger.post(confirmed)
    assert balances(ledger, ESCROW, PENDING) == {ESCROW.id: 0, PENDING.id: 7_455}


def test_an_order_paid_without_a_channel_confirms_with_nothing_to_move() -> None:
    assert rules.trade_confirmed("ord_3", "pay_3", M, CUR, ChannelMoney(0, 0)).is_empty


def test_settlement_makes_the_due_payments_available_less_their_refunds() -> None:
    batch = [
        SettlementLine("pay_1", PAID.after_refund(2_500), refunds_count=1),
        SettlementLine("pay_2", ChannelMoney.charged(1_999, 60)),
    ]
    entry = rules.settlement(M, CUR, "2026-12-07", batch)
    figures = SettlementFigures.of(batch)
    assert figures.as_dict() == {
        "payments_count": 2,
        "gross": 11_999,
        "fees": 72,
        "refunds_count": 1,
        "refunds": 2_500,
        "fee_refunded": 15,
        "net": 9_442,  # 11,999 - 72 - 2,500 + 15
    }
    assert lines(entry) == [("debit", PENDING.id, 9_442), ("credit", MERCHANT_AVAILABLE.id, 9_442)]
    assert entry.metadata["payments"] == "pay_1,pay_2"
    assert entry.metadata["date"] == "2026-12-07"
    # the same batch, listed in another order, is the same entry
    assert rules.settlement(M, CUR, "2026-12-07", batch[::-1]) == entry
    assert rules.settlement(M, CUR, "2026-12-07", batch[:1]).id != entry.id
    assert (figures + figures).net == 2 * figures.net


@pytest.mark.parametrize("day", ["2026-12-7", "2026/12/07", "2026-13-01", "20261207"])
def test_settlement_needs_a_calendar_date(day: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        rules.settlement(M, CUR, day, [SettlementLine("pay_1", PAID)])


def test_settlement_refuses_empty_or_repeated_batches_and_impossible_lines() -> None:
    with pytest.raises(ValueError, match="at least one"):
        rules.settlement(M, CUR, "2026-12-07", [])
    with pytest.raises(ValueError, match="once per entry"):
        rules.settlement(
            M, CUR, "2026-12-07", [SettlementLine("pay_1", PAID), SettlementLine("pay_1", PAID)]
        )
    with pytest.raises(ValueError, match="refunds cannot have given back"):
        SettlementLine("pay_1", PAID.after_refund(5), refunds_count=0)


# -- reconciliation -----------------------------------------------------------------------------


def test_suspense_parks_a_difference_on_the_right_side() -> None:
    long = rules.reconciliation_suspense("dsc_1", "sandbox", "default", CUR, 120)
    short = rules.reconciliation_suspense("dsc_2", "sandbox", "default", CUR, -80)
    suspense = accounts.platform_suspense(CUR)
    assert lines(long) == [("debit", CLEARING.id, 120), ("credit", suspense.id, 120)]
    assert lines(short) == [("debit", suspense.id, 80), ("credit", CLEARING.id, 80)]
    assert fold([long, short]).balance(suspense) == -40
    with pytest.raises(ValueError, match="non-zero"):
        rules.reconciliation_suspense("dsc_3", "sandbox", "default", CUR, 0)


# -- every rule ---------------------------------------------------------------------------------


def test_every_rule_names_its_event_and_every_journey_here_balances() -> None:
    facts = refund(channel=10_000, balance=500)
    entries = [
        rules.balance_credited("crd_1", M, B, CUR, 1_000),
        rules.coupon_issued("cpn_1", M, B, CUR, 400),
        rules.payment_reserved(PAYMENT),
        rules.payment_released(PAYMENT),
        rules.payment_succeeded(PAYMENT, fee_rate_bps=60, into=Holding.ESCROW),
        rules.refund_started(facts),
        rules.refund_failed(facts),
        rules.refund_succeeded(facts, money=PAID, taken_from=Holding.ESCROW),
        rules.late_payment_refund_started(late()),
        rules.late_payment_refund_succeeded(late()),
        rules.trade_confirmed("ord_1", "pay_1", M, CUR, PAID),
        rules.settlement(M, CUR, "2026-12-07", [SettlementLine("pay_1", PAID)]),
        rules.reconciliation_suspense("dsc_1", "sandbox", "default", CUR, 1),
    ]
    made = {entry.event for entry in entries}
    assert made == set(Event) - {Event.REVERSAL}
    for entry in entries:
        debits = sum(p.amount for p in entry.postings if p.side is Side.DEBIT)
        credits = sum(p.amount for p in entry.postings if p.side is Side.CREDIT)
        assert debits == credits, entry.id
    assert_trial_balances(entries)


def test_the_worked_example_of_the_documentation() -> None:
    """docs/ledger.md, "A worked example": credit, coupon, combined payment, a refund of
    25.00 through the channel, settlement; its trial balance table."""
    facts = refund(channel=2_500)
    ledger = fold(
        [
            rules.balance_credited("crd_1", M, B, CUR, 1_000),
            rules.coupon_issued("cpn_1", M, B, CUR, 400),
            rules.payment_reserved(PAYMENT),
            rules.payment_succeeded(PAYMENT, fee_rate_bps=60, into=Holding.PENDING),
            rules.refund_started(facts),
            rules.refund_succeeded(facts, money=PAID, taken_from=Holding.PENDING),
            rules.settlement(
                M, CUR, "2026-12-08", [SettlementLine("pay_1", PAID.after_refund(2_500), 1)]
            ),
        ]
    )
    trial = ledger.trial_balance(CUR)
    assert [(line.account, line.debits, line.credits) for line in trial.lines] == [
        ("buyer:mch_1:buyer-1:available:CNY", 500, 1_000),
        ("buyer:mch_1:buyer-1:frozen:CNY", 500, 500),
        ("channel:sandbox:default:clearing:CNY", 10_000, 2_500),
        ("channel:sandbox:default:refunding:CNY", 2_500, 2_500),
        ("coupon:cpn_1:CNY", 400, 400),
        ("merchant:mch_1:available:CNY", 0, 7_455),
        ("merchant:mch_1:issued_value:CNY", 1_400, 900),
        ("merchant:mch_1:pending:CNY", 9_940, 9_940),
        ("platform:fees:CNY", 15, 60),
    ]
    assert trial.total_debits == trial.total_credits == 25_255
    assert ledger.balance(CLEARING) == ledger.balance(MERCHANT_AVAILABLE) + ledger.balance(FEES)
