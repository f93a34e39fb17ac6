"""Fees: half-up rounding at the edges, and fees returned in proportion on refunds.

The oracle is the rule written with exact fractions: ``fee = C * bps / 10,000`` and ``returned
= fee * R / C``, each rounded half up (to the nearest minor unit, halves up)."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import pytest

from paycore.ledger.fees import (
    DEFAULT_FEE_RATE_BPS,
    ChannelMoney,
    fee_for,
    fee_refunded,
    fee_refunded_total,
)
from paycore.money import MAX_AMOUNT

EDGE_RATES = (0, 1, 59, DEFAULT_FEE_RATE_BPS, 61, 3333, 4999, 5000, 5001, 9999, 10_000)


def half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


# -- the fee on a channel part ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel_amount", "bps", "fee"),
    [
        (1, 0, 0),  # no rate, no fee
        (1, DEFAULT_FEE_RATE_BPS, 0),  # 0.006 of a minor unit rounds to nothing
        (1, 4999, 0),  # 0.4999 rounds down
        (1, 5000, 1),  # exactly half a minor unit rounds up
        (1, 10_000, 1),  # the whole of it
        (25, 200, 1),  # 0.5 again, from another product
        (1999, DEFAULT_FEE_RATE_BPS, 12),  # JPY 1999: 11.994 yen
        (83, DEFAULT_FEE_RATE_BPS, 0),  # JPY 83: 0.498 yen
        (84, DEFAULT_FEE_RATE_BPS, 1),  # JPY 84: 0.504 yen
        (10_000, DEFAULT_FEE_RATE_BPS, 60),  # CNY 100.00: 0.60
        (MAX_AMOUNT, DEFAULT_FEE_RATE_BPS, 6_000_000_000),
        (MAX_AMOUNT - 1, DEFAULT_FEE_RATE_BPS, 6_000_000_000),  # 5,999,999,999.994
        (MAX_AMOUNT - 1, 1, 100_000_000),  # 99,999,999.9999
        (MAX_AMOUNT, 10_000, MAX_AMOUNT),
        (MAX_AMOUNT, 0, 0),
    ],
)
def test_fee_is_rounded_half_up(channel_amount: int, bps: int, fee: int) -> None:
    assert fee_for(channel_amount, bps) == fee


def test_fee_matches_the_exact_rule_for_small_amounts_and_every_edge_rate() -> None:
    for channel_amount in range(201):
        for bps in EDGE_RATES:
            expected = half_up(Fraction(channel_amount * bps, 10_000))
            assert fee_for(channel_amount, bps) == expected, (channel_amount, bps)


def test_fee_matches_the_exact_rule_near_the_largest_amount() -> None:
    for channel_amount in range(MAX_AMOUNT - 300, MAX_AMOUNT + 1):
        for bps in EDGE_RATES:
            expected = half_up(Fraction(channel_amount * bps, 10_000))
            assert fee_for(channel_amount, bps) == expected, (channel_amount, bps)


def test_fee_never_exceeds_the_channel_part() -> None:
    for channel_amount in (*range(1, 50), MAX_AMOUNT):
        assert fee_for(channel_amount, 10_000) == channel_amount


@pytest.mark.parametrize(
    ("channel_amount", "bps"), [(-1, 60), (10, -1), (10, 10_001), (True, 60), (10, 60.0)]
)
def test_fee_refuses_what_is_not_a_rate_or_an_amount(channel_amount: object, bps: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        fee_for(channel_amount, bps)  # type: ignore[arg-type]


# -- the fee returned on refunds ----------------------------------------------------------------


def test_fee_returned_so_far_is_the_proportion_rounded_half_up() -> None:
    # C = 3 minor units at 33.33%: fee 1; after 1 refunded 0.333 -> 0, after 2 0.667 -> 1.
    assert fee_for(3, 3333) == 1
    assert [fee_refunded_total(1, 3, r) for r in range(4)] == [0, 0, 1, 1]
    # CNY 100.00 at 0.60%: refunding 25.00 returns 0.15; 33.33 returns 0.19998 -> 0.20.
    assert fee_refunded_total(60, 10_000, 2_500) == 15
    assert fee_refunded_total(60, 10_000, 3_333) == 20
    # Exactly half a minor unit rounds up: fee 1 on C 2, R 1 -> 0.5 -> 1.
    assert fee_refunded_total(1, 2, 1) == 1


def test_fee_returned_matches_the_exact_rule() -> None:
    for channel_amount in range(1, 61):
        for bps in EDGE_RATES:
            fee = fee_for(channel_amount, bps)
            for refunded in range(channel_amount + 1):
                expected = half_up(Fraction(fee * refunded, channel_amount))
                assert fee_refunded_total(fee, channel_amount, refunded) == expected


def test_a_full_refund_returns_the_whole_fee_at_the_largest_amount() -> None:
    fee = fee_for(MAX_AMOUNT, 9_999)
    assert fee_refunded_total(fee, MAX_AMOUNT, MAX_AMOUNT) == fee
    assert fee_refunded_total(fee, MAX_AMOUNT, 1) == half_up(Fraction(fee, MAX_AMOUNT))
    half = MAX_AMOUNT // 2
    assert fee_refunded_total(fee, MAX_AMOUNT, half) == half_up(Fraction(fee * half, MAX_AMOUNT))


def compositions(total: int) -> list[list[int]]:
    """Every way to write ``total`` as an ordered sum of positive parts."""
    found = []
    for cuts in itertools.product((False, True), repeat=total - 1):
        parts, run = [], 1
        for cut in cuts:
            if cut:
                parts.append(run)
                run = 1
            else:
                run += 1
        found.append([*parts, run])
    return found


def refund_in_parts(money: ChannelMoney, parts: list[int]) -> list[int]:
    returned = []
    for part in parts:
        returned.append(money.fee_refunded_by(part))
        money = money.after_refund(part)
    return returned


def test_a_full_refund_in_any_parts_returns_the_whole_fee_each_part_its_share() -> None:
    for channel_amount in range(1, 11):
        for bps in EDGE_RATES:
            money = ChannelMoney.charged(channel_amount, bps)
            for parts in compositions(channel_amount):
                returned = refund_in_parts(money, parts)
                assert sum(returned) == money.fee, (channel_amount, bps, parts)
                # each refund returns at most its own amount: the merchant never gains
                assert all(0 <= fee <= part for fee, part in zip(returned, parts, strict=True))


def test_many_small_refunds_of_a_large_payment_return_the_whole_fee() -> None:
    rng = random.Random(20261206)
    for channel_amount, bps in ((MAX_AMOUNT, DEFAULT_FEE_RATE_BPS), (1_000_003, 9_999)):
        money = ChannelMoney.charged(channel_amount, bps)
        parts = [rng.randint(1, channel_amount // 50) for _ in range(60)]
        parts.append(channel_amount - sum(parts))
        returned = refund_in_parts(money, parts)
        assert sum(returned) == money.fee
        assert all(0 <= fee <= part for fee, part in zip(returned, parts, strict=True))


def test_fee_returned_refuses_more_than_was_paid() -> None:
    with pytest.raises(ValueError, match="exceed the channel part"):
        fee_refunded_total(1, 10, 11)
    with pytest.raises(ValueError, match="exceeds its channel part"):
        fee_refunded_total(11, 10, 1)
    with pytest.raises(ValueError, match="exceed the channel part"):
        fee_refunded(1, 10, 6, 5)


def test_no_channel_part_no_fee_to_return() -> None:
    assert fee_refunded_total(0, 0, 0) == 0
    assert ChannelMoney(0, 0).net == 0


# -- the merchant's share ----------------------------------------------------------------------


def test_channel_money_net_is_gross_less_fee_less_refunds_plus_fee_returned() -> None:
    money = ChannelMoney.charged(10_000, DEFAULT_FEE_RATE_BPS)
    assert (money.fee, money.net) == (60, 9_940)
    refunded = money.after_refund(2_500)
    assert (refunded.refunded, refunded.fee_refunded, refunded.net) == (2_500, 15, 7_455)
    assert refunded.after_refund(7_500).net == 0


def test_channel_money_refuses_refunds_beyond_the_channel_part() -> None:
    with pytest.raises(ValueError, match="exceed the channel part"):
        ChannelMoney.charged(100, DEFAULT_FEE_RATE_BPS).after_refund(101)
