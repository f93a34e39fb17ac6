"""Stripe's words into ours: every status, code and event type the adapter maps, held to what
the Stripe simulator writes, and the objects read into neutral states."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from local_runtime.simulators.common.switches import Simulate
from local_runtime.simulators.common.trades import Refund, Trade
from local_runtime.simulators.common.trades import RefundStatus as SimRefundStatus
from local_runtime.simulators.common.trades import TradeStatus as SimTradeStatus
from local_runtime.simulators.stripe import objects
from paycore.channels.base import (
    ChannelPaymentStatus,
    ChannelRefundStatus,
    NextAction,
    StatementLineKind,
)
from paycore.channels.stripe.transformers import (
    BalanceStatus,
    BalanceType,
    CardErrorCode,
    EventMeaning,
    EventType,
    IntentStatus,
    RefundFailureReason,
    RefundStatus,
    SessionPaymentStatus,
    SessionStatus,
    Unreadable,
    balance_line,
    balance_status,
    decline_failure_code,
    decline_of,
    event_meaning,
    id_time,
    intent_status,
    read_event,
    read_intent,
    read_refund,
    read_session,
    refund_failure_code,
    refund_status,
    session_expiry,
    session_status,
)
from paycore.ids import derived_id, new_id
from paycore.money import CURRENCY_EXPONENTS, from_minor_units, to_minor_units
from tests.support import ROOT

NOW = datetime(2031, 3, 14, 12, 0, tzinfo=UTC)
DAY = NOW.date()
URL = "http://127.0.0.1:3103"


# -- held to the simulator ----------------------------------------------------------------------


def _trade(status: SimTradeStatus, **more: Any) -> Trade:
    fields: dict[str, Any] = {
        "account": "a",
        "out_trade_no": "cs_test_1",
        "amount": 1999,
        "currency": "USD",
        "subject": "tea",
        "simulate": Simulate(),
        "expires_at": NOW + timedelta(hours=1),
        "created_at": NOW,
        "pay_token": "cs_test_1",
        "extra": {"object": "checkout.session", "payment_intent": "pi_1", "secret_suffix": "s"},
        "status": status,
    }
    fields.update(more)
    return Trade(**fields)


def _sim_sessions() -> list[dict[str, Any]]:
    """Sessions as the simulator shows them in every state it has."""
    paid = _trade(SimTradeStatus.SUCCESS, transaction_id="ch_1", paid_at=NOW)
    declined = _trade(SimTradeStatus.DECLINED, declined_at=NOW)
    closed = _trade(SimTradeStatus.CLOSED, closed_at=NOW)
    fresh = _trade(SimTradeStatus.WAIT_BUYER_PAY)
    later = NOW + timedelta(hours=2)  # past expires_at
    return [
        objects.checkout_session(trade, at, URL)
        for trade in (paid, declined, closed, fresh)
        for at in (NOW, later)
    ]


def test_every_session_word_the_simulator_writes_is_known() -> None:
    sessions = _sim_sessions()

    assert {s["status"] for s in sessions} == {member.value for member in SessionStatus}
    assert {s["payment_status"] for s in sessions} <= {m.value for m in SessionPaymentStatus}


def test_every_payment_intent_word_the_simulator_writes_is_known() -> None:
    paid = _trade(SimTradeStatus.SUCCESS, transaction_id="ch_1", paid_at=NOW)
    declined = _trade(SimTradeStatus.DECLINED, declined_at=NOW)
    intents = [
        objects.payment_intent(paid, NOW),
        objects.payment_intent(paid, NOW, stage="created"),
        objects.payment_intent(declined, NOW),
        objects.payment_intent(declined, NOW + timedelta(hours=2)),  # expired: canceled
    ]

    assert {i["status"] for i in intents} <= {member.value for member in IntentStatus}
    errors = [i["last_payment_error"] for i in intents if i["last_payment_error"]]
    assert {e["code"] for e in errors} <= {member.value for member in CardErrorCode}


def test_every_refund_word_the_simulator_writes_is_known() -> None:
    refund = Refund("a", "re_1", "cs_test_1", "re_1", 100, "USD", NOW, {"charge": "ch_1"})
    shown = set()
    for status in SimRefundStatus:
        refund.status = status
        shown.add((objects.refund(refund)["status"], objects.refund(refund)["failure_reason"]))

    assert {status for status, _ in shown} <= {member.value for member in RefundStatus}
    assert {reason for _, reason in shown if reason} <= {m.value for m in RefundFailureReason}


def test_every_event_type_the_simulator_publishes_is_read() -> None:
    source = (ROOT / "local_runtime/simulators/stripe/simulator.py").read_text()
    published = set(re.findall(r'EventSpec\(\s*"([a-z_.]+)"', source))

    assert published  # the scan found the simulator's events
    assert published <= {member.value for member in EventType}


def test_every_balance_word_the_simulator_writes_is_known() -> None:
    assert {"charge", "refund"} <= {member.value for member in BalanceType}
    assert {"available", "pending"} == {member.value for member in BalanceStatus}
    source = (ROOT / "local_runtime/simulators/stripe/objects.py").read_text()
    assert '"available" if now >= available else "pending"' in source


# -- the mappings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "paid", "ours"),
    [
        (SessionStatus.OPEN, SessionPaymentStatus.UNPAID, ChannelPaymentStatus.PENDING),
        (SessionStatus.COMPLETE, SessionPaymentStatus.PAID, ChannelPaymentStatus.SUCCEEDED),
        (
            SessionStatus.COMPLETE,
            SessionPaymentStatus.NO_PAYMENT_REQUIRED,
            ChannelPaymentStatus.SUCCEEDED,
        ),
        (SessionStatus.COMPLETE, SessionPaymentStatus.UNPAID, ChannelPaymentStatus.PENDING),
        (SessionStatus.EXPIRED, SessionPaymentStatus.UNPAID, ChannelPaymentStatus.CLOSED),
    ],
)
def test_session_words_map_to_ours(
    status: SessionStatus, paid: SessionPaymentStatus, ours: ChannelPaymentStatus
) -> None:
    assert session_status(status, paid) is ours


@pytest.mark.parametrize(
    ("status", "declined", "ours"),
    [
        (IntentStatus.SUCCEEDED, False, ChannelPaymentStatus.SUCCEEDED),
        (IntentStatus.REQUIRES_PAYMENT_METHOD, False, ChannelPaymentStatus.PENDING),
        (IntentStatus.REQUIRES_PAYMENT_METHOD, True, ChannelPaymentStatus.FAILED),
        (IntentStatus.CANCELED, False, ChannelPaymentStatus.CLOSED),
        (IntentStatus.CANCELED, True, ChannelPaymentStatus.FAILED),
        (IntentStatus.REQUIRES_CONFIRMATION, False, ChannelPaymentStatus.PENDING),
        (IntentStatus.REQUIRES_ACTION, False, ChannelPaymentStatus.PENDING),
        (IntentStatus.PROCESSING, False, ChannelPaymentStatus.PENDING),
        (IntentStatus.REQUIRES_CAPTURE, False, ChannelPaymentStatus.PENDING),
    ],
)
def test_payment_intent_words_map_to_ours(
    status: IntentStatus, declined: bool, ours: ChannelPaymentStatus
) -> None:
    assert intent_status(status, declined) is ours


def test_every_intent_status_is_covered_above() -> None:
    assert {intent_status(s, False) for s in IntentStatus} <= set(ChannelPaymentStatus)


@pytest.mark.parametrize(
    ("status", "ours"),
    [
        (RefundStatus.PENDING, ChannelRefundStatus.PENDING),
        (RefundStatus.REQUIRES_ACTION, ChannelRefundStatus.PENDING),
        (RefundStatus.SUCCEEDED, ChannelRefundStatus.SUCCEEDED),
        (RefundStatus.FAILED, ChannelRefundStatus.FAILED),
        (RefundStatus.CANCELED, ChannelRefundStatus.FAILED),
    ],
)
def test_refund_words_map_to_ours(status: RefundStatus, ours: ChannelRefundStatus) -> None:
    assert refund_status(status) is ours


def test_card_errors_and_refund_failures_are_paycores_documented_codes() -> None:
    documented = (ROOT / "docs/errors.md").read_text()
    codes = {decline_failure_code(code) for code in CardErrorCode}
    codes |= {refund_failure_code(reason) for reason in RefundFailureReason}

    assert codes == {"payment_declined", "payment_failed", "refund_rejected", "refund_failed"}
    assert all(f"`{code}`" in documented for code in codes)
    assert decline_failure_code(CardErrorCode.PROCESSING_ERROR) == "payment_failed"
    assert refund_failure_code(RefundFailureReason.UNKNOWN) == "refund_failed"


def test_every_event_type_has_a_meaning() -> None:
    meanings = {kind: event_meaning(kind) for kind in EventType}

    assert meanings[EventType.PAYMENT_INTENT_PAYMENT_FAILED] is EventMeaning.DECLINE
    assert meanings[EventType.CHARGE_REFUNDED] is EventMeaning.CHARGE
    assert meanings[EventType.CHECKOUT_SESSION_EXPIRED] is EventMeaning.SESSION
    assert meanings[EventType.REFUND_UPDATED] is EventMeaning.REFUND
    assert set(meanings.values()) == set(EventMeaning)


def test_balance_words_are_money_that_moved() -> None:
    assert {balance_status(s) for s in BalanceStatus} == {
        (ChannelPaymentStatus.SUCCEEDED, ChannelRefundStatus.SUCCEEDED)
    }


# -- money ---------------------------------------------------------------------------------------

# https://docs.stripe.com/currencies#zero-decimal and #three-decimal
STRIPE_ZERO_DECIMAL = {
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
}  # fmt: skip
STRIPE_THREE_DECIMAL = {"BHD", "JOD", "KWD", "OMR", "TND"}


@pytest.mark.parametrize("currency", sorted(CURRENCY_EXPONENTS))
def test_stripes_unit_is_the_iso_minor_unit_for_every_currency_paycore_takes(
    currency: str,
) -> None:
    exponent = CURRENCY_EXPONENTS[currency]

    assert (exponent == 0) == (currency in STRIPE_ZERO_DECIMAL)
    assert currency not in STRIPE_THREE_DECIMAL
    assert to_minor_units(1999, currency) == 1999
    assert from_minor_units(1999, currency) == 1999
    with pytest.raises(ValueError, match="integer"):
        from_minor_units(19.99, currency)


# -- sessions -----------------------------------------------------------------------------------


def _intent(status: str = "requires_payment_method", **more: Any) -> dict[str, Any]:
    return {
        "id": "pi_1",
        "object": "payment_intent",
        "status": status,
        "amount": 1999,
        "amount_received": 1999 if status == "succeeded" else 0,
        "currency": "usd",
        "last_payment_error": None,
        "metadata": {"payment_id": "pay_1"},
        **more,
    }


DECLINE = {
    "type": "card_error",
    "code": "card_declined",
    "decline_code": "insufficient_funds",
    "message": "Your card has insufficient funds.",
}


def _session(
    status: str = "open", payment_status: str = "unpaid", intent: Any = None, **more: Any
) -> dict[str, Any]:
    return {
        "id": "cs_test_1",
        "object": "checkout.session",
        "client_reference_id": "pay_1",
        "status": status,
        "payment_status": payment_status,
        "amount_total": 1999,
        "currency": "usd",
        "payment_intent": intent,
        "url": f"{URL}/c/pay/cs_test_1" if status == "open" else None,
        **more,
    }


def test_an_untouched_open_session_is_pending_with_its_page() -> None:
    reading = read_session(_session())

    assert reading.state.status is ChannelPaymentStatus.PENDING
    assert reading.state.next_action == NextAction.redirect(f"{URL}/c/pay/cs_test_1")
    assert (reading.state.amount, reading.state.currency) == (1999, "USD")
    assert reading.conclusive and not reading.declined_open


def test_a_session_the_buyer_acted_on_needs_its_payment_intent() -> None:
    assert not read_session(_session(intent="pi_1")).conclusive
    assert not read_session(_session("expired", intent="pi_1")).conclusive
    assert not read_session(_session("complete", "unpaid", intent="pi_1")).conclusive
    assert read_session(_session("complete", "paid", intent="pi_1")).conclusive


def test_an_open_session_with_a_declined_payment_intent_is_a_decline_still_payable() -> None:
    reading = read_session(_session(intent=_intent(last_payment_error=DECLINE)))

    assert reading.declined_open
    assert reading.state.status is ChannelPaymentStatus.FAILED
    assert reading.state.failure_code == "payment_declined"
    assert reading.state.failure_message == (
        "Your card has insufficient funds. (Stripe card_declined/insufficient_funds)"
    )


def test_an_expired_session_after_a_decline_reads_the_same_decline_not_payable() -> None:
    reading = read_session(
        _session("expired", intent=_intent("canceled", last_payment_error=DECLINE))
    )

    assert not reading.declined_open
    assert (reading.state.status, reading.state.failure_code) == (
        ChannelPaymentStatus.FAILED,
        "payment_declined",
    )
    assert reading.state.next_action is None


@pytest.mark.parametrize(
    ("session", "ours"),
    [
        (_session("expired"), ChannelPaymentStatus.CLOSED),
        (_session("expired", intent=_intent("canceled")), ChannelPaymentStatus.CLOSED),
        (_session("expired", intent=_intent("succeeded")), ChannelPaymentStatus.SUCCEEDED),
        (_session("open", intent=_intent("succeeded")), ChannelPaymentStatus.PENDING),
        (_session("open", intent=_intent("processing")), ChannelPaymentStatus.PENDING),
        (
            _session("complete", "unpaid", intent=_intent("processing")),
            ChannelPaymentStatus.PENDING,
        ),
        (
            _session("complete", "unpaid", intent=_intent(last_payment_error=DECLINE)),
            ChannelPaymentStatus.FAILED,
        ),  # a delayed method that failed
    ],
)
def test_sessions_read_into_our_statuses(
    session: dict[str, Any], ours: ChannelPaymentStatus
) -> None:
    assert read_session(session).state.status is ours


def test_a_paid_session_succeeds_for_what_the_payment_intent_received() -> None:
    intent = _intent("succeeded", amount_received=1500)
    reading = read_session(_session("complete", "paid", intent=intent), notification_id="evt_1")

    assert reading.state.status is ChannelPaymentStatus.SUCCEEDED
    assert (reading.state.amount, reading.state.channel_transaction_id) == (1500, "pi_1")
    assert (reading.state.channel_order_id, reading.state.notification_id) == ("cs_test_1", "evt_1")
    unexpanded = read_session(_session("complete", "paid", intent="pi_1")).state
    assert (unexpanded.amount, unexpanded.channel_transaction_id) == (1999, "pi_1")


@pytest.mark.parametrize(
    "broken",
    [
        {"client_reference_id": None},
        {"client_reference_id": ""},
        {"status": "archived"},
        {"payment_status": "maybe"},
        {"currency": "thb"},
        {"amount_total": "1999"},
        {"amount_total": 19.99},
        {"object": "payment_intent"},
        {"payment_intent": 7},
    ],
)
def test_a_session_that_is_not_what_we_know_is_unreadable(broken: dict[str, Any]) -> None:
    with pytest.raises(Unreadable):
        read_session({**_session(), **broken})


def test_declines_read_into_paycore_codes_keeping_stripes_words() -> None:
    processing = decline_of(_intent(last_payment_error={**DECLINE, "code": "processing_error"}))
    unknown = decline_of(_intent(last_payment_error={"code": "new_code", "message": "No."}))

    assert decline_of(_intent()) is None
    assert processing is not None
    assert processing.failure_code == "payment_failed"
    assert unknown is not None
    assert (unknown.failure_code, unknown.failure_message) == (
        "payment_declined",
        "No. (Stripe new_code)",
    )


def test_a_payment_intent_event_is_a_success_or_says_nothing_final() -> None:
    succeeded = read_intent(_intent("succeeded"), "evt_1")
    created = read_intent(_intent(), "evt_2")

    assert (succeeded.status, succeeded.amount, succeeded.channel_transaction_id) == (
        ChannelPaymentStatus.SUCCEEDED,
        1999,
        "pi_1",
    )
    assert (created.out_trade_no, created.status) == ("pay_1", ChannelPaymentStatus.PENDING)
    with pytest.raises(Unreadable, match="payment_id"):
        read_intent(_intent(metadata={}))


# -- refunds ------------------------------------------------------------------------------------


def _refund(status: str = "succeeded", **more: Any) -> dict[str, Any]:
    return {
        "id": "re_1",
        "object": "refund",
        "status": status,
        "amount": 500,
        "currency": "jpy",
        "failure_reason": None,
        "metadata": {"refund_id": "rfd_1", "payment_id": "pay_1"},
        **more,
    }


def test_a_refund_reads_into_ours() -> None:
    state = read_refund(_refund(), "evt_9")

    assert (state.out_refund_no, state.out_trade_no, state.status) == (
        "rfd_1",
        "pay_1",
        ChannelRefundStatus.SUCCEEDED,
    )
    assert (state.amount, state.currency, state.channel_refund_id, state.notification_id) == (
        500,
        "JPY",
        "re_1",
        "evt_9",
    )


@pytest.mark.parametrize(
    ("refund", "code", "message"),
    [
        (_refund("failed", failure_reason="declined"), "refund_rejected", "(declined)"),
        (_refund("failed", failure_reason="unknown"), "refund_failed", "(unknown)"),
        (_refund("failed", failure_reason="brand_new"), "refund_failed", "(brand_new)"),
        (_refund("failed"), "refund_failed", "(no reason given)"),
        (_refund("canceled"), "refund_rejected", "canceled"),
    ],
)
def test_a_failed_refund_says_why(refund: dict[str, Any], code: str, message: str) -> None:
    state = read_refund(refund)

    assert state.status is ChannelRefundStatus.FAILED
    assert state.failure_code == code
    assert state.failure_message is not None
    assert message in state.failure_message


@pytest.mark.parametrize("metadata", [{}, {"refund_id": "rfd_1"}, {"payment_id": "pay_1"}])
def test_a_refund_that_names_nothing_of_ours_is_unreadable(metadata: dict[str, str]) -> None:
    with pytest.raises(Unreadable):
        read_refund(_refund(metadata=metadata))


# -- events -------------------------------------------------------------------------------------


def test_an_event_is_read_with_its_object() -> None:
    body = json.dumps(
        {"id": "evt_1", "object": "event", "type": "refund.created", "data": {"object": _refund()}}
    ).encode()

    event = read_event(body)

    assert (event.id, event.type, event.object["id"]) == ("evt_1", EventType.REFUND_CREATED, "re_1")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "must be an object"),
        (b'{"object": "list"}', "not a Stripe event"),
        (b'{"id": "evt_1", "object": "event", "type": "invoice.paid", "data": {}}', "invoice.paid"),
        (
            b'{"id": "evt_1", "object": "event", "type": "refund.created", "data": {}}',
            "data.object",
        ),
    ],
)
def test_what_is_not_an_event_we_read_is_unreadable(body: bytes, message: str) -> None:
    with pytest.raises(Unreadable, match=re.escape(message)):
        read_event(body)


# -- balance transactions -----------------------------------------------------------------------


def _txn(kind: str = "charge", **more: Any) -> dict[str, Any]:
    source: Any = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": _intent("succeeded"),
    }
    if kind == "refund":
        source = _refund("succeeded", currency="usd")
    return {
        "id": "txn_1",
        "object": "balance_transaction",
        "type": kind,
        "amount": -500 if kind == "refund" else 1999,
        "fee": 0 if kind == "refund" else 58,
        "net": -500 if kind == "refund" else 1941,
        "currency": "usd",
        "status": "pending",
        "created": int(NOW.timestamp()),
        "source": source,
        **more,
    }


def test_a_charge_line_names_our_payment_through_its_payment_intent() -> None:
    line = balance_line(_txn(), DAY)

    assert line is not None
    assert (line.kind, line.reference, line.intent_id, line.source_id) == (
        StatementLineKind.PAYMENT,
        "pay_1",
        "pi_1",
        "ch_1",
    )
    assert (line.amount, line.fee, line.currency) == (1999, 58, "USD")
    assert (line.status, line.channel_status) == (ChannelPaymentStatus.SUCCEEDED, "pending")
    assert line.occurred_at == "2031-03-14T12:00:00.000Z"


def test_a_refund_line_is_positive_and_names_our_refund() -> None:
    line = balance_line(_txn("refund", status="available"), DAY)

    assert line is not None
    assert (line.kind, line.reference, line.amount, line.fee) == (
        StatementLineKind.REFUND,
        "rfd_1",
        500,
        0,
    )
    assert line.status is ChannelRefundStatus.SUCCEEDED


def test_an_orphan_charge_names_nothing_of_ours() -> None:
    line = balance_line(
        _txn(source={"id": "ch_9", "object": "charge", "payment_intent": None}), DAY
    )

    assert line is not None
    assert (line.reference, line.intent_id, line.source_id) == (None, None, "ch_9")


def test_a_status_that_is_not_money_that_moved_reads_failed_keeping_the_word() -> None:
    line = balance_line(_txn(status="closed"), DAY)

    assert line is not None
    assert (line.status, line.channel_status) == (ChannelPaymentStatus.FAILED, "closed")


@pytest.mark.parametrize("kind", ["payout", "adjustment", "stripe_fee", "refund_failure"])
def test_lines_that_are_neither_payment_nor_refund_are_skipped(kind: str) -> None:
    assert balance_line(_txn(kind), DAY) is None


@pytest.mark.parametrize(
    "broken",
    [
        {"created": int((NOW + timedelta(days=1)).timestamp())},
        {"fee": -5},
        {"amount": -1999},
        {"amount": "1999"},
        {"currency": "thb"},
        {"source": None},
        {"status": None},
    ],
)
def test_a_line_that_is_not_what_we_know_is_unreadable(broken: dict[str, Any]) -> None:
    with pytest.raises(Unreadable):
        balance_line(_txn(**broken), DAY)


# -- our ids and the session's expiry -----------------------------------------------------------


def test_a_paycore_id_says_when_it_was_made() -> None:
    before = datetime.now(UTC)
    made = id_time(new_id("pay"))

    assert made is not None
    assert before - timedelta(milliseconds=1) <= made <= datetime.now(UTC)
    assert id_time("pay_short") is None
    assert id_time("cs_test_" + "A" * 26) is None
    assert id_time("nothing") is None
    assert id_time("pay_" + "z" * 26) is None  # beyond any plausible time


def test_a_derived_id_decodes_to_no_time_near_now_so_the_adapter_does_not_trust_it() -> None:
    # Derived ids (late-payment refunds) are hashes: their "time" is anywhere in 2,000 years,
    # so the adapter only uses an id's time that lies between its payment's and now.
    now = datetime.now(UTC)
    samples = [id_time(derived_id("rfd", f"pay_{n}", "late_payment")) for n in range(500)]

    near = [m for m in samples if m is not None and abs(m - now) < timedelta(days=30)]
    assert near == []


@pytest.mark.parametrize(
    ("order_in", "expected"),
    [
        (timedelta(minutes=5), timedelta(hours=1)),
        (timedelta(hours=1, minutes=30), timedelta(hours=1, minutes=30, seconds=7)),
        (timedelta(days=3), timedelta(hours=23)),
    ],
)
def test_the_session_expiry_is_the_orders_within_the_window_from_the_payments_start(
    order_in: timedelta, expected: timedelta
) -> None:
    started = NOW + timedelta(seconds=7, microseconds=5)
    minute = NOW  # the start's minute

    expiry = session_expiry(started + order_in, started)

    assert expiry == int((minute + expected).timestamp())


def test_the_session_expiry_does_not_depend_on_when_it_is_asked() -> None:
    started = NOW
    answers = {session_expiry(NOW + timedelta(minutes=30), started) for _ in range(3)}

    assert answers == {int((NOW + timedelta(hours=1)).timestamp())}
    assert date.fromtimestamp(min(answers)) >= DAY
