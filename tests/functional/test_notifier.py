"""The notifier and redrive functions against moto and a real merchant endpoint on loopback.

The queue has the template's shape (a dead-letter queue through a redrive policy, with
maxReceiveCount = len(schedule) + 1) and a short retry schedule, so a whole life cycle runs in
seconds: delivered; failed, hidden for the backoff, retried, parked; moved back; delivered.
A small poller plays Lambda's SQS event source mapping: it receives with all attributes, calls
the handler and deletes only the records not reported in ``batchItemFailures``.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from paycore.clock import now_rfc3339
from paycore.dal.trade_store import TradeStore
from paycore.domain.models import Event, Merchant
from paycore.ids import new_id
from paycore.services import events
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
        }.items():
            monkeypatch.setenv(name, value)
        yield Queues(url, _arn(url), dead_letter_url)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
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


def _secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def given_a_merchant(webhook_url: str | None, receiver: WebhookReceiver | None = None) -> Merchant:
    merchant = Merchant(
        id=new_id("mch"),
        name="Tea Shop",
        webhook_url=webhook_url,
        webhook_secret=_secret(),
        created_at=now_rfc3339(),
    )
    TradeStore().create_merchant(merchant, secrets.token_hex(32))
    if receiver is not None:
        receiver.secret = merchant.webhook_secret
    return merchant


def given_a_published_event(merchant: Merchant) -> Event:
    """An event stored and queued by the real code, as a settled payment does it."""
    order_id = new_id("ord")
    event = events.event_for(
        events.ORDER_PAID, merchant.id, order_id, {"id": order_id, "object": "order"}
    )
    assert TradeStore().put_event(event)
    events.publish(event)
    return event


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


# -- delivery ------------------------------------------------------------------------------------


def test_a_2xx_answer_delivers_the_event_once_and_settles_the_message(
    notifier: ModuleType,
    queues: Queues,
    receiver: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    merchant = given_a_merchant(receiver.url, receiver)
    event = given_a_published_event(merchant)

    failed = poll(notifier, queues)

    assert failed == []
    assert receiver.rejected == 0
    assert [d.event for d in receiver.attempts(event.id)] == [event.resource()]
    assert _count(queues.url) == 0
    delivery = TradeStore().get_delivery(event.id)
    assert delivery is not None
    assert (delivery["attempts"], delivery["delivered"], delivery["last_attempt_status"]) == (
        1,
        True,
        200,
    )
    assert _metric_names(capsys.readouterr().out) == ["WebhookDelivered"]


def test_a_merchant_without_webhook_url_settles_without_a_request(
    notifier: ModuleType, queues: Queues, receiver: WebhookReceiver
) -> None:
    event = given_a_published_event(given_a_merchant(None))

    failed = poll(notifier, queues)

    assert failed == []
    assert receiver.deliveries == []
    assert _count(queues.url) == 0
    assert TradeStore().get_delivery(event.id) is None


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
    messages, waited = wait_until_visible(queues.url, timeout=SCHEDULE[0] + 2)
    assert messages, "not retried after schedule[0]"
    assert SCHEDULE[0] - 0.3 <= waited

    # WHEN the second attempt fails, THEN it is hidden for schedule[1]
    assert len(deliver(notifier, queues, messages)) == 1
    messages, waited = wait_until_visible(queues.url, timeout=SCHEDULE[1] + 2)
    assert messages, "not retried after schedule[1]"
    assert SCHEDULE[1] - 0.3 <= waited

    # WHEN the last attempt fails, THEN SQS parks it in the dead-letter queue at once
    assert len(deliver(notifier, queues, messages)) == 1
    assert _receive(queues.url) == []
    assert _count(queues.url) == 0
    assert _count(queues.dead_letter_url) == 1

    attempts = receiver.attempts(event.id)
    assert [d.status for d in attempts] == [500] * MAX_ATTEMPTS
    assert receiver.rejected == 0  # every attempt carried a valid, fresh signature
    delivery = TradeStore().get_delivery(event.id)
    assert delivery is not None
    assert (delivery["attempts"], delivery["delivered"]) == (MAX_ATTEMPTS, False)
    assert _metric_names(capsys.readouterr().out) == ["WebhookDeliveryFailed"] * MAX_ATTEMPTS

    # WHEN an operator redrives the dead-letter queue (the endpoint works again)
    redrive = load_function("notification_redrive")
    assert redrive.lambda_handler({"max_messages": 10}, FakeContext()) == {"moved": 1}

    # THEN the event is delivered, with the same webhook-id so the merchant can dedupe
    assert _count(queues.dead_letter_url) == 0
    assert poll(notifier, queues) == []
    assert [d.status for d in receiver.attempts(event.id)] == [500] * MAX_ATTEMPTS + [200]


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
    assert TradeStore().get_delivery(event.id) is None
    messages, _ = wait_until_visible(queues.url, timeout=SCHEDULE[0] + 2)
    assert messages


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        json.dumps({"merchant_id": "mch_1"}),
        json.dumps({"event_id": "evt_0000000000000000000000000z", "merchant_id": "mch_1"}),
    ],
    ids=["not-json", "not-an-object", "no-event-id", "unknown-event"],
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
    event = given_a_published_event(given_a_merchant(receiver.url, receiver))
    _receive(queues.url)  # drop the honest message: let it hide for the queue's 180 s
    body = json.dumps({"event_id": event.id, "merchant_id": new_id("mch")})
    boto3.client("sqs").send_message(QueueUrl=queues.url, MessageBody=body)

    assert len(poll(notifier, queues)) == 1
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
        merchant.id,
    )
    assert (logged["status_code"], logged["attempt"], logged["retry_in_seconds"]) == (500, 1, 1)
    everything = json.dumps([vars(r) for r in records], default=str)
    assert merchant.webhook_secret.removeprefix("whsec_") not in everything
    assert json.dumps(event.resource(), separators=(",", ":")) not in everything
    assert "v1," not in everything


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
