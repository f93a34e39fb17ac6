"""Helpers for the Stripe simulator tests: a started simulator on port 0, the official SDK
pointed at it, the buyer's choice over real HTTP, and webhook receivers."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe

from local_runtime.simulators.stripe import StripeSimulator
from tests.simulators.receiver import NotificationReceiver, Received

FAST = (0.0, 0.05, 0.05, 0.05)
ACCOUNTS = ("acct_a", "acct_b")


class Clock:
    """A clock that follows real time from ``start`` and can be moved forward."""

    def __init__(self, start: datetime | None = None) -> None:
        self._offset = (start - datetime.now(UTC)) if start else timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, **delta: float) -> None:
        self._offset += timedelta(**delta)


def started(clock: Callable[[], datetime] | None = None, **kwargs: Any) -> StripeSimulator:
    options: dict[str, Any] = {"accounts": ACCOUNTS, "notify_schedule": FAST, **kwargs}
    if clock is not None:
        options["clock"] = clock
    simulator = StripeSimulator("127.0.0.1", 0, **options)
    simulator.start()
    return simulator


def credentials(sim: StripeSimulator, account: str = "acct_a") -> dict[str, Any]:
    return next(entry for entry in sim.accounts() if entry["account"] == account)


def client_for(
    sim: StripeSimulator, account: str = "acct_a", **options: Any
) -> stripe.StripeClient:
    return stripe.StripeClient(
        credentials(sim, account)["secret_key"], base_addresses={"api": sim.url}, **options
    )


def session_params(
    reference: str = "pay_1",
    *,
    amount: int = 1999,
    currency: str = "usd",
    simulate: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "mode": "payment",
        "client_reference_id": reference,
        "success_url": "https://shop.example/paid?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://shop.example/cancelled",
        "line_items": [
            {
                "price_data": {
                    "currency": currency,
                    "unit_amount": amount,
                    "product_data": {"name": "Green tea"},
                },
                "quantity": 1,
            }
        ],
        "payment_intent_data": {"metadata": {"payment_id": reference}},
        **extra,
    }
    if simulate is not None:
        params["metadata"] = {"simulate": simulate}
    return params


def buyer_json(url: str, action: str) -> tuple[int, dict[str, Any]]:
    """The buyer's choice as JSON: (status, body)."""
    return post_json(url, {"action": action})


def post_json(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A JSON POST: (status, the JSON answer), error statuses included."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def buyer_form(url: str, action: str) -> tuple[int, str | None]:
    """The buyer's choice as the page's form posts it: (status, Location)."""
    request = urllib.request.Request(
        url,
        data=f"action={action}".encode(),
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=5) as reply:
            return reply.status, None
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location")


def http(
    method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A raw request: (status, headers, body)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, dict(reply.headers.items()), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def events_of(received: list[Received]) -> list[dict[str, Any]]:
    return [json.loads(item.body) for item in received]


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def running_simulator(**kwargs: Any) -> Iterator[StripeSimulator]:
    """For a fixture: a started simulator, stopped afterwards."""
    simulator = started(**kwargs)
    yield simulator
    simulator.stop()


def webhook_receiver(
    sim: StripeSimulator, account: str = "acct_a", enabled_events: Iterable[str] = ("*",)
) -> Iterator[NotificationReceiver]:
    """For a fixture: the account's webhook endpoint, answering 200, subscribed to
    ``enabled_events`` (every type unless the test says otherwise)."""
    endpoint = NotificationReceiver([(200, "")])
    sim.set_webhook_url(account, endpoint.url, enabled_events)
    yield endpoint
    endpoint.close()
