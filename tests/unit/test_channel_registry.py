"""The channel registry: a factory per channel, imported lazily; each account's credentials from
its own secret; only configured accounts are routed, offered and take notifications.

Secrets Manager is moto's; the sandbox channel is a real ``SandboxServer``, so a gateway the
registry builds with the wrong credentials would fail to create an order here.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local_runtime.sandbox.server import SandboxServer
from paycore.channels.base import CreateChannelOrder, NextActionType
from paycore.channels.registry import (
    FACTORIES,
    available_channels,
    callback_gateway,
    get_gateway,
    offered_channels,
    route,
    routed_gateways,
)
from paycore.errors import NotFound, ServiceUnavailable, ValidationFailed
from tests.conftest import clear_paycore_caches
from tests.support import ROOT

SECRET = "sandbox-secret-from-secrets-manager"
PREFIX = "unit/channel-accounts/"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer("127.0.0.1", 0, SECRET, notify_schedule=())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def secretsmanager(reset_paycore_caches: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("CHANNEL_SECRET_PREFIX", PREFIX)
    with mock_aws():
        yield boto3.client("secretsmanager")


def put(client: Any, account: str, value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    try:
        client.put_secret_value(SecretId=PREFIX + account, SecretString=text)
    except client.exceptions.ResourceNotFoundException:
        client.create_secret(Name=PREFIX + account, SecretString=text)
    clear_paycore_caches()


def accounts(monkeypatch: pytest.MonkeyPatch, *listed: dict[str, Any]) -> None:
    monkeypatch.setenv("CHANNEL_ACCOUNTS", json.dumps(list(listed)))


def sandbox_credentials(sandbox: SandboxServer, account: str, **more: Any) -> dict[str, Any]:
    return {"base_url": f"{sandbox.url}/accounts/{account}", "secret": SECRET, **more}


def order() -> CreateChannelOrder:
    return CreateChannelOrder(
        out_trade_no=f"pay_{secrets.token_hex(8)}",
        amount=100,
        currency="JPY",
        subject="Matcha",
        notify_url="http://127.0.0.1:9/callbacks/sandbox/x",
        expires_at=(datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
    )


@pytest.fixture
def two_sandbox_accounts(
    monkeypatch: pytest.MonkeyPatch, secretsmanager: Any, sandbox: SandboxServer
) -> SandboxServer:
    accounts(
        monkeypatch,
        {"id": "sbx-a", "channel": "sandbox", "currencies": ["JPY"]},
        {"id": "sbx-b", "channel": "sandbox"},
        {"id": "ali", "channel": "alipay"},
    )
    put(secretsmanager, "sbx-a", sandbox_credentials(sandbox, "sbx-a"))
    put(secretsmanager, "sbx-b", sandbox_credentials(sandbox, "sbx-b"))
    put(secretsmanager, "ali", {})
    return sandbox


# -- the table and its laziness ------------------------------------------------------------------


def test_the_registry_has_a_factory_per_channel() -> None:
    assert set(FACTORIES) == {"sandbox", "alipay", "wechatpay", "stripe"}


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    env = {"PYTHONPATH": f"{ROOT / 'layers' / 'paycore'}:{ROOT}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    return set(done.stdout.split())


def test_importing_the_registry_imports_no_adapter_nor_sdk() -> None:
    loaded = _modules_after("import paycore.channels.registry")

    assert "paycore.channels.registry" in loaded
    assert not {m for m in loaded if m.startswith(("paycore.channels.sandbox", "stripe"))}
    assert not {m for m in loaded if m.split(".")[-1] in ("alipay", "wechatpay", "stripe")}


def test_a_factory_imports_its_own_adapter_only_when_called() -> None:
    loaded = _modules_after(
        "from paycore.channels.registry import FACTORIES\n"
        "from paycore.config import Settings\n"
        "FACTORIES['sandbox']('a', {'base_url': 'http://127.0.0.1:9', 'secret': 's'}, Settings())"
    )

    assert "paycore.channels.sandbox.adapter" in loaded
    assert not {m for m in loaded if m.startswith(("stripe", "paycore.channels.stripe"))}


# -- credentials from each account's secret ------------------------------------------------------


@pytest.mark.usefixtures("two_sandbox_accounts")
def test_a_configured_account_signs_with_the_secret_from_its_own_secret(
    sandbox: SandboxServer,
) -> None:
    gateway = get_gateway("sandbox", "sbx-b")

    created = gateway.create_order(order())

    assert (gateway.name, gateway.account_id, gateway.simulator) == ("sandbox", "sbx-b", True)
    assert created.next_action.url is not None
    assert created.next_action.url.startswith(f"{sandbox.url}/pay/")


@pytest.mark.usefixtures("two_sandbox_accounts")
def test_only_configured_accounts_are_routed_and_offered() -> None:
    assert available_channels() == ["sandbox"]
    assert route("sandbox", "JPY", 100) == ["sbx-a", "sbx-b"]
    assert route("sandbox", "CNY", 100) == ["sbx-b"]
    assert [g.account_id for g in routed_gateways("sandbox", "JPY", 1)] == ["sbx-a", "sbx-b"]
    with pytest.raises(ValidationFailed) as refused:
        route("alipay", "CNY", 100)  # its secret is {}
    assert (refused.value.code, refused.value.param) == ("unsupported_channel", "instruments")


def test_routing_skips_an_account_until_its_secret_is_filled(
    two_sandbox_accounts: SandboxServer, secretsmanager: Any
) -> None:
    put(secretsmanager, "sbx-a", {})
    assert route("sandbox", "JPY", 100) == ["sbx-b"]

    put(secretsmanager, "sbx-a", sandbox_credentials(two_sandbox_accounts, "sbx-a"))
    assert route("sandbox", "JPY", 100) == ["sbx-a", "sbx-b"]


@pytest.mark.usefixtures("two_sandbox_accounts")
def test_channels_are_offered_per_currency_and_amount() -> None:
    [offer] = offered_channels("JPY", 100)

    assert offer.resource() == {
        "object": "channel",
        "channel": "sandbox",
        "next_action_type": "redirect",
    }
    assert offer.next_action_type is NextActionType.REDIRECT


def test_an_account_that_takes_nothing_here_is_not_offered(
    monkeypatch: pytest.MonkeyPatch, secretsmanager: Any, sandbox: SandboxServer
) -> None:
    accounts(monkeypatch, {"id": "usd", "channel": "sandbox", "currencies": ["USD"]})
    put(secretsmanager, "usd", sandbox_credentials(sandbox, "usd"))

    assert offered_channels("CNY", 100) == []
    assert [o.channel for o in offered_channels("USD", 100)] == ["sandbox"]
    with pytest.raises(ValidationFailed) as refused:
        route("sandbox", "CNY", 100)
    assert refused.value.code == "no_channel_account"


def test_a_disabled_account_is_not_routed_but_still_serves_its_payments(
    monkeypatch: pytest.MonkeyPatch, secretsmanager: Any, sandbox: SandboxServer
) -> None:
    accounts(monkeypatch, {"id": "old", "channel": "sandbox", "enabled": False})
    put(secretsmanager, "old", sandbox_credentials(sandbox, "old"))

    assert available_channels() == []
    assert offered_channels("CNY", 100) == []
    assert get_gateway("sandbox", "old").account_id == "old"
    assert callback_gateway("sandbox", "old").account_id == "old"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("{}", "is {}"),
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ({"base_url": "http://127.0.0.1:9"}, "secret: missing"),
        ({"base_url": "ftp://x", "secret": SECRET}, "base_url: value_error"),
        ({"base_url": "http://127.0.0.1:9", "secret": SECRET, "secert": SECRET}, "secert"),
        ({"base_url": "http://127.0.0.1:9", "secret": SECRET, "simulator": "yes"}, "simulator"),
    ],
)
def test_an_unusable_secret_is_not_configured_and_the_warning_shows_no_value(
    monkeypatch: pytest.MonkeyPatch,
    secretsmanager: Any,
    caplog: pytest.LogCaptureFixture,
    value: Any,
    reason: str,
) -> None:
    accounts(monkeypatch, {"id": "sbx", "channel": "sandbox"})
    put(secretsmanager, "sbx", value)

    with caplog.at_level(logging.WARNING):
        assert available_channels() == []
        with pytest.raises(ServiceUnavailable) as unavailable:
            get_gateway("sandbox", "sbx")

    assert unavailable.value.code == "channel_account_not_configured"
    assert "channel account sbx is not configured" in caplog.text
    assert reason in caplog.text
    assert SECRET not in caplog.text


def test_a_missing_secret_is_not_configured_and_asked_once(
    monkeypatch: pytest.MonkeyPatch, secretsmanager: Any, caplog: pytest.LogCaptureFixture
) -> None:
    accounts(monkeypatch, {"id": "ghost", "channel": "sandbox"})

    with caplog.at_level(logging.WARNING):
        assert available_channels() == []
        assert available_channels() == []

    assert caplog.text.count("channel account ghost is not configured") == 1


def test_without_a_secret_prefix_nothing_is_configured(
    monkeypatch: pytest.MonkeyPatch, two_sandbox_accounts: SandboxServer
) -> None:
    monkeypatch.delenv("CHANNEL_SECRET_PREFIX")

    assert available_channels() == []


def test_a_secret_that_cannot_be_read_makes_the_channel_unavailable(
    monkeypatch: pytest.MonkeyPatch, secretsmanager: Any, sandbox: SandboxServer
) -> None:
    accounts(monkeypatch, {"id": "sbx", "channel": "sandbox"})
    put(secretsmanager, "sbx", sandbox_credentials(sandbox, "sbx"))
    secretsmanager.delete_secret(SecretId=PREFIX + "sbx")  # marked for deletion: unreadable
    clear_paycore_caches()

    with pytest.raises(ServiceUnavailable) as failed:
        get_gateway("sandbox", "sbx")

    assert failed.value.code == "secret_unavailable"
    assert SECRET not in str(failed.value)


def test_credentials_for_a_channel_without_an_adapter_in_this_build_are_not_configured(
    monkeypatch: pytest.MonkeyPatch, secretsmanager: Any, caplog: pytest.LogCaptureFixture
) -> None:
    accounts(monkeypatch, {"id": "ali", "channel": "alipay"})
    put(secretsmanager, "ali", {"app_id": "2021000000000000"})
    # A build whose alipay adapter cannot be imported (None in sys.modules: ImportError).
    monkeypatch.setitem(sys.modules, "paycore.channels.alipay.adapter", None)

    with caplog.at_level(logging.WARNING):
        assert available_channels() == []

    assert "no working alipay adapter" in caplog.text


# -- lookups by name ---------------------------------------------------------------------------


@pytest.mark.usefixtures("two_sandbox_accounts")
@pytest.mark.parametrize("name", ["paypal", "Sandbox", ""])
def test_an_unknown_channel_is_unsupported(name: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        get_gateway(name)
    assert (refused.value.code, refused.value.param) == ("unsupported_channel", "instruments")
    with pytest.raises(ValidationFailed):
        route(name, "CNY", 1)


@pytest.mark.usefixtures("two_sandbox_accounts")
def test_without_an_account_the_first_configured_one_serves() -> None:
    assert get_gateway("sandbox").account_id == "sbx-a"


def test_an_account_removed_from_the_list_still_serves_its_payments(
    two_sandbox_accounts: SandboxServer, secretsmanager: Any
) -> None:
    put(secretsmanager, "retired", sandbox_credentials(two_sandbox_accounts, "retired"))

    assert get_gateway("sandbox", "retired").account_id == "retired"
    with pytest.raises(NotFound):
        callback_gateway("sandbox", "retired")  # but takes no notification any more


@pytest.mark.usefixtures("two_sandbox_accounts")
@pytest.mark.parametrize(
    ("channel", "account"), [("sandbox", "nobody"), ("alipay", "ali"), ("sandbox", "ali")]
)
def test_a_callback_needs_a_listed_and_configured_account_of_that_channel(
    channel: str, account: str
) -> None:
    with pytest.raises(NotFound) as missing:
        callback_gateway(channel, account)
    assert missing.value.code == "callback_not_found"


def test_an_adapter_refusing_credentials_leaves_the_account_unconfigured_without_quoting_them(
    monkeypatch: pytest.MonkeyPatch, secretsmanager: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from paycore.channels import registry

    def refuses(account_id: str, credentials: Any, settings: Any) -> Any:
        """An adapter whose key loading fails, as cryptography's would on a bad PEM."""
        raise ValueError(f"cannot load key {credentials['private_key']}")

    monkeypatch.setattr(registry, "FACTORIES", {**registry.FACTORIES, "stripe": refuses})
    accounts(monkeypatch, {"id": "stripe-main", "channel": "stripe"})
    put(secretsmanager, "stripe-main", {"private_key": SECRET})

    with caplog.at_level(logging.WARNING):
        assert available_channels() == []

    assert "the stripe adapter refused them (ValueError)" in caplog.text
    assert SECRET not in caplog.text
