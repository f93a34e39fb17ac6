"""The Stripe simulator's events: POSTed to the account's webhook URL with Stripe-Signature
(only the types its endpoint's enabled_events name), verified by the SDK's own
stripe.Webhook.construct_event, retried until 2xx, every one listed by GET /v1/events; and
the notification switches (delay, drop, duplicate, reorder, query_only)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import stripe

from local_runtime.simulators.stripe import StripeSimulator
from tests.simulators.receiver import NotificationReceiver
from tests.simulators.stripe_support import (
    Clock,
    buyer_json,
    client_for,
    credentials,
    events_of,
    running_simulator,
    session_params,
    started,
    wait_until,
    webhook_receiver,
)


@pytest.fixture
def sim() -> Iterator[StripeSimulator]:
    yield from running_simulator()


@pytest.fixture
def client(sim: StripeSimulator) -> stripe.StripeClient:
    return client_for(sim)


@pytest.fixture
def receiver(sim: StripeSimulator) -> Iterator[NotificationReceiver]:
    yield from webhook_receiver(sim)


def paid_session(
    client: stripe.StripeClient, reference: str, simulate: str | None = None
) -> stripe.checkout.Session:
    session = client.v1.checkout.sessions.create(session_params(reference, simulate=simulate))
    buyer_json(session.url, "pay")
    return session


def test_a_payment_publishes_signed_events_the_sdk_accepts(
    sim: StripeSimulator, client: stripe.StripeClient, receiver: NotificationReceiver
) -> None:
    session = paid_session(client, "pay_w1")

    arrived = receiver.wait_for(3)

    secret = credentials(sim)["webhook_secret"]
    events = [
        stripe.Webhook.construct_event(item.body, item.headers["Stripe-Signature"], secret)
        for item in arrived
    ]
    assert sorted(event.type for event in events) == [
        "checkout.session.completed",
        "payment_intent.created",
        "payment_intent.succeeded",
    ]
    completed = next(event for event in events if event.type == "checkout.session.completed")
    assert isinstance(completed, stripe.Event)
    assert completed.id.startswith("evt_") and completed.livemode is False
    assert isinstance(completed.data.object, stripe.checkout.Session)
    assert completed.data.object.id == session.id
    assert completed.data.object.client_reference_id == "pay_w1"
    assert completed.data.object.payment_status == "paid"
    succeeded = next(event for event in events if event.type == "payment_intent.succeeded")
    assert succeeded.data.object.id == completed.data.object.payment_intent
    assert succeeded.data.object.metadata.to_dict() == {"payment_id": "pay_w1"}
    headers = arrived[0].headers
    assert headers["Content-Type"].startswith("application/json")
    assert headers["User-Agent"].startswith("Stripe/1.0")
    assert arrived[0].path == "/notify"


def test_a_tampered_or_foreign_event_is_refused(
    sim: StripeSimulator, client: stripe.StripeClient, receiver: NotificationReceiver
) -> None:
    paid_session(client, "pay_w2")
    item = receiver.wait_for(1)[0]
    secret = credentials(sim)["webhook_secret"]
    signature = item.headers["Stripe-Signature"]
    timestamp = int(signature.split(",")[0].removeprefix("t="))
    assert abs(timestamp - time.time()) < 5

    tampered = item.body.replace(b'"livemode": false', b'"livemode": true')
    assert tampered != item.body
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(tampered, signature, secret)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            item.body, signature, credentials(sim, "acct_b")["webhook_secret"]
        )

    assert stripe.Webhook.construct_event(item.body, signature, secret).type


def test_non_ascii_text_is_signed_as_the_utf8_bytes_sent(
    sim: StripeSimulator, client: stripe.StripeClient, receiver: NotificationReceiver
) -> None:
    params = session_params("pay_w9")
    params["line_items"][0]["price_data"]["product_data"]["name"] = "绿茶"
    params["metadata"] = {"note": "订单 42"}
    session = client.v1.checkout.sessions.create(params)
    client.v1.checkout.sessions.expire(session.id)

    item = receiver.wait_for(1)[0]

    assert "订单 42".encode() in item.body
    event = stripe.Webhook.construct_event(
        item.body, item.headers["Stripe-Signature"], credentials(sim)["webhook_secret"]
    )
    assert event.data.object.metadata["note"] == "订单 42"


def test_an_event_signed_longer_ago_than_the_tolerance_is_refused() -> None:
    """The signature's time is the simulator's clock: ten minutes behind is stale."""
    clock = Clock(datetime.now(UTC) - timedelta(minutes=10))
    simulator = started(clock)
    endpoint = NotificationReceiver([(200, "")])
    try:
        simulator.set_webhook_url("acct_a", endpoint.url)
        paid_session(client_for(simulator), "pay_w3")
        item = endpoint.wait_for(1)[0]
        with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
            stripe.Webhook.construct_event(
                item.body,
                item.headers["Stripe-Signature"],
                credentials(simulator)["webhook_secret"],
            )
    finally:
        simulator.stop()
        endpoint.close()


def test_an_event_is_retried_until_a_2xx_with_a_fresh_signature_each_time(
    sim: StripeSimulator, client: stripe.StripeClient
) -> None:
    endpoint = NotificationReceiver([(500, "down"), (302, ""), (204, "")])
    sim.set_webhook_url("acct_a", endpoint.url)
    try:
        session = client.v1.checkout.sessions.create(session_params("pay_w4"))
        client.v1.checkout.sessions.expire(session.id)  # one event: checkout.session.expired

        arrived = endpoint.wait_for(3)
        time.sleep(0.2)  # nothing after the 204
        assert len(endpoint.received()) == 3
        secret = credentials(sim)["webhook_secret"]
        ids = {
            stripe.Webhook.construct_event(item.body, item.headers["Stripe-Signature"], secret).id
            for item in arrived
        }
        assert len(ids) == 1
        assert {item.body for item in arrived} == {arrived[0].body}
    finally:
        endpoint.close()


def test_expire_publishes_checkout_session_expired_with_the_request(
    client: stripe.StripeClient, receiver: NotificationReceiver
) -> None:
    session = client.v1.checkout.sessions.create(session_params("pay_w5"))

    client.v1.checkout.sessions.expire(session.id, options={"idempotency_key": "expire-pay_w5"})

    event = events_of(receiver.wait_for(1))[0]
    assert event["type"] == "checkout.session.expired"
    assert event["data"]["object"]["id"] == session.id
    assert event["data"]["object"]["status"] == "expired"
    assert event["request"]["idempotency_key"] == "expire-pay_w5"
    assert event["request"]["id"].startswith("req_")


def test_a_session_past_expires_at_expires_and_says_so_once() -> None:
    clock = Clock()
    simulator = started(clock)
    try:
        client = client_for(simulator)
        session = client.v1.checkout.sessions.create(session_params("pay_w6"))
        clock.advance(hours=24, seconds=1)

        assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"
        client.v1.checkout.sessions.list()
        events = client.v1.events.list({"type": "checkout.session.expired"})
        assert [event.data.object.id for event in events.data] == [session.id]
    finally:
        simulator.stop()


def test_refund_events_carry_the_refund_and_the_charge(
    sim: StripeSimulator, client: stripe.StripeClient, receiver: NotificationReceiver
) -> None:
    session = paid_session(client, "pay_w7")
    receiver.wait_for(3)
    intent = client.v1.checkout.sessions.retrieve(session.id).payment_intent

    refund = client.v1.refunds.create(
        {"payment_intent": intent, "amount": 700, "metadata": {"refund_id": "rfd_w7"}}
    )

    events = {event["type"]: event for event in events_of(receiver.wait_for(5)[3:])}
    assert set(events) == {"refund.created", "charge.refunded"}
    assert events["refund.created"]["data"]["object"]["id"] == refund.id
    assert events["refund.created"]["data"]["object"]["metadata"] == {"refund_id": "rfd_w7"}
    charge = events["charge.refunded"]["data"]["object"]
    assert (charge["object"], charge["amount_refunded"], charge["payment_intent"]) == (
        "charge",
        700,
        intent,
    )


def test_events_are_listed_newest_first_and_by_type(
    sim: StripeSimulator, client: stripe.StripeClient
) -> None:
    session = paid_session(client, "pay_w8")  # no webhook URL: the events are only listed

    listed = client.v1.events.list()
    assert [event.type for event in listed.data] == [
        "checkout.session.completed",
        "payment_intent.succeeded",
        "payment_intent.created",
    ]
    assert listed.data[0].pending_webhooks == 0
    only = client.v1.events.list({"type": "payment_intent.*"})
    assert {event.type for event in only.data} == {
        "payment_intent.created",
        "payment_intent.succeeded",
    }
    fetched = client.v1.events.retrieve(listed.data[0].id)
    assert fetched.data.object.id == session.id
    assert client_for(sim, "acct_b").v1.events.list().data == []


# -- the endpoint's enabled_events -------------------------------------------------------------


def test_an_endpoint_gets_only_its_enabled_events_yet_every_event_is_listed(
    sim: StripeSimulator, client: stripe.StripeClient
) -> None:
    endpoint = NotificationReceiver([(200, "")])
    sim.set_webhook_url("acct_a", endpoint.url, ["checkout.session.completed"])
    try:
        session = paid_session(client, "pay_e1")
        arrived = events_of(endpoint.wait_for(1))
        time.sleep(0.3)  # the unsubscribed ones would have come by now

        assert [event["type"] for event in events_of(endpoint.received())] == [
            "checkout.session.completed"
        ]
        assert arrived[0]["pending_webhooks"] == 1
        listed = client.v1.events.list()
        assert [(event.type, event.pending_webhooks) for event in listed.data] == [
            ("checkout.session.completed", 1),
            ("payment_intent.succeeded", 0),
            ("payment_intent.created", 0),
        ]
        deliveries = sim.deliverer.history(("session", "acct_a", session.id))
        assert [delivery["label"].split()[0] for delivery in deliveries] == [
            "checkout.session.completed"
        ]
        assert sim.webhook_endpoint("acct_a") is not None
        view = sim.debug_view("acct_a")
        assert view["enabled_events"]["acct_a"] == ["checkout.session.completed"]
        assert view["enabled_events"]["acct_b"] is None
    finally:
        endpoint.close()


def test_an_endpoint_without_any_enabled_type_of_a_change_gets_nothing(
    sim: StripeSimulator, client: stripe.StripeClient
) -> None:
    endpoint = NotificationReceiver([(200, "")])
    sim.set_webhook_url("acct_a", endpoint.url, ["refund.updated"])
    try:
        session = paid_session(client, "pay_e2")
        client.v1.refunds.create({"payment_intent": _intent(client, session)})
        time.sleep(0.3)

        assert endpoint.received() == []
        assert len(client.v1.events.list().data) == 5  # 3 of the payment, 2 of the refund
    finally:
        endpoint.close()


def test_notify_reorder_reorders_only_the_events_sent(
    sim: StripeSimulator, client: stripe.StripeClient
) -> None:
    endpoint = NotificationReceiver([(200, "")])
    enabled = ["payment_intent.succeeded", "checkout.session.completed"]
    sim.set_webhook_url("acct_a", endpoint.url, enabled)
    try:
        paid_session(client, "pay_e3", simulate='{"notify_reorder": true}')
        arrived = sorted(endpoint.wait_for(2), key=lambda item: item.at)
        time.sleep(0.6)

        assert len(endpoint.received()) == 2
        assert [event["type"] for event in events_of(arrived)] == [
            "checkout.session.completed",
            "payment_intent.succeeded",  # the first one sent, held back
        ]
        assert arrived[-1].at - arrived[0].at >= 0.4
    finally:
        endpoint.close()


def test_notify_reorder_with_a_single_event_sent_just_sends_it(
    sim: StripeSimulator, client: stripe.StripeClient
) -> None:
    endpoint = NotificationReceiver([(200, "")])
    sim.set_webhook_url("acct_a", endpoint.url, ["checkout.session.completed"])
    try:
        chosen = time.monotonic()
        paid_session(client, "pay_e4", simulate='{"notify_reorder": true}')
        arrived = endpoint.wait_for(1)
        time.sleep(0.7)  # past the stale request's half second

        assert len(endpoint.received()) == 1
        assert events_of(arrived)[0]["type"] == "checkout.session.completed"
        assert arrived[0].at - chosen < 0.4
    finally:
        endpoint.close()


@pytest.mark.parametrize("enabled", [[], "checkout.session.completed", [""]])
def test_enabled_events_names_one_or_more_types(sim: StripeSimulator, enabled: object) -> None:
    with pytest.raises(ValueError, match="enabled_events"):
        sim.set_webhook_url("acct_a", "http://127.0.0.1:9/hook", enabled)
    assert sim.webhook_url("acct_a") is None


def _intent(client: stripe.StripeClient, session: stripe.checkout.Session) -> str:
    return str(client.v1.checkout.sessions.retrieve(session.id).payment_intent)


# -- the notification switches ---------------------------------------------------------------


def test_decline_publishes_payment_failed(
    client: stripe.StripeClient, receiver: NotificationReceiver
) -> None:
    session = paid_session(client, "pay_s1", simulate='{"decline": true}')

    events = {event["type"]: event for event in events_of(receiver.wait_for(2))}

    assert set(events) == {"payment_intent.created", "payment_intent.payment_failed"}
    failed = events["payment_intent.payment_failed"]["data"]["object"]
    assert failed["last_payment_error"]["decline_code"] == "generic_decline"
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "unpaid"


def test_notify_delay_seconds_delays_the_first_attempt(
    client: stripe.StripeClient, receiver: NotificationReceiver
) -> None:
    chosen = time.monotonic()
    paid_session(client, "pay_s2", simulate='{"notify_delay_seconds": 0.4}')

    arrived = receiver.wait_for(3)

    assert min(item.at for item in arrived) - chosen >= 0.35


def test_notify_drop_sends_nothing_but_the_events_exist(
    sim: StripeSimulator, client: stripe.StripeClient, receiver: NotificationReceiver
) -> None:
    session = paid_session(client, "pay_s3", simulate='{"notify_drop": true}')
    time.sleep(0.3)

    assert receiver.received() == []
    assert len(client.v1.events.list().data) == 3
    deliveries = sim.deliverer.history(("session", "acct_a", session.id))
    assert [delivery["state"] for delivery in deliveries] == ["DROPPED"] * 3


def test_notify_duplicate_sends_copies_of_each_event(
    client: stripe.StripeClient, receiver: NotificationReceiver
) -> None:
    paid_session(client, "pay_s4", simulate='{"notify_duplicate": 2}')

    arrived = events_of(receiver.wait_for(6))
    time.sleep(0.2)

    assert len(receiver.received()) == 6
    ids = [event["id"] for event in arrived]
    assert len(set(ids)) == 3 and all(ids.count(event_id) == 2 for event_id in ids)


def test_notify_reorder_sends_the_earlier_event_after_the_final_one(
    client: stripe.StripeClient, receiver: NotificationReceiver
) -> None:
    paid_session(client, "pay_s5", simulate='{"notify_reorder": true}')

    arrived = receiver.wait_for(3)

    ordered = sorted(arrived, key=lambda item: item.at)
    events = events_of(ordered)
    assert events[-1]["type"] == "payment_intent.created"
    assert events[-1]["data"]["object"]["status"] == "requires_payment_method"
    assert ordered[-1].at - ordered[0].at >= 0.4


def test_query_only_publishes_nothing_and_the_query_tells(
    client: stripe.StripeClient, receiver: NotificationReceiver
) -> None:
    session = paid_session(client, "pay_s6", simulate='{"query_only": true}')
    intent = client.v1.checkout.sessions.retrieve(session.id).payment_intent
    client.v1.refunds.create({"payment_intent": intent})
    time.sleep(0.3)

    assert receiver.received() == []
    assert client.v1.events.list().data == []
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"


def test_a_delayed_refund_is_pending_then_updated(
    sim: StripeSimulator, client: stripe.StripeClient, receiver: NotificationReceiver
) -> None:
    session = paid_session(client, "pay_s7", simulate='{"refund_delay_seconds": 0.3}')
    receiver.wait_for(3)
    intent = client.v1.checkout.sessions.retrieve(session.id).payment_intent

    refund = client.v1.refunds.create({"payment_intent": intent, "amount": 999})

    assert refund.status == "pending"
    assert refund.balance_transaction is None
    wait_until(lambda: client.v1.refunds.retrieve(refund.id).status == "succeeded")
    events = events_of(receiver.wait_for(6)[3:])
    by_type = {event["type"]: event for event in events}
    assert set(by_type) == {"refund.created", "refund.updated", "charge.refunded"}
    assert by_type["refund.created"]["data"]["object"]["status"] == "pending"
    assert by_type["refund.updated"]["data"]["object"]["status"] == "succeeded"
    assert by_type["refund.updated"]["data"]["previous_attributes"] == {"status": "pending"}
    json.dumps(by_type)  # plain JSON all the way down


def test_a_failing_refund_says_refund_failed(
    client: stripe.StripeClient, receiver: NotificationReceiver
) -> None:
    session = paid_session(client, "pay_s8", simulate='{"refund_fail": true}')
    receiver.wait_for(3)
    intent = client.v1.checkout.sessions.retrieve(session.id).payment_intent

    refund = client.v1.refunds.create({"payment_intent": intent, "amount": 500})

    assert (refund.status, refund.failure_reason) == ("failed", "declined")
    events = {event["type"]: event for event in events_of(receiver.wait_for(5)[3:])}
    assert set(events) == {"refund.created", "refund.failed"}
    assert client.v1.charges.retrieve(refund.charge).amount_refunded == 0
    again = client.v1.refunds.create({"payment_intent": intent})  # a failed refund frees its amount
    assert (again.amount, again.status) == (1999, "failed")
