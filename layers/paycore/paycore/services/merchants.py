"""Merchant onboarding (platform admin) and the merchant's own API key roll."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from paycore.api_keys import hash_api_key, new_api_key
from paycore.clock import now, now_rfc3339, rfc3339
from paycore.dal.trade_store import TradeStore
from paycore.dal.webhook_endpoint_store import WebhookEndpointStore
from paycore.domain.models import DEFAULT_SETTLEMENT_DELAY_DAYS, Merchant
from paycore.ids import new_id
from paycore.ledger.fees import DEFAULT_FEE_RATE_BPS
from paycore.services.webhook_endpoints import first_endpoint
from paycore.webhooks import new_secret

# How long after a rolled key stops working DynamoDB may delete its item (its own expiry is
# checked on every use; time to live only tidies up).
_ROLLED_KEY_KEPT_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Onboarded:
    merchant: Merchant
    api_key: str = field(repr=False)
    webhook_secret: str = field(repr=False)

    def resource(self) -> dict[str, object]:
        """The merchant as onboarding answers it, without its credentials."""
        return self.merchant.resource()

    def credentials(self) -> dict[str, str]:
        """The API key and the webhook secret: shown in the onboarding answer only, never
        stored as they are (the key is kept as a hash, the secret sealed in the first
        webhook endpoint)."""
        return {"api_key": self.api_key, "webhook_secret": self.webhook_secret}


def onboard_merchant(
    store: TradeStore,
    name: str,
    webhook_url: str | None,
    *,
    fee_rate_bps: int = DEFAULT_FEE_RATE_BPS,
    settlement_delay_days: int = DEFAULT_SETTLEMENT_DELAY_DAYS,
) -> Onboarded:
    """A new merchant with its API key and, when it gave a ``webhook_url``, its first webhook
    endpoint there, signed with the onboarding ``webhook_secret``. Without a ``webhook_url``
    the secret is still made (the contract shows one) but signs nothing: the endpoints the
    merchant creates later each get their own."""
    api_key = new_api_key()
    webhook_secret = new_secret()
    merchant = Merchant(
        id=new_id("mch"),
        name=name,
        webhook_url=webhook_url,
        created_at=now_rfc3339(),
        fee_rate_bps=fee_rate_bps,
        settlement_delay_days=settlement_delay_days,
    )
    endpoints = WebhookEndpointStore.of(store)
    first = (
        [endpoints.endpoint_item(first_endpoint(merchant, webhook_secret))] if webhook_url else []
    )
    store.create_merchant(merchant, hash_api_key(api_key), webhook_endpoints=first)
    return Onboarded(merchant, api_key, webhook_secret)


@dataclass(frozen=True)
class RolledApiKey:
    api_key: str = field(repr=False)  # in clear: shown once, kept only as its hash
    previous_key_expires_at: str

    def resource(self) -> dict[str, str | None]:
        """The answer to store for idempotent replays: without the new key."""
        return {"api_key": None, "previous_key_expires_at": self.previous_key_expires_at}


def roll_api_key(
    store: TradeStore, merchant_id: str, caller_api_key: str, expires_in: int
) -> RolledApiKey:
    """A new API key for the merchant; its current key keeps working for ``expires_in``
    seconds (0: it stops now). The API Gateway authorizer caches answers for 60 seconds, so
    an expired key is refused at most 60 seconds after ``previous_key_expires_at``."""
    api_key = new_api_key()
    expires_at = now() + timedelta(seconds=expires_in)
    store.roll_api_key(
        merchant_id,
        hash_api_key(api_key),
        caller_key_hash=hash_api_key(caller_api_key),
        old_key_expires_at=rfc3339(expires_at),
        old_key_ttl=int(expires_at.timestamp()) + _ROLLED_KEY_KEPT_SECONDS,
    )
    return RolledApiKey(api_key, rfc3339(expires_at))
