"""The Stripe simulator's statement: balance transactions of a UTC day (charges with fee and
net, refunds), the statement switches and orphans, through the SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
import stripe

from local_runtime.simulators.stripe import StripeSimulator
from tests.simulators.stripe_support import (
    Clock,
    buyer_json,
    client_for,
    http,
    session_params,
    started,
)

DAY = date(2031, 3, 14)
MIDNIGHT = datetime(2031, 3, 15, tzinfo=UTC)  # the end of DAY in UTC


@pytest.fixture
def clock() -> Clock:
    return Clock(MIDNIGHT - timedelta(minutes=1))  # 23:59 UTC on DAY


@pytest.fixture
def sim(clock: Clock) -> Iterator[StripeSimulator]:
    simulator = started(clock)
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim: StripeSimulator) -> stripe.StripeClient:
    return client_for(sim)


def day_range(day: date) -> dict[str, int]:
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    return {"gte": int(start.timestamp()), "lt": int((start + timedelta(days=1)).timestamp())}


def statement(client: stripe.StripeClient, day: date) -> list[stripe.BalanceTransaction]:
    listed = client.v1.balance_transactions.list({"created": day_range(day), "limit": 100})
    return list(listed.auto_paging_iter())


def pay(client: stripe.StripeClient, reference: str, amount: int = 1999, **kwargs: object) -> str:
    """Pay a new session; returns its PaymentIntent id."""
    session = client.v1.checkout.sessions.create(session_params(reference, amount=amount, **kwargs))
    assert buyer_json(session.url, "pay")[1]["status"] == "SUCCESS"
    intent = client.v1.checkout.sessions.retrieve(session.id).payment_intent
    assert isinstance(intent, str)
    return intent


def test_a_day_holds_the_charges_and_refunds_of_that_utc_day(
    client: stripe.StripeClient, clock: Clock
) -> None:
    late = pay(client, "pay_b1")
    refund = client.v1.refunds.create({"payment_intent": late, "amount": 500})
    clock.advance(minutes=2)  # 00:01 UTC the next day
    early = pay(client, "pay_b2", amount=1000)

    today = statement(client, DAY)

    charge = client.v1.payment_intents.retrieve(late).latest_charge
    assert [(bt.type, bt.source) for bt in today] == [("refund", refund.id), ("charge", charge)]
    refund_line, charge_line = today
    assert isinstance(charge_line, stripe.BalanceTransaction)
    assert (charge_line.amount, charge_line.fee, charge_line.net) == (1999, 58, 1941)  # 2.90 %
    assert charge_line.currency == "usd"
    assert charge_line.reporting_category == "charge"
    assert charge_line.fee_details[0].type == "stripe_fee"
    assert charge_line.status == "pending"  # available two days later
    assert charge_line.available_on == int((MIDNIGHT + timedelta(days=1)).timestamp())  # DAY + 2
    assert (refund_line.amount, refund_line.fee, refund_line.net) == (-500, 0, -500)
    assert refund.balance_transaction == refund_line.id
    assert client.v1.charges.retrieve(charge).balance_transaction == charge_line.id
    next_day = statement(client, DAY + timedelta(days=1))
    assert [bt.source for bt in next_day] == [
        client.v1.payment_intents.retrieve(early).latest_charge
    ]
    assert next_day[0].fee == 29  # 1000 * 2.90 % = 29


def test_funds_become_available_after_two_days(client: stripe.StripeClient, clock: Clock) -> None:
    pay(client, "pay_b3")
    clock.advance(days=2, minutes=1)

    assert [bt.status for bt in statement(client, DAY)] == ["available"]


def test_the_source_expands_to_the_charge(client: stripe.StripeClient) -> None:
    intent = pay(client, "pay_b4")

    listed = client.v1.balance_transactions.list(
        {"created": day_range(DAY), "expand": ["data.source"]}
    )

    source = listed.data[0].source
    assert isinstance(source, stripe.Charge)
    assert source.payment_intent == intent
    assert client.v1.balance_transactions.retrieve(listed.data[0].id).source == source.id


def test_unpaid_and_failed_things_are_not_in_the_statement(client: stripe.StripeClient) -> None:
    client.v1.checkout.sessions.create(session_params("pay_b5"))
    declined = client.v1.checkout.sessions.create(session_params("pay_b6"))
    buyer_json(declined.url, "decline")
    failing = pay(client, "pay_b7", simulate='{"refund_fail": true}')
    client.v1.refunds.create({"payment_intent": failing})

    assert [bt.type for bt in statement(client, DAY)] == ["charge"]


def test_statement_omit_leaves_the_charge_out(client: stripe.StripeClient) -> None:
    pay(client, "pay_b8", simulate='{"statement": "omit"}')
    kept = pay(client, "pay_b9")

    assert [bt.source for bt in statement(client, DAY)] == [
        client.v1.payment_intents.retrieve(kept).latest_charge
    ]


def test_statement_amount_delta_puts_the_amount_off(client: stripe.StripeClient) -> None:
    intent = pay(client, "pay_b10", simulate='{"statement_amount_delta": -100}')

    line = statement(client, DAY)[0]

    assert (line.amount, line.fee, line.net) == (1899, 55, 1844)
    assert client.v1.charges.retrieve(line.source).amount == 1999  # the charge itself is right
    assert client.v1.payment_intents.retrieve(intent).amount_received == 1999


def test_statement_status_shows_in_the_lines_status(client: stripe.StripeClient) -> None:
    pay(client, "pay_b11", simulate='{"statement_status": "CLOSED"}')

    assert [bt.status for bt in statement(client, DAY)] == ["closed"]


def test_an_orphan_is_a_charge_paycore_never_made(
    client: stripe.StripeClient, sim: StripeSimulator
) -> None:
    body = json.dumps(
        {"account": "acct_a", "amount": 4200, "currency": "EUR", "date": "2031-03-13"}
    )

    status, _, answer = http(
        "POST",
        f"{sim.url}/_sim/orphans",
        body=body.encode(),
        headers={"Content-Type": "application/json"},
    )

    assert status == 201
    orphan = json.loads(answer)
    lines = statement(client, DAY - timedelta(days=1))
    assert [(bt.source, bt.amount, bt.currency) for bt in lines] == [
        (orphan["transaction_id"], 4200, "eur")
    ]
    charge = client.v1.charges.retrieve(orphan["transaction_id"])
    assert (charge.amount, charge.payment_intent) == (4200, None)
    refund = client.v1.refunds.create({"charge": charge.id, "amount": 200})
    assert (refund.status, refund.charge) == ("succeeded", charge.id)


def test_orphans_are_checked(sim: StripeSimulator) -> None:
    body = json.dumps({"account": "nobody", "amount": 1, "currency": "USD", "date": "2031-03-13"})

    status, _, answer = http(
        "POST",
        f"{sim.url}/_sim/orphans",
        body=body.encode(),
        headers={"Content-Type": "application/json"},
    )

    assert status == 404
    assert json.loads(answer)["code"] == "ACCOUNT_NOT_FOUND"
