"""The notifier and redrive functions against moto and real merchant endpoints on loopback.

The queue has the template's shape (a dead-letter queue through a redrive policy, with
maxReceiveCount = len(schedule) + 1) and a short retry schedule, so a whole life cycle runs in
seconds: delivered (or fanned out to several endpoints first); failed, hidden for the backoff,
retried, parked; moved back; delivered. A small poller plays Lambda's SQS event source mapping: it receives with all
attributes, calls the handler and deletes only the records not reported in
``batchItemFailures``. Merchants are onboarded and their endpoints made by the real services,
so every secret is sealed with (moto's) KMS exactly as deployed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from paycore.clock import now_rfc3339
from paycore.dal import notification_queue
from paycore.dal.notification_queue import MAX_CARRIED_EVENT_BYTES
from paycore.dal.trade_store import TradeStore
from paycore.dal.webhook_endpoint_store import ATTEMPTS_KEPT, WebhookEndpointStore
from paycore.domain.models import Event
from paycore.ids import new_id
from paycore.services import events, merchants, webhook_endpoints
from paycore.services.merchants import Onboarded
from paycore.webhooks import new_secret
from tests.functional.conftest import create_webhook_secret_key
from tests.support import FakeContext, load_function, load_template
from tests.webhook_receiver import WebhookReceiver

SCHEDULE = (1, 2)
MAX_ATTEMPTS = len(SCHEDULE) + 1
_TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")


@dataclass
class Queues:
    url: str
    arn: str
    dead_letter_url: str


@pytest.fixture
def queues(monkeypatch: pytest.MonkeyPatch, reset_paycore_caches: None) -> Iterator[Queues]:
    trade_table = load_template()["Resources"]["TradeTable"]["Properties"]
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="trade", **{key: trade_table[key] for key in _TABLE_KEYS}
        )
        sqs = boto3.client("sqs")
        dead_letter_url = sqs.create_queue(QueueName="notifications-dlq")["QueueUrl"]
        dead_letter_arn = _arn(dead_letter_url)
        redrive = {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": MAX_ATTEMPTS}
        url = sqs.create_queue(
            QueueName="notifications",
            Attributes={"VisibilityTimeout": "180", "RedrivePolicy": json.dumps(redrive)},
        )["QueueUrl"]
        for name, value in {
            "TRADE_TABLE_NAME": "trade",
            "NOTIFICATION_QUEUE_URL": url,
            "DEAD_LETTER_QUEUE_URL": dead_letter_url,
            "WEBHOOK_RETRY_SCHEDULE": ",".join(map(str, SCHEDULE)),
            "WEBHOOK_TIMEOUT_SECONDS": "2",
            # The test's receiver listens on loopback, like a local developer's.
            "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            "WEBHOOK_SECRET_KEY_ID": create_webhook_secret_key(),
        }.items():
            monkeypatch.setenv(name, value)
        yield Queues(url, _arn(url), dead_letter_url)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    endpoint = WebhookReceiver().start()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def other_receiver() -> Iterator[WebhookReceiver]:
    endpoint = WebhookReceiver().start()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def notifier(queues: Queues) -> ModuleType:
    return load_function("notifier")


def _arn(queue_url: str) -> str:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"]
    )
    return str(attributes["Attributes"]["QueueArn"])


def given_a_merchant(webhook_url: str | None, receiver: WebhookReceiver | None = None) -> Onboarded:
    """A merchant onboarded by the real service: its webhook_url is its first endpoint."""
    onboarded = merchants.onboard_merchant(TradeStore(), "Tea Shop", webhook_url)
    if receiver is not None:
        receiver.secret = onboarded.webhook_secret
    return onboarded


def given_an_endpoint(
    merchant: Onboarded, receiver: WebhookReceiver, enabled_events: list[str]
) -> str:
    """Another endpoint of the merchant, at ``receiver``; its id."""
    endpoint, secret = webhook_endpoints.create_endpoint(
        TradeStore(),
        merchant.merchant.id,
        url=receiver.url,
        enabled_events=enabled_events,
        description=None,
    )
    receiver.secret = secret
    return endpoint.id


def given_a_published_event(merchant: Onboarded, event_type: str = events.ORDER_PAID) -> Event:
    """An event stored and queued by the real code, as a settled payment does it."""
    order_id = new_id("ord")
    event = events.event_for(
        event_type, merchant.merchant.id, order_id, {"id": order_id, "object": "order"}
    )
    assert TradeStore().put_event(event)
    events.publish(event)
    return event


def instead_of_the_published_message(queues: Queues, *bodies: dict[str, str]) -> None:
    """Hide the message publishing queued (for the queue's 180 s) and queue ``bodies``."""
    assert _receive(queues.url)
    for body in bodies:
        boto3.client("sqs").send_message(QueueUrl=queues.url, MessageBody=json.dumps(body))


def attempts_of(event: Event) -> list[tuple[str, int, int | None, str | None]]:
    """The event's delivery history as the API shows it: (endpoint, attempt, status, error)."""
    return [
        (a.endpoint_id, a.attempt, a.status_code, a.error)
        for a in WebhookEndpointStore(TradeStore().table).delivery_attempts(event.id)
    ]


def onboarding_endpoint(merchant: Onboarded) -> str:
    """The id of the endpoint the onboarding webhook_url became."""
    every = WebhookEndpointStore(TradeStore().table).endpoints_of(merchant.merchant.id)
    [endpoint] = [e for e in every if e.description == webhook_endpoints.ONBOARDING_DESCRIPTION]
    return endpoint.id


def _receive(queue_url: str) -> list[dict[str, Any]]:
    answer = boto3.client("sqs").receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )
    return list(answer.get("Messages", []))


def _record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message["Attributes"],
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }


def deliver(
    notifier: ModuleType, queues: Queues, messages: list[dict[str, Any]], context: Any = None
) -> list[str]:
    """Hand ``messages`` to the notifier as Lambda would; returns the failed message ids."""
    batch = {"Records": [_record(message, queues.arn) for message in messages]}
    answer = notifier.lambda_handler(batch, context or FakeContext())
    failed = [item["itemIdentifier"] for item in answer["batchItemFailures"]]
    for message in messages:
        if message["MessageId"] not in failed:
            boto3.client("sqs").delete_message(
                QueueUrl=queues.url, ReceiptHandle=message["ReceiptHandle"]
            )
    return failed


def poll(notifier: ModuleType, queues: Queues) -> list[str]:
    """One poll of the event source mapping: receive, invoke, delete the successes."""
    messages = _receive(queues.url)
    assert messages, "nothing visible in the notification queue"
    return deliver(notifier, queues, messages)


def wait_until_visible(queue_url: str, timeout: float) -> tuple[list[dict[str, Any]], float]:
    """Receive as soon as something is visible; returns the messages and the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if messages := _receive(queue_url):
            return messages, time.monotonic() - started
        time.sleep(0.05)
    return [], time.monotonic() - started


def _count(queue_url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _metric_names(output: str) -> list[str]:
    names = []
    for line in output.splitlines():
        if '"_aws"' in line:
            document = json.loads(line)
            for directive in document["_aws"]["CloudWatchMetrics"]:
                names += [metric["Name"] for metric in directive["Metrics"]]
    return names


def retried_on_the_schedule_then_parked(notifier: ModuleType, queues: Queues) -> None:
    """After a failed attempt 1 (its message hidden for schedule[0]): every retry fails, each
    is hidden for its delay, and the last is parked in the dead-letter queue at once."""
    for delay in SCHEDULE:
        messages, waited = wait_until_visible(queues.url, timeout=delay + 2)
        assert messages, f"not retried after {delay} s"
        assert delay - 0.3 <= waited
        assert len(deliver(notifier, queues, messages)) == 1
    assert _receive(queues.url) == []
    assert _count(queues.url) == 0
    assert _count(queues.dead_letter_url) == 1


def fan_out(notifier: ModuleType, queues: Queues) -> None:
    """The first poll after an event is published to several endpoints: it queues one
    delivery per endpoint."""
    assert poll(notifier, queues) == []


# -- fan-out and delivery --------------------------------------------------------------------


def test_a_2xx_answer_delivers_the_event_once_and_settles_the_message(
    notifier: ModuleType,
    queues: Queues,
    receiver: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    merchant = given_a_merchant(receiver.url, receiver)
    event = given_a_published_event(merchant)

    # the message carries the event exactly as it is delivered
    [message] = _receive(queues.url)
    assert json.loads(message["Body"])["event"] == event.resource()
    # one endpoint receives it: the event's own message is its delivery (no fan-out)
    failed = deliver(notifier, queues, [message])

    assert failed == []
    assert receiver.rejected == 0
    assert [d.event for d in receiver.attempts(event.id)] == [event.resource()]
    assert _count(queues.url) == 0
    assert attempts_of(event) == [(onboarding_endpoint(merchant), 1, 200, None)]
    assert _metric_names(capsys.readouterr().out) == ["WebhookDelivered"]


def test_a_message_without_the_event_has_it_read_from_the_table(
    notifier: ModuleType, queues: Queues, receiver: WebhookReceiver
) -> None:
    # GIVEN a message as queued before events were carried (or for an event too large)
    merchant = given_a_merchant(receiver.url, receiver)
    event = given_a_published_event(merchant)
    instead_of_the_published_message(
        queues, {"event_id": event.id, "merchant_id": merchant.merchant.id}
    )

    assert poll(notifier, queues) == []

    assert [d.event for d in receiver.attempts(event.id)] == [event.resource()]
    assert receiver.rejected == 0


def test_an_event_too_large_to_carry_is_queued_without_it_and_still_delivered(
    notifier: ModuleType, queues: Queues, receiver: WebhookReceiver
) -> None:
    merchant = given_a_merchant(receiver.url, receiver)
    order_id = new_id("ord")
    large = {"id": order_id, "object": "order", "note": "x" * MAX_CARRIED_EVENT_BYTES}
    event = events.event_for(events.ORDER_PAID, merchant.merchant.id, order_id, large)
    assert TradeStore().put_event(event)
    events.publish(event)

    [message] = _receive(queues.url)
    assert "event" not in json.loads(message["Body"])
    assert deliver(notifier, queues, [message]) == []
    assert [d.event for d in receiver.attempts(event.id)] == [event.resource()]


def test_a_merchant_without_an_endpoint_settles_without_a_request(
    notifier: ModuleType, queues: Queues, receiver: WebhookReceiver
) -> None:
    event = given_a_published_event(given_a_merchant(None))

    failed = poll(notifier, queues)

    assert failed == []
    assert receiver.deliveries == []
    assert _count(queues.url) == 0
    assert attempts_of(event) == []


def test_each_event_goes_to_every_endpoint_that_subscribes_to_its_type(
    notifier: ModuleType,
    queues: Queues,
    receiver: WebhookReceiver,
    other_receiver: WebhookReceiver,
) -> None:
    # GIVEN a merchant with its onboarding endpoint (every event) and one for refunds only
    merchant = given_a_merchant(receiver.url, receiver)
    refunds_only = given_an_endpoint(merchant, other_receiver, [events.REFUND_SUCCEEDED])
    paid = given_a_published_event(merchant, events.ORDER_PAID)
    refunded = given_a_published_event(merchant, events.REFUND_SUCCEEDED)

    # WHEN both are fanned out and delivered
    assert poll(notifier, queues) == []
    # order.paid went at once to its only endpoint; refund.succeeded is queued for both
    assert [d.event["id"] for d in receiver.deliveries] == [paid.id]
    assert _count(queues.url) == 2
    assert poll(notifier, queues) == []

    # THEN each endpoint got what it subscribes to, signed with its own secret
    assert [d.event["type"] for d in receiver.deliveries] in (
        ["order.paid", "refund.succeeded"],
        ["refund.succeeded", "order.paid"],
    )
    assert [d.event["id"] for d in other_receiver.deliveries] == [refunded.id]
    assert receiver.rejected == other_receiver.rejected == 0
    assert [a[0] for a in attempts_of(refunded)].count(refunds_only) == 1
    assert [a[0] for a in attempts_of(paid)] == [onboarding_endpoint(merchant)]


def test_a_failing_endpoint_never_delays_another(
    notifier: ModuleType,
    queues: Queues,
    receiver: WebhookReceiver,
    other_receiver: WebhookReceiver,
) -> None:
    # GIVEN two endpoints of one merchant, the first answering 500 to everything
    receiver.fail_first = MAX_ATTEMPTS
    merchant = given_a_merchant(receiver.url, receiver)
    healthy = given_an_endpoint(merchant, other_receiver, ["*"])
    event = given_a_published_event(merchant)
    fan_out(notifier, queues)

    # WHEN the two deliveries are handed out in one batch
    messages = _receive(queues.url)
    assert len(messages) == 2
    by_endpoint = {json.loads(m["Body"])["endpoint_id"]: m["MessageId"] for m in messages}
    failed = deliver(notifier, queues, messages)

    # THEN only the failing endpoint's delivery is held back; the other is done
    assert failed == [by_endpoint[onboarding_endpoint(merchant)]]
    assert [d.status for d in other_receiver.attempts(event.id)] == [200]
    assert _count(queues.url) == 1
    # and the failing one is retried on its own schedule, to its own endpoint only
    messages, _ = wait_until_visible(queues.url, timeout=SCHEDULE[0] + 2)
    assert [json.loads(m["Body"])["endpoint_id"] for m in messages] == [
        onboarding_endpoint(merchant)
    ]
    assert len(deliver(notifier, queues, messages)) == 1
    assert [d.status for d in other_receiver.attempts(event.id)] == [200]
    assert sorted(attempts_of(event)) == sorted(
        [
            (onboarding_endpoint(merchant), 2, 500, None),
            (onboarding_endpoint(merchant), 1, 500, None),
            (healthy, 1, 200, None),
        ]
    )


def test_a_retry_goes_to_the_endpoints_of_the_moment(
    notifier: ModuleType,
    queues: Queues,
    receiver: WebhookReceiver,
    other_receiver: WebhookReceiver,
) -> None:
    # GIVEN a merchant's only endpoint failing the first attempt
    receiver.fail_first = 1
    merchant = given_a_merchant(receiver.url, receiver)
    event = given_a_published_event(merchant)
    assert len(poll(notifier, queues)) == 1
    # WHEN a second endpoint subscribes before the retry
    second = given_an_endpoint(merchant, other_receiver, ["*"])

    # THEN the retry fans out, and each endpoint gets the event
    messages, _ = wait_until_visible(queues.url, timeout=SCHEDULE[0] + 2)
    assert deliver(notifier, queues, messages) == []
    assert _count(queues.url) == 2
    assert poll(notifier, queues) == []
    assert [d.status for d in receiver.attempts(event.id)] == [500, 200]
    assert [d.status for d in other_receiver.attempts(event.id)] == [200]
    assert sorted(attempts_of(event)) == sorted(
        [
            (onboarding_endpoint(merchant), 2, 200, None),
            (onboarding_endpoint(merchant), 1, 500, None),
            (second, 1, 200, None),
        ]
    )


def test_disabled_deleted_and_unsubscribed_endpoints_get_nothing_not_even_pending_retries(
    notifier: ModuleType,
    queues: Queues,
    receiver: WebhookReceiver,
    other_receiver: WebhookReceiver,
) -> None:
    merchant = given_a_merchant(receiver.url, receiver)
    second = given_an_endpoint(merchant, other_receiver, ["*"])
    given_a_published_event(merchant)
    fan_out(notifier, queues)  # two deliveries queued

    # WHEN, before they are delivered, one endpoint is disabled and the other deleted
    store, mid = TradeStore(), merchant.merchant.id
    webhook_endpoints.update_endpoint(store, mid, onboarding_endpoint(merchant), {"disabled": True})
    webhook_endpoints.delete_endpoint(store, mid, second)

    # THEN both deliveries settle without a request
    assert poll(notifier, queues) == []
    assert receiver.deliveries == other_receiver.deliveries == []
    assert _count(queues.url) == 0
    # and a new event is not even fanned out to them
    given_a_published_event(merchant)
    assert poll(notifier, queues) == []
    assert _count(queues.url) == 0


def test_only_the_failed_record_of_a_batch_is_reported(
    notifier: ModuleType, queues: Queues, receiver: WebhookReceiver
) -> None:
    healthy = given_a_published_event(given_a_merchant(receiver.url, receiver))
    broken = given_a_published_event(given_a_merchant("http://127.0.0.1:9/down"))
    messages = _receive(queues.url)
    ids = {json.loads(m["Body"])["event_id"]: m["MessageId"] for m in messages}

    failed = deliver(notifier, queues, messages)

    assert failed == [ids[broken.id]]
    assert len(receiver.attempts(healthy.id)) == 1
    [(_, attempt, status, error)] = attempts_of(broken)
    assert (attempt, status) == (1, None)
    assert error is not None and error.startswith("connection error")


# -- signing ---------------------------------------------------------------------------------


def test_during_a_rotation_each_delivery_verifies_with_the_old_and_the_new_secret(
    notifier: ModuleType, queues: Queues, receiver: WebhookReceiver
) -> None:
    merchant = given_a_merchant(receiver.url, receiver)
    old_secret = merchant.webhook_secret
    _, new_secret_ = webhook_endpoints.rotate_secret(
        TradeStore(), merchant.merchant.id, onboarding_endpoint(merchant), 3600
    )
    event = given_a_published_event(merchant)

    assert poll(notifier, queues) == []

    [delivery] = receiver.attempts(event.id)
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    for secret in (old_secret, new_secret_):
        assert Webhook(secret).verify(delivery.body, delivery.headers)["id"] == event.id
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(delivery.body, delivery.headers)


def test_once_the_old_secret_expired_only_the_new_one_signs(
    notifier: ModuleType, queues: Queues, receiver: WebhookReceiver
) -> None:
    merchant = given_a_merchant(receiver.url, receiver)
    old_secret = merchant.webhook_secret
    _, receiver.secret = webhook_endpoints.rotate_secret(
        TradeStore(), merchant.merchant.id, onboarding_endpoint(merchant), 1
    )
    time.sleep(1.1)
    event = given_a_published_event(merchant)

    assert poll(notifier, queues) == []

    [delivery] = receiver.attempts(event.id)  # the receiver verified it with the new secret
    assert len(delivery.headers["webhook-signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(old_secret).verify(delivery.body, delivery.headers)


def test_a_merchant_onboarded_before_endpoints_is_migrated_and_still_signed_with_its_secret(
    notifier: ModuleType, queues: Queues, receiver: WebhookReceiver
) -> None:
    # GIVEN a merchant item as onboarding wrote it before endpoints: the secret in clear
    legacy_secret = new_secret()
    merchant_id = new_id("mch")
    boto3.client("dynamodb").put_item(
        TableName="trade",
        Item={
            "pk": {"S": f"MERCHANT#{merchant_id}"},
            "sk": {"S": "MERCHANT"},
            "id": {"S": merchant_id},
            "name": {"S": "Old Shop"},
            "webhook_url": {"S": receiver.url},
            "webhook_secret": {"S": legacy_secret},
            "created_at": {"S": now_rfc3339()},
        },
    )
    receiver.secret = legacy_secret
    order_id = new_id("ord")
    event = events.event_for(events.ORDER_PAID, merchant_id, order_id, {"id": order_id})
    assert TradeStore().put_event(event)
    events.publish(event)

    # WHEN its event is delivered
    assert poll(notifier, queues) == []

    # THEN it arrived signed with the merchant's secret, which is no longer stored in clear
    assert [d.status for d in receiver.attempts(event.id)] == [200]
    items = boto3.client("dynamodb").scan(TableName="trade")["Items"]
    assert legacy_secret.removeprefix("whsec_") not in json.dumps(items, default=str)
    [endpoint] = WebhookEndpointStore(TradeStore().table).endpoints_of(merchant_id)
    assert (endpoint.url, endpoint.enabled_events) == (receiver.url, ("*",))


# -- retries, the dead-letter queue and the way back -----------------------------------------


def test_a_failing_endpoint_is_retried_on_the_schedule_then_parked_then_redriven(
    notifier: ModuleType,
    queues: Queues,
    receiver: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a merchant whose endpoint answers 500 to every attempt the schedule allows
    receiver.fail_first = MAX_ATTEMPTS
    merchant = given_a_merchant(receiver.url, receiver)
    event = given_a_published_event(merchant)

    # WHEN the first attempt fails, THEN the record is reported and hidden for schedule[0]
    assert len(poll(notifier, queues)) == 1
    assert _receive(queues.url) == []
    # AND every retry fails: each hidden for its delay, the last parked at once
    retried_on_the_schedule_then_parked(notifier, queues)

    attempts = receiver.attempts(event.id)
    assert [d.status for d in attempts] == [500] * MAX_ATTEMPTS
    assert receiver.rejected == 0  # every attempt carried a valid, fresh signature
    endpoint = onboarding_endpoint(merchant)
    assert attempts_of(event) == [(endpoint, n, 500, None) for n in (3, 2, 1)]
    assert _metric_names(capsys.readouterr().out) == ["WebhookDeliveryFailed"] * MAX_ATTEMPTS

    # WHEN an operator redrives the dead-letter queue (the endpoint works again)
    redrive = load_function("notification_redrive")
    assert redrive.lambda_handler({"max_messages": 10}, FakeContext()) == {"moved": 1}

    # THEN the event is delivered, with the same webhook-id so the merchant can dedupe, and
    # the history counts on
    assert _count(queues.dead_letter_url) == 0
    assert poll(notifier, queues) == []
    assert [d.status for d in receiver.attempts(event.id)] == [500] * MAX_ATTEMPTS + [200]
    assert attempts_of(event)[0] == (endpoint, 4, 200, None)


def test_without_time_left_no_request_starts_and_the_record_is_retried_later(
    notifier: ModuleType, queues: Queues, receiver: WebhookReceiver
) -> None:
    class AlmostOutOfTime(FakeContext):
        def get_remaining_time_in_millis(self) -> int:
            return 3_500  # minus the safety margin: under a second

    event = given_a_published_event(given_a_merchant(receiver.url, receiver))

    failed = deliver(notifier, queues, _receive(queues.url), AlmostOutOfTime())

    assert len(failed) == 1
    assert receiver.deliveries == []
    assert attempts_of(event) == []
    messages, _ = wait_until_visible(queues.url, timeout=SCHEDULE[0] + 2)
    assert messages


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        json.dumps({"merchant_id": "mch_1"}),
        json.dumps({"event_id": "evt_0000000000000000000000000z", "merchant_id": "mch_1"}),
        json.dumps(
            {
                "event_id": "evt_0000000000000000000000000z",
                "merchant_id": "mch_1",
                "endpoint_id": "not-an-endpoint",
            }
        ),
        json.dumps(
            {
                "event_id": "evt_0000000000000000000000000z",
                "merchant_id": "mch_1",
                "event": {"id": "evt_0000000000000000000000000y", "object": "event"},
            }
        ),
        json.dumps(
            {
                "event_id": "evt_0000000000000000000000000z",
                "event": {
                    "id": "evt_0000000000000000000000000z",
                    "object": "event",
                    "type": "order.paid",
                    "created_at": "2026-12-06T00:00:00.000Z",
                    "data": {"object": {}},
                },
            }
        ),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "no-event-id",
        "unknown-event",
        "bad-endpoint-id",
        "malformed-carried-event",
        "carried-event-without-merchant",
    ],
)
def test_a_poison_message_lands_in_the_dead_letter_queue_within_seconds(
    notifier: ModuleType, queues: Queues, body: str
) -> None:
    boto3.client("sqs").send_message(QueueUrl=queues.url, MessageBody=body)

    for _ in range(MAX_ATTEMPTS):
        assert len(poll(notifier, queues)) == 1  # failed, and visible again at once

    assert _receive(queues.url) == []  # this receive moves it to the dead-letter queue
    parked = _receive(queues.dead_letter_url)
    assert [message["Body"] for message in parked] == [body]


def test_an_event_queued_for_another_merchant_is_poison_not_delivered(
    notifier: ModuleType, queues: Queues, receiver: WebhookReceiver
) -> None:
    merchant = given_a_merchant(receiver.url, receiver)
    event = given_a_published_event(merchant)
    instead_of_the_published_message(
        queues,
        {"event_id": event.id, "merchant_id": new_id("mch")},
        {
            "event_id": event.id,
            "merchant_id": new_id("mch"),
            "endpoint_id": onboarding_endpoint(merchant),
        },
    )

    assert len(poll(notifier, queues)) == 2
    assert receiver.deliveries == []


def test_logs_name_the_event_but_never_the_secret_or_the_body(
    notifier: ModuleType,
    queues: Queues,
    receiver: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    logging.getLogger("notifier").addHandler(caplog.handler)
    try:
        receiver.fail_first = 1
        merchant = given_a_merchant(receiver.url, receiver)
        event = given_a_published_event(merchant)
        poll(notifier, queues)
    finally:
        logging.getLogger("notifier").removeHandler(caplog.handler)

    records = list({id(r): r for r in caplog.records}.values())  # propagated ones too
    [record] = [r for r in records if r.getMessage() == "webhook delivery failed"]
    logged = vars(record)
    assert (logged["event_id"], logged["event_type"], logged["merchant_id"]) == (
        event.id,
        "order.paid",
        merchant.merchant.id,
    )
    assert logged["endpoint_id"] == onboarding_endpoint(merchant)
    assert (logged["status_code"], logged["attempt"], logged["retry_in_seconds"]) == (500, 1, 1)
    everything = json.dumps([vars(r) for r in records], default=str)
    assert merchant.webhook_secret.removeprefix("whsec_") not in everything
    assert json.dumps(event.resource(), separators=(",", ":")) not in everything
    assert "v1," not in everything


# -- direct delivery (the first attempt, by an asynchronous invoke) ------------------------------


def given_a_stored_event(merchant: Onboarded) -> Event:
    """An event stored as a state change stores it, not yet handed to the notifier."""
    order_id = new_id("ord")
    event = events.event_for(
        events.ORDER_PAID, merchant.merchant.id, order_id, {"id": order_id, "object": "order"}
    )
    assert TradeStore().put_event(event)
    return event


def invoke_directly(notifier: ModuleType, payload: object) -> dict[str, str]:
    """The notifier invoked as Lambda does for an asynchronous invoke: the payload as event."""
    answer: dict[str, str] = notifier.lambda_handler(payload, FakeContext())
    return answer


def test_a_direct_delivery_posts_the_event_at_once_and_queues_nothing(
    notifier: ModuleType,
    queues: Queues,
    receiver: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    merchant = given_a_merchant(receiver.url, receiver)
    event = given_a_stored_event(merchant)

    answer = invoke_directly(notifier, json.loads(notification_queue.message_body(event)))

    assert answer == {"outcome": "delivered"}
    assert [d.event for d in receiver.attempts(event.id)] == [event.resource()]
    assert receiver.rejected == 0
    assert _count(queues.url) == 0
    assert attempts_of(event) == [(onboarding_endpoint(merchant), 1, 200, None)]
    assert _metric_names(capsys.readouterr().out) == ["WebhookDelivered"]


def test_a_failed_direct_delivery_continues_on_the_queue_with_the_same_schedule(
    notifier: ModuleType,
    queues: Queues,
    receiver: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN an endpoint that fails every attempt the schedule allows
    receiver.fail_first = MAX_ATTEMPTS
    merchant = given_a_merchant(receiver.url, receiver)
    event = given_a_stored_event(merchant)

    # WHEN the direct attempt (attempt 1) fails, THEN its message is queued, marked
    assert invoke_directly(notifier, json.loads(notification_queue.message_body(event))) == {
        "outcome": "failed"
    }
    [queued] = _receive(queues.url)
    assert json.loads(queued["Body"])[notification_queue.FIRST_ATTEMPT_FAILED] is True
    assert [d.status for d in receiver.attempts(event.id)] == [500]

    # AND its first receive stands for attempt 1: no POST, hidden for schedule[0]
    assert len(deliver(notifier, queues, [queued])) == 1
    assert [d.status for d in receiver.attempts(event.id)] == [500]
    # AND receive n is attempt n: each retry hidden for its delay, the last parked at once
    retried_on_the_schedule_then_parked(notifier, queues)

    assert [d.status for d in receiver.attempts(event.id)] == [500] * MAX_ATTEMPTS
    endpoint = onboarding_endpoint(merchant)
    assert attempts_of(event) == [(endpoint, n, 500, None) for n in (3, 2, 1)]
    assert _metric_names(capsys.readouterr().out) == ["WebhookDeliveryFailed"] * MAX_ATTEMPTS

    # WHEN an operator redrives it (the endpoint works again), THEN its first receive is an
    # attempt at once: the mark of the failed direct attempt does not come back with it
    redrive = load_function("notification_redrive")
    assert redrive.lambda_handler({"max_messages": 10}, FakeContext()) == {"moved": 1}
    [redriven] = _receive(queues.url)
    assert notification_queue.FIRST_ATTEMPT_FAILED not in json.loads(redriven["Body"])
    assert deliver(notifier, queues, [redriven]) == []
    assert [d.status for d in receiver.attempts(event.id)] == [500] * MAX_ATTEMPTS + [200]


def test_a_direct_payload_that_is_not_ours_reaches_the_dead_letter_queue_by_the_queue(
    notifier: ModuleType, queues: Queues
) -> None:
    payload = {"event_id": "evt_0000000000000000000000000z", "merchant_id": "mch_1"}

    assert invoke_directly(notifier, payload) == {"outcome": "poison"}

    [queued] = _receive(queues.url)
    assert json.loads(queued["Body"]) == payload  # as it came, unmarked
    assert len(deliver(notifier, queues, [queued])) == 1
    for _ in range(MAX_ATTEMPTS - 1):
        assert len(poll(notifier, queues)) == 1
    assert _receive(queues.url) == []
    assert [json.loads(m["Body"]) for m in _receive(queues.dead_letter_url)] == [payload]


def test_a_direct_delivery_that_crashes_raises_so_lambda_retries_it(
    notifier: ModuleType,
    queues: Queues,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    merchant = given_a_merchant(receiver.url, receiver)
    event = given_a_stored_event(merchant)
    monkeypatch.setenv("TRADE_TABLE_NAME", "no-such-table")  # DynamoDB answers an error

    with pytest.raises(ClientError):
        invoke_directly(notifier, json.loads(notification_queue.message_body(event)))

    assert receiver.deliveries == []
    assert _count(queues.url) == 0  # Lambda's retries, then its dead-letter queue, take it


def test_publishing_queues_the_event_when_the_notifier_cannot_be_invoked(
    queues: Queues, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a configured notifier that Lambda refuses to invoke (here: it does not exist)
    monkeypatch.setenv("NOTIFIER_FUNCTION_NAME", "paycore-notifier-missing")
    merchant = given_a_merchant(receiver.url, receiver)

    event = given_a_published_event(merchant)

    [queued] = _receive(queues.url)
    assert json.loads(queued["Body"]) == json.loads(notification_queue.message_body(event))


# -- delivery history ------------------------------------------------------------------------


def test_the_history_keeps_the_newest_attempts_per_endpoint_and_counts_every_one(
    queues: Queues,
) -> None:
    store = WebhookEndpointStore(TradeStore().table)
    made = ATTEMPTS_KEPT + 3
    for n in range(1, made + 1):
        number = store.record_attempt(
            "evt_h",
            "we_a",
            f"2026-12-06T08:{n // 60:02d}:{n % 60:02d}.000Z",
            status_code=500,
            error=None,
        )
        assert number == n
    store.record_attempt(
        "evt_h", "we_b", "2026-12-06T09:00:00.000Z", status_code=None, error="timeout"
    )

    attempts = store.delivery_attempts("evt_h")

    assert len(attempts) == ATTEMPTS_KEPT + 1
    assert (attempts[0].endpoint_id, attempts[0].attempt, attempts[0].error) == (
        "we_b",
        1,
        "timeout",
    )
    kept = [a.attempt for a in attempts if a.endpoint_id == "we_a"]
    assert kept == list(range(made, made - ATTEMPTS_KEPT, -1))  # newest first, oldest dropped
    assert [a.at for a in attempts] == sorted((a.at for a in attempts), reverse=True)


# -- redrive -------------------------------------------------------------------------------------


def test_redrive_moves_at_most_max_messages_back_to_the_notification_queue(
    queues: Queues,
) -> None:
    sqs = boto3.client("sqs")
    bodies = [json.dumps({"event_id": new_id("evt"), "merchant_id": "mch_1"}) for _ in range(13)]
    for body in bodies:
        sqs.send_message(QueueUrl=queues.dead_letter_url, MessageBody=body)
    redrive = load_function("notification_redrive")

    assert redrive.lambda_handler({"max_messages": 12}, FakeContext()) == {"moved": 12}
    assert _count(queues.url) == 12
    assert _count(queues.dead_letter_url) == 1
    assert redrive.lambda_handler({}, FakeContext()) == {"moved": 1}
    assert redrive.lambda_handler({}, FakeContext()) == {"moved": 0}
    moved = [m["Body"] for m in _receive(queues.url) + _receive(queues.url)]
    assert sorted(moved) == sorted(bodies)


@pytest.mark.parametrize("request_", [{"max_messages": 0}, {"max_messages": 5000}, {"x": 1}])
def test_redrive_refuses_an_unbounded_or_unknown_request(
    queues: Queues, request_: dict[str, Any]
) -> None:
    redrive = load_function("notification_redrive")

    with pytest.raises(ValueError, match="validation error"):
        redrive.lambda_handler(request_, FakeContext())
