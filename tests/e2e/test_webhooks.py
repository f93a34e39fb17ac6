"""Webhooks over real HTTP: retried with backoff, delivered once, parked in the DLQ after the
last attempt, and redeliverable."""

from __future__ import annotations

import json
from collections.abc import Callable

from local_runtime.runtime import LocalRuntime
from tests.e2e.conftest import WEBHOOK_MAX_ATTEMPTS, Merchant, buyer, eventually


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
