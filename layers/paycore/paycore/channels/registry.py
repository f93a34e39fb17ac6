"""The channels paycore speaks, each a factory of gateways, and the accounts routing may use.

``FACTORIES`` maps a channel name to ``factory(account_id, credentials, settings) ->
ChannelGateway``. Each factory imports its adapter (``paycore.channels.<name>.adapter``) on
first use, so a function never imports a channel's code or SDK it does not call: importing this
module imports no adapter.

An account is usable when its credentials secret is configured and its adapter accepts them
(``paycore.channels.accounts``); only usable accounts are routed to, and a channel is offered
when at least one of its accounts is usable. Gateways are cheap and built on demand from the
cached credentials.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from paycore.channels.accounts import not_configured, read_credentials
from paycore.channels.base import ChannelGateway, NextActionType
from paycore.channels.routing import (
    ChannelAccount,
    accounts_of,
    candidates,
    find_account,
    parse_accounts,
)
from paycore.config import Settings, get_settings
from paycore.errors import NotFound, ServiceUnavailable, ValidationFailed

logger = logging.getLogger(__name__)

GatewayFactory = Callable[[str, Mapping[str, Any], Settings], ChannelGateway]


def _adapter(module: str) -> GatewayFactory:
    """A factory that imports ``module`` on its first call and uses its ``create_gateway``."""

    def factory(
        account_id: str, credentials: Mapping[str, Any], settings: Settings
    ) -> ChannelGateway:
        create: GatewayFactory = importlib.import_module(module).create_gateway
        return create(account_id, credentials, settings)

    return factory


FACTORIES: Mapping[str, GatewayFactory] = MappingProxyType(
    {
        "sandbox": _adapter("paycore.channels.sandbox.adapter"),
        "alipay": _adapter("paycore.channels.alipay.adapter"),
        "wechatpay": _adapter("paycore.channels.wechatpay.adapter"),
        "stripe": _adapter("paycore.channels.stripe.adapter"),
    }
)


@dataclass(frozen=True)
class ChannelOffer:
    """A channel routing offers, as ``GET /v1/channels`` lists it."""

    channel: str
    next_action_type: NextActionType

    def resource(self) -> dict[str, str]:
        return {
            "object": "channel",
            "channel": self.channel,
            "next_action_type": self.next_action_type.value,
        }


def gateway_for(account: ChannelAccount) -> ChannelGateway | None:
    """The gateway of a configured account, None when it is not configured (said in a
    warning). ``ServiceUnavailable`` when its credentials cannot be read now."""
    if account.channel not in FACTORIES:
        not_configured(account.id, f"paycore has no channel {account.channel!r}")
        return None
    credentials = read_credentials(account.id)
    if credentials is None:
        return None
    text = json.dumps(credentials, sort_keys=True, separators=(",", ":"))
    return _build(account.channel, account.id, text, get_settings())


@lru_cache(maxsize=64)
def _build(
    channel: str, account_id: str, credentials: str, settings: Settings
) -> ChannelGateway | None:
    """One gateway per account, credentials and settings (a rotated secret builds anew); None,
    said in a warning that quotes no value, when the adapter refuses the credentials."""
    try:
        return FACTORIES[channel](account_id, json.loads(credentials), settings)
    except ValidationError as exc:
        fields = ", ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['type']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        not_configured(account_id, f"its credentials are not a {channel} account's ({fields})")
    except ValueError as exc:  # e.g. a key that does not load; its message may quote it
        not_configured(account_id, f"the {channel} adapter refused them ({type(exc).__name__})")
    except ImportError as exc:
        logger.error("the %s adapter cannot be imported: %s", channel, exc)
        not_configured(account_id, f"this build has no working {channel} adapter")
    return None


def get_gateway(channel: str, account_id: str | None = None) -> ChannelGateway:
    """The gateway of ``channel`` at ``account_id`` (at its first configured account when not
    named). ``ValidationFailed`` (``unsupported_channel``) for a channel paycore does not
    speak; ``ServiceUnavailable`` (``channel_account_not_configured``) when the account has no
    usable credentials now: the caller retries later. An account no longer listed in
    CHANNEL_ACCOUNTS still serves its payments (query, close, refund)."""
    if channel not in FACTORIES:
        raise _unsupported(channel)
    raw = get_settings().channel_accounts
    if account_id is None:
        for account in accounts_of(raw, channel):
            gateway = gateway_for(account)
            if gateway is not None:
                return gateway
        raise _unsupported(channel)
    account = find_account(raw, channel, account_id) or ChannelAccount(
        id=account_id, channel=channel
    )
    gateway = gateway_for(account)
    if gateway is None:
        raise ServiceUnavailable(
            f"{channel} account {account_id} is not configured",
            code="channel_account_not_configured",
        )
    return gateway


def callback_gateway(channel: str, account_id: str) -> ChannelGateway:
    """The gateway that verifies a notification arriving at ``/callbacks/{channel}/{account}``:
    the account must be one of ``channel``'s in CHANNEL_ACCOUNTS (enabled or not) and
    configured, else ``NotFound`` (the route is as good as absent)."""
    account = find_account(get_settings().channel_accounts, channel, account_id)
    gateway = gateway_for(account) if account is not None else None
    if gateway is None:
        raise NotFound(
            f"no configured {channel!r} account {account_id!r} takes notifications here",
            code="callback_not_found",
        )
    return gateway


def route(channel: str, currency: str, amount: int) -> list[str]:
    """The ids of the usable accounts of ``channel`` that accept this payment, in the order
    they are tried; ``ValidationFailed`` when none does (nothing can take the payment)."""
    return [gateway.account_id for gateway in routed_gateways(channel, currency, amount)]


def routed_gateways(channel: str, currency: str, amount: int) -> list[ChannelGateway]:
    """``route``, with each account's gateway (e.g. to ask whether it is a simulator)."""
    if channel not in FACTORIES:
        raise _unsupported(channel)
    gateways: dict[str, ChannelGateway] = {}

    def usable(account: ChannelAccount) -> bool:
        gateway = gateway_for(account)
        if gateway is not None:
            gateways[account.id] = gateway
        return gateway is not None

    routed = candidates(get_settings().channel_accounts, channel, currency, amount, usable)
    if routed:
        return [gateways[account.id] for account in routed]
    if channel not in available_channels():
        raise _unsupported(channel)
    raise ValidationFailed(
        f"no {channel} account takes {amount} {currency}",
        code="no_channel_account",
        param="instruments",
    )


def available_channels() -> list[str]:
    """The channels with at least one usable, enabled account, in the order CHANNEL_ACCOUNTS
    first names them."""
    found: list[str] = []
    for account in _listed_accounts():
        if account.enabled and account.channel not in found and gateway_for(account):
            found.append(account.channel)
    return found


def offered_channels(currency: str, amount: int) -> list[ChannelOffer]:
    """The channels routing accepts for this currency and amount (at least one usable account
    takes it), in the order CHANNEL_ACCOUNTS first names them."""
    offers: dict[str, ChannelOffer] = {}
    for account in _listed_accounts():
        if account.channel in offers or not account.accepts(currency, amount):
            continue
        gateway = gateway_for(account)
        if gateway is not None:
            offers[account.channel] = ChannelOffer(account.channel, gateway.next_action_type)
    return list(offers.values())


def clear_cache() -> None:
    """Forget the built gateways (tests)."""
    _build.cache_clear()


def _listed_accounts() -> list[ChannelAccount]:
    """Every account of CHANNEL_ACCOUNTS whose channel paycore speaks, in priority order."""
    accounts = parse_accounts(get_settings().channel_accounts)
    return [account for account in accounts if account.channel in FACTORIES]


def _unsupported(channel: str) -> ValidationFailed:
    return ValidationFailed(
        f"channel {channel!r} is not available; use one of {available_channels()}",
        code="unsupported_channel",
        param="instruments",
    )
