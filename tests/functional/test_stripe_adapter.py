"""paycore's Stripe adapter against the Stripe simulator, over real HTTP: every verb of the
channel port, the buyer on the Checkout page, the webhooks the simulator really sends (caught
by a local endpoint), and the switches that change what the adapter meets. The official
``stripe`` SDK, pointed at the same simulator, is the merchant's own view (the oracle)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe

from local_runtime.simulators.stripe import StripeSimulator
from paycore import clock
from paycore.channels.base import (
    ChannelPaymentState,
    ChannelPaymentStatus,
    ChannelRefundState,
    ChannelRefundStatus,
    NextActionType,
)
from paycore.channels.stripe import adapter as stripe_adapter
from paycore.channels.stripe.adapter import StripeGateway
from paycore.channels.stripe.settings import StripeSettings
from paycore.channels.stripe.transformers import WEBHOOK_EVENTS, EventType
from paycore.errors import CallbackRejected, ChannelRejected, ChannelUnavailable
from paycore.ids import derived_id, new_id
from paycore.money import CURRENCY_EXPONENTS
from tests.functional.stripe_support import (
    EVERY_EVENT,
    Webhooks,
    buyer,
    credentials,
    gateway_for,
    order,
    refund_request,
    running,
    sdk_client,
    sessions_of,
    wait_until,
)


@pytest.fixture(scope="module")
def sim() -> Iterator[StripeSimulator]:
    yield from running()


@pytest.fixture
def gateway(sim: StripeSimulator) -> StripeGateway:
    return gateway_for(sim)


@pytest.fixture
def hooks(sim: StripeSimulator) -> Iterator[Webhooks]:
    """An endpoint subscribed to every type: the adapter reads more than WEBHOOK_EVENTS."""
    endpoint = Webhooks(sim, enabled_events=EVERY_EVENT)
    yield endpoint
    endpoint.close()


def paid(gateway: StripeGateway, **options: Any) -> tuple[Any, str, ChannelPaymentState]:
    """A payment whose buyer paid: (its request, its session id, the query's state)."""
    request = order(**options)
    created = gateway.create_order(request)
    assert buyer(str(created.next_action.url), "pay")["status"] == "SUCCESS"
    state = gateway.query_order(request.out_trade_no, created.channel_order_id)
    assert state.status is ChannelPaymentStatus.SUCCEEDED
    return request, created.channel_order_id, state


def parse(gateway: StripeGateway, item: Any) -> ChannelPaymentState | ChannelRefundState:
    return gateway.parse_notification(item.body, item.headers)


# -- create -----------------------------------------------------------------------------------


def test_create_makes_a_checkout_session_and_sends_the_buyer_to_its_page(
    sim: StripeSimulator, gateway: StripeGateway
) -> None:
    request = order(simulate={"notify_duplicate": 2})

    created = gateway.create_order(request)

    assert created.out_trade_no == request.out_trade_no
    assert created.next_action.type is NextActionType.REDIRECT
    assert created.next_action.url == f"{sim.url}/c/pay/{created.channel_order_id}"
    session = sdk_client(sim).v1.checkout.sessions.retrieve(created.channel_order_id)
    assert session.client_reference_id == request.out_trade_no
    assert (session.amount_total, session.currency, session.status) == (1999, "usd", "open")
    assert (session.success_url, session.cancel_url) == (request.return_url, request.return_url)
    assert session.metadata.to_dict() == {
        "payment_id": request.out_trade_no,
        "simulate": '{"notify_duplicate":2}',  # the switches, handed back untouched
    }
    assert session.payment_intent is None  # made when the buyer acts


def test_creating_again_returns_the_same_session_never_a_second_one(
    sim: StripeSimulator, gateway: StripeGateway
) -> None:
    request = order()

    first, again = gateway.create_order(request), gateway.create_order(request)

    assert again == first
    assert [s.id for s in sessions_of(sim, request.out_trade_no)] == [first.channel_order_id]


@pytest.mark.parametrize(
    ("expires_in", "expected"),
    [
        (timedelta(minutes=10), "start + 1 h"),  # Stripe wants at least 30 minutes
        (timedelta(hours=3), "the order's"),
        (timedelta(hours=30), "start + 23 h"),  # and at most 24 hours
    ],
)
def test_the_session_expires_with_the_order_within_stripes_window(
    sim: StripeSimulator, gateway: StripeGateway, expires_in: timedelta, expected: str
) -> None:
    now = datetime.now(UTC)
    request = order(expires_in=expires_in, now=now)  # the payment began now

    created = gateway.create_order(request)

    session = sdk_client(sim).v1.checkout.sessions.retrieve(created.channel_order_id)
    minute = now.replace(second=0, microsecond=0)
    wanted = {
        "start + 1 h": minute + timedelta(hours=1),
        "the order's": now + expires_in,
        "start + 23 h": minute + timedelta(hours=23),
    }[expected]
    assert session.expires_at == int(wanted.timestamp())


@pytest.mark.parametrize("currency", sorted(CURRENCY_EXPONENTS))
def test_every_currency_is_sent_in_its_minor_unit_and_read_back(
    sim: StripeSimulator, gateway: StripeGateway, currency: str
) -> None:
    _, session_id, state = paid(gateway, amount=1999, currency=currency)

    session = sdk_client(sim).v1.checkout.sessions.retrieve(session_id, {"expand": ["line_items"]})
    assert (session.amount_total, session.currency) == (1999, currency.lower())
    assert session.line_items.data[0].price.unit_amount == 1999
    assert (state.amount, state.currency) == (1999, currency)  # 1999 JPY is 1999 yen


def test_a_create_stripe_refuses_is_rejected_and_creates_nothing(
    sim: StripeSimulator, gateway: StripeGateway
) -> None:
    request = order(amount=100_000_000)  # above Stripe's eight digits

    with pytest.raises(ChannelRejected, match="unit_amount"):
        gateway.create_order(request)

    assert sessions_of(sim, request.out_trade_no) == []
    state = gateway.query_order(request.out_trade_no)
    assert state.status is ChannelPaymentStatus.NOT_FOUND


def test_a_key_stripe_does_not_know_is_rejected_without_quoting_it(sim: StripeSimulator) -> None:
    wrong = "sk_test_" + "x" * 48
    settings = StripeSettings.model_validate({**credentials(sim), "secret_key": wrong})
    gateway = StripeGateway(settings, account_id="stripe-a", timeout=2.0)

    with pytest.raises(ChannelRejected) as refused:
        gateway.create_order(order())

    assert "xxxx" not in str(refused.value)
    assert "API key" in str(refused.value)


# -- query --------------------------------------------------------------------------------------


def test_a_new_session_is_pending_with_its_page_found_with_or_without_its_id(
    gateway: StripeGateway,
) -> None:
    request = order()
    created = gateway.create_order(request)

    by_id = gateway.query_order(request.out_trade_no, created.channel_order_id)
    by_reference = gateway.query_order(request.out_trade_no)

    assert by_id == by_reference
    assert by_id.status is ChannelPaymentStatus.PENDING
    assert by_id.next_action == created.next_action
    assert (by_id.amount, by_id.currency, by_id.channel_order_id) == (
        1999,
        "USD",
        created.channel_order_id,
    )


def test_a_payment_the_account_never_saw_is_not_found_after_paging_through_its_sessions(
    gateway: StripeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = order()
    for _ in range(3):
        gateway.create_order(order())  # other payments' sessions, created since mine began
    monkeypatch.setattr(stripe_adapter, "PAGE_SIZE", 2)

    assert gateway.query_order(mine.out_trade_no).status is ChannelPaymentStatus.NOT_FOUND
    created = gateway.create_order(mine)
    for _ in range(3):
        gateway.create_order(order())
    found = gateway.query_order(mine.out_trade_no)
    assert (found.status, found.channel_order_id) == (
        ChannelPaymentStatus.PENDING,
        created.channel_order_id,
    )


def test_a_paid_payment_succeeds_with_its_payment_intent_and_stays_so_once_refunded(
    sim: StripeSimulator, gateway: StripeGateway
) -> None:
    request, session_id, state = paid(gateway)

    intent = sdk_client(sim).v1.checkout.sessions.retrieve(session_id).payment_intent
    assert (state.amount, state.currency, state.channel_transaction_id) == (1999, "USD", intent)
    assert state.next_action is None
    gateway.refund(refund_request(request, 1999))
    after = gateway.query_order(request.out_trade_no)
    assert after.status is ChannelPaymentStatus.SUCCEEDED  # Stripe: still complete, paid


def test_a_declined_payment_fails_once_its_session_is_closed(
    sim: StripeSimulator, gateway: StripeGateway
) -> None:
    request = order()
    created = gateway.create_order(request)
    assert buyer(str(created.next_action.url), "decline")["status"] == "DECLINED"
    client = sdk_client(sim)
    # At Stripe the session stays open after a decline: the buyer could pay with another card.
    assert client.v1.checkout.sessions.retrieve(created.channel_order_id).status == "open"

    state = gateway.query_order(request.out_trade_no)

    assert state.status is ChannelPaymentStatus.FAILED
    assert state.failure_code == "payment_declined"
    assert state.failure_message is not None
    assert "card_declined/generic_decline" in state.failure_message
    assert client.v1.checkout.sessions.retrieve(created.channel_order_id).status == "expired"
    assert gateway.query_order(request.out_trade_no, created.channel_order_id) == state
    assert buyer(str(created.next_action.url), "pay")["status"] != "SUCCESS"


def test_the_decline_switch_turns_the_buyers_pay_into_a_decline(gateway: StripeGateway) -> None:
    request = order(simulate={"decline": True})
    created = gateway.create_order(request)

    assert buyer(str(created.next_action.url), "pay")["status"] == "DECLINED"
    assert gateway.query_order(request.out_trade_no).failure_code == "payment_declined"


def test_an_answer_about_another_payment_is_unavailable(gateway: StripeGateway) -> None:
    other = gateway.create_order(order())

    with pytest.raises(ChannelUnavailable, match="another payment"):
        gateway.query_order(new_id("pay"), other.channel_order_id)


# -- close --------------------------------------------------------------------------------------


def test_closing_expires_the_session_and_closing_again_is_harmless(
    sim: StripeSimulator, gateway: StripeGateway
) -> None:
    request = order()
    created = gateway.create_order(request)

    closed = gateway.close_order(request.out_trade_no, created.channel_order_id)
    again = gateway.close_order(request.out_trade_no)  # Stripe answers 400: not open

    assert closed.status is again.status is ChannelPaymentStatus.CLOSED
    session = sdk_client(sim).v1.checkout.sessions.retrieve(created.channel_order_id)
    assert (session.status, session.url) == ("expired", None)
    assert buyer(str(created.next_action.url), "pay")["status"] != "SUCCESS"
    assert gateway.query_order(request.out_trade_no).status is ChannelPaymentStatus.CLOSED


def test_closing_a_paid_payment_reports_the_success_for_the_caller_to_settle(
    gateway: StripeGateway,
) -> None:
    request, session_id, paid_state = paid(gateway)

    state = gateway.close_order(request.out_trade_no, session_id)

    assert state.status is ChannelPaymentStatus.SUCCEEDED
    assert (state.amount, state.channel_transaction_id) == (1999, paid_state.channel_transaction_id)


def test_closing_a_declined_payment_fails_it_and_closing_nothing_is_not_found(
    gateway: StripeGateway,
) -> None:
    request = order()
    created = gateway.create_order(request)
    buyer(str(created.next_action.url), "decline")

    assert gateway.close_order(request.out_trade_no).failure_code == "payment_declined"
    assert gateway.close_order(new_id("pay")).status is ChannelPaymentStatus.NOT_FOUND


def test_closing_without_the_session_id_expires_every_session_of_the_payment(
    sim: StripeSimulator, gateway: StripeGateway
) -> None:
    request = order()
    created = gateway.create_order(request)
    # A second session for the payment, as a create with a lost key would have made.
    stray = sdk_client(sim).v1.checkout.sessions.create(
        {
            "mode": "payment",
            "client_reference_id": request.out_trade_no,
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 1999,
                        "product_data": {"name": "Green tea"},
                    },
                    "quantity": 1,
                }
            ],
        }
    )

    state = gateway.close_order(request.out_trade_no)

    assert state.status is ChannelPaymentStatus.CLOSED
    statuses = {s.id: s.status for s in sessions_of(sim, request.out_trade_no)}
    assert statuses == {created.channel_order_id: "expired", stray.id: "expired"}


def test_close_ignored_answers_closed_yet_the_buyer_can_still_pay(
    sim: StripeSimulator, gateway: StripeGateway
) -> None:
    request = order(simulate={"close_ignored": True})
    created = gateway.create_order(request)

    closed = gateway.close_order(request.out_trade_no, created.channel_order_id)

    assert closed.status is ChannelPaymentStatus.CLOSED
    assert buyer(str(created.next_action.url), "pay")["status"] == "SUCCESS"
    late = gateway.query_order(request.out_trade_no, created.channel_order_id)
    assert late.status is ChannelPaymentStatus.SUCCEEDED  # the caller refunds this late payment


# -- refunds ------------------------------------------------------------------------------------


def test_partial_refunds_add_up_and_each_is_found_again(
    sim: StripeSimulator, gateway: StripeGateway
) -> None:
    request, session_id, state = paid(gateway)

    first = gateway.refund(refund_request(request, 500, reason="damaged"))
    second = gateway.refund(
        refund_request(
            request,
            700,
            channel_order_id=session_id,
            channel_transaction_id=state.channel_transaction_id,
        )
    )

    assert first.status is second.status is ChannelRefundStatus.SUCCEEDED
    assert (first.amount, second.amount, first.currency) == (500, 700, "USD")
    assert gateway.query_refund(request.out_trade_no, first.out_refund_no) == first
    assert gateway.query_refund(request.out_trade_no, second.out_refund_no) == second
    client = sdk_client(sim)
    intent = client.v1.payment_intents.retrieve(str(state.channel_transaction_id))
    charge = client.v1.charges.retrieve(str(intent.latest_charge))
    assert charge.amount_refunded == 1200
    stored = client.v1.refunds.retrieve(str(first.channel_refund_id))
    assert stored.metadata.to_dict() == {
        "refund_id": first.out_refund_no,
        "payment_id": request.out_trade_no,
        "reason": "damaged",
    }


def test_refunding_again_with_the_same_refund_id_refunds_once(
    sim: StripeSimulator, gateway: StripeGateway
) -> None:
    request, _, state = paid(gateway)
    asked = refund_request(request, 300)

    first, again = gateway.refund(asked), gateway.refund(asked)

    assert again == first
    listed = sdk_client(sim).v1.refunds.list({"payment_intent": str(state.channel_transaction_id)})
    assert [r.id for r in listed.data] == [first.channel_refund_id]
    with pytest.raises(ChannelRejected, match="is for 300 USD"):
        gateway.refund(refund_request(request, 400, out_refund_no=asked.out_refund_no))


def test_refunds_stripe_refuses_are_rejected(gateway: StripeGateway) -> None:
    request, _, _ = paid(gateway)
    gateway.refund(refund_request(request, 1500))
    unpaid = order()
    gateway.create_order(unpaid)

    with pytest.raises(ChannelRejected, match="amount_too_large"):
        gateway.refund(refund_request(request, 500))  # 499 left
    with pytest.raises(ChannelRejected, match="no PaymentIntent"):
        gateway.refund(refund_request(unpaid, 100))
    with pytest.raises(ChannelRejected, match="no PaymentIntent"):
        gateway.refund(refund_request(order(), 100))  # a payment the account never saw


def test_a_refund_is_found_by_its_payment_when_its_id_does_not_say_when_it_began(
    gateway: StripeGateway,
) -> None:
    request, _, _ = paid(gateway)
    late_refund_id = derived_id("rfd", request.out_trade_no, "late_payment")  # not time-ordered

    unknown = gateway.query_refund(request.out_trade_no, late_refund_id)
    made = gateway.refund(refund_request(request, 1999, out_refund_no=late_refund_id))

    assert unknown.status is ChannelRefundStatus.NOT_FOUND
    assert gateway.query_refund(request.out_trade_no, late_refund_id) == made
    assert gateway.query_refund(request.out_trade_no, new_id("rfd")).status is (
        ChannelRefundStatus.NOT_FOUND
    )


def test_refund_fail_fails_the_refund(gateway: StripeGateway) -> None:
    request, _, _ = paid(gateway, simulate={"refund_fail": True})

    state = gateway.refund(refund_request(request, 500))

    assert state.status is ChannelRefundStatus.FAILED
    assert (state.failure_code, state.failure_message) == (
        "refund_rejected",
        "Stripe failed the refund (declined)",
    )
    assert gateway.query_refund(request.out_trade_no, state.out_refund_no) == state


def test_refund_error_leaves_the_outcome_unknown_and_the_query_proves_nothing_was_refunded(
    gateway: StripeGateway,
) -> None:
    request, _, _ = paid(gateway, simulate={"refund_error": {"times": 1}})
    asked = refund_request(request, 500)

    with pytest.raises(ChannelUnavailable):
        gateway.refund(asked)

    assert gateway.query_refund(request.out_trade_no, asked.out_refund_no).status is (
        ChannelRefundStatus.NOT_FOUND
    )
    assert gateway.refund(asked).status is ChannelRefundStatus.SUCCEEDED


def test_a_delayed_refund_is_pending_then_succeeds_and_its_webhooks_say_so(
    gateway: StripeGateway, hooks: Webhooks
) -> None:
    request, _, _ = paid(gateway, simulate={"refund_delay_seconds": 0.3})

    state = gateway.refund(refund_request(request, 500))

    assert state.status is ChannelRefundStatus.PENDING
    assert gateway.query_refund(request.out_trade_no, state.out_refund_no).status is (
        ChannelRefundStatus.PENDING
    )
    events = hooks.wait_for("refund.created", "refund.updated", "charge.refunded")
    created, updated = (
        parse(gateway, events["refund.created"]),
        parse(gateway, events["refund.updated"]),
    )
    assert isinstance(created, ChannelRefundState)
    assert isinstance(updated, ChannelRefundState)
    assert (created.status, updated.status) == (
        ChannelRefundStatus.PENDING,
        ChannelRefundStatus.SUCCEEDED,
    )
    assert updated.out_refund_no == state.out_refund_no
    assert gateway.query_refund(request.out_trade_no, state.out_refund_no).status is (
        ChannelRefundStatus.SUCCEEDED
    )


# -- the create whose answer is lost ------------------------------------------------------------


def test_create_error_proves_by_query_that_nothing_was_created(
    sim: StripeSimulator, gateway: StripeGateway
) -> None:
    request = order(simulate={"create_error": {"times": 1, "status": 503}})

    with pytest.raises(ChannelUnavailable):
        gateway.create_order(request)

    assert gateway.query_order(request.out_trade_no).status is ChannelPaymentStatus.NOT_FOUND
    created = gateway.create_order(request)  # the same key: Stripe saved nothing for it
    assert [s.id for s in sessions_of(sim, request.out_trade_no)] == [created.channel_order_id]


def test_a_lost_create_answer_is_found_by_query_and_the_retry_gets_the_same_session(
    sim: StripeSimulator, gateway: StripeGateway
) -> None:
    request = order(simulate={"create_error": {"times": 1, "after_create": True}})

    with pytest.raises(ChannelUnavailable):
        gateway.create_order(request)

    found = gateway.query_order(request.out_trade_no)
    assert found.status is ChannelPaymentStatus.PENDING
    assert found.next_action is not None
    again = gateway.create_order(request)
    assert (again.channel_order_id, again.next_action) == (
        found.channel_order_id,
        found.next_action,
    )
    assert len(sessions_of(sim, request.out_trade_no)) == 1


def test_a_create_slower_than_the_timeout_is_found_by_query_and_never_doubled(
    sim: StripeSimulator,
) -> None:
    gateway = gateway_for(sim, timeout=0.5)
    request = order(simulate={"create_timeout": {"times": 1, "seconds": 2.0}})
    started = time.monotonic()

    with pytest.raises(ChannelUnavailable):
        gateway.create_order(request)

    assert time.monotonic() - started < 1.5
    found = gateway.query_order(request.out_trade_no)
    assert found.status is ChannelPaymentStatus.PENDING
    with pytest.raises(ChannelUnavailable):  # 409 idempotency_key_in_use: the first still runs
        gateway.create_order(request)
    wait_until(lambda: time.monotonic() - started > 2.2)
    again = gateway.create_order(request)
    assert again.channel_order_id == found.channel_order_id
    assert len(sessions_of(sim, request.out_trade_no)) == 1


# -- notifications ------------------------------------------------------------------------------


def test_the_webhooks_of_a_payment_are_read_into_its_state(
    sim: StripeSimulator, gateway: StripeGateway, hooks: Webhooks
) -> None:
    request, session_id, state = paid(gateway)

    events = hooks.wait_for(
        "payment_intent.created", "payment_intent.succeeded", "checkout.session.completed"
    )

    completed = parse(gateway, events["checkout.session.completed"])
    succeeded = parse(gateway, events["payment_intent.succeeded"])
    created = parse(gateway, events["payment_intent.created"])
    assert completed == ChannelPaymentState(
        out_trade_no=request.out_trade_no,
        status=ChannelPaymentStatus.SUCCEEDED,
        amount=1999,
        currency="USD",
        channel_order_id=session_id,
        channel_transaction_id=state.channel_transaction_id,
        notification_id=json.loads(events["checkout.session.completed"].body)["id"],
    )
    assert isinstance(succeeded, ChannelPaymentState)
    assert (succeeded.status, succeeded.amount, succeeded.channel_transaction_id) == (
        ChannelPaymentStatus.SUCCEEDED,
        1999,
        state.channel_transaction_id,
    )
    assert created.status is ChannelPaymentStatus.PENDING  # says nothing final
    assert gateway.acknowledge().status_code == 200
    assert json.loads(gateway.acknowledge().body) == {"received": True}


def test_a_decline_webhook_closes_the_session_then_reads_failed_as_does_its_expiry(
    sim: StripeSimulator, gateway: StripeGateway, hooks: Webhooks
) -> None:
    request = order()
    created = gateway.create_order(request)
    buyer(str(created.next_action.url), "decline")
    failed_event = hooks.wait_for("payment_intent.payment_failed")["payment_intent.payment_failed"]

    failed = parse(gateway, failed_event)

    assert isinstance(failed, ChannelPaymentState)
    assert (failed.status, failed.failure_code) == (
        ChannelPaymentStatus.FAILED,
        "payment_declined",
    )
    session = sdk_client(sim).v1.checkout.sessions.retrieve(created.channel_order_id)
    assert session.status == "expired"
    expired = parse(gateway, hooks.wait_for("checkout.session.expired")["checkout.session.expired"])
    assert isinstance(expired, ChannelPaymentState)
    assert (expired.status, expired.failure_code, expired.failure_message) == (
        failed.status,
        failed.failure_code,
        failed.failure_message,
    )


def test_an_expired_session_webhook_reads_closed(gateway: StripeGateway, hooks: Webhooks) -> None:
    request = order()
    created = gateway.create_order(request)
    gateway.close_order(request.out_trade_no, created.channel_order_id)

    expired = parse(gateway, hooks.wait_for("checkout.session.expired")["checkout.session.expired"])

    assert (expired.out_trade_no, expired.status) == (
        request.out_trade_no,
        ChannelPaymentStatus.CLOSED,
    )


def test_refund_webhooks_are_read_into_the_refunds_state(
    gateway: StripeGateway, hooks: Webhooks
) -> None:
    request, _, _ = paid(gateway)
    done = gateway.refund(refund_request(request, 500))

    events = hooks.wait_for("refund.created", "charge.refunded")

    refund = parse(gateway, events["refund.created"])
    assert refund == ChannelRefundState(
        out_refund_no=done.out_refund_no,
        out_trade_no=request.out_trade_no,
        status=ChannelRefundStatus.SUCCEEDED,
        amount=500,
        currency="USD",
        channel_refund_id=done.channel_refund_id,
        notification_id=json.loads(events["refund.created"].body)["id"],
    )
    charge = parse(gateway, events["charge.refunded"])  # names no id of ours: looked up
    assert (charge.out_trade_no, charge.status) == (
        request.out_trade_no,
        ChannelPaymentStatus.SUCCEEDED,
    )


def test_a_failed_refund_webhook_reads_failed(gateway: StripeGateway, hooks: Webhooks) -> None:
    request, _, _ = paid(gateway, simulate={"refund_fail": True})
    gateway.refund(refund_request(request, 500))

    failed = parse(gateway, hooks.wait_for("refund.failed")["refund.failed"])

    assert isinstance(failed, ChannelRefundState)
    assert (failed.status, failed.failure_code) == (ChannelRefundStatus.FAILED, "refund_rejected")


def test_every_event_the_simulator_sends_is_one_paycore_reads(
    gateway: StripeGateway, hooks: Webhooks
) -> None:
    request, _, _ = paid(gateway)
    gateway.refund(refund_request(request, 100))
    slow, _, _ = paid(gateway, simulate={"refund_delay_seconds": 0.1, "refund_fail": True})
    gateway.refund(refund_request(slow, 100))
    declined = order()
    buyer(str(gateway.create_order(declined).next_action.url), "decline")
    untouched = order()
    gateway.close_order(untouched.out_trade_no, gateway.create_order(untouched).channel_order_id)
    expected = {
        "payment_intent.created",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "checkout.session.completed",
        "checkout.session.expired",
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.refunded",
    }
    # Delivery is asynchronous: wait for every expected type, then compare the whole set (an
    # unexpected type that arrived by then fails the test as before).
    hooks.wait_for(*sorted(expected), timeout=15.0)

    sent = set(hooks.types())

    assert sent == expected
    assert sent <= {kind.value for kind in EventType}
    for item in hooks.received():
        parse(gateway, item)  # none is refused


def test_an_endpoint_on_webhook_events_gets_one_final_event_per_outcome(
    sim: StripeSimulator, gateway: StripeGateway
) -> None:
    """Registered as docs/channels.md says, the endpoint gets only the event that settles each
    outcome, and every one of them reads final: none is a callback that changes nothing."""
    hooks = Webhooks(sim)
    try:
        request, _, _ = paid(gateway)
        gateway.refund(refund_request(request, 100))  # final at once: the answer says it
        for simulate in (
            {"refund_delay_seconds": 0.1},
            {"refund_delay_seconds": 0.1, "refund_fail": True},
        ):
            slow, _, _ = paid(gateway, simulate=simulate)
            assert gateway.refund(refund_request(slow, 100)).status is ChannelRefundStatus.PENDING
        declined = order()
        buyer(str(gateway.create_order(declined).next_action.url), "decline")
        untouched = order()
        gateway.close_order(
            untouched.out_trade_no, gateway.create_order(untouched).channel_order_id
        )
        expected = {
            "checkout.session.completed": 3,
            "refund.updated": 2,
            "payment_intent.payment_failed": 1,
            "checkout.session.expired": 1,
        }
        wait_until(lambda: len(hooks.received()) >= sum(expected.values()), timeout=10)
        decline = parse(gateway, hooks.of_type("payment_intent.payment_failed")[0])  # expires it
        wait_until(lambda: len(hooks.of_type("checkout.session.expired")) == 2)
        time.sleep(0.3)  # anything else would have come by now

        arrived = hooks.received()
        states = [parse(gateway, item) for item in arrived]
    finally:
        hooks.close()

    types = [json.loads(item.body)["type"] for item in arrived]
    assert {kind: types.count(kind) for kind in set(types)} == {
        **expected,
        "checkout.session.expired": 2,
    }
    assert set(types) <= set(WEBHOOK_EVENTS)
    assert decline.status is ChannelPaymentStatus.FAILED
    assert not [state for state in states if state.status.value == "pending"]
    # Stripe still made every event (GET /v1/events), and says which it did not send.
    recorded = {
        event.type: event.body()["pending_webhooks"]
        for event in sim.events.of("stripe-a")
        if event.body()["data"]["object"]["metadata"].get("payment_id") == request.out_trade_no
    }
    assert recorded == {
        "payment_intent.created": 0,
        "payment_intent.succeeded": 0,
        "checkout.session.completed": 1,
        "refund.created": 0,
    }


def test_notify_reorder_delivers_the_stale_event_last_and_it_reads_pending(
    gateway: StripeGateway, hooks: Webhooks
) -> None:
    paid(gateway, simulate={"notify_reorder": True})
    wait_until(lambda: len(hooks.received()) >= 3)

    arrived = [
        (json.loads(item.body)["type"], parse(gateway, item).status) for item in hooks.received()
    ]

    assert arrived[-1] == ("payment_intent.created", ChannelPaymentStatus.PENDING)
    assert {status for _, status in arrived[:-1]} == {ChannelPaymentStatus.SUCCEEDED}


def test_notify_reorder_of_a_delayed_refund_delivers_the_pending_refund_last(
    gateway: StripeGateway, hooks: Webhooks
) -> None:
    request, _, _ = paid(gateway, simulate={"notify_reorder": True, "refund_delay_seconds": 0.1})
    gateway.refund(refund_request(request, 500))
    wait_until(lambda: len(hooks.of_type("refund.created")) == 1, timeout=5)

    refunds = [
        parse(gateway, item)
        for item in hooks.received()
        if json.loads(item.body)["type"].startswith("refund.")
    ]

    assert [state.status for state in refunds] == [
        ChannelRefundStatus.SUCCEEDED,
        ChannelRefundStatus.PENDING,  # the stale refund.created, after the final one
    ]


def test_query_only_sends_no_webhook_and_the_query_tells(
    gateway: StripeGateway, hooks: Webhooks
) -> None:
    _, _, state = paid(gateway, simulate={"query_only": True})

    time.sleep(0.3)

    assert hooks.received() == []
    assert state.status is ChannelPaymentStatus.SUCCEEDED


def test_notify_duplicate_copies_read_the_same(gateway: StripeGateway, hooks: Webhooks) -> None:
    paid(gateway, simulate={"notify_duplicate": 2})
    wait_until(lambda: len(hooks.of_type("checkout.session.completed")) == 2)

    first, second = (parse(gateway, item) for item in hooks.of_type("checkout.session.completed"))

    assert first == second


# -- refused notifications ----------------------------------------------------------------------


@pytest.fixture
def completed(gateway: StripeGateway, hooks: Webhooks) -> Any:
    """A real checkout.session.completed webhook as the simulator sent it."""
    paid(gateway)
    return hooks.wait_for("checkout.session.completed")["checkout.session.completed"]


def test_header_names_are_matched_whatever_their_case(
    gateway: StripeGateway, completed: Any
) -> None:
    headers = {name.upper(): value for name, value in completed.headers.items()}

    assert gateway.parse_notification(completed.body, headers).status is (
        ChannelPaymentStatus.SUCCEEDED
    )


def test_an_unsigned_webhook_is_refused(gateway: StripeGateway, completed: Any) -> None:
    headers = {k: v for k, v in completed.headers.items() if k.lower() != "stripe-signature"}

    with pytest.raises(CallbackRejected, match="unsigned"):
        gateway.parse_notification(completed.body, headers)


def test_a_tampered_body_is_refused(gateway: StripeGateway, completed: Any) -> None:
    forged = completed.body.replace(b'"amount_total": 1999', b'"amount_total": 1')
    assert forged != completed.body

    with pytest.raises(CallbackRejected, match="does not match"):
        gateway.parse_notification(forged, completed.headers)


def test_a_tampered_signature_is_refused(gateway: StripeGateway, completed: Any) -> None:
    header = completed.headers["Stripe-Signature"]
    digest = header.rsplit("v1=", 1)[1]
    flipped = header.replace(digest, ("0" if digest[0] != "0" else "1") + digest[1:])

    with pytest.raises(CallbackRejected, match="does not match"):
        gateway.parse_notification(completed.body, {"Stripe-Signature": flipped})


def test_another_accounts_webhook_is_refused(sim: StripeSimulator, gateway: StripeGateway) -> None:
    other = gateway_for(sim, "stripe-b")
    endpoint = Webhooks(sim, "stripe-b")
    try:
        paid(other)
        theirs = endpoint.wait_for("checkout.session.completed")["checkout.session.completed"]
    finally:
        endpoint.close()

    assert other.parse_notification(theirs.body, theirs.headers).status is (
        ChannelPaymentStatus.SUCCEEDED
    )
    with pytest.raises(CallbackRejected, match="does not match"):
        gateway.parse_notification(theirs.body, theirs.headers)


@pytest.mark.parametrize("offset", [301, -301])
def test_a_webhook_more_than_five_minutes_off_is_refused(
    gateway: StripeGateway, completed: Any, monkeypatch: pytest.MonkeyPatch, offset: int
) -> None:
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(seconds=offset))

    with pytest.raises(CallbackRejected, match="stale"):
        gateway.parse_notification(completed.body, completed.headers)


def test_a_signature_from_the_future_is_refused_though_the_sdk_accepts_it(
    sim: StripeSimulator, gateway: StripeGateway, completed: Any
) -> None:
    secret = credentials(sim)["webhook_secret"]
    ahead = int(time.time()) + 400
    header = stripe.WebhookSignature.generate_signature_header(
        completed.body.decode(), secret, ahead
    )

    assert stripe.Webhook.construct_event(completed.body, header, secret).type == (
        "checkout.session.completed"
    )
    with pytest.raises(CallbackRejected, match="stale"):
        gateway.parse_notification(completed.body, {"Stripe-Signature": header})


def test_a_header_with_two_timestamps_is_refused(
    sim: StripeSimulator, gateway: StripeGateway, completed: Any
) -> None:
    header = completed.headers["Stripe-Signature"]

    with pytest.raises(CallbackRejected, match="exactly one t="):
        gateway.parse_notification(completed.body, {"Stripe-Signature": f"{header},t=1"})


def test_an_oversized_webhook_is_refused_before_anything_else(gateway: StripeGateway) -> None:
    with pytest.raises(CallbackRejected, match="at most"):
        gateway.parse_notification(b"{" + b" " * 70_000 + b"}", {"Stripe-Signature": "t=1,v1=0"})


def _signed(sim: StripeSimulator, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), credentials(sim)["webhook_secret"]
    )
    return body, {"Stripe-Signature": header}


def test_a_signed_event_of_a_type_paycore_does_not_read_is_refused(
    sim: StripeSimulator, gateway: StripeGateway
) -> None:
    body, headers = _signed(
        sim,
        {"id": "evt_1", "object": "event", "type": "customer.created", "data": {"object": {}}},
    )

    with pytest.raises(CallbackRejected, match=r"does not read 'customer\.created'"):
        gateway.parse_notification(body, headers)


def test_a_signed_event_about_nothing_of_ours_is_refused(
    sim: StripeSimulator, gateway: StripeGateway
) -> None:
    stray = {
        "id": "re_1",
        "object": "refund",
        "status": "succeeded",
        "amount": 100,
        "currency": "usd",
        "metadata": {},
    }
    body, headers = _signed(
        sim, {"id": "evt_2", "object": "event", "type": "refund.created", "data": {"object": stray}}
    )

    with pytest.raises(CallbackRejected, match="no refund_id"):
        gateway.parse_notification(body, headers)


def test_a_signed_body_that_is_not_an_event_is_refused(
    sim: StripeSimulator, gateway: StripeGateway
) -> None:
    body, headers = _signed(sim, {"hello": "world"})

    with pytest.raises(CallbackRejected, match="not a Stripe event"):
        gateway.parse_notification(body, headers)
