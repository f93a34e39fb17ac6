"""Webhooks over real HTTP: retried with backoff, delivered once, parked in the DLQ after the
last attempt, and redeliverable; fanned out to several endpoints, each on its own, signed with
each endpoint's secret (and the old one during a rotation), every attempt on the event."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from local_runtime.runtime import LocalRuntime
from tests.e2e.conftest import WEBHOOK_MAX_ATTEMPTS, Merchant, buyer, eventually
from tests.webhook_receiver import WebhookReceiver


def _paid_order(shop: Merchant, no: str) -> dict[str, str]:
    order = shop.create_order(no)
    payment = shop.pay(order["id"]).json()
    buyer(payment["next_action"]["url"], "pay")
    assert shop.wait_for_payment(payment["id"])["status"] == "succeeded"
    return order


def test_receiver_failing_twice_gets_the_event_once_after_retries(
    onboard: Callable[..., Merchant],
) -> None:
    shop = onboard(fail_first=2)
    _paid_order(shop, "HOOK-RETRY-1")
    assert shop.receiver.wait_for(lambda r: r.accepted("order.paid"), timeout=30)
    event = shop.receiver.accepted("order.paid")[0]
    attempts = shop.receiver.attempts(event["id"])
    assert [a.status for a in attempts] == [500, 500, 200]
    # Backoff: the retries were spread out, not fired back to back.
    assert attempts[-1].received_at - attempts[0].received_at >= 1.5


def test_undeliverable_event_lands_in_the_dlq_and_can_be_redelivered(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard(fail_first=WEBHOOK_MAX_ATTEMPTS)
    order = _paid_order(shop, "HOOK-DLQ-1")
    sqs = runtime.client("sqs")
    dlq = runtime.outputs()["NotificationDeadLetterQueueUrl"]

    def parked() -> list[str]:
        """Every parked event: other tests' undeliverable webhooks are parked too, so page
        through the queue (a message just read stays hidden for a second, so the next
        receive returns the next ones)."""
        seen: dict[str, str] = {}  # message id -> event id
        while batch := sqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=1
        ).get("Messages", []):
            if all(m["MessageId"] in seen for m in batch):
                break  # back to the first ones: the whole queue was read
            seen |= {m["MessageId"]: json.loads(m["Body"])["event_id"] for m in batch}
        return list(seen.values())

    event_id = shop.events()[0]["id"]
    eventually(lambda: event_id in parked(), timeout=40, pause=0.5)
    assert len(shop.receiver.attempts(event_id)) == WEBHOOK_MAX_ATTEMPTS
    assert not shop.receiver.accepted()

    # The merchant fixed their endpoint (it now answers 200) and asks for the event again.
    answer = shop.request("POST", f"/v1/events/{event_id}/redeliver")
    assert answer.status_code == 202
    assert shop.receiver.wait_for(lambda r: r.accepted("order.paid"), timeout=20)
    assert shop.receiver.accepted("order.paid")[0]["data"]["object"]["id"] == order["id"]


# -- several endpoints -------------------------------------------------------------------------


def _endpoint(shop: Merchant, receiver: WebhookReceiver, events: list[str]) -> dict[str, Any]:
    """A new endpoint of ``shop`` at ``receiver``, which then verifies with its secret."""
    answer = shop.request(
        "POST", "/v1/webhook_endpoints", json={"url": receiver.url, "enabled_events": events}
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    receiver.secret = created["secret"]
    return created


@pytest.fixture
def second_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


def _onboarding_endpoint_id(shop: Merchant) -> str:
    listed = shop.request("GET", "/v1/webhook_endpoints").json()["data"]
    [first] = [e for e in listed if e["url"] == shop.receiver.url]
    return str(first["id"])


def test_a_failing_endpoint_does_not_delay_another_with_its_own_filter(
    onboard: Callable[..., Merchant], second_receiver: WebhookReceiver
) -> None:
    # GIVEN a shop whose onboarding endpoint fails every attempt, and a second endpoint that
    # subscribes to order.paid only
    shop = onboard(fail_first=WEBHOOK_MAX_ATTEMPTS)
    paid_only = _endpoint(shop, second_receiver, ["order.paid"])

    # WHEN an order is paid and another one closed
    order = _paid_order(shop, "HOOK-FANOUT-1")
    closed = shop.create_order("HOOK-FANOUT-2")
    assert shop.request("POST", f"/v1/orders/{closed['id']}/close").status_code == 200

    # THEN the second endpoint gets order.paid at once (on its first attempt), and nothing else
    assert second_receiver.wait_for(lambda r: r.accepted("order.paid"), timeout=15)
    [paid] = second_receiver.accepted()
    assert paid["data"]["object"]["id"] == order["id"]
    assert [d.status for d in second_receiver.attempts(paid["id"])] == [200]
    # while the failing one is still being retried, for both events
    assert shop.receiver.wait_for(
        lambda r: len(r.attempts(paid["id"])) >= 2 and r.deliveries[-1].status == 500,
        timeout=15,
    )
    assert not shop.receiver.accepted()
    assert second_receiver.rejected == shop.receiver.rejected == 0
    # and the event says so, per endpoint
    deliveries = eventually(
        lambda: (
            (d := shop.request("GET", f"/v1/events/{paid['id']}").json()["deliveries"])
            and len(d) >= 3
            and d
        ),
        timeout=15,
    )
    by_endpoint: dict[str, list[tuple[int, int | None]]] = {}
    for attempt in deliveries:
        by_endpoint.setdefault(attempt["endpoint_id"], []).append(
            (attempt["attempt"], attempt["status_code"])
        )
    assert by_endpoint[paid_only["id"]] == [(1, 200)]
    failing = by_endpoint[_onboarding_endpoint_id(shop)]
    assert [status for _, status in failing] == [500] * len(failing)
    assert [number for number, _ in failing] == list(range(len(failing), 0, -1))


def test_a_rotated_secret_signs_beside_the_old_one_until_it_expires(
    onboard: Callable[..., Merchant], second_receiver: WebhookReceiver
) -> None:
    # GIVEN a receiver that still holds the onboarding secret
    shop = onboard()
    endpoint_id = _onboarding_endpoint_id(shop)

    # WHEN the endpoint's secret is rotated with an hour of overlap
    rotated = shop.request(
        "POST", f"/v1/webhook_endpoints/{endpoint_id}/rotate_secret", json={"expires_in": 3600}
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    order = _paid_order(shop, "HOOK-ROTATE-1")

    # THEN the old receiver verifies the delivery, and so does one holding the new secret
    assert shop.receiver.wait_for(lambda r: r.accepted("order.paid"), timeout=15)
    [delivery] = [d for d in shop.receiver.deliveries if d.status == 200]
    assert delivery.event["data"]["object"]["id"] == order["id"]
    assert Webhook(new_secret).verify(delivery.body, delivery.headers)["id"] == delivery.webhook_id

    # WHEN it is rotated again with no overlap, THEN only the newest secret verifies
    newest = shop.request(
        "POST", f"/v1/webhook_endpoints/{endpoint_id}/rotate_secret", json={"expires_in": 0}
    ).json()["secret"]
    shop.receiver.secret = newest
    _paid_order(shop, "HOOK-ROTATE-2")
    assert shop.receiver.wait_for(lambda r: len(r.accepted("order.paid")) == 2, timeout=15)
    last = [d for d in shop.receiver.deliveries if d.status == 200][-1]
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret).verify(last.body, last.headers)
    assert shop.receiver.rejected == 0


def test_a_parked_delivery_is_redelivered_to_its_endpoint_only(
    runtime: LocalRuntime, onboard: Callable[..., Merchant], second_receiver: WebhookReceiver
) -> None:
    # GIVEN two endpoints for every event, the onboarding one failing until it is parked
    shop = onboard(fail_first=WEBHOOK_MAX_ATTEMPTS)
    other = _endpoint(shop, second_receiver, ["*"])
    _paid_order(shop, "HOOK-PARKED-1")
    event_id = shop.events()[0]["id"]
    failing = _onboarding_endpoint_id(shop)
    eventually(
        lambda: len(shop.receiver.attempts(event_id)) == WEBHOOK_MAX_ATTEMPTS,
        timeout=40,
        pause=0.5,
    )
    assert [d.status for d in second_receiver.attempts(event_id)] == [200]

    # WHEN the merchant redelivers the event to the failing endpoint (it works now)
    answer = shop.request("POST", f"/v1/events/{event_id}/redeliver", json={"endpoint_id": failing})

    # THEN that endpoint gets it, and the other endpoint does not get it again
    assert answer.status_code == 202, answer.text
    assert shop.receiver.wait_for(lambda r: r.accepted("order.paid"), timeout=20)
    assert [d.status for d in second_receiver.attempts(event_id)] == [200]
    deliveries = shop.request("GET", f"/v1/events/{event_id}").json()["deliveries"]
    assert (deliveries[0]["endpoint_id"], deliveries[0]["status_code"]) == (failing, 200)
    assert deliveries[0]["attempt"] == WEBHOOK_MAX_ATTEMPTS + 1
    assert [d["endpoint_id"] for d in deliveries].count(other["id"]) == 1
