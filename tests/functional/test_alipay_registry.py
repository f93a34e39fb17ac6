"""The registry builds the Alipay adapter from an account's Secrets Manager secret (moto) holding
exactly what the simulator's ``/_sim/accounts`` lists, and that gateway works against the
simulator; credentials it refuses leave the account not configured, without a key in the log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import boto3
import pytest
import requests
from moto import mock_aws

from paycore.channels.alipay.adapter import AlipayGateway
from paycore.channels.base import ChannelPaymentStatus, NextActionType
from paycore.channels.registry import (
    available_channels,
    callback_gateway,
    get_gateway,
    offered_channels,
    route,
)
from paycore.errors import CallbackRejected, ServiceUnavailable
from tests.conftest import clear_paycore_caches
from tests.functional.alipay_support import AlipayWorld, order
from tests.simulators.receiver import NotificationReceiver

PREFIX = "functional/channel-accounts/"


@pytest.fixture(scope="module")
def world() -> Iterator[AlipayWorld]:
    made = AlipayWorld()
    made.simulator.start()
    yield made
    made.simulator.stop()


@pytest.fixture
def secrets(reset_paycore_caches: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("CHANNEL_SECRET_PREFIX", PREFIX)
    monkeypatch.setenv(
        "CHANNEL_ACCOUNTS",
        json.dumps(
            [
                {"id": "alipay-main", "channel": "alipay", "currencies": ["CNY"]},
                {"id": "alipay-broken", "channel": "alipay"},
            ]
        ),
    )
    with mock_aws():
        yield boto3.client("secretsmanager")


def put(client: Any, account: str, value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    try:
        client.put_secret_value(SecretId=PREFIX + account, SecretString=text)
    except client.exceptions.ResourceNotFoundException:
        client.create_secret(Name=PREFIX + account, SecretString=text)
    clear_paycore_caches()


def sim_entry(world: AlipayWorld, account: str) -> dict[str, Any]:
    """``GET /_sim/accounts`` over HTTP, as the local runtime reads it."""
    listed = requests.get(f"{world.simulator.url}/_sim/accounts", timeout=5).json()["data"]
    entry: dict[str, Any] = next(e for e in listed if e["account"] == account)
    return entry


def as_secret(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if key not in ("account", "channel")}


def test_the_registry_builds_the_alipay_adapter_from_the_accounts_secret(
    world: AlipayWorld, secrets: Any
) -> None:
    put(secrets, "alipay-main", as_secret(sim_entry(world, "alipay-a")))
    put(secrets, "alipay-broken", {})

    gateway = get_gateway("alipay", "alipay-main")
    created = gateway.create_order(order())

    assert isinstance(gateway, AlipayGateway)
    assert (gateway.account_id, gateway.simulator) == ("alipay-main", True)
    assert str(created.next_action.url).startswith(f"{world.simulator.url}/cashier/")
    assert gateway.query_order(created.out_trade_no).status is ChannelPaymentStatus.PENDING
    assert get_gateway("alipay").account_id == "alipay-main"  # the first configured one
    assert route("alipay", "CNY", 1999) == ["alipay-main"]
    assert "alipay" in available_channels()
    assert [o.resource() for o in offered_channels("CNY", 1999)] == [
        {"object": "channel", "channel": "alipay", "next_action_type": NextActionType.REDIRECT}
    ]


def test_the_callback_gateway_verifies_with_that_accounts_keys(
    world: AlipayWorld, secrets: Any
) -> None:
    put(secrets, "alipay-main", as_secret(sim_entry(world, "alipay-a")))
    put(secrets, "alipay-broken", as_secret(sim_entry(world, "alipay-b")))
    receiver = NotificationReceiver([(200, "success")])
    try:
        gateway = get_gateway("alipay", "alipay-main")
        created = gateway.create_order(order(notify_url=receiver.url))
        requests.post(str(created.next_action.url), json={"action": "pay"}, timeout=5)
        [received] = receiver.wait_for(1)
    finally:
        receiver.close()

    state = callback_gateway("alipay", "alipay-main").parse_notification(received.body, {})

    assert state.status is ChannelPaymentStatus.SUCCEEDED
    assert dict(parse_qsl(received.body.decode()))["out_trade_no"] == created.out_trade_no
    with pytest.raises(CallbackRejected, match="signature"):
        callback_gateway("alipay", "alipay-broken").parse_notification(received.body, {})


def test_a_production_secret_needs_only_the_app_id_and_keys(
    world: AlipayWorld, secrets: Any
) -> None:
    entry = sim_entry(world, "alipay-a")
    put(
        secrets,
        "alipay-main",
        {key: entry[key] for key in ("app_id", "app_private_key", "alipay_public_key")},
    )

    gateway = get_gateway("alipay", "alipay-main")

    assert gateway.simulator is False
    assert "https://openapi.alipay.com/gateway.do" in repr(gateway)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"app_private_key": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ"}, "ValueError"),
        (
            {"alipay_public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"},
            "ValueError",
        ),
        ({"app_id": "not-an-app-id"}, "app_id"),
        ({"app_cert_sn": "x"}, "app_cert_sn"),
    ],
)
def test_credentials_the_adapter_refuses_leave_the_account_not_configured(
    world: AlipayWorld,
    secrets: Any,
    caplog: pytest.LogCaptureFixture,
    change: dict[str, str],
    said: str,
) -> None:
    credentials = {**as_secret(sim_entry(world, "alipay-a")), **change}
    put(secrets, "alipay-broken", credentials)

    with caplog.at_level(logging.WARNING), pytest.raises(ServiceUnavailable) as refused:
        get_gateway("alipay", "alipay-broken")

    assert refused.value.code == "channel_account_not_configured"
    assert said in caplog.text
    keys = [credentials["app_private_key"], credentials["alipay_public_key"]]
    for key in keys:
        body = "".join(line for line in key.splitlines() if "-----" not in line)
        assert body[:30] not in caplog.text and body[-30:] not in caplog.text
