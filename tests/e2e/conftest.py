"""End-to-end tests: the real local runtime (template.yaml on moto, the sandbox channel over
HTTP), driven over HTTP exactly as a merchant, a buyer and a webhook receiver would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from local_runtime.profile import LocalProfile
from local_runtime.runtime import LocalRuntime
from tests.support import eventually
from tests.webhook_receiver import WebhookReceiver

__all__ = ["eventually"]

# Short waits so that the late-callback and webhook-retry paths run in seconds.
CALLBACK_WAIT_SECONDS = 4
WEBHOOK_MAX_ATTEMPTS = 4
CHANNEL_TIMEOUT_SECONDS = 2


# One runtime per process at a time (moto and the hooks are process-wide): scoped to this
# package so it is gone before other suites run.
@pytest.fixture(scope="package")
def runtime() -> Iterator[LocalRuntime]:
    profile = LocalProfile.free_ports(
        callback_wait_seconds=CALLBACK_WAIT_SECONDS,
        channel_query_interval_seconds=1,
        webhook_retry_schedule="1,1,1",
        webhook_max_attempts=WEBHOOK_MAX_ATTEMPTS,
        sandbox_notify_schedule=(0.0, 0.5, 1.0, 2.0),
        # A create that stalls longer than this has an unknown outcome (then queried).
        channel_timeout_seconds=CHANNEL_TIMEOUT_SECONDS,
        # The expiry sweep (rate(1 minute)) runs every 2 s.
        schedule_time_scale=30.0,
    )
    with LocalRuntime(profile=profile) as started:
        yield started


@dataclass
class Merchant:
    """A merchant's view of the API: its key, its webhook receiver, and a session."""

    api_url: str
    id: str
    api_key: str
    receiver: WebhookReceiver
    session: requests.Session

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.api_key}", **kwargs.pop("headers", {})}
        return self.session.request(
            method, self.api_url + path, headers=headers, timeout=30, **kwargs
        )

    def create_order(
        self, no: str, amount: int = 1999, currency: str = "CNY", **extra: Any
    ) -> dict[str, Any]:
        answer = self.request(
            "POST",
            "/v1/orders",
            json={
                "merchant_order_no": no,
                "amount": amount,
                "currency": currency,
                "subject": "Tea",
                **extra,
            },
        )
        assert answer.status_code == 201, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def pay(
        self,
        order_id: str,
        instruments: list[dict[str, Any]] | None = None,
        behaviour: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Pay with ``instruments`` (default: the sandbox channel, misbehaving as
        ``behaviour`` says)."""
        if instruments is None:
            channel: dict[str, Any] = {"type": "channel", "channel": "sandbox"}
            if behaviour is not None:
                channel["simulate"] = behaviour
            instruments = [channel]
        return self.request(
            "POST", f"/v1/orders/{order_id}/payments", json={"instruments": instruments}, **kwargs
        )

    def credit(self, buyer_id: str, amount: int, currency: str = "CNY") -> dict[str, Any]:
        answer = self.request(
            "POST",
            f"/v1/buyers/{buyer_id}/balance/credits",
            json={"amount": amount, "currency": currency},
        )
        assert answer.status_code == 201, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def balance(self, buyer_id: str, currency: str = "CNY") -> dict[str, Any]:
        answer = self.request(
            "GET", f"/v1/buyers/{buyer_id}/balance", params={"currency": currency}
        )
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def coupon(self, buyer_id: str, amount: int, currency: str = "CNY") -> dict[str, Any]:
        answer = self.request(
            "POST",
            "/v1/coupons",
            json={"buyer_id": buyer_id, "amount": amount, "currency": currency},
        )
        assert answer.status_code == 201, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def get_coupon(self, coupon_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/coupons/{coupon_id}").json()  # type: ignore[no-any-return]

    def order(self, order_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/orders/{order_id}").json()  # type: ignore[no-any-return]

    def payment(self, payment_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/payments/{payment_id}").json()  # type: ignore[no-any-return]

    def events(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/events", params={"limit": 100}).json()["data"]  # type: ignore[no-any-return]

    def wait_for_payment(self, payment_id: str, timeout: float = 20.0) -> dict[str, Any]:
        return eventually(  # type: ignore[no-any-return]
            lambda: (p := self.payment(payment_id))["status"] != "processing" and p,
            timeout=timeout,
        )


def buyer(url: str, action: str) -> dict[str, Any]:
    """The buyer's choice at the sandbox's payment page."""
    answer = requests.post(url, json={"action": action}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def new_merchant(
    runtime: LocalRuntime,
    receiver: WebhookReceiver,
    name: str = "Tea Shop",
    *,
    webhook: bool = True,
    **terms: int,
) -> Merchant:
    """Onboard a merchant (``terms``: ``fee_rate_bps``, ``settlement_delay_days``) whose
    webhooks go to ``receiver`` (started)."""
    answer = requests.post(
        runtime.api_url + "/v1/merchants",
        json={"name": name, "webhook_url": receiver.url if webhook else None, **terms},
        headers={"Authorization": f"Bearer {runtime.admin_token}"},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    receiver.secret = body["webhook_secret"]
    return Merchant(runtime.api_url, body["id"], body["api_key"], receiver, requests.Session())


@pytest.fixture
def onboard(runtime: LocalRuntime) -> Iterator[Callable[..., Merchant]]:
    receivers: list[WebhookReceiver] = []

    def make(
        name: str = "Tea Shop", fail_first: int = 0, webhook: bool = True, **terms: int
    ) -> Merchant:
        receiver = WebhookReceiver(fail_first=fail_first).start()
        receivers.append(receiver)
        return new_merchant(runtime, receiver, name, webhook=webhook, **terms)

    yield make
    for receiver in receivers:
        receiver.stop()
