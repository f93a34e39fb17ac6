"""An Alipay account's credentials, as its Secrets Manager secret holds them (JSON)::

    {"app_id": "2021000000000001",
     "app_private_key": "-----BEGIN RSA PRIVATE KEY-----\\n...",
     "alipay_public_key": "-----BEGIN PUBLIC KEY-----\\n...",
     "gateway_url": "https://openapi.alipay.com/gateway.do",
     "simulator": false}

exactly the fields of the Alipay simulator's ``GET /_sim/accounts`` entries minus ``account``
and ``channel``. ``app_private_key`` is the app's private key (the merchant signs requests with
it); ``alipay_public_key`` is Alipay's public key for the app (it verifies answers,
notifications and returns). Both are ``SecretStr`` (the public one too: no key of an account is
ever shown). ``gateway_url`` defaults to Alipay's production gateway; ``simulator`` (default
false) marks the local simulator, the only kind of account that takes ``simulate``.

Keys are accepted as PEM (PKCS#1 ``RSA PRIVATE KEY`` or PKCS#8 ``PRIVATE KEY``; ``PUBLIC KEY``
or ``RSA PUBLIC KEY``) and as the one-line base64 text without header that Alipay's key tool
and open-platform console hand out (what merchants paste). ``load_keys()`` loads them (once,
when the gateway is built); a key that does not load raises a plain ``ValueError`` that quotes
no key, and the registry then treats the account as not configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

from paycore.channels.alipay.signing import load_private_key, load_public_key

PRODUCTION_GATEWAY_URL = "https://openapi.alipay.com/gateway.do"


@dataclass(frozen=True)
class AlipayKeys:
    """The loaded keys of one account (never shown by ``repr``)."""

    app_private_key: rsa.RSAPrivateKey = field(repr=False)
    alipay_public_key: rsa.RSAPublicKey = field(repr=False)


class AlipaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    app_id: Annotated[str, StringConstraints(pattern=r"^[0-9]{16}$")]
    app_private_key: Annotated[SecretStr, Field(min_length=1, max_length=16384)]
    alipay_public_key: Annotated[SecretStr, Field(min_length=1, max_length=16384)]
    gateway_url: Annotated[str, Field(max_length=2048)] = PRODUCTION_GATEWAY_URL
    simulator: bool = False

    @field_validator("gateway_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("must have no query or fragment (the adapter writes the query)")
        return value

    def load_keys(self) -> AlipayKeys:
        """The account's keys; ``ValueError`` (naming the field, never the key) when one does
        not load as an RSA key of at least 2048 bits."""
        try:
            private = load_private_key(self.app_private_key.get_secret_value())
        except ValueError as exc:
            raise ValueError(f"app_private_key does not load: {exc}") from None
        try:
            public = load_public_key(self.alipay_public_key.get_secret_value())
        except ValueError as exc:
            raise ValueError(f"alipay_public_key does not load: {exc}") from None
        return AlipayKeys(private, public)
