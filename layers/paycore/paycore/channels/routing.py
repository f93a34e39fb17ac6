"""Channel accounts and the rules that pick one for a payment (configuration, not code).

A channel can have several merchant accounts (a primary and a backup, one per currency, one
for large amounts...). ``CHANNEL_ACCOUNTS`` lists them in priority order as JSON::

    [{"id": "sandbox-primary", "channel": "sandbox", "enabled": true,
      "currencies": ["CNY", "USD"], "min_amount": 1, "max_amount": 10000000},
     {"id": "sandbox-backup", "channel": "sandbox"}]

``currencies``, ``min_amount`` and ``max_amount`` are optional (null = no limit); ``enabled``
defaults to true. ``candidates`` returns, in order, the accounts whose rules accept a payment
and that are usable (the registry passes "its credentials are configured"); the payment tries
them one after the other when creating the channel order fails with an error that proves
nothing was created (failover). Without configuration there is no account, hence no channel.

To retire an account, disable it (``"enabled": false``) until its payments and refunds are
final: a disabled account takes no new payment but is still queried, refunded and notified;
an account removed from the list gets no notification any more (its callback route is 404).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter


class ChannelAccount(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    channel: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    enabled: bool = True
    currencies: tuple[str, ...] | None = None
    min_amount: Annotated[int, Field(ge=1)] | None = None
    max_amount: Annotated[int, Field(ge=1)] | None = None

    def accepts(self, currency: str, amount: int) -> bool:
        return (
            self.enabled
            and (self.currencies is None or currency in self.currencies)
            and (self.min_amount is None or amount >= self.min_amount)
            and (self.max_amount is None or amount <= self.max_amount)
        )


_ACCOUNTS = TypeAdapter(tuple[ChannelAccount, ...])


@lru_cache(maxsize=8)
def parse_accounts(raw: str) -> tuple[ChannelAccount, ...]:
    """The configured accounts; a configuration error fails loudly (at the first payment)."""
    if not raw.strip():
        return ()
    accounts = _ACCOUNTS.validate_json(raw)
    ids = [account.id for account in accounts]
    if len(ids) != len(set(ids)):
        raise ValueError("CHANNEL_ACCOUNTS: account ids must be unique")
    return accounts


def accounts_of(raw: str, channel: str) -> tuple[ChannelAccount, ...]:
    """Every account of ``channel`` in priority order, disabled ones included."""
    return tuple(account for account in parse_accounts(raw) if account.channel == channel)


def find_account(raw: str, channel: str, account_id: str) -> ChannelAccount | None:
    """The configured account ``account_id`` of ``channel``, if the list has it."""
    for account in accounts_of(raw, channel):
        if account.id == account_id:
            return account
    return None


def candidates(
    raw: str,
    channel: str,
    currency: str,
    amount: int,
    usable: Callable[[ChannelAccount], bool] = lambda account: True,
) -> list[ChannelAccount]:
    """The accounts that may take this payment, in the order they are tried. ``usable`` is
    asked only about accounts whose rules accept the payment."""
    return [
        account
        for account in accounts_of(raw, channel)
        if account.accepts(currency, amount) and usable(account)
    ]
