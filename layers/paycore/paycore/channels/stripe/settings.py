"""A Stripe account's credentials, as its Secrets Manager secret holds them (JSON)::

    {"secret_key": "sk_live_...", "webhook_secret": "whsec_...",
     "api_base_url": "https://api.stripe.com", "simulator": false}

The field names are the Stripe simulator's ``GET /_sim/accounts`` entries minus ``account``
and ``channel``. ``secret_key`` is the account's secret (``sk_``) or restricted (``rk_``) API
key; ``webhook_secret`` is the signing secret of the webhook endpoint registered for this
account's callback route (``/callbacks/stripe/{account}``). ``api_base_url`` defaults to
Stripe's production API and must be https unless ``simulator`` is true (a local simulator
speaks plain http). ``simulator`` (default false) marks the local simulator, the only kind of
account that takes the ``simulate`` switches.

Every key is a ``SecretStr``; no validation message quotes a value.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

PRODUCTION_API_BASE_URL = "https://api.stripe.com"
_KEY_PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_")
_WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


class StripeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    secret_key: Annotated[SecretStr, Field(min_length=1, max_length=1024)]
    webhook_secret: Annotated[SecretStr, Field(min_length=1, max_length=1024)]
    api_base_url: Annotated[str, Field(max_length=2048)] = PRODUCTION_API_BASE_URL
    simulator: bool = False

    @field_validator("secret_key")
    @classmethod
    def _api_key(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if not text.startswith(_KEY_PREFIXES) or not text.isascii() or text != text.strip():
            raise ValueError("must be a Stripe secret or restricted API key (sk_... or rk_...)")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _signing_secret(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if not text.startswith(_WEBHOOK_SECRET_PREFIX) or len(text) <= len(_WEBHOOK_SECRET_PREFIX):
            raise ValueError("must be a webhook endpoint's signing secret (whsec_...)")
        if not text.isascii() or text != text.strip():
            raise ValueError("must be a webhook endpoint's signing secret (whsec_...)")
        return value

    @field_validator("api_base_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or a fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _https_unless_simulator(self) -> StripeSettings:
        if not self.simulator and urlsplit(self.api_base_url).scheme != "https":
            raise ValueError("api_base_url must be https for an account that is not a simulator")
        return self
