"""The misbehaviour switches that act on Stripe's answers (create_error, create_timeout,
close_ignored, refund_error), seen through the SDK and Stripe's idempotency layer. The
notification switches, decline and the refund outcomes are in test_stripe_webhooks.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import stripe

from local_runtime.simulators.stripe import StripeSimulator
from tests.simulators.stripe_support import (
    buyer_json,
    client_for,
    running_simulator,
    session_params,
)


@pytest.fixture
def sim() -> Iterator[StripeSimulator]:
    yield from running_simulator()


@pytest.fixture
def client(sim: StripeSimulator) -> stripe.StripeClient:
    return client_for(sim)


def sessions_of(client: stripe.StripeClient, reference: str) -> list[str]:
    listed = client.v1.checkout.sessions.list({"limit": 100})
    return [session.id for session in listed.data if session.client_reference_id == reference]


def test_create_error_fails_the_first_calls_and_creates_nothing(
    client: stripe.StripeClient,
) -> None:
    switches = '{"create_error": {"times": 2, "status": 502}}'

    for _ in range(2):
        with pytest.raises(stripe.APIError) as caught:
            client.v1.checkout.sessions.create(session_params("pay_c1", simulate=switches))
        assert caught.value.http_status == 502
        assert caught.value.error.type == "api_error"
    assert sessions_of(client, "pay_c1") == []

    session = client.v1.checkout.sessions.create(session_params("pay_c1", simulate=switches))
    assert sessions_of(client, "pay_c1") == [session.id]


def test_a_failed_create_is_not_saved_for_its_key_so_the_sdks_retry_succeeds(
    sim: StripeSimulator,
) -> None:
    retrying = client_for(sim, max_network_retries=1)  # the SDK retries a 5xx with the same key
    switches = '{"create_error": {"times": 1}}'

    session = retrying.v1.checkout.sessions.create(session_params("pay_c2", simulate=switches))

    assert session.status == "open"
    assert sessions_of(retrying, "pay_c2") == [session.id]


def test_create_calls_are_counted_per_reference_over_every_account(sim: StripeSimulator) -> None:
    switches = '{"create_error": {"times": 1}}'
    with pytest.raises(stripe.APIError):
        client_for(sim, "acct_a").v1.checkout.sessions.create(
            session_params("pay_c3", simulate=switches)
        )

    failover = client_for(sim, "acct_b").v1.checkout.sessions.create(
        session_params("pay_c3", simulate=switches)
    )

    assert failover.status == "open"


def test_create_error_after_create_loses_only_the_answer(client: stripe.StripeClient) -> None:
    switches = '{"create_error": {"after_create": true}}'
    options = {"idempotency_key": "create-pay_c4"}

    with pytest.raises(stripe.APIError) as caught:
        client.v1.checkout.sessions.create(session_params("pay_c4", simulate=switches), options)
    assert caught.value.http_status == 503

    made = sessions_of(client, "pay_c4")
    assert len(made) == 1  # it exists: a merchant finds it by listing
    replay = client.v1.checkout.sessions.create(
        session_params("pay_c4", simulate=switches), options
    )
    assert replay.id == made[0]
    assert replay.last_response.headers["Idempotent-Replayed"] == "true"

    fresh_key = client.v1.checkout.sessions.create(session_params("pay_c4", simulate=switches))
    assert fresh_key.id != made[0]  # a new key makes a second session, as at Stripe
    assert len(sessions_of(client, "pay_c4")) == 2


def test_create_timeout_stalls_after_creating_and_a_retry_meanwhile_is_in_use(
    sim: StripeSimulator, client: stripe.StripeClient
) -> None:
    impatient = client_for(sim, http_client=stripe.RequestsClient(timeout=0.3))
    switches = '{"create_timeout": {"times": 1, "seconds": 1.2}}'
    params = session_params("pay_c5", simulate=switches)
    options = {"idempotency_key": "create-pay_c5"}
    started = time.monotonic()

    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.checkout.sessions.create(params, options)
    with pytest.raises(stripe.APIError) as in_use:
        client.v1.checkout.sessions.create(params, options)
    assert in_use.value.http_status == 409
    assert in_use.value.error.code == "idempotency_key_in_use"
    assert len(sessions_of(client, "pay_c5")) == 1  # created before the stall

    time.sleep(max(0.0, 1.3 - (time.monotonic() - started)))
    replay = client.v1.checkout.sessions.create(params, options)
    assert sessions_of(client, "pay_c5") == [replay.id]


def test_other_requests_are_served_during_a_stall(
    sim: StripeSimulator, client: stripe.StripeClient
) -> None:
    stalled = threading.Thread(
        target=client.v1.checkout.sessions.create,
        args=(session_params("pay_c6", simulate='{"create_timeout": {"seconds": 0.6}}'),),
    )
    stalled.start()
    try:
        started = time.monotonic()
        client.v1.checkout.sessions.create(session_params("pay_c7"))
        assert time.monotonic() - started < 0.4
    finally:
        stalled.join(timeout=5)


def test_close_ignored_answers_expired_but_the_buyer_can_still_pay(
    client: stripe.StripeClient,
) -> None:
    session = client.v1.checkout.sessions.create(
        session_params("pay_c8", simulate='{"close_ignored": true}')
    )

    answer = client.v1.checkout.sessions.expire(session.id)

    assert answer.status == "expired"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert buyer_json(session.url, "pay")[1]["status"] == "SUCCESS"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "complete"
    assert client.v1.events.list({"type": "checkout.session.expired"}).data == []


def test_refund_error_fails_the_first_refund_calls_and_refunds_nothing(
    client: stripe.StripeClient,
) -> None:
    session = client.v1.checkout.sessions.create(
        session_params("pay_c9", simulate='{"refund_error": {"times": 1}}')
    )
    buyer_json(session.url, "pay")
    intent = client.v1.checkout.sessions.retrieve(session.id).payment_intent
    options = {"idempotency_key": "refund-rfd_c9"}

    with pytest.raises(stripe.APIError) as caught:
        client.v1.refunds.create({"payment_intent": intent, "amount": 100}, options)
    assert caught.value.http_status == 503
    assert client.v1.refunds.list({"payment_intent": intent}).data == []

    refund = client.v1.refunds.create({"payment_intent": intent, "amount": 100}, options)
    assert refund.status == "succeeded"
    assert [item.id for item in client.v1.refunds.list({"payment_intent": intent}).data] == [
        refund.id
    ]
