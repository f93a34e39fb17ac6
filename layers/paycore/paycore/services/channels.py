"""The channels a merchant can pay with here, and what a stack without any says."""

from __future__ import annotations

from paycore.channels.registry import ChannelOffer, available_channels, offered_channels
from paycore.config import get_settings
from paycore.errors import PaycoreError, ValidationFailed
from paycore.money import is_supported_currency


def list_channels(currency: str, amount: int) -> list[ChannelOffer]:
    """The channels routing offers for this currency and amount: those with at least one
    configured account whose rules accept it (an empty list when none is configured)."""
    if not is_supported_currency(currency):
        raise ValidationFailed(f"currency {currency} is not supported", param="currency")
    return offered_channels(currency, amount)


def no_channel_warning() -> str | None:
    """The warning a stack with no configured channel account gives (None when some channel
    is configured, or when that cannot be told now: the requests will say why)."""
    try:
        if available_channels():
            return None
    except PaycoreError:
        return None
    except ValueError as exc:  # CHANNEL_ACCOUNTS is not valid (pydantic says where)
        return f"no payment channel is configured: CHANNEL_ACCOUNTS is invalid ({exc})"
    prefix = get_settings().channel_secret_prefix or "<CHANNEL_SECRET_PREFIX>"
    return (
        "no payment channel is configured: no enabled channel account has usable credentials, "
        "so every channel payment is refused and GET /v1/channels lists nothing; put each "
        f"account's credentials (JSON) in the secret {prefix}<account id>"
    )
