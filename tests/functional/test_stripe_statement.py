"""``fetch_statement`` against the Stripe simulator: a UTC day's balance transactions, kept
exactly as Stripe sent them and read into payment and refund lines with fees, the statement
switches, orphans, a charge that names us only through its session, and paging."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from local_runtime.simulators.stripe import StripeSimulator
from paycore.channels.base import (
    ChannelPaymentStatus,
    ChannelRefundStatus,
    StatementLine,
    StatementLineKind,
)
from paycore.channels.stripe import adapter as stripe_adapter
from paycore.channels.stripe.adapter import StripeGateway
from tests.functional.stripe_support import (
    buyer,
    gateway_for,
    order,
    payment_id_at,
    post_json,
    refund_request,
    sdk_client,
    simulator,
)
from tests.simulators.stripe_support import Clock

DAY = date(2031, 3, 14)
LATE = datetime(2031, 3, 14, 23, 40, tzinfo=UTC)  # 20 minutes before the day ends, UTC


@pytest.fixture
def clock() -> Clock:
    return Clock(LATE)


@pytest.fixture
def sim(clock: Clock) -> Iterator[StripeSimulator]:
    started = simulator(clock)
    yield started
    started.stop()


@pytest.fixture
def gateway(sim: StripeSimulator) -> StripeGateway:
    return gateway_for(sim)


def pay(gateway: StripeGateway, clock: Clock, **options: Any) -> tuple[Any, str]:
    """A payment begun and paid now (simulator time): its request and PaymentIntent id."""
    request = order(now=clock(), **options)
    created = gateway.create_order(request)
    assert buyer(str(created.next_action.url), "pay")["status"] == "SUCCESS"
    state = gateway.query_order(request.out_trade_no, created.channel_order_id)
    return request, str(state.channel_transaction_id)


def by_reference(lines: tuple[StatementLine, ...]) -> dict[tuple[str, str], StatementLine]:
    return {(line.kind.value, line.reference): line for line in lines}


def test_a_days_statement_holds_its_payments_and_refunds_with_fees(
    sim: StripeSimulator, gateway: StripeGateway, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    tea, tea_intent = pay(gateway, clock)
    refund = gateway.refund(refund_request(tea, 500))
    yen, yen_intent = pay(gateway, clock, amount=1500, currency="JPY")
    omitted, _ = pay(gateway, clock, simulate={"statement": "omit"})
    short, _ = pay(gateway, clock, simulate={"statement_amount_delta": -100})
    closed, _ = pay(gateway, clock, simulate={"statement_status": "CLOSED"})
    refused, _ = pay(gateway, clock, simulate={"refund_fail": True})
    assert gateway.refund(refund_request(refused, 100)).status is ChannelRefundStatus.FAILED
    status, orphan = post_json(
        f"{sim.url}/_sim/orphans",
        {"account": "stripe-a", "amount": 4200, "currency": "EUR", "date": DAY.isoformat()},
    )
    assert status == 201
    clock.advance(minutes=25)  # 00:05 UTC the next day
    tomorrow, _ = pay(gateway, clock)
    monkeypatch.setattr(stripe_adapter, "PAGE_SIZE", 3)  # several pages

    statement = gateway.fetch_statement(DAY)

    lines = by_reference(statement.lines)
    assert set(lines) == {
        ("payment", tea.out_trade_no),
        ("refund", refund.out_refund_no),
        ("payment", yen.out_trade_no),
        ("payment", short.out_trade_no),
        ("payment", closed.out_trade_no),
        ("payment", refused.out_trade_no),
        ("payment", orphan["transaction_id"]),  # an orphan: Stripe's charge id, none of ours
    }
    paid = lines[("payment", tea.out_trade_no)]
    assert (paid.amount, paid.currency, paid.fee) == (1999, "USD", 58)  # 2.90 %, half up
    assert (paid.status, paid.channel_status) == (ChannelPaymentStatus.SUCCEEDED, "pending")
    assert paid.channel_transaction_id == tea_intent
    given_back = lines[("refund", refund.out_refund_no)]
    assert (given_back.kind, given_back.amount, given_back.fee) == (
        StatementLineKind.REFUND,
        500,
        0,
    )
    assert (given_back.status, given_back.channel_transaction_id) == (
        ChannelRefundStatus.SUCCEEDED,
        refund.channel_refund_id,
    )
    yen_line = lines[("payment", yen.out_trade_no)]
    assert (yen_line.amount, yen_line.currency, yen_line.fee) == (1500, "JPY", 44)
    assert yen_line.channel_transaction_id == yen_intent
    assert (
        lines[("payment", short.out_trade_no)].amount,
        lines[("payment", short.out_trade_no)].fee,
    ) == (1899, 55)
    off = lines[("payment", closed.out_trade_no)]
    assert (off.status, off.channel_status) == (ChannelPaymentStatus.FAILED, "closed")
    stray = lines[("payment", orphan["transaction_id"])]
    assert (stray.amount, stray.currency, stray.fee, stray.channel_transaction_id) == (
        4200,
        "EUR",
        122,
        orphan["transaction_id"],
    )
    assert ("payment", omitted.out_trade_no) not in lines
    assert ("payment", tomorrow.out_trade_no) not in lines
    moments = [line.occurred_at for line in statement.lines]
    assert moments == sorted(moments)  # oldest first
    assert all(moment.startswith("2031-03-14T") for moment in moments)
    assert moments[0] == "2031-03-14T12:00:00.000Z"  # the orphan, paid at noon

    pages = json.loads(statement.content)  # the pages exactly as Stripe sent them
    assert len(pages) == 3
    assert all(page["object"] == "list" for page in pages)
    assert sum(len(page["data"]) for page in pages) == len(statement.lines) == 7
    assert statement.content_type == "application/json"
    assert statement.filename == "stripe-stripe-a-2031-03-14-balance_transactions.json"
    assert statement.day == DAY
    next_day = gateway.fetch_statement(DAY + timedelta(days=1))
    assert [line.reference for line in next_day.lines] == [tomorrow.out_trade_no]


def test_a_charge_whose_payment_intent_does_not_name_us_is_found_through_its_session(
    sim: StripeSimulator, gateway: StripeGateway, clock: Clock
) -> None:
    reference = payment_id_at(clock())
    session = sdk_client(sim).v1.checkout.sessions.create(
        {
            "mode": "payment",
            "client_reference_id": reference,
            "line_items": [
                {
                    "price_data": {
                        "currency": "gbp",
                        "unit_amount": 1000,
                        "product_data": {"name": "Scones"},
                    },
                    "quantity": 1,
                }
            ],
        }
    )
    assert buyer(str(session.url), "pay")["status"] == "SUCCESS"

    lines = gateway.fetch_statement(DAY).lines

    assert [(line.reference, line.amount, line.currency, line.fee) for line in lines] == [
        (reference, 1000, "GBP", 29)
    ]


def test_a_day_without_money_moving_has_an_empty_statement(gateway: StripeGateway) -> None:
    statement = gateway.fetch_statement(DAY - timedelta(days=30))

    assert statement.lines == ()
    assert [page["data"] for page in json.loads(statement.content)] == [[]]
