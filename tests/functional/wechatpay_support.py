"""The parties of the WeChat Pay adapter's functional tests, all over real HTTP: the WeChat Pay
simulator (port 0), our adapter as the merchant's server, the buyer's phone (the simulator's
``/scan`` page) and the merchant's notification endpoint (``tests/simulators/receiver.py``, a
real local HTTP server that records the raw bytes and headers the simulator sends)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from local_runtime.simulators.wechatpay import WechatPaySimulator
from paycore.channels.base import CreateChannelOrder, CreateChannelRefund
from paycore.channels.wechatpay.adapter import WechatPayGateway
from paycore.channels.wechatpay.settings import WechatPaySettings
from tests.simulators.receiver import NotificationReceiver, Received

FAST_SCHEDULE = (0.0, 0.05, 0.05)
QUIET = 0.4  # how long a notification that must not come is waited for
SHANGHAI = ZoneInfo("Asia/Shanghai")


def start_simulator(*accounts: str) -> WechatPaySimulator:
    simulator = WechatPaySimulator(
        "127.0.0.1", 0, accounts=list(accounts), notify_schedule=FAST_SCHEDULE
    )
    simulator.start()
    return simulator


def credentials(sim: WechatPaySimulator, account: str, **more: Any) -> dict[str, Any]:
    """The account's secret as the local runtime writes it: its ``/_sim/accounts`` entry
    without ``account`` and ``channel`` (``more`` changes fields)."""
    answer = requests.get(f"{sim.url}/_sim/accounts", timeout=5)
    answer.raise_for_status()
    (entry,) = [e for e in answer.json()["data"] if e["account"] == account]
    assert entry["channel"] == "wechatpay"
    return {k: v for k, v in entry.items() if k not in ("account", "channel")} | more


def gateway(
    sim: WechatPaySimulator, account: str, *, timeout: float = 3.0, **more: Any
) -> WechatPayGateway:
    """Our adapter for ``account`` (``more`` changes its credentials)."""
    settings = WechatPaySettings.model_validate(credentials(sim, account, **more))
    return WechatPayGateway(settings, account_id=account, timeout=timeout)


def new_id(prefix: str = "pay") -> str:
    """A fresh payment or refund id shaped like paycore's (30 characters)."""
    return f"{prefix}_{secrets.token_hex(13)}"


def order(
    notify_url: str,
    *,
    amount: int = 1999,
    out_trade_no: str | None = None,
    expires_in: float = 600,
    simulate: Mapping[str, Any] | None = None,
    subject: str = "Green tea 绿茶",
    currency: str = "CNY",
) -> CreateChannelOrder:
    return CreateChannelOrder(
        out_trade_no=out_trade_no or new_id(),
        amount=amount,
        currency=currency,
        subject=subject,
        notify_url=notify_url,
        expires_at=(datetime.now(UTC) + timedelta(seconds=expires_in)).isoformat(),
        simulate=simulate,
    )


def refund(
    out_trade_no: str,
    amount: int,
    notify_url: str,
    *,
    out_refund_no: str | None = None,
    currency: str = "CNY",
) -> CreateChannelRefund:
    return CreateChannelRefund(
        out_trade_no=out_trade_no,
        out_refund_no=out_refund_no or new_id("rfd"),
        amount=amount,
        currency=currency,
        notify_url=notify_url,
        reason="顾客退货 customer return",
    )


def scan(simulator: WechatPaySimulator, code_url: str, action: str) -> requests.Response:
    """The buyer's phone: POST the choice to the simulator's scan page for ``code_url``."""
    return requests.post(
        f"{simulator.url}/scan", params={"code_url": code_url}, json={"action": action}, timeout=5
    )


def pay(simulator: WechatPaySimulator, code_url: str) -> None:
    answer = scan(simulator, code_url, "pay")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "SUCCESS"


def trade_view(simulator: WechatPaySimulator, account: str, out_trade_no: str) -> dict[str, Any]:
    """The simulator's debug view of one trade (its trade_state, code_url, notifications)."""
    answer = requests.get(f"{simulator.url}/_sim/trades", params={"account": account}, timeout=5)
    answer.raise_for_status()
    (found,) = [t for t in answer.json()["data"] if t["out_trade_no"] == out_trade_no]
    return dict(found)


def envelope(received: Received) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(received.body)
    return loaded


def beijing_today() -> Any:
    return datetime.now(UTC).astimezone(SHANGHAI).date()


@pytest.fixture
def receivers() -> Iterator[Callable[..., NotificationReceiver]]:
    """Start merchant notification endpoints (each acknowledging as told); closed after."""
    started: list[NotificationReceiver] = []

    def start(replies: list[tuple[int, str]] | None = None) -> NotificationReceiver:
        started.append(NotificationReceiver(replies or [(204, "")]))
        return started[-1]

    yield start
    for endpoint in started:
        endpoint.close()
