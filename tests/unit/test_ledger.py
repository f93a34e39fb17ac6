"""The ledger's building blocks: account ids, journal entries, the fold and the trial balance."""

from __future__ import annotations

from pathlib import Path

import pytest

from paycore.ledger import accounts
from paycore.ledger.accounts import CHART, Account, AccountKind, Side, Upkeep
from paycore.ledger.books import AccountTotals, Ledger, fold
from paycore.ledger.entries import (
    EntryConflict,
    Event,
    JournalEntry,
    LedgerError,
    Posting,
    UnbalancedEntry,
    build,
    entry_id,
    reversal,
)

FEES = accounts.platform_fees("CNY")
CLEARING = accounts.channel_clearing("sandbox", "default", "CNY")
PENDING = accounts.merchant_pending("mch_1", "CNY")
AVAILABLE = accounts.buyer_available("mch_1", "buyer-1", "CNY")
ISSUED = accounts.merchant_issued_value("mch_1", "CNY")


def entry(cause: str, *moves: tuple[Account, Account, int]) -> JournalEntry:
    return build(Event.PAYMENT_SUCCEEDED, cause, moves)


# -- accounts -----------------------------------------------------------------------------------


def example_account(kind: AccountKind) -> Account:
    scope = tuple(f"x_{name}" for name in CHART[kind].placeholders)
    return Account(kind, scope, "JPY")


@pytest.mark.parametrize("kind", list(AccountKind))
def test_every_account_id_reads_back_as_the_same_account(kind: AccountKind) -> None:
    account = example_account(kind)
    assert Account.parse(account.id) == account
    assert account.id.endswith(":JPY")


def test_account_ids_read_like_their_template() -> None:
    assert PENDING.id == "merchant:mch_1:pending:CNY"
    assert CLEARING.id == "channel:sandbox:default:clearing:CNY"
    assert AVAILABLE.id == "buyer:mch_1:buyer-1:available:CNY"
    assert accounts.coupon("cpn_9", "EUR").id == "coupon:cpn_9:EUR"
    assert FEES.id == "platform:fees:CNY"
    assert CHART[AccountKind.BUYER_FROZEN].pattern == "buyer:{merchant}:{buyer}:frozen:{CUR}"


@pytest.mark.parametrize(
    "bad",
    [
        "merchant:mch_1:pending",  # no currency
        "merchant:mch_1:pending:XXX",  # unsupported currency
        "merchant:mch_1:payable:CNY",  # not in the chart
        "merchant::pending:CNY",  # empty segment
        "platform:fees:extra:CNY",
        "",
    ],
)
def test_ids_outside_the_chart_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        Account.parse(bad)


def test_an_id_segment_cannot_smuggle_a_separator() -> None:
    with pytest.raises(ValueError, match="segment"):
        accounts.buyer_available("mch_1", "evil:frozen", "CNY")
    with pytest.raises(ValueError, match="needs"):
        Account(AccountKind.MERCHANT_PENDING, (), "CNY")


def test_the_chart_says_which_accounts_are_bounded_hot_and_clearing() -> None:
    bounded = {kind for kind, spec in CHART.items() if spec.bounded}
    hot = {kind for kind, spec in CHART.items() if spec.hot}
    clearing = {kind for kind, spec in CHART.items() if spec.clearing}
    assert bounded == {
        AccountKind.BUYER_AVAILABLE,
        AccountKind.BUYER_FROZEN,
        AccountKind.COUPON,
        AccountKind.MERCHANT_ESCROW,
        AccountKind.MERCHANT_PENDING,
    }
    assert {AccountKind.PLATFORM_FEES, AccountKind.CHANNEL_CLEARING} <= hot
    # a hot account is never one item updated in every payment's transaction
    assert all(CHART[k].upkeep is not Upkeep.BALANCE_ITEM for k in hot)
    assert clearing == {
        AccountKind.BUYER_FROZEN,
        AccountKind.CHANNEL_REFUNDING,
        AccountKind.CHANNEL_LATE_PAYMENTS,
    }
    # available may go negative (the contract lets the merchant see it)
    assert not CHART[AccountKind.MERCHANT_AVAILABLE].bounded
    # every bounded account is checked in the transaction: on its own item or per order
    assert all(CHART[k].upkeep is not Upkeep.SHARDED for k in bounded)


# -- journal entries ----------------------------------------------------------------------------


def test_an_entry_id_derives_from_its_cause() -> None:
    made = entry("pay_1", (CLEARING, PENDING, 100))
    assert made.id == "je_pay_1_payment_succeeded" == entry_id(Event.PAYMENT_SUCCEEDED, "pay_1")
    assert entry("pay_1", (CLEARING, PENDING, 100)).id == made.id


def test_an_unbalanced_entry_is_refused() -> None:
    postings = (Posting(CLEARING, Side.DEBIT, 100), Posting(PENDING, Side.CREDIT, 99))
    with pytest.raises(UnbalancedEntry, match="does not balance"):
        JournalEntry(Event.PAYMENT_SUCCEEDED, "pay_1", postings)


def test_an_entry_balances_per_currency_not_in_total() -> None:
    jpy = accounts.merchant_pending("mch_1", "JPY")
    postings = (Posting(CLEARING, Side.DEBIT, 100), Posting(jpy, Side.CREDIT, 100))
    with pytest.raises(UnbalancedEntry, match="CNY"):
        JournalEntry(Event.PAYMENT_SUCCEEDED, "pay_1", postings)


@pytest.mark.parametrize("amount", [0, -5, True])
def test_a_posting_moves_a_positive_integer(amount: int) -> None:
    with pytest.raises(LedgerError, match="positive integer"):
        Posting(CLEARING, Side.DEBIT, amount)


def test_moves_of_nothing_are_left_out_and_negative_ones_refused() -> None:
    made = entry("pay_1", (CLEARING, PENDING, 100), (CLEARING, FEES, 0))
    assert [p.account for p in made.postings] == [CLEARING, PENDING]
    assert entry("pay_2", (CLEARING, FEES, 0)).is_empty
    with pytest.raises(LedgerError, match="negative"):
        entry("pay_3", (CLEARING, FEES, -1))


def test_an_entry_cannot_be_changed() -> None:
    made = build(Event.REFUND_STARTED, "rfd_1", [(CLEARING, PENDING, 5)], {"order_id": "ord_1"})
    with pytest.raises(AttributeError):
        made.cause_id = "rfd_2"  # type: ignore[misc]
    with pytest.raises(TypeError):
        made.metadata["order_id"] = "ord_2"  # type: ignore[index]


def test_an_entry_survives_its_stored_form() -> None:
    made = build(
        Event.REFUND_STARTED, "rfd_1", [(CLEARING, PENDING, 5)], {"order_id": "ord_1", "n": 3}
    )
    record = made.record()
    assert record["postings"][0] == {
        "account": "channel:sandbox:default:clearing:CNY",
        "side": "debit",
        "amount": 5,
        "currency": "CNY",
    }
    assert JournalEntry.from_record(record) == made
    with pytest.raises(LedgerError, match="not its cause"):
        JournalEntry.from_record({**record, "id": "je_rfd_2_refund_started"})


def test_a_reversal_undoes_its_entry() -> None:
    made = entry("pay_1", (CLEARING, PENDING, 100), (CLEARING, FEES, 1))
    undone = reversal(made, "posted against the wrong merchant")
    assert undone.id == "je_je_pay_1_payment_succeeded_reversal"
    ledger = fold([made, undone])
    assert all(ledger.balance(account) == 0 for account in ledger.accounts())


# -- the fold -----------------------------------------------------------------------------------


def test_balances_are_signed_on_the_normal_side() -> None:
    ledger = fold([entry("pay_1", (CLEARING, PENDING, 100)), entry("pay_2", (PENDING, FEES, 30))])
    assert ledger.totals(PENDING) == AccountTotals(debits=30, credits=100)
    assert ledger.balance(PENDING) == 70  # credit-normal: credits - debits
    assert ledger.balance(CLEARING) == 100  # debit-normal: debits - credits
    assert ledger.balance(FEES) == 30
    assert ledger.balance(accounts.merchant_pending("mch_2", "CNY")) == 0


def test_the_same_entry_twice_counts_once() -> None:
    made = entry("pay_1", (CLEARING, PENDING, 100))
    ledger = Ledger()
    assert ledger.post(made) is True
    assert ledger.post(entry("pay_1", (CLEARING, PENDING, 100))) is False
    assert ledger.balance(PENDING) == 100
    assert len(ledger) == 1


def test_another_entry_with_the_same_id_is_refused_and_changes_nothing() -> None:
    ledger = fold([entry("pay_1", (CLEARING, PENDING, 100))])
    with pytest.raises(EntryConflict, match="je_pay_1_payment_succeeded"):
        ledger.post(entry("pay_1", (CLEARING, PENDING, 101)))
    assert ledger.balance(PENDING) == 100


def test_below_zero_names_bounded_accounts_only() -> None:
    ledger = fold(
        [
            build(Event.BALANCE_CREDITED, "c1", [(ISSUED, AVAILABLE, 10)]),
            build(Event.PAYMENT_SUCCEEDED, "p1", [(AVAILABLE, ISSUED, 15)]),
            build(Event.SETTLEMENT, "s1", [(accounts.merchant_available("mch_1", "CNY"), FEES, 5)]),
        ]
    )
    assert ledger.below_zero() == [AVAILABLE]  # the merchant's available may go negative


def test_open_clearing_names_clearing_accounts_not_at_zero() -> None:
    refunding = accounts.channel_refunding("sandbox", "default", "CNY")
    started = build(Event.REFUND_STARTED, "r1", [(refunding, CLEARING, 40)])
    ledger = fold([started])
    assert ledger.open_clearing() == [refunding]
    ledger.post(build(Event.REFUND_FAILED, "r1", [(CLEARING, refunding, 40)]))
    assert ledger.open_clearing() == []


def test_trial_balance_lists_each_account_of_a_currency_and_its_totals_agree() -> None:
    jpy_clearing = accounts.channel_clearing("sandbox", "default", "JPY")
    jpy_fees = accounts.platform_fees("JPY")
    ledger = fold(
        [
            entry("pay_1", (CLEARING, PENDING, 100), (CLEARING, FEES, 1)),
            entry("pay_2", (jpy_clearing, jpy_fees, 7)),
            build(
                Event.SETTLEMENT, "s1", [(PENDING, accounts.merchant_available("mch_1", "CNY"), 60)]
            ),
        ]
    )
    assert ledger.trial_balance("CNY").resource() == {
        "object": "trial_balance",
        "currency": "CNY",
        "accounts": [
            {"account": "channel:sandbox:default:clearing:CNY", "debits": 101, "credits": 0},
            {"account": "merchant:mch_1:available:CNY", "debits": 0, "credits": 60},
            {"account": "merchant:mch_1:pending:CNY", "debits": 60, "credits": 100},
            {"account": "platform:fees:CNY", "debits": 0, "credits": 1},
        ],
        "total_debits": 161,
        "total_credits": 161,
    }
    assert [line.account for line in ledger.trial_balance("JPY").lines] == [
        "channel:sandbox:default:clearing:JPY",
        "platform:fees:JPY",
    ]
    assert ledger.trial_balance("EUR").resource()["accounts"] == []


# -- the documentation --------------------------------------------------------------------------

LEDGER_DOC = Path(__file__).resolve().parents[2] / "docs" / "ledger.md"


def test_the_documentation_names_every_account_and_every_event() -> None:
    text = LEDGER_DOC.read_text(encoding="utf-8")
    for kind, spec in CHART.items():
        assert f"`{spec.pattern}`" in text, kind
    for event in Event:
        assert f"_{event.value}`" in text, event
