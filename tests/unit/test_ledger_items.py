"""How the data layer lays the ledger out: shards of hot accounts, one update per account
shard per entry, index partitions."""

from __future__ import annotations

from paycore.dal.ledger import (
    INDEX_PARTITIONS,
    SHARDS,
    account_moves,
    index_partition,
    shard_count,
    shard_for,
)
from paycore.ledger import CHART, Holding, accounts, rules
from paycore.ledger.rules import ChannelPart, CouponUse, PaymentFacts


def test_every_hot_account_is_sharded_and_no_bounded_own_item_account_is() -> None:
    hot = [kind for kind, spec in CHART.items() if spec.hot]
    assert hot and all(SHARDS.get(kind, 1) > 1 for kind in hot)
    assert all(
        SHARDS.get(kind, 1) == 1
        for kind, spec in CHART.items()
        if spec.upkeep.value == "balance_item"
    )


def test_an_entry_updates_each_account_once_on_the_shard_its_id_picks() -> None:
    facts = PaymentFacts(
        payment_id="pay_1",
        order_id="ord_1",
        merchant_id="mch_1",
        currency="CNY",
        buyer_id="b-1",
        channel=ChannelPart("sandbox", "sandbox-primary", 10_000),
        balance_amount=500,
        coupon=CouponUse("cpn_1", 300, 400),
    )
    entry = rules.payment_succeeded(facts, fee_rate_bps=60, into=Holding.PENDING)
    moves = account_moves(entry)

    by_account = {account.id: (shard, amounts) for (account, shard), amounts in moves.items()}
    clearing = accounts.channel_clearing("sandbox", "sandbox-primary", "CNY")
    # Net and fee both leave the clearing account: one update of 10,000.
    assert by_account[clearing.id][1] == (10_000, 0)
    assert by_account["merchant:mch_1:issued_value:CNY"][1] == (0, 900)
    assert by_account["platform:fees:CNY"][1] == (0, 60)
    assert by_account["merchant:mch_1:pending:CNY"][1] == (0, 9_940)
    assert len(moves) == len(by_account) == 6
    for (account, shard), _ in moves.items():
        assert shard == shard_for(account, entry.id)
        assert 0 <= shard < shard_count(account)
    assert sum(d for d, _ in moves.values()) == sum(c for _, c in moves.values())


def test_shards_spread_entries_and_index_partitions_spread_accounts() -> None:
    fees = accounts.platform_fees("CNY")
    shards = {shard_for(fees, f"je_pay_{n}_payment_succeeded") for n in range(400)}
    assert shards == set(range(SHARDS[fees.kind]))
    assert shard_for(accounts.coupon("cpn_1", "CNY"), "je_x_coupon_issued") == 0
    partitions = {
        index_partition(accounts.merchant_pending(f"mch_{n}", "CNY").id, "CNY") for n in range(400)
    }
    assert partitions == {f"LEDGER#CNY#{k:02d}" for k in range(INDEX_PARTITIONS)}
