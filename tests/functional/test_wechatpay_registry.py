"""The registry builds the WeChat Pay adapter from an account's credentials in its own Secrets
Manager secret (moto), exactly as the local runtime writes them from the simulator's
``/_sim/accounts``; the gateway it builds speaks to the simulator, is offered for CNY with a QR
code, takes that account's notifications, and credentials whose keys do not load leave the
account not configured, said without quoting them."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local_runtime.simulators.wechatpay import WechatPaySimulator
from paycore.channels.base import ChannelPaymentStatus, NextActionType
from paycore.channels.registry import (
    available_channels,
    callback_gateway,
    get_gateway,
    offered_channels,
    route,
)
from paycore.channels.wechatpay.adapter import WechatPayGateway
from paycore.errors import CallbackRejected, ServiceUnavailable
from tests.conftest import clear_paycore_caches
from tests.functional.wechatpay_support import credentials, order, pay, receivers, start_simulator
from tests.simulators.receiver import NotificationReceiver
from tests.support import ROOT

__all__ = ["receivers"]  # a fixture

PREFIX = "functional/channel-accounts/"
MAIN, BACKUP = "wechatpay-main", "wechatpay-backup"


@pytest.fixture(scope="module")
def simulator() -> Iterator[WechatPaySimulator]:
    running = start_simulator(MAIN, BACKUP)
    yield running
    running.stop()


@pytest.fixture
def secretsmanager(reset_paycore_caches: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("CHANNEL_SECRET_PREFIX", PREFIX)
    monkeypatch.setenv(
        "CHANNEL_ACCOUNTS",
        json.dumps(
            [
                {"id": MAIN, "channel": "wechatpay", "currencies": ["CNY"]},
                {"id": BACKUP, "channel": "wechatpay", "currencies": ["CNY"]},
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


def test_get_gateway_builds_the_adapter_from_the_accounts_secret(
    simulator: WechatPaySimulator,
    secretsmanager: Any,
    receivers: Callable[..., NotificationReceiver],
) -> None:
    put(secretsmanager, MAIN, credentials(simulator, MAIN))
    put(secretsmanager, BACKUP, credentials(simulator, BACKUP))
    receiver = receivers()

    wechat = get_gateway("wechatpay", BACKUP)
    created = wechat.create_order(order(receiver.url))
    pay(simulator, str(created.next_action.code_url))
    (note,) = receiver.wait_for(1)

    assert isinstance(wechat, WechatPayGateway)
    assert (wechat.name, wechat.account_id, wechat.simulator) == ("wechatpay", BACKUP, True)
    assert wechat.query_order(created.out_trade_no).status is ChannelPaymentStatus.SUCCEEDED
    assert get_gateway("wechatpay").account_id == MAIN  # the first configured account
    assert route("wechatpay", "CNY", 1999) == [MAIN, BACKUP]
    assert available_channels() == ["wechatpay"]
    [offer] = offered_channels("CNY", 1999)
    assert (offer.channel, offer.next_action_type) == ("wechatpay", NextActionType.QR_CODE)
    assert offered_channels("USD", 1999) == []
    # The callback route of BACKUP verifies with BACKUP's keys, and only those.
    state = callback_gateway("wechatpay", BACKUP).parse_notification(note.body, note.headers)
    assert state.status is ChannelPaymentStatus.SUCCEEDED
    with pytest.raises(CallbackRejected):
        callback_gateway("wechatpay", MAIN).parse_notification(note.body, note.headers)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {
                "merchant_private_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"
            },
            "value_error",
        ),
        ({"wechatpay_public_key": "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"}, "value_error"),
        ({"apiv3_key": "short"}, "apiv3_key: value_error"),
        ({"mchid": None}, "mchid"),
        ({"platform_serial_no": "ABC"}, "platform_serial_no"),
    ],
)
def test_credentials_that_do_not_load_leave_the_account_not_configured(
    simulator: WechatPaySimulator,
    secretsmanager: Any,
    caplog: pytest.LogCaptureFixture,
    change: dict[str, Any],
    reason: str,
) -> None:
    given = {**credentials(simulator, MAIN), **change}
    put(secretsmanager, MAIN, given)
    put(secretsmanager, BACKUP, {})

    with caplog.at_level(logging.WARNING):
        assert available_channels() == []
        with pytest.raises(ServiceUnavailable) as unavailable:
            get_gateway("wechatpay", MAIN)

    assert unavailable.value.code == "channel_account_not_configured"
    assert f"channel account {MAIN} is not configured" in caplog.text
    assert reason in caplog.text
    for secret in ("merchant_private_key", "wechatpay_public_key", "apiv3_key"):
        value = str(given[secret])
        assert value.splitlines()[min(1, len(value.splitlines()) - 1)] not in caplog.text


def _modules_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    env = {"PYTHONPATH": f"{ROOT / 'layers' / 'paycore'}:{ROOT}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    return set(done.stdout.split())


def test_the_adapter_is_imported_only_when_its_factory_is_called_and_needs_no_sdk(
    simulator: WechatPaySimulator,
) -> None:
    entry = json.dumps(credentials(simulator, MAIN))
    registry_only = _modules_after("import paycore.channels.registry")
    built = _modules_after(
        "import json\n"
        "from paycore.channels.registry import FACTORIES\n"
        "from paycore.config import Settings\n"
        f"FACTORIES['wechatpay']('a', json.loads({entry!r}), Settings())"
    )

    assert not {m for m in registry_only if m.startswith("paycore.channels.wechatpay")}
    assert "paycore.channels.wechatpay.adapter" in built
    assert not {
        m for m in built if m.split(".")[0] in ("wechatpayv3", "requests", "stripe", "alipay")
    }
