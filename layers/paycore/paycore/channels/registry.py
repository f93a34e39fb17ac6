"""Which channels this deployment offers, and the gateway of each, built from the settings.

A channel is offered only when it is configured: the sandbox needs ``SANDBOX_CHANNEL_URL``
(empty in production disables it) and the shared secret named by
``SANDBOX_CHANNEL_SECRET_ID``, read through ``paycore.dal.secrets`` (cached a few minutes, so a
rotated secret is picked up without a redeploy). Gateways are cheap and built per call.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from paycore.channels.base import ChannelGateway
from paycore.channels.routing import DEFAULT_ACCOUNT, ChannelAccount, accounts_of, candidates
from paycore.channels.sandbox.adapter import SandboxGateway
from paycore.channels.sandbox.settings import SandboxSettings
from paycore.config import Settings, get_settings
from paycore.dal.secrets import get_secret
from paycore.errors import ServiceUnavailable, ValidationFailed

SANDBOX = "sandbox"


def available_channels() -> list[str]:
    """The channel names a payment instrument may use here."""
    return [SANDBOX] if _sandbox_enabled(get_settings()) else []


def get_gateway(name: str, account_id: str | None = None) -> ChannelGateway:
    """The gateway of channel ``name`` at one of its accounts (the first when not named);
    ``ValidationFailed`` (code ``unsupported_channel``, param ``instruments``) for a channel
    that does not exist or is not enabled."""
    settings = get_settings()
    match name:
        case "sandbox" if _sandbox_enabled(settings):
            return _sandbox_gateway(settings, _account(settings, name, account_id))
        case _:
            raise ValidationFailed(
                f"channel {name!r} is not available; use one of {available_channels()}",
                code="unsupported_channel",
                param="instruments",
            )


def route(name: str, currency: str, amount: int) -> list[str]:
    """The ids of the accounts of channel ``name`` that accept this payment, in the order
    they are tried; ``ValidationFailed`` when none does (nothing can take the payment)."""
    get_gateway(name)  # an unknown or disabled channel is refused first
    accounts = candidates(get_settings().channel_accounts, name, currency, amount)
    if not accounts:
        raise ValidationFailed(
            f"no {name} account takes {amount} {currency}",
            code="no_channel_account",
            param="instruments",
        )
    return [account.id for account in accounts]


def _account(settings: Settings, channel: str, account_id: str | None) -> ChannelAccount:
    accounts = accounts_of(settings.channel_accounts, channel)
    for account in accounts:
        if account_id is None or account.id == account_id:
            return account
    # An account removed from the configuration still serves its payments (query, refund).
    return ChannelAccount(id=account_id or DEFAULT_ACCOUNT, channel=channel)


def _sandbox_enabled(settings: Settings) -> bool:
    return bool(settings.sandbox_channel_url)


def _sandbox_gateway(settings: Settings, account: ChannelAccount) -> SandboxGateway:
    if not settings.sandbox_channel_secret_id:
        raise ServiceUnavailable(
            "the sandbox channel is enabled but SANDBOX_CHANNEL_SECRET_ID is not set",
            code="channel_misconfigured",
        )
    try:
        secret = get_secret(settings.sandbox_channel_secret_id)
    except (BotoCoreError, ClientError) as exc:
        raise ServiceUnavailable(
            "the sandbox channel's secret cannot be read", code="channel_secret_unavailable"
        ) from exc
    base_url = settings.sandbox_channel_url.rstrip("/")
    if account.id != DEFAULT_ACCOUNT:
        base_url = f"{base_url}/accounts/{account.id}"
    return SandboxGateway(
        SandboxSettings(base_url=base_url, secret=SecretStr(secret)),
        account_id=account.id,
        timeout=settings.channel_timeout_seconds,
    )
