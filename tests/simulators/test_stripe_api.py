"""The Stripe simulator against the official SDK (stripe.StripeClient with only its base URL
changed): Checkout Sessions, PaymentIntents, Charges, Refunds, errors, authentication,
idempotency, lists, expansion, the buyer's page and the /_sim endpoints, over real HTTP."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from collections.abc import Iterator

import pytest
import stripe

from local_runtime.simulators.stripe import StripeSimulator
from tests.simulators.stripe_support import (
    buyer_form,
    buyer_json,
    client_for,
    credentials,
    http,
    running_simulator,
    session_params,
)


@pytest.fixture
def sim() -> Iterator[StripeSimulator]:
    yield from running_simulator()


@pytest.fixture
def client(sim: StripeSimulator) -> stripe.StripeClient:
    return client_for(sim)


# -- Checkout Sessions ------------------------------------------------------------------------


def test_a_session_is_created_open_with_the_merchants_reference(
    sim: StripeSimulator, client: stripe.StripeClient
) -> None:
    before = int(time.time())

    session = client.v1.checkout.sessions.create(
        session_params("pay_1", metadata={"order": "ord_42"})
    )

    assert isinstance(session, stripe.checkout.Session)
    assert session.id.startswith("cs_test_")
    assert session.object == "checkout.session"
    assert (session.status, session.payment_status, session.mode) == ("open", "unpaid", "payment")
    assert session.client_reference_id == "pay_1"
    assert (session.amount_total, session.currency) == (1999, "usd")
    assert session.metadata.to_dict() == {"order": "ord_42"}
    assert session.url == f"{sim.url}/c/pay/{session.id}"
    assert session.payment_intent is None  # made when the buyer confirms, as Stripe does
    assert before + 24 * 3600 - 5 <= session.expires_at <= int(time.time()) + 24 * 3600
    assert session.livemode is False


def test_retrieve_answers_the_session_as_it_is_now(client: stripe.StripeClient) -> None:
    created = client.v1.checkout.sessions.create(session_params("pay_2"))
    buyer_json(created.url, "pay")

    session = client.v1.checkout.sessions.retrieve(created.id)

    assert (session.status, session.payment_status) == ("complete", "paid")
    assert session.url is None
    assert isinstance(session.payment_intent, str) and session.payment_intent.startswith("pi_")


def test_the_paid_sessions_payment_intent_and_charge(client: stripe.StripeClient) -> None:
    created = client.v1.checkout.sessions.create(
        session_params("pay_3", payment_intent_data={"metadata": {"payment_id": "pay_3"}})
    )
    buyer_json(created.url, "pay")

    session = client.v1.checkout.sessions.retrieve(
        created.id, {"expand": ["payment_intent.latest_charge"]}
    )

    intent = session.payment_intent
    assert isinstance(intent, stripe.PaymentIntent)
    assert (intent.status, intent.amount, intent.amount_received) == ("succeeded", 1999, 1999)
    assert intent.metadata.to_dict() == {"payment_id": "pay_3"}
    charge = intent.latest_charge
    assert isinstance(charge, stripe.Charge)
    assert (charge.status, charge.paid, charge.amount, charge.payment_intent) == (
        "succeeded",
        True,
        1999,
        intent.id,
    )
    assert client.v1.payment_intents.retrieve(intent.id).latest_charge == charge.id
    assert client.v1.charges.retrieve(charge.id).balance_transaction.startswith("txn_")
    with pytest.raises(stripe.InvalidRequestError, match="cannot be expanded"):
        client.v1.charges.retrieve(charge.id, {"expand": ["customer"]})


def test_line_items_and_a_zero_decimal_currency(client: stripe.StripeClient) -> None:
    params = session_params("pay_jpy", amount=500, currency="jpy")
    params["line_items"][0]["quantity"] = 3

    session = client.v1.checkout.sessions.create({**params, "expand": ["line_items"]})

    assert (session.amount_total, session.currency) == (1500, "jpy")
    item = session.line_items.data[0]
    assert (item.quantity, item.amount_total, item.price.unit_amount) == (3, 1500, 500)
    assert item.description == "Green tea"
    listed = client.v1.checkout.sessions.line_items.list(session.id)
    assert [entry.id for entry in listed.data] == [item.id]


def test_expire_closes_an_open_session_once(client: stripe.StripeClient) -> None:
    session = client.v1.checkout.sessions.create(session_params("pay_4"))

    expired = client.v1.checkout.sessions.expire(session.id)

    assert (expired.status, expired.url) == ("expired", None)
    assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"
    assert buyer_json(session.url, "pay")[0] == 409
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.checkout.sessions.expire(session.id)
    assert again.value.http_status == 400
    assert 'status of "expired"' in str(again.value.user_message)


def test_a_paid_session_cannot_be_expired(client: stripe.StripeClient) -> None:
    session = client.v1.checkout.sessions.create(session_params("pay_5"))
    buyer_json(session.url, "pay")

    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.checkout.sessions.expire(session.id)

    assert 'status of "complete"' in str(caught.value.user_message)


def test_every_create_is_a_new_session_even_for_the_same_reference(
    client: stripe.StripeClient,
) -> None:
    first = client.v1.checkout.sessions.create(session_params("pay_6"))
    second = client.v1.checkout.sessions.create(session_params("pay_6"))

    assert first.id != second.id  # client_reference_id is not unique at Stripe
    assert second.status == "open"


def test_sessions_are_found_by_reference_through_the_list_stripe_offers(
    client: stripe.StripeClient,
) -> None:
    since = int(time.time()) - 1
    wanted = client.v1.checkout.sessions.create(session_params("pay_7"))
    client.v1.checkout.sessions.create(session_params("pay_other"))

    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.checkout.sessions.list({"client_reference_id": "pay_7"})
    assert (caught.value.code, caught.value.param) == ("parameter_unknown", "client_reference_id")

    listed = client.v1.checkout.sessions.list({"created": {"gte": since}, "limit": 100})
    found = [session.id for session in listed.auto_paging_iter()
             if session.client_reference_id == "pay_7"]  # fmt: skip
    assert found == [wanted.id]


def test_lists_are_newest_first_and_page_with_starting_after(client: stripe.StripeClient) -> None:
    made = [client.v1.checkout.sessions.create(session_params(f"pay_p{n}")).id for n in range(3)]

    first_page = client.v1.checkout.sessions.list({"limit": 2})

    assert [session.id for session in first_page.data] == made[::-1][:2]
    assert first_page.has_more is True
    assert [session.id for session in first_page.auto_paging_iter()] == made[::-1]
    open_ones = client.v1.checkout.sessions.list({"status": "complete"})
    assert open_ones.data == []


def test_a_session_is_found_by_its_payment_intent(client: stripe.StripeClient) -> None:
    session = client.v1.checkout.sessions.create(session_params("pay_8"))
    buyer_json(session.url, "pay")
    intent = client.v1.checkout.sessions.retrieve(session.id).payment_intent

    listed = client.v1.checkout.sessions.list({"payment_intent": intent})

    assert [found.client_reference_id for found in listed.data] == ["pay_8"]


# -- the buyer ----------------------------------------------------------------------------------


def test_the_buyers_page_shows_what_is_bought(client: stripe.StripeClient) -> None:
    session = client.v1.checkout.sessions.create(session_params("pay_9", amount=150000))

    status, _, page = http("GET", session.url)

    assert status == 200
    assert b"Green tea" in page and b"1,500.00 USD" in page and b'value="pay"' in page


def test_a_form_choice_returns_the_buyer_to_success_url_with_the_session_id(
    client: stripe.StripeClient,
) -> None:
    session = client.v1.checkout.sessions.create(session_params("pay_10"))

    status, location = buyer_form(session.url, "pay")

    assert status == 303
    assert location == f"https://shop.example/paid?session={session.id}"


def test_a_declining_buyer_goes_back_to_cancel_url(client: stripe.StripeClient) -> None:
    session = client.v1.checkout.sessions.create(session_params("pay_11"))

    status, location = buyer_form(session.url, "decline")

    assert (status, location) == (303, "https://shop.example/cancelled")
    declined = client.v1.checkout.sessions.retrieve(session.id, {"expand": ["payment_intent"]})
    assert (declined.status, declined.payment_status) == ("open", "unpaid")
    intent = declined.payment_intent
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.code == "card_declined"


# -- refunds ------------------------------------------------------------------------------------


def paid_intent(client: stripe.StripeClient, reference: str, **kwargs: object) -> str:
    session = client.v1.checkout.sessions.create(session_params(reference, **kwargs))
    assert buyer_json(session.url, "pay")[1]["status"] == "SUCCESS"
    intent = client.v1.checkout.sessions.retrieve(session.id).payment_intent
    assert isinstance(intent, str)
    return intent


def test_a_refund_succeeds_and_carries_the_merchants_refund_id(
    client: stripe.StripeClient,
) -> None:
    intent = paid_intent(client, "pay_r1")

    refund = client.v1.refunds.create(
        {"payment_intent": intent, "amount": 500, "metadata": {"refund_id": "rfd_1"}}
    )

    assert isinstance(refund, stripe.Refund)
    assert (refund.status, refund.amount, refund.currency) == ("succeeded", 500, "usd")
    assert refund.metadata.to_dict() == {"refund_id": "rfd_1"}
    assert refund.payment_intent == intent
    fetched = client.v1.refunds.retrieve(refund.id)
    assert (fetched.id, fetched.status) == (refund.id, "succeeded")
    charge = client.v1.charges.retrieve(refund.charge, {"expand": ["refunds"]})
    assert (charge.amount_refunded, charge.refunded) == (500, False)
    assert [item.id for item in charge.refunds.data] == [refund.id]


def test_a_refund_is_found_by_the_merchants_refund_id_among_the_intents_refunds(
    client: stripe.StripeClient,
) -> None:
    intent = paid_intent(client, "pay_r2")
    made = [
        client.v1.refunds.create(
            {"payment_intent": intent, "amount": 100, "metadata": {"refund_id": f"rfd_{n}"}}
        )
        for n in range(2)
    ]

    listed = client.v1.refunds.list({"payment_intent": intent})

    assert {refund.metadata["refund_id"]: refund.id for refund in listed.data} == {
        "rfd_0": made[0].id,
        "rfd_1": made[1].id,
    }


def test_refunds_default_to_the_rest_and_never_exceed_the_charge(
    client: stripe.StripeClient,
) -> None:
    intent = paid_intent(client, "pay_r3")
    client.v1.refunds.create({"payment_intent": intent, "amount": 999})

    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create({"payment_intent": intent, "amount": 1001})
    assert (too_much.value.code, too_much.value.param) == ("amount_too_large", "amount")

    rest = client.v1.refunds.create({"payment_intent": intent})
    assert rest.amount == 1000
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.refunds.create({"payment_intent": intent})
    assert again.value.code == "charge_already_refunded"
    assert client.v1.charges.retrieve(rest.charge).refunded is True


def test_an_unpaid_payment_intent_is_not_refundable(client: stripe.StripeClient) -> None:
    session = client.v1.checkout.sessions.create(session_params("pay_r4"))
    buyer_json(session.url, "decline")
    intent = client.v1.checkout.sessions.retrieve(session.id).payment_intent

    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create({"payment_intent": intent})

    assert caught.value.param == "payment_intent"
    assert "does not have a successful charge" in str(caught.value.user_message)


def test_a_payment_intent_exists_only_once_the_buyer_acted(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.retrieve("pi_nothing")
    assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")

    with pytest.raises(stripe.InvalidRequestError) as refund:
        client.v1.refunds.create({"payment_intent": "pi_nothing"})
    assert (refund.value.http_status, refund.value.param) == (400, "payment_intent")


# -- errors and authentication ------------------------------------------------------------------


def test_a_wrong_secret_key_is_an_authentication_error(sim: StripeSimulator) -> None:
    wrong = stripe.StripeClient(
        "sk_test_not_a_key_of_this_simulator", base_addresses={"api": sim.url}
    )

    with pytest.raises(stripe.AuthenticationError) as caught:
        wrong.v1.checkout.sessions.list()

    assert caught.value.http_status == 401
    assert caught.value.error.type == "invalid_request_error"
    assert "Invalid API Key provided: sk_test_" in str(caught.value.user_message)
    assert "not_a_key" not in str(caught.value.user_message)  # masked


def test_no_key_at_all_is_a_401_in_stripes_envelope(sim: StripeSimulator) -> None:
    status, _, body = http("GET", f"{sim.url}/v1/checkout/sessions")

    assert status == 401
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert "You did not provide an API key" in json.loads(body)["error"]["message"]


def test_basic_auth_with_the_key_as_user_name_works(sim: StripeSimulator) -> None:
    token = base64.b64encode(f"{credentials(sim)['secret_key']}:".encode()).decode()

    status, _, body = http(
        "GET", f"{sim.url}/v1/checkout/sessions", headers={"Authorization": f"Basic {token}"}
    )

    assert status == 200
    assert json.loads(body) == {
        "object": "list",
        "data": [],
        "has_more": False,
        "url": "/v1/checkout/sessions",
    }


def test_each_accounts_objects_are_its_own(
    sim: StripeSimulator, client: stripe.StripeClient
) -> None:
    session = client.v1.checkout.sessions.create(session_params("pay_e1"))

    with pytest.raises(stripe.InvalidRequestError) as caught:
        client_for(sim, "acct_b").v1.checkout.sessions.retrieve(session.id)

    assert (caught.value.http_status, caught.value.code) == (404, "resource_missing")


def test_parameters_are_checked_as_stripe_does(client: stripe.StripeClient) -> None:
    no_items = session_params("pay_e2")
    del no_items["line_items"]
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.checkout.sessions.create(no_items)
    assert (missing.value.code, missing.value.param) == ("parameter_missing", "line_items")

    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.checkout.sessions.create({**session_params("pay_e2"), "colour": "red"})
    assert (unknown.value.code, unknown.value.param) == ("parameter_unknown", "colour")

    nested = session_params("pay_e2")
    nested["line_items"][0]["quantity"] = "two"
    with pytest.raises(stripe.InvalidRequestError) as bad:
        client.v1.checkout.sessions.create(nested)
    assert bad.value.param == "line_items[0][quantity]"

    with pytest.raises(stripe.InvalidRequestError) as unsupported:
        client.v1.checkout.sessions.create(
            {**session_params("pay_e2"), "allow_promotion_codes": True}
        )
    assert "does not support it" in str(unsupported.value.user_message)


def test_an_expansion_a_create_cannot_honour_is_refused_before_creating(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="cannot be expanded"):
        client.v1.checkout.sessions.create({**session_params("pay_e5"), "expand": ["customer"]})

    assert client.v1.checkout.sessions.list().data == []


def test_expires_at_must_be_30_minutes_to_24_hours_ahead(client: stripe.StripeClient) -> None:
    soon = int(time.time()) + 600
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.checkout.sessions.create({**session_params("pay_e3"), "expires_at": soon})
    assert caught.value.param == "expires_at"

    later = int(time.time()) + 3600
    session = client.v1.checkout.sessions.create({**session_params("pay_e3"), "expires_at": later})
    assert session.expires_at == later


def test_invalid_switches_are_a_parameter_error(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.checkout.sessions.create(session_params("pay_e4", simulate='{"decline": "yes"}'))

    assert caught.value.param == "metadata[simulate]"
    assert "decline" in str(caught.value.user_message)


def test_an_unknown_url_is_stripes_404(client: stripe.StripeClient, sim: StripeSimulator) -> None:
    key = credentials(sim)["secret_key"]
    status, _, body = http(
        "GET", f"{sim.url}/v1/customers", headers={"Authorization": f"Bearer {key}"}
    )

    assert status == 404
    assert json.loads(body)["error"]["message"].startswith(
        "Unrecognized request URL (GET: /v1/customers)"
    )


# -- idempotency ---------------------------------------------------------------------------------


def test_the_same_idempotency_key_and_parameters_replay_the_first_answer(
    client: stripe.StripeClient,
) -> None:
    first = client.v1.checkout.sessions.create(
        session_params("pay_i1"), {"idempotency_key": "create-pay_i1"}
    )

    again = client.v1.checkout.sessions.create(
        session_params("pay_i1"), {"idempotency_key": "create-pay_i1"}
    )

    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert again.last_response.headers["Original-Request"] == first.last_response.request_id
    listed = client.v1.checkout.sessions.list()
    assert [session.id for session in listed.data] == [first.id]


def test_an_idempotency_key_with_other_parameters_is_refused(client: stripe.StripeClient) -> None:
    client.v1.checkout.sessions.create(session_params("pay_i2"), {"idempotency_key": "key-i2"})

    with pytest.raises(stripe.IdempotencyError) as caught:
        client.v1.checkout.sessions.create(
            session_params("pay_i2", amount=2000), {"idempotency_key": "key-i2"}
        )
    assert caught.value.http_status == 400

    intent = paid_intent(client, "pay_i3")
    with pytest.raises(stripe.IdempotencyError):  # another endpoint
        client.v1.refunds.create({"payment_intent": intent}, {"idempotency_key": "key-i2"})


def test_a_refund_replayed_with_its_key_refunds_once(client: stripe.StripeClient) -> None:
    intent = paid_intent(client, "pay_i4")
    options = {"idempotency_key": "refund-rfd_i4"}

    first = client.v1.refunds.create({"payment_intent": intent, "amount": 300}, options)
    again = client.v1.refunds.create({"payment_intent": intent, "amount": 300}, options)

    assert again.id == first.id
    assert [refund.id for refund in client.v1.refunds.list({"payment_intent": intent}).data] == [
        first.id
    ]


def test_the_sdk_sends_an_idempotency_key_on_every_post(
    sim: StripeSimulator, client: stripe.StripeClient
) -> None:
    session = client.v1.checkout.sessions.create(session_params("pay_i5"))

    assert session.last_response.headers.get("Idempotency-Key")


# -- the simulator's own endpoints ---------------------------------------------------------------


def test_sim_accounts_lists_each_accounts_credentials(sim: StripeSimulator) -> None:
    status, _, body = http("GET", f"{sim.url}/_sim/accounts")

    assert status == 200
    listed = json.loads(body)
    assert listed["object"] == "list"
    assert listed["data"] == sim.accounts()
    for entry in listed["data"]:
        assert set(entry) == {
            "account",
            "channel",
            "secret_key",
            "webhook_secret",
            "api_base_url",
            "simulator",
        }
        assert entry["channel"] == "stripe" and entry["simulator"] is True
        assert entry["secret_key"].startswith("sk_test_")
        assert entry["webhook_secret"].startswith("whsec_")
        assert entry["api_base_url"] == sim.url
    assert [entry["account"] for entry in listed["data"]] == ["acct_a", "acct_b"]
    assert len({entry["secret_key"] for entry in listed["data"]}) == 2


def test_each_simulator_makes_fresh_keys() -> None:
    one = StripeSimulator("127.0.0.1", 0, accounts=["acct_a"])
    two = StripeSimulator("127.0.0.1", 0, accounts=["acct_a"])
    one.start()
    two.start()
    try:
        assert one.accounts()[0]["secret_key"] != two.accounts()[0]["secret_key"]
        assert one.accounts()[0]["webhook_secret"] != two.accounts()[0]["webhook_secret"]
    finally:
        one.stop()
        two.stop()
        one.stop()  # idempotent


def test_the_debug_view_shows_sessions_and_their_webhooks(
    client: stripe.StripeClient, sim: StripeSimulator
) -> None:
    session = client.v1.checkout.sessions.create(session_params("pay_d1"))

    status, _, body = http(
        "GET", f"{sim.url}/_sim/trades?{urllib.parse.urlencode({'account': 'acct_a'})}"
    )

    assert status == 200
    view = json.loads(body)
    assert view["fee_rate_bps"] == 290
    assert [trade["out_trade_no"] for trade in view["data"]] == [session.id]
    assert view["data"][0]["stripe_status"] == "open"
