"""The parties of the Stripe adapter's functional tests, over real HTTP: the Stripe simulator
(on port 0), paycore's gateway for one of its accounts, the buyer on the Checkout page, and the
account's webhook endpoint (a real local HTTP server that records what Stripe sends)."""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe

from local_runtime.simulators.stripe import StripeSimulator
from paycore.channels.base import CreateChannelOrder, CreateChannelRefund
from paycore.channels.stripe.adapter import StripeGateway, create_gateway
from paycore.channels.stripe.transformers import WEBHOOK_EVENTS
from paycore.config import Settings
from paycore.ids import new_id
from tests.simulators.receiver import NotificationReceiver, Received
from tests.simulators.stripe_support import post_json, running_simulator, started
from tests.simulators.stripe_support import wait_until as _wait_until

ACCOUNTS = ("stripe-a", "stripe-b")
NOTIFY_URL = (
    "http://127.0.0.1:9/callbacks/stripe/stripe-a"  # never called: Stripe has no per-call URL
)
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
EVERY_EVENT = ("*",)  # an endpoint subscribed to every type (more than paycore needs)


def simulator(clock: Callable[[], datetime] | None = None, **kwargs: Any) -> StripeSimulator:
    return started(clock, accounts=ACCOUNTS, **kwargs)


def running(**kwargs: Any) -> Iterator[StripeSimulator]:
    return running_simulator(accounts=ACCOUNTS, **kwargs)


def credentials(sim: StripeSimulator, account: str = "stripe-a") -> dict[str, Any]:
    """The account's credentials JSON, as its secret holds them (the /_sim/accounts entry
    minus account and channel)."""
    entry = next(item for item in sim.accounts() if item["account"] == account)
    return {key: value for key, value in entry.items() if key not in ("account", "channel")}


def gateway_for(
    sim: StripeSimulator, account: str = "stripe-a", *, timeout: float = 2.0
) -> StripeGateway:
    settings = Settings.model_validate({"CHANNEL_TIMEOUT_SECONDS": timeout})
    return create_gateway(account, credentials(sim, account), settings)


def sdk_client(sim: StripeSimulator, account: str = "stripe-a") -> stripe.StripeClient:
    """The merchant's own view of the account, through the SDK (the test's oracle)."""
    return stripe.StripeClient(
        credentials(sim, account)["secret_key"], base_addresses={"api": sim.url}
    )


def payment_id_at(moment: datetime) -> str:
    """A payment id made at ``moment``, shaped as paycore.ids.new_id makes them (for a
    simulator whose clock is elsewhere than now)."""
    millis = int(moment.timestamp() * 1000)
    head = "".join(_CROCKFORD[(millis >> (5 * (9 - i))) & 31] for i in range(10))
    tail = "".join(secrets.choice(_CROCKFORD) for _ in range(16))
    return f"pay_{head}{tail}"


def order(
    *,
    out_trade_no: str | None = None,
    amount: int = 1999,
    currency: str = "USD",
    expires_in: timedelta = timedelta(minutes=30),
    now: datetime | None = None,
    simulate: dict[str, Any] | None = None,
    return_url: str | None = "https://shop.example/back",
) -> CreateChannelOrder:
    moment = now or datetime.now(UTC)
    return CreateChannelOrder(
        out_trade_no=out_trade_no or (payment_id_at(moment) if now else new_id("pay")),
        amount=amount,
        currency=currency,
        subject="Green tea, 250 g",
        notify_url=NOTIFY_URL,
        expires_at=(moment + expires_in).isoformat(),
        return_url=return_url,
        simulate=simulate,
    )


def refund_request(
    payment: CreateChannelOrder,
    amount: int,
    *,
    out_refund_no: str | None = None,
    channel_order_id: str | None = None,
    channel_transaction_id: str | None = None,
    reason: str | None = None,
) -> CreateChannelRefund:
    return CreateChannelRefund(
        out_trade_no=payment.out_trade_no,
        out_refund_no=out_refund_no or new_id("rfd"),
        amount=amount,
        currency=payment.currency,
        notify_url=NOTIFY_URL,
        reason=reason,
        channel_order_id=channel_order_id,
        channel_transaction_id=channel_transaction_id,
    )


def buyer(url: str, action: str) -> dict[str, Any]:
    """The buyer's choice on the Checkout page (``pay`` or ``decline``), as JSON."""
    return post_json(url, {"action": action})[1]


def debug_trades(sim: StripeSimulator, account: str = "stripe-a") -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{sim.url}/_sim/trades?account={account}", timeout=5) as reply:
        trades: list[dict[str, Any]] = json.loads(reply.read())["data"]
    return trades


def sessions_of(sim: StripeSimulator, out_trade_no: str, account: str = "stripe-a") -> list[Any]:
    """The account's sessions for the payment, through the SDK (newest first)."""
    listed = sdk_client(sim, account).v1.checkout.sessions.list({"limit": 100})
    return [s for s in listed.auto_paging_iter() if s.client_reference_id == out_trade_no]


class Webhooks:
    """The account's webhook endpoint: records every event Stripe POSTs, answers 200.
    Subscribed to ``enabled_events``: paycore's ``WEBHOOK_EVENTS``, as docs/channels.md
    registers it, unless the test wants more (``EVERY_EVENT``)."""

    def __init__(
        self,
        sim: StripeSimulator,
        account: str = "stripe-a",
        enabled_events: Iterable[str] = WEBHOOK_EVENTS,
    ) -> None:
        self.endpoint = NotificationReceiver([(200, "")])
        self.sim, self.account = sim, account
        sim.set_webhook_url(account, self.endpoint.url, enabled_events)

    def close(self) -> None:
        self.sim.set_webhook_url(self.account, None)
        self.endpoint.close()

    def received(self) -> list[Received]:
        return self.endpoint.received()

    def of_type(self, kind: str) -> list[Received]:
        return [item for item in self.received() if json.loads(item.body)["type"] == kind]

    def wait_for(self, *kinds: str, timeout: float = 5.0) -> dict[str, Received]:
        """The first event of each type, once every one of them arrived."""
        deadline = time.monotonic() + timeout
        while True:
            found = {kind: self.of_type(kind) for kind in kinds}
            if all(found.values()):
                return {kind: items[0] for kind, items in found.items()}
            assert time.monotonic() < deadline, f"not all of {kinds} arrived: {self.types()}"
            time.sleep(0.02)

    def types(self) -> list[str]:
        return [json.loads(item.body)["type"] for item in self.received()]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    _wait_until(condition, timeout)
