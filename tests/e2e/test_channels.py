"""Channel accounts end to end: the local runtime fills each sandbox account's secret from the
sandbox, routing offers only configured channels, and each account is notified at its own
callback route."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import requests

from local_runtime.runtime import LocalRuntime
from tests.e2e.conftest import Merchant, buyer

PREFIX = "paycore-local/channel-accounts/"


def _secret(runtime: LocalRuntime, account: str) -> Any:
    value = runtime.client("secretsmanager").get_secret_value(SecretId=PREFIX + account)
    return json.loads(value["SecretString"])


def test_the_local_channel_services_fill_every_accounts_secret(runtime: LocalRuntime) -> None:
    """The sandbox fills its accounts' secrets, and each real channel's simulator fills its
    account's with the credentials it lists at /_sim/accounts."""
    assert sorted(runtime.channel_accounts_filled) == sorted(
        ["sandbox-primary", "sandbox-backup", "alipay-main", "wechatpay-main", "stripe-main"]
    )
    for account in ("sandbox-primary", "sandbox-backup"):
        assert _secret(runtime, account) == {
            "base_url": f"{runtime.sandbox_url}/accounts/{account}",
            "secret": runtime.profile.sandbox_secret,
            "simulator": True,
        }
    for channel, url in runtime.simulator_urls.items():
        (entry,) = requests.get(f"{url}/_sim/accounts", timeout=10).json()["data"]
        assert entry["account"] == f"{channel}-main"
        credentials = {k: v for k, v in entry.items() if k not in ("account", "channel")}
        assert _secret(runtime, entry["account"]) == credentials


def test_every_configured_channel_is_offered_as_routing_allows(
    onboard: Callable[..., Merchant],
) -> None:
    shop = onboard()

    def offered(currency: str) -> list[tuple[str, str]]:
        answer = shop.request("GET", "/v1/channels", params={"currency": currency, "amount": 1999})
        assert answer.status_code == 200, answer.text
        assert answer.json()["object"] == "list" and answer.json()["has_more"] is False
        return [(c["channel"], c["next_action_type"]) for c in answer.json()["data"]]

    assert offered("CNY") == [
        ("sandbox", "redirect"),
        ("alipay", "redirect"),
        ("wechatpay", "qr_code"),
        ("stripe", "redirect"),
    ]
    # Alipay and WeChat Pay accounts take yuan only.
    assert offered("USD") == [("sandbox", "redirect"), ("stripe", "redirect")]
    refused = shop.pay(
        shop.create_order("CH-USD-1", currency="USD")["id"],
        [{"type": "channel", "channel": "wechatpay"}],
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "no_channel_account"


def test_a_payment_is_notified_at_its_accounts_own_callback_route(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    order = shop.create_order("CH-ROUTE-1")
    payment = shop.pay(order["id"]).json()
    account = payment["channel_account"]

    buyer(payment["next_action"]["url"], "pay")

    assert shop.wait_for_payment(payment["id"])["status"] == "succeeded"
    view = requests.get(
        f"{runtime.sandbox_url}/__sandbox/orders/{payment['id']}", timeout=10
    ).json()
    assert view["account"] == account
    assert view["notify_url"] == f"{runtime.api_url}/callbacks/sandbox/{account}"
    assert [n["state"] for n in view["notifications"]] == ["DELIVERED"]
