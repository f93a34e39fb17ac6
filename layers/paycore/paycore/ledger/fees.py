"""Fees: charged on the channel-collected part of a payment, returned in proportion on refunds.

Integer maths only, every figure in minor units, rounded half up:

- ``fee = floor((C * bps + 5000) / 10000)`` for a channel part ``C`` and a merchant's
  ``fee_rate_bps`` (0-10,000; coupon and stored-balance parts carry no fee);
- once succeeded refunds have returned ``R`` of that channel part, the fee returned so far is
  ``floor((fee * R * 2 + C) / (2 * C))``, so a full refund returns the whole fee;
- each refund's ``fee_refunded`` is the increase of that cumulative figure.

With ``C`` at most ``paycore.money.MAX_AMOUNT`` (10**12) ``C * bps`` stays below 2**63, but
``fee * R * 2`` does not: exact here because Python integers are unbounded; a port to a
language with 64-bit integers needs 128-bit arithmetic for it.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_FEE_RATE_BPS = 10_000
DEFAULT_FEE_RATE_BPS = 60


def _check_amount(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer of minor units, not {value!r}")


def fee_for(channel_amount: int, fee_rate_bps: int) -> int:
    """The fee on a channel part ``channel_amount`` at ``fee_rate_bps`` (half up)."""
    _check_amount("channel_amount", channel_amount)
    if isinstance(fee_rate_bps, bool) or not isinstance(fee_rate_bps, int):
        raise ValueError(f"fee_rate_bps must be an integer, not {fee_rate_bps!r}")
    if not 0 <= fee_rate_bps <= MAX_FEE_RATE_BPS:
        raise ValueError(f"fee_rate_bps must be 0-{MAX_FEE_RATE_BPS}, not {fee_rate_bps}")
    return (channel_amount * fee_rate_bps + 5_000) // 10_000


def fee_refunded_total(fee: int, channel_amount: int, refunded: int) -> int:
    """The fee returned once succeeded refunds have given back ``refunded`` of the payment's
    channel part ``channel_amount`` (which carried ``fee``)."""
    _check_amount("fee", fee)
    _check_amount("channel_amount", channel_amount)
    _check_amount("refunded", refunded)
    if fee > channel_amount:
        raise ValueError(f"a fee of {fee} exceeds its channel part {channel_amount}")
    if refunded > channel_amount:
        raise ValueError(f"refunds of {refunded} exceed the channel part {channel_amount}")
    if channel_amount == 0:
        return 0
    return (fee * refunded * 2 + channel_amount) // (2 * channel_amount)


def fee_refunded(fee: int, channel_amount: int, refunded_before: int, amount: int) -> int:
    """What one refund of ``amount`` of the channel part returns of the fee, after succeeded
    refunds gave back ``refunded_before``: the increase of the cumulative figure."""
    _check_amount("amount", amount)
    return fee_refunded_total(fee, channel_amount, refunded_before + amount) - fee_refunded_total(
        fee, channel_amount, refunded_before
    )


@dataclass(frozen=True)
class ChannelMoney:
    """A payment's channel part as the merchant's money: ``gross`` collected by the channel,
    the ``fee`` charged on it, and ``refunded``, the channel part given back by succeeded
    refunds so far. ``net`` is what the merchant still holds from it (escrow, pending or,
    once settled, available): ``gross - fee - refunded + fee_refunded``."""

    gross: int
    fee: int
    refunded: int = 0

    def __post_init__(self) -> None:
        fee_refunded_total(self.fee, self.gross, self.refunded)  # validates all three

    @classmethod
    def charged(cls, gross: int, fee_rate_bps: int) -> ChannelMoney:
        return cls(gross, fee_for(gross, fee_rate_bps))

    @property
    def fee_refunded(self) -> int:
        return fee_refunded_total(self.fee, self.gross, self.refunded)

    @property
    def net(self) -> int:
        return self.gross - self.fee - self.refunded + self.fee_refunded

    def fee_refunded_by(self, amount: int) -> int:
        """The fee a refund of ``amount`` of the channel part returns if it succeeds next."""
        return fee_refunded(self.fee, self.gross, self.refunded, amount)

    def after_refund(self, amount: int) -> ChannelMoney:
        return ChannelMoney(self.gross, self.fee, self.refunded + amount)
