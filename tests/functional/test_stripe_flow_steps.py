"""The Stripe adapter behind paycore's own machinery: the registry builds it from each account's
moto secret, the payment state machine's steps create, query, fail over and settle through it,
and the callback function takes the simulator's real webhooks at /callbacks/stripe/{account}.
(The state machine itself runs in the e2e suite.)"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from local_runtime.simulators.stripe import StripeSimulator
from paycore.api.models import CreateOrderRequest, CreatePaymentRequest
from paycore.channels.base import CreateChannelOrder
from paycore.channels.registry import callback_gateway, get_gateway, routed_gateways
from paycore.channels.stripe.adapter import StripeGateway
from paycore.dal.trade_store import TradeStore
from paycore.domain.status import OrderStatus, PaymentStatus
from paycore.errors import NotFound, ServiceUnavailable
from paycore.ids import new_id
from paycore.services import merchants, orders, payments
from paycore.services.orchestration import PaymentSteps
from tests.functional.conftest import MotoStack, put_account_secret
from tests.functional.stripe_support import (
    EVERY_EVENT,
    Webhooks,
    buyer,
    credentials,
    running,
    sdk_client,
    sessions_of,
)
from tests.simulators.receiver import Received
from tests.support import FakeContext, load_function, rest_event

ACCOUNTS = ("stripe-a", "stripe-b")


@pytest.fixture(scope="module")
def sim() -> Iterator[StripeSimulator]:
    yield from running()


@pytest.fixture
def stripe_accounts(
    moto_stack: MotoStack, sim: StripeSimulator, monkeypatch: pytest.MonkeyPatch
) -> StripeSimulator:
    """Route the stripe channel to stripe-a then stripe-b, each with its credentials (the
    simulator's /_sim/accounts entry) in its own secret, as the local runtime writes them."""
    monkeypatch.setenv(
        "CHANNEL_ACCOUNTS", json.dumps([{"id": a, "channel": "stripe"} for a in ACCOUNTS])
    )
    for account in ACCOUNTS:
        put_account_secret(account, credentials(sim, account))
    return sim


@pytest.fixture
def hooks(sim: StripeSimulator) -> Iterator[dict[str, Webhooks]]:
    """Each account's endpoint, subscribed as docs/channels.md says (WEBHOOK_EVENTS)."""
    endpoints = {account: Webhooks(sim, account) for account in ACCOUNTS}
    yield endpoints
    for endpoint in endpoints.values():
        endpoint.close()


@pytest.fixture
def resumed(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the callback and the steps hand to the waiting execution (SendTaskSuccess)."""
    calls: list[dict[str, Any]] = []

    def record(token: str, outcome: dict[str, Any]) -> bool:
        calls.append({"token": token, **outcome})
        return True

    monkeypatch.setattr("paycore.services.callbacks.resume_with_outcome", record)
    monkeypatch.setattr("paycore.services.orchestration.resume_with_outcome", record)
    return calls


def _paying_order(
    store: TradeStore, simulate: dict[str, Any] | None = None
) -> tuple[str, str, str]:
    merchant = merchants.onboard_merchant(store, "Shop", None).merchant
    order = orders.create_order(
        store,
        merchant.id,
        CreateOrderRequest(
            merchant_order_no=f"S-{new_id('ord')}", amount=1999, currency="CNY", subject="Tea"
        ),
        "https://api.example.test/live",
    )
    payment = _pay(store, merchant.id, order.id, simulate)
    return merchant.id, order.id, payment


def _pay(
    store: TradeStore, merchant_id: str, order_id: str, simulate: dict[str, Any] | None = None
) -> str:
    instrument: dict[str, Any] = {"type": "channel", "channel": "stripe"}
    if simulate is not None:
        instrument["simulate"] = simulate
    payment = payments.start_payment(
        store,
        merchant_id,
        order_id,
        CreatePaymentRequest.model_validate({"instruments": [instrument]}),
        "http://127.0.0.1:9",
    )
    return payment.id


def _callback(account: str, received: Received) -> dict[str, Any]:
    """The webhook as API Gateway hands it to the callback function at the account's route."""
    return rest_event(
        "POST",
        f"/callbacks/stripe/{account}",
        resource="/callbacks/{channel}/{account}",
        path_parameters={"channel": "stripe", "account": account},
        raw_body=received.body.decode(),
        headers=received.headers,
    )


def _created(store: TradeStore, steps: PaymentSteps, payment_id: str) -> Any:
    steps.create_channel_order(payment_id, "http://127.0.0.1:9", "token-1")
    payment = store.get_payment(payment_id)
    assert payment is not None and payment.next_action is not None
    return payment


# -- the registry -------------------------------------------------------------------------------


@pytest.mark.usefixtures("stripe_accounts")
def test_the_registry_builds_the_stripe_adapter_from_each_accounts_secret(
    sim: StripeSimulator,
) -> None:
    gateway = get_gateway("stripe", "stripe-b")

    assert isinstance(gateway, StripeGateway)
    assert (gateway.name, gateway.account_id, gateway.simulator) == ("stripe", "stripe-b", True)
    request = CreateChannelOrder(
        out_trade_no=new_id("pay"),
        amount=100,
        currency="JPY",
        subject="Matcha",
        notify_url="http://127.0.0.1:9/callbacks/stripe/stripe-b",
        expires_at="2099-01-01T00:00:00Z",
    )
    created = gateway.create_order(request)
    assert [s.id for s in sessions_of(sim, request.out_trade_no, "stripe-b")] == [
        created.channel_order_id
    ]
    assert sessions_of(sim, request.out_trade_no, "stripe-a") == []
    assert [g.account_id for g in routed_gateways("stripe", "JPY", 100)] == list(ACCOUNTS)


@pytest.mark.usefixtures("stripe_accounts")
def test_credentials_that_are_not_a_stripe_accounts_leave_it_unconfigured_quoting_nothing(
    sim: StripeSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    broken = {**credentials(sim, "stripe-b"), "simulator": False}  # http for a real account
    put_account_secret("stripe-b", broken)

    with caplog.at_level(logging.WARNING), pytest.raises(ServiceUnavailable):
        get_gateway("stripe", "stripe-b")

    assert "stripe-b is not configured" in caplog.text
    assert broken["secret_key"] not in caplog.text
    assert broken["webhook_secret"] not in caplog.text
    assert isinstance(callback_gateway("stripe", "stripe-a"), StripeGateway)
    with pytest.raises(NotFound):
        callback_gateway("stripe", "stripe-b")


# -- the steps and the callback function --------------------------------------------------------


@pytest.mark.usefixtures("stripe_accounts")
def test_a_paid_session_is_one_callback_that_resumes_the_payment_and_settles(
    hooks: dict[str, Webhooks], resumed: list[dict[str, Any]]
) -> None:
    store = TradeStore()
    _, order_id, payment_id = _paying_order(store)
    steps = PaymentSteps(store)
    payment = _created(store, steps, payment_id)
    handler = load_function("channel_callback")

    buyer(payment.next_action["url"], "pay")
    completed = hooks["stripe-a"].wait_for("checkout.session.completed")
    answer = handler.lambda_handler(
        _callback("stripe-a", completed["checkout.session.completed"]), FakeContext()
    )
    time.sleep(0.3)  # an event sent besides would have arrived by now

    assert answer["statusCode"] == 200
    assert hooks["stripe-a"].types() == ["checkout.session.completed"]
    assert [(r["token"], r["status"], r["source"]) for r in resumed] == [
        ("token-1", "succeeded", "callback")
    ]
    steps.settle(payment_id, resumed[0])
    order = store.get_order(order_id)
    assert order is not None and order.status is OrderStatus.PAID


@pytest.mark.usefixtures("stripe_accounts")
def test_an_endpoint_subscribed_to_more_is_harmless_an_early_event_resumes_nothing(
    sim: StripeSimulator, resumed: list[dict[str, Any]]
) -> None:
    everything = Webhooks(sim, "stripe-a", EVERY_EVENT)
    store = TradeStore()
    _, order_id, payment_id = _paying_order(store)
    steps = PaymentSteps(store)
    payment = _created(store, steps, payment_id)
    assert payment.channel_account == "stripe-a"
    assert payment.channel_order_id.startswith("cs_test_")
    handler = load_function("channel_callback")

    buyer(payment.next_action["url"], "pay")
    events = everything.wait_for("payment_intent.created", "checkout.session.completed")
    everything.close()
    early = handler.lambda_handler(
        _callback("stripe-a", events["payment_intent.created"]), FakeContext()
    )
    final = handler.lambda_handler(
        _callback("stripe-a", events["checkout.session.completed"]), FakeContext()
    )

    assert (early["statusCode"], final["statusCode"]) == (200, 200)
    assert json.loads(final["body"]) == {"received": True}
    assert [(r["token"], r["status"], r["source"]) for r in resumed] == [
        ("token-1", "succeeded", "callback")
    ]
    steps.settle(payment_id, resumed[0])
    order = store.get_order(order_id)
    assert order is not None and order.status is OrderStatus.PAID


@pytest.mark.usefixtures("stripe_accounts")
def test_a_decline_fails_the_payment_closes_its_session_and_the_order_can_be_paid_again(
    sim: StripeSimulator, hooks: dict[str, Webhooks], resumed: list[dict[str, Any]]
) -> None:
    store = TradeStore()
    merchant_id, order_id, payment_id = _paying_order(store)
    steps = PaymentSteps(store)
    payment = _created(store, steps, payment_id)
    handler = load_function("channel_callback")

    buyer(payment.next_action["url"], "decline")
    failed = hooks["stripe-a"].wait_for("payment_intent.payment_failed")
    answer = handler.lambda_handler(
        _callback("stripe-a", failed["payment_intent.payment_failed"]), FakeContext()
    )

    assert answer["statusCode"] == 200
    assert [(r["status"], r["failure_code"]) for r in resumed] == [("failed", "payment_declined")]
    session = sdk_client(sim, "stripe-a").v1.checkout.sessions.retrieve(payment.channel_order_id)
    assert session.status == "expired"  # it can no longer be paid
    steps.settle(payment_id, resumed[0])
    failed_payment = store.get_payment(payment_id)
    assert failed_payment is not None and failed_payment.status is PaymentStatus.FAILED
    order = store.get_order(order_id)
    assert order is not None and order.status is OrderStatus.CREATED

    again = _pay(store, merchant_id, order_id)
    second = _created(store, steps, again)
    buyer(second.next_action["url"], "pay")
    assert steps.query_channel(again)["status"] == "succeeded"


@pytest.mark.usefixtures("stripe_accounts")
def test_a_lost_create_answer_is_adopted_from_the_query(resumed: list[dict[str, Any]]) -> None:
    store = TradeStore()
    _, _, payment_id = _paying_order(store, {"create_error": {"times": 1, "after_create": True}})
    steps = PaymentSteps(store)

    steps.create_channel_order(payment_id, "http://127.0.0.1:9", "token-1")

    payment = store.get_payment(payment_id)
    assert payment is not None
    assert [a["result"] for a in payment.channel_attempts] == ["created_answer_lost"]
    assert payment.channel_account == "stripe-a"
    assert payment.next_action is not None and "/c/pay/" in payment.next_action["url"]
    assert steps.query_channel(payment_id)["status"] == "pending"


@pytest.mark.usefixtures("stripe_accounts")
def test_an_account_that_proves_it_created_nothing_fails_over_to_the_next(
    sim: StripeSimulator,
) -> None:
    store = TradeStore()
    _, _, payment_id = _paying_order(store, {"create_error": {"times": 1, "status": 503}})
    steps = PaymentSteps(store)

    steps.create_channel_order(payment_id, "http://127.0.0.1:9", "token-1")

    payment = store.get_payment(payment_id)
    assert payment is not None
    assert [(a["account"], a["result"]) for a in payment.channel_attempts] == [
        ("stripe-a", "not_created"),
        ("stripe-b", "created"),
    ]
    assert payment.channel_account == "stripe-b"
    assert sessions_of(sim, payment_id, "stripe-a") == []
    assert [s.id for s in sessions_of(sim, payment_id, "stripe-b")] == [payment.channel_order_id]


@pytest.mark.usefixtures("stripe_accounts")
def test_a_webhook_at_another_accounts_route_is_refused_and_changes_nothing(
    hooks: dict[str, Webhooks], resumed: list[dict[str, Any]]
) -> None:
    store = TradeStore()
    _, _, payment_id = _paying_order(store)
    payment = _created(store, PaymentSteps(store), payment_id)
    handler = load_function("channel_callback")
    buyer(payment.next_action["url"], "pay")
    completed = hooks["stripe-a"].wait_for("checkout.session.completed")[
        "checkout.session.completed"
    ]

    answer = handler.lambda_handler(_callback("stripe-b", completed), FakeContext())

    assert answer["statusCode"] == 401
    assert json.loads(answer["body"])["code"] == "callback_rejected"
    assert resumed == []
