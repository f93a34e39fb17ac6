"""A WeChat Pay account's credentials, as its Secrets Manager secret holds them (JSON)::

    {"appid": "wx8888888888888888", "mchid": "1900000109",
     "merchant_private_key": "-----BEGIN PRIVATE KEY-----\\n...",
     "merchant_serial_no": "444F4864EA9B34415...",
     "apiv3_key": "<32 characters>",
     "wechatpay_public_key": "-----BEGIN PUBLIC KEY-----\\n...",
     "wechatpay_public_key_id": "PUB_KEY_ID_0114232134912410000000000000",
     "api_base_url": "https://api.mch.weixin.qq.com", "simulator": false}

The fields are exactly those of the WeChat Pay simulator's ``GET /_sim/accounts`` entries minus
``account`` and ``channel`` (local_runtime/simulators/README.md). ``merchant_private_key`` is the
merchant's API key (``apiclient_key.pem``, PKCS#8 or PKCS#1; a key pasted on one line, or with
its line breaks written as ``\\n``, loads too) whose certificate serial is
``merchant_serial_no``; ``wechatpay_public_key`` and its id verify everything WeChat Pay signs
(public-key mode: no platform certificates); ``apiv3_key`` decrypts notification resources.
Every key is a ``SecretStr``. The keys are loaded once, here: one that does not load makes the
model refuse the credentials (a ``ValueError``, so the registry treats the account as not
configured). ``api_base_url`` defaults to WeChat Pay's production API; ``simulator`` says the
account is a local simulator (only those take ``simulate`` switches).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    StringConstraints,
    field_validator,
)

from paycore.channels.wechatpay.signing import (
    APIV3_KEY_BYTES,
    load_private_key,
    load_public_key,
)

PRODUCTION_API_BASE_URL = "https://api.mch.weixin.qq.com"


class WechatPaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    appid: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,32}$")]
    mchid: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,32}$")]
    merchant_private_key: Annotated[SecretStr, Field(min_length=1)]
    merchant_serial_no: Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{1,64}$")]
    apiv3_key: SecretStr
    wechatpay_public_key: Annotated[SecretStr, Field(min_length=1)]
    wechatpay_public_key_id: Annotated[
        str, StringConstraints(pattern=r"^PUB_KEY_ID_[0-9A-Za-z]{1,64}$")
    ]
    api_base_url: Annotated[str, Field(max_length=2048)] = PRODUCTION_API_BASE_URL
    simulator: bool = False

    _merchant_key: rsa.RSAPrivateKey = PrivateAttr()
    _wechatpay_key: rsa.RSAPublicKey = PrivateAttr()

    @field_validator("api_base_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or a fragment")
        return value.rstrip("/")

    @field_validator("apiv3_key")
    @classmethod
    def _apiv3_key_length(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if not text.isascii() or len(text) != APIV3_KEY_BYTES:
            raise ValueError(f"must be {APIV3_KEY_BYTES} ASCII characters")
        return value

    def model_post_init(self, context: Any, /) -> None:
        """Load both keys once (ValueError, quoting no key, when one does not load)."""
        self._merchant_key = load_private_key(self.merchant_private_key.get_secret_value())
        self._wechatpay_key = load_public_key(self.wechatpay_public_key.get_secret_value())

    @property
    def merchant_key(self) -> rsa.RSAPrivateKey:
        return self._merchant_key

    @property
    def wechatpay_key(self) -> rsa.RSAPublicKey:
        return self._wechatpay_key

    @property
    def apiv3_key_bytes(self) -> bytes:
        return self.apiv3_key.get_secret_value().encode("ascii")
