"""Routing rules: which channel accounts may take a payment, in which order."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from paycore.channels.routing import accounts_of, candidates, find_account

ACCOUNTS = json.dumps(
    [
        {"id": "cny-small", "channel": "sandbox", "currencies": ["CNY"], "max_amount": 10000},
        {"id": "disabled", "channel": "sandbox", "enabled": False},
        {"id": "any-large", "channel": "sandbox", "min_amount": 5000},
        {"id": "usd", "channel": "sandbox", "currencies": ["USD"]},
        {"id": "other", "channel": "alipay"},
    ]
)


def _ids(raw: str, currency: str, amount: int, channel: str = "sandbox") -> list[str]:
    return [account.id for account in candidates(raw, channel, currency, amount)]


def test_accounts_are_tried_in_priority_order_among_those_whose_rules_accept() -> None:
    assert _ids(ACCOUNTS, "CNY", 100) == ["cny-small"]
    assert _ids(ACCOUNTS, "CNY", 6000) == ["cny-small", "any-large"]
    assert _ids(ACCOUNTS, "CNY", 20000) == ["any-large"]
    assert _ids(ACCOUNTS, "USD", 100) == ["usd"]
    assert _ids(ACCOUNTS, "EUR", 100) == []
    assert _ids(ACCOUNTS, "EUR", 100, channel="alipay") == ["other"]


def test_a_disabled_account_is_never_chosen() -> None:
    assert all("disabled" not in _ids(ACCOUNTS, c, a) for c in ("CNY", "USD") for a in (1, 10**6))


def test_without_configuration_no_channel_has_an_account() -> None:
    assert accounts_of("", "sandbox") == ()
    assert _ids("", "JPY", 1) == []


def test_only_usable_accounts_are_candidates_and_only_accepting_ones_are_asked() -> None:
    asked: list[str] = []

    def usable(account: object) -> bool:
        asked.append(account.id)  # type: ignore[attr-defined]
        return account.id != "cny-small"  # type: ignore[attr-defined]

    assert [a.id for a in candidates(ACCOUNTS, "sandbox", "CNY", 6000, usable)] == ["any-large"]
    assert asked == ["cny-small", "any-large"]


def test_a_disabled_account_is_still_found_by_id_for_its_payments() -> None:
    found = find_account(ACCOUNTS, "sandbox", "disabled")
    assert found is not None and not found.enabled
    assert find_account(ACCOUNTS, "alipay", "disabled") is None


@pytest.mark.parametrize(
    "raw",
    [
        '[{"id": "a", "channel": "sandbox"}, {"id": "a", "channel": "sandbox"}]',
        '[{"id": "a b", "channel": "sandbox"}]',
        '[{"id": "a", "channel": "sandbox", "weight": 3}]',
        '{"id": "a"}',
    ],
)
def test_a_bad_configuration_fails_loudly(raw: str) -> None:
    with pytest.raises((ValidationError, ValueError)):
        candidates(raw, "sandbox", "CNY", 1)
