"""The merchant accounts one simulator serves and the credentials WeChat Pay gives each.

A real merchant holds an ``appid`` bound to its ``mchid``, an API key pair whose public half it
registered with WeChat Pay (``merchant_serial_no`` names that registration), an APIv3 key (32
ASCII characters, for notification resources) and, in public-key mode, the WeChat Pay public key
(``PUB_KEY_ID_...``) that verifies what WeChat Pay signs. The simulator makes all of them fresh
for every instance and keeps both halves: it verifies with the merchant's public key and signs
with the WeChat Pay private key, and ``GET /_sim/accounts`` hands the merchant's half out.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from local_runtime.simulators.common.keys import (
    generate_rsa_key,
    private_key_pem_pkcs8,
    public_key_pem,
    random_alphanumeric,
    random_digits,
    random_serial_number,
)

CHANNEL = "wechatpay"
APIV3_KEY_LENGTH = 32


@dataclass(frozen=True)
class MerchantAccount:
    """One routing account: a WeChat Pay direct merchant (直连商户)."""

    account: str  # the routing account id paycore knows it by
    appid: str
    mchid: str
    merchant_key: rsa.RSAPrivateKey  # the merchant's API key pair (apiclient_key.pem)
    merchant_serial_no: str
    apiv3_key: str
    platform_key: rsa.RSAPrivateKey  # WeChat Pay's key pair for this merchant (public-key mode)
    public_key_id: str

    @property
    def merchant_public_key(self) -> rsa.RSAPublicKey:
        return self.merchant_key.public_key()

    def entry(self, api_base_url: str) -> dict[str, Any]:
        """The account as ``GET /_sim/accounts`` lists it (and its secret holds, minus
        ``account`` and ``channel``)."""
        return {
            "account": self.account,
            "channel": CHANNEL,
            "appid": self.appid,
            "mchid": self.mchid,
            "merchant_private_key": private_key_pem_pkcs8(self.merchant_key),
            "merchant_serial_no": self.merchant_serial_no,
            "apiv3_key": self.apiv3_key,
            "wechatpay_public_key": public_key_pem(self.platform_key),
            "wechatpay_public_key_id": self.public_key_id,
            "api_base_url": api_base_url,
            "simulator": True,
        }


def new_merchant_accounts(accounts: Iterable[str]) -> list[MerchantAccount]:
    """Fresh credentials for each routing account id (distinct mchids, never reused)."""
    names = list(accounts)
    if not names:
        raise ValueError("a simulator serves at least one account")
    if len(set(names)) != len(names):
        raise ValueError("account ids must be distinct")
    made: list[MerchantAccount] = []
    for name in names:
        if not name or len(name) > 64:
            raise ValueError("an account id is 1-64 characters")
        made.append(_new_account(name, taken=[account.mchid for account in made]))
    return made


def _new_account(account: str, *, taken: Sequence[str]) -> MerchantAccount:
    mchid = random_digits(10, first="1")
    while mchid in taken:
        mchid = random_digits(10, first="1")
    return MerchantAccount(
        account=account,
        appid=f"wx{secrets.token_hex(8)}",
        mchid=mchid,
        merchant_key=generate_rsa_key(),
        merchant_serial_no=random_serial_number(),
        apiv3_key=random_alphanumeric(APIV3_KEY_LENGTH),
        platform_key=generate_rsa_key(),
        public_key_id=f"PUB_KEY_ID_{random_digits(34, first='01')}",
    )
