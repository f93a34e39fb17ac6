"""Merchant onboarding (platform admin)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from paycore.clock import now_rfc3339
from paycore.dal.trade_store import TradeStore
from paycore.domain.models import Merchant
from paycore.ids import new_id
from paycore.webhooks import new_secret

API_KEY_PREFIX = "sk_live_"


def hash_api_key(api_key: str) -> str:
    """Keys carry 256 random bits, so a plain SHA-256 is a safe one-way lookup key."""
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True)
class Onboarded:
    merchant: Merchant
    api_key: str

    def resource(self) -> dict[str, object]:
        """The merchant as onboarding answers it, without its credentials."""
        return self.merchant.resource()

    def credentials(self) -> dict[str, str]:
        """The API key and the webhook secret: shown in the onboarding answer only, never
        stored as they are (the key is kept as a hash)."""
        return {"api_key": self.api_key, "webhook_secret": self.merchant.webhook_secret}


def onboard_merchant(store: TradeStore, name: str, webhook_url: str | None) -> Onboarded:
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    merchant = Merchant(
        id=new_id("mch"),
        name=name,
        webhook_url=webhook_url,
        webhook_secret=new_secret(),
        created_at=now_rfc3339(),
    )
    store.create_merchant(merchant, hash_api_key(api_key))
    return Onboarded(merchant, api_key)
