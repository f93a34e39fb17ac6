"""Which channels this deployment offers, and the gateway of each, built from the settings.

A channel is offered only when it is configured: the sandbox needs ``SANDBOX_CHANNEL_URL``
(empty in production disables it) and the shared secret named by
``SANDBOX_CHANNEL_SECRET_ID``, read through ``paycore.dal.secrets`` (cached a few minutes, so a
rotated secret is picked up without a redeploy). Gateways are cheap and built per call.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from paycore.channels.base import ChannelGateway
from paycore.channels.sandbox import SandboxGateway
from paycore.config import Settings, get_settings
from paycore.dal.secrets import get_secret
from paycore.errors import ServiceUnavailable, ValidationFailed

SANDBOX = "sandbox"
# Per request to a channel. Short, because POST /payments waits for the redirect URL
# (PAYMENT_ACTION_WAIT_SECONDS) and a timeout only makes the outcome unknown, never wrong:
# the create is retried with the same out_trade_no and the order is queried.
CHANNEL_TIMEOUT_SECONDS = 5.0


def available_channels() -> list[str]:
    """The channel names a payment instrument may use here."""
    return [SANDBOX] if _sandbox_enabled(get_settings()) else []


def get_gateway(name: str) -> ChannelGateway:
    """The gateway of channel ``name``; ``ValidationFailed`` (code ``unsupported_channel``,
    param ``instruments``) for a channel that does not exist or is not enabled."""
    settings = get_settings()
    match name:
        case "sandbox" if _sandbox_enabled(settings):
            return _sandbox_gateway(settings)
        case _:
            raise ValidationFailed(
                f"channel {name!r} is not available; use one of {available_channels()}",
                code="unsupported_channel",
                param="instruments",
            )


def _sandbox_enabled(settings: Settings) -> bool:
    return bool(settings.sandbox_channel_url)


def _sandbox_gateway(settings: Settings) -> SandboxGateway:
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
    return SandboxGateway(settings.sandbox_channel_url, secret, timeout=CHANNEL_TIMEOUT_SECONDS)
