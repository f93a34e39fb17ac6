"""The parties of the Alipay adapter's tests, over real HTTP: the Alipay simulator (on a free
port, with a clock a test may shift), paycore's adapter as each account's merchant, a buyer who
presses Pay or Decline on the cashier, and the merchant's notify endpoint (a real local HTTP
server that records the raw notifications Alipay posts)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import requests

from local_runtime.simulators.alipay import AlipaySimulator
from paycore.channels.alipay.adapter import AlipayGateway, create_gateway
from paycore.channels.alipay.transformers import beijing_day
from paycore.channels.base import CreateChannelOrder, CreateChannelRefund
from paycore.config import Settings
from tests.simulators.alipay_support import ShiftedClock
from tests.simulators.receiver import NotificationReceiver, Received

SCHEDULE = (0.0, 0.05, 0.05)  # three attempts, quickly
DEAD_URL = "http://127.0.0.1:9/callbacks/alipay/nobody"  # nothing listens: fails fast
ACCOUNTS = ("alipay-a", "alipay-b", "alipay-bill", "alipay-quiet", "alipay-real")

Receivers = Callable[..., NotificationReceiver]


class AlipayWorld:
    """One simulator (its clock shiftable) and the gateways of its accounts."""

    def __init__(self) -> None:
        self.clock = ShiftedClock()
        self.simulator = AlipaySimulator(
            "127.0.0.1", 0, accounts=list(ACCOUNTS), notify_schedule=SCHEDULE, clock=self.clock
        )

    def credentials(self, account: str, **changes: Any) -> dict[str, Any]:
        entry = next(e for e in self.simulator.accounts() if e["account"] == account)
        found = {key: value for key, value in entry.items() if key not in ("account", "channel")}
        return {**found, **changes}

    def gateway(
        self, account: str = "alipay-a", timeout: float = 3.0, **changes: Any
    ) -> AlipayGateway:
        settings = Settings(CHANNEL_TIMEOUT_SECONDS=timeout)
        return create_gateway(account, self.credentials(account, **changes), settings)

    def alipay_key(self, account: str) -> Any:
        """Alipay's private key for the app (only tests that forge Alipay's own signature
        need it)."""
        return self.simulator._by_account[account].alipay_key

    def debug_trade(self, out_trade_no: str) -> dict[str, Any]:
        answer = requests.get(f"{self.simulator.url}/_sim/trades", timeout=10)
        answer.raise_for_status()
        [trade] = [t for t in answer.json()["data"] if t["out_trade_no"] == out_trade_no]
        result: dict[str, Any] = trade
        return result


def payment_id() -> str:
    return f"pay_{secrets.token_hex(10)}"


def order(
    out_trade_no: str | None = None,
    amount: int = 1999,
    *,
    notify_url: str = DEAD_URL,
    currency: str = "CNY",
    expires_in: timedelta = timedelta(minutes=10),
    simulate: dict[str, Any] | None = None,
    subject: str = "绿茶 Green tea",
    return_url: str | None = None,
) -> CreateChannelOrder:
    return CreateChannelOrder(
        out_trade_no=out_trade_no or payment_id(),
        amount=amount,
        currency=currency,
        subject=subject,
        notify_url=notify_url,
        expires_at=(datetime.now(UTC) + expires_in).isoformat(),
        return_url=return_url,
        simulate=simulate,
    )


def refund_of(
    out_trade_no: str,
    amount: int,
    out_refund_no: str | None = None,
    *,
    reason: str | None = None,
    currency: str = "CNY",
) -> CreateChannelRefund:
    return CreateChannelRefund(
        out_trade_no=out_trade_no,
        out_refund_no=out_refund_no or f"rfd_{secrets.token_hex(10)}",
        amount=amount,
        currency=currency,
        notify_url=DEAD_URL,
        reason=reason,
    )


def buyer(cashier_url: str, action: str) -> requests.Response:
    """The buyer presses Pay or Decline on the cashier page (JSON, as the e2e buyer does)."""
    return requests.post(cashier_url, json={"action": action}, timeout=10)


def paid(gateway: AlipayGateway, request: CreateChannelOrder) -> str:
    """Create the order and have the buyer pay it; its cashier URL."""
    created = gateway.create_order(request)
    answer = buyer(str(created.next_action.url), "pay")
    assert answer.status_code == 200 and answer.json()["status"] == "SUCCESS", answer.text
    return str(created.next_action.url)


def body_of(received: Received) -> bytes:
    return received.body


def today() -> date:
    return beijing_day(datetime.now(UTC))


def settle(seconds: float) -> None:
    """Let notifications that should NOT come have their chance to arrive."""
    time.sleep(seconds)
