"""The simulated Alipay merchant accounts and their credentials (fresh per simulator).

Each routing account is one Alipay app of one merchant, in public-key mode:

- ``app_id`` (16 digits, ``2021...``) and the merchant's ``pid`` (``2088`` + 12 digits, the
  seller id in notifications and the account in the bill);
- the app key pair: the merchant signs requests with the private key (handed out as
  ``app_private_key``, PKCS#1 PEM), Alipay verifies with the public key it keeps;
- Alipay's key pair for this app: Alipay signs answers, notifications and returns with the
  private key it keeps; the merchant verifies with ``alipay_public_key`` (PEM).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from local_runtime.simulators.common.keys import (
    generate_rsa_key,
    private_key_pem_pkcs1,
    public_key_pem,
    random_digits,
)

CHANNEL = "alipay"
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class AlipayAccount:
    account: str  # the routing account id
    app_id: str
    pid: str
    app_key: rsa.RSAPrivateKey  # the merchant's: only its public half is used here
    alipay_key: rsa.RSAPrivateKey  # Alipay's, for this app

    @property
    def app_public_key(self) -> rsa.RSAPublicKey:
        return self.app_key.public_key()

    @property
    def bill_account(self) -> str:
        """The account as the bill names it: the pid and ``0156`` (the CNY account)."""
        return f"{self.pid}0156"

    def entry(self, base_url: str) -> dict[str, Any]:
        """The ``/_sim/accounts`` entry: what a merchant needs to act as this app."""
        return {
            "account": self.account,
            "channel": CHANNEL,
            "simulator": True,
            "app_id": self.app_id,
            "app_private_key": private_key_pem_pkcs1(self.app_key),
            "alipay_public_key": public_key_pem(self.alipay_key),
            "gateway_url": f"{base_url}/gateway.do",
        }


def new_accounts(accounts: Sequence[str]) -> list[AlipayAccount]:
    """An app with fresh keys for each routing account id (1-64 of ``[A-Za-z0-9_-]``)."""
    if isinstance(accounts, str) or not accounts:
        raise ValueError("accounts: give one or more routing account ids")
    if len(set(accounts)) != len(accounts):
        raise ValueError("accounts: the ids must be distinct")
    made: list[AlipayAccount] = []
    app_ids: set[str] = set()
    for account in accounts:
        if not _ACCOUNT_ID.match(account):
            raise ValueError(f"accounts: {account!r} is not 1-64 of [A-Za-z0-9_-]")
        app_id = random_digits(16, first="2021")
        while app_id in app_ids:
            app_id = random_digits(16, first="2021")
        app_ids.add(app_id)
        made.append(
            AlipayAccount(
                account=account,
                app_id=app_id,
                pid=random_digits(16, first="2088"),
                app_key=generate_rsa_key(),
                alipay_key=generate_rsa_key(),
            )
        )
    return made
