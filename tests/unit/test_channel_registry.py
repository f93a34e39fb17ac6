"""The channel registry: which channels are offered, and a sandbox gateway that works.

Secrets Manager is moto's; the sandbox channel is a real ``SandboxServer``, so a gateway the
registry builds with the wrong secret would fail to create an order here.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from local_runtime.sandbox.server import SandboxServer
from paycore.channels.base import CreateChannelOrder
from paycore.channels.registry import available_channels, get_gateway
from paycore.errors import ServiceUnavailable, ValidationFailed

SECRET = "sandbox-secret-from-secrets-manager"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    server = SandboxServer("127.0.0.1", 0, SECRET, notify_schedule=())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def secret_id(reset_paycore_caches: None) -> Iterator[str]:
    with mock_aws():
        client = boto3.client("secretsmanager")
        yield str(client.create_secret(Name="sandbox-channel", SecretString=SECRET)["ARN"])


@pytest.fixture
def sandbox_enabled(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, secret_id: str
) -> SandboxServer:
    monkeypatch.setenv("SANDBOX_CHANNEL_URL", sandbox.url)
    monkeypatch.setenv("SANDBOX_CHANNEL_SECRET_ID", secret_id)
    return sandbox


@pytest.fixture
def sandbox_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDBOX_CHANNEL_URL", raising=False)
    monkeypatch.delenv("SANDBOX_CHANNEL_SECRET_ID", raising=False)


def test_the_sandbox_is_offered_when_configured(sandbox_enabled: SandboxServer) -> None:
    assert available_channels() == ["sandbox"]


def test_the_sandbox_gateway_signs_with_the_secret_from_secrets_manager(
    sandbox_enabled: SandboxServer,
) -> None:
    gateway = get_gateway("sandbox")

    order = gateway.create_order(
        CreateChannelOrder(
            out_trade_no=f"pay_{secrets.token_hex(8)}",
            amount=100,
            currency="JPY",
            subject="Matcha",
            notify_url="http://127.0.0.1:9/callbacks/sandbox",
            expires_at=(datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
        )
    )

    assert gateway.name == "sandbox"
    assert order.next_action.url.startswith(f"{sandbox_enabled.url}/pay/")


@pytest.mark.usefixtures("sandbox_disabled")
def test_without_a_url_no_channel_is_offered() -> None:
    assert available_channels() == []
    with pytest.raises(ValidationFailed) as refused:
        get_gateway("sandbox")
    assert (refused.value.code, refused.value.param) == ("unsupported_channel", "instruments")


@pytest.mark.usefixtures("sandbox_enabled")
@pytest.mark.parametrize("name", ["alipay", "Sandbox", ""])
def test_an_unknown_channel_is_unsupported(name: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        get_gateway(name)

    assert (refused.value.code, refused.value.param) == ("unsupported_channel", "instruments")


def test_a_secret_that_cannot_be_read_makes_the_channel_unavailable(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, secret_id: str
) -> None:
    monkeypatch.setenv("SANDBOX_CHANNEL_URL", sandbox.url)
    monkeypatch.setenv("SANDBOX_CHANNEL_SECRET_ID", "no-such-secret")

    with pytest.raises(ServiceUnavailable) as failed:
        get_gateway("sandbox")

    assert SECRET not in str(failed.value)


def test_an_enabled_sandbox_without_a_secret_id_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer
) -> None:
    monkeypatch.setenv("SANDBOX_CHANNEL_URL", sandbox.url)
    monkeypatch.delenv("SANDBOX_CHANNEL_SECRET_ID", raising=False)

    with pytest.raises(ServiceUnavailable, match="SANDBOX_CHANNEL_SECRET_ID"):
        get_gateway("sandbox")
