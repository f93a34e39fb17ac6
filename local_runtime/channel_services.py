"""Local channel services fill the channel account secrets the backend reads.

In AWS an operator puts each channel account's credentials in the secret
``{CHANNEL_SECRET_PREFIX}{account}`` (JSON). Locally, every channel service the runtime starts
(the sandbox today, each real channel's simulator tomorrow) lists the accounts it serves with
``accounts()``: dicts with ``account`` (the routing account id), ``channel`` and the credential
fields a real channel would give its merchant, plus ``"simulator": true``. ``fill_account_secrets``
writes each entry, without ``account`` and ``channel``, as the JSON of that account's secret,
creating the secret when the template does not declare it. Accounts no service lists keep the
template's ``{}``: not configured, never routed.

A new service plugs in with one line in ``LocalRuntime._channel_services``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from local_runtime.sandbox.server import SandboxServer

log = logging.getLogger("local_runtime")

_NOT_CREDENTIALS = ("account", "channel")


class ChannelService(Protocol):
    """A local channel service: the accounts it serves and their merchant credentials."""

    def accounts(self) -> list[dict[str, Any]]: ...


class SandboxAccounts:
    """The sandbox as a channel service: it serves any account id under ``/accounts/<id>``
    with its one shared secret, so it lists the sandbox accounts of the routing
    configuration."""

    def __init__(self, server: SandboxServer, secret: str, account_ids: Iterable[str]) -> None:
        self._server = server
        self._secret = secret
        self._account_ids = tuple(account_ids)

    def accounts(self) -> list[dict[str, Any]]:
        return [
            {
                "account": account_id,
                "channel": "sandbox",
                "base_url": f"{self._server.url}/accounts/{account_id}",
                "secret": self._secret,
                "simulator": True,
            }
            for account_id in self._account_ids
        ]


def channel_accounts(raw: str) -> list[dict[str, Any]]:
    """The routing configuration (``CHANNEL_ACCOUNTS`` JSON) as a list of account objects."""
    if not raw.strip():
        return []
    accounts = json.loads(raw)
    if not isinstance(accounts, list):
        raise ValueError("CHANNEL_ACCOUNTS must be a JSON list")
    return [account for account in accounts if isinstance(account, dict)]


def fill_account_secrets(
    secretsmanager: Any,
    prefix: str,
    services: Iterable[ChannelService],
    routed: Mapping[str, str] | None = None,
) -> list[str]:
    """Write every listed account's credentials into ``{prefix}{account}``; returns the
    account ids written. ``routed`` (account id -> channel, from the routing configuration)
    only serves a warning when a service names another channel than routing does."""
    written: list[str] = []
    for service in services:
        for entry in service.accounts():
            account = str(entry["account"])
            channel = str(entry["channel"])
            if routed is not None and routed.get(account, channel) != channel:
                log.warning(
                    "channel account %s is a %s account for routing but %s serves it",
                    account,
                    routed[account],
                    channel,
                )
            credentials = {k: v for k, v in entry.items() if k not in _NOT_CREDENTIALS}
            _put(secretsmanager, f"{prefix}{account}", json.dumps(credentials))
            written.append(account)
    return written


def _put(secretsmanager: Any, name: str, value: str) -> None:
    try:
        secretsmanager.put_secret_value(SecretId=name, SecretString=value)
    except secretsmanager.exceptions.ResourceNotFoundException:
        secretsmanager.create_secret(Name=name, SecretString=value)
