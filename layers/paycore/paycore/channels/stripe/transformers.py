"""Stripe's words into ours: statuses, error codes, and the objects it writes (Checkout
Sessions, PaymentIntents, Refunds, Events, Balance Transactions).

Every mapping is an exhaustive ``match`` over an enum of Stripe's own values, so mypy proves
that a value we know is never forgotten; a value Stripe adds later is ``Unreadable`` (an
answer then leaves the outcome unknown, a notification is refused) rather than guessed. The
objects arrive as plain JSON (``StripeObject.to_dict()`` or the event body), never as
``StripeObject``: this module does not import ``stripe``.

How a Checkout Session reads (``read_session``):

- ``complete`` and ``paid``: SUCCEEDED, for the PaymentIntent's ``amount_received`` when it
  is at hand (else the session's ``amount_total``); ``complete`` and ``unpaid`` (a delayed
  method still processing) is PENDING.
- ``open``: PENDING, with the session's ``url`` as the next action, until the buyer acts.
  Stripe keeps a session open after a declined card (the buyer may try another), so a decline
  is not final at Stripe: an open session whose PaymentIntent carries ``last_payment_error``
  reads FAILED with ``declined_open`` set, and the adapter expires the session before it
  reports that (see ``adapter``).
- ``expired``: CLOSED, or FAILED when the buyer's payment had been declined first (the
  PaymentIntent shows ``last_payment_error``), so a decline reads the same before and after
  the session is expired.

A session whose PaymentIntent is only an id (not expanded) while it matters (open, or expired
after the buyer acted) is not ``conclusive``: the adapter retrieves it with the PaymentIntent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum, StrEnum, auto
from typing import Any, TypeVar, assert_never

from paycore.channels.base import (
    ChannelPaymentState,
    ChannelPaymentStatus,
    ChannelRefundState,
    ChannelRefundStatus,
    NextAction,
    StatementLineKind,
)
from paycore.channels.reading import Unreadable, optional_text, text
from paycore.clock import rfc3339
from paycore.money import AmountFormatError, from_minor_units, is_supported_currency

# Our ids in Stripe's objects: the payment id is the session's client_reference_id (and the
# metadata of the session and of its PaymentIntent); the refund id is the refund's metadata.
PAYMENT_ID_KEY = "payment_id"
REFUND_ID_KEY = "refund_id"
SIMULATE_KEY = "simulate"
REASON_KEY = "reason"
METADATA_VALUE_MAX = 500  # Stripe's limit on a metadata value
PRODUCT_NAME_MAX = 250  # line_items[][price_data][product_data][name]

# A Checkout Session lives 30 minutes to 24 hours. Ours expires at the order's expires_at,
# held inside [payment start + 1 h, payment start + 23 h]: the bounds are counted from when the
# payment began (its id says when), not from "now", so that every create call of one payment
# sends the same parameters under the same Idempotency-Key, and a create made within 30
# minutes of the payment's start is inside Stripe's window. paycore closes the session at the
# order's expiry when the session outlives it.
SESSION_FLOOR = timedelta(hours=1)
SESSION_CEILING = timedelta(hours=23)

_E = TypeVar("_E", bound=StrEnum)

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"  # paycore.ids' alphabet
_ID_BODY = 26
_ID_TIME_CHARS = 10


# -- Stripe's enums -----------------------------------------------------------------------------


class SessionStatus(StrEnum):
    OPEN = "open"
    COMPLETE = "complete"
    EXPIRED = "expired"


class SessionPaymentStatus(StrEnum):
    PAID = "paid"
    UNPAID = "unpaid"
    NO_PAYMENT_REQUIRED = "no_payment_required"


class IntentStatus(StrEnum):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    CANCELED = "canceled"
    SUCCEEDED = "succeeded"


class RefundStatus(StrEnum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class RefundFailureReason(StrEnum):
    CHARGE_FOR_PENDING_REFUND_DISPUTED = "charge_for_pending_refund_disputed"
    DECLINED = "declined"
    EXPIRED_OR_CANCELED_CARD = "expired_or_canceled_card"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    LOST_OR_STOLEN_CARD = "lost_or_stolen_card"
    MERCHANT_REQUEST = "merchant_request"
    UNKNOWN = "unknown"


class CardErrorCode(StrEnum):
    """``last_payment_error.code`` values of a card payment that did not go through."""

    CARD_DECLINED = "card_declined"
    EXPIRED_CARD = "expired_card"
    INCORRECT_CVC = "incorrect_cvc"
    INCORRECT_NUMBER = "incorrect_number"
    INCORRECT_ZIP = "incorrect_zip"
    INVALID_CVC = "invalid_cvc"
    INVALID_EXPIRY_MONTH = "invalid_expiry_month"
    INVALID_EXPIRY_YEAR = "invalid_expiry_year"
    INVALID_NUMBER = "invalid_number"
    AUTHENTICATION_REQUIRED = "authentication_required"
    PAYMENT_INTENT_AUTHENTICATION_FAILURE = "payment_intent_authentication_failure"
    PROCESSING_ERROR = "processing_error"


class BalanceStatus(StrEnum):
    AVAILABLE = "available"
    PENDING = "pending"


class BalanceType(StrEnum):
    """The balance transaction types that are a payment or a refund (the others, payouts,
    adjustments, fees..., are not statement lines of ours)."""

    CHARGE = "charge"
    PAYMENT = "payment"
    REFUND = "refund"
    PAYMENT_REFUND = "payment_refund"


class EventType(StrEnum):
    """The events paycore reads. An endpoint needs only ``WEBHOOK_EVENTS``; the others are
    read too (an endpoint subscribed to more is harmless), each as ``event_meaning`` says."""

    CHECKOUT_SESSION_COMPLETED = "checkout.session.completed"
    CHECKOUT_SESSION_EXPIRED = "checkout.session.expired"
    CHECKOUT_SESSION_ASYNC_PAYMENT_SUCCEEDED = "checkout.session.async_payment_succeeded"
    CHECKOUT_SESSION_ASYNC_PAYMENT_FAILED = "checkout.session.async_payment_failed"
    PAYMENT_INTENT_CREATED = "payment_intent.created"
    PAYMENT_INTENT_PROCESSING = "payment_intent.processing"
    PAYMENT_INTENT_REQUIRES_ACTION = "payment_intent.requires_action"
    PAYMENT_INTENT_CANCELED = "payment_intent.canceled"
    PAYMENT_INTENT_SUCCEEDED = "payment_intent.succeeded"
    PAYMENT_INTENT_PAYMENT_FAILED = "payment_intent.payment_failed"
    CHARGE_SUCCEEDED = "charge.succeeded"
    CHARGE_REFUNDED = "charge.refunded"
    REFUND_CREATED = "refund.created"
    REFUND_UPDATED = "refund.updated"
    REFUND_FAILED = "refund.failed"


# The types the account's webhook endpoint is subscribed to (its ``enabled_events``; Stripe
# sends an endpoint nothing else): the fewest that still settle, by notification, every
# outcome the adapter reads. docs/channels.md lists them for operators; the local runtime
# registers the simulator's endpoint with them. Each event costs a callback (a replay-guard
# write, a read, maybe a refused resume), so a type that only repeats another is left out:
# - ``payment_intent.succeeded``, ``charge.succeeded``: the paid session's
#   ``checkout.session.completed`` says the same (a delayed method: its async_payment event);
# - ``payment_intent.created`` (and processing, requires_action, canceled): never final;
# - ``refund.created``: its refund is the one the create answered (a lost answer: the step's
#   retry, same Idempotency-Key, finds it); a pending one moves on with ``refund.updated``;
# - ``refund.failed``: Stripe also sends ``refund.updated`` for that status change (and for a
#   canceled refund, which has no event of its own);
# - ``charge.refunded``: it names a Charge, read as the payment's state, never the refund's.
WEBHOOK_EVENTS: tuple[EventType, ...] = (
    EventType.CHECKOUT_SESSION_COMPLETED,  # paid (card): conclusive; unpaid: a delayed method
    EventType.CHECKOUT_SESSION_ASYNC_PAYMENT_SUCCEEDED,  # the delayed method paid
    EventType.CHECKOUT_SESSION_ASYNC_PAYMENT_FAILED,  # the delayed method failed
    EventType.PAYMENT_INTENT_PAYMENT_FAILED,  # a decline: the session stays open, no session event
    EventType.CHECKOUT_SESSION_EXPIRED,  # expired (by Stripe at expires_at, or by a close)
    EventType.REFUND_UPDATED,  # a pending refund's outcome: succeeded, failed or canceled
)


class EventMeaning(Enum):
    """How an event is read."""

    SESSION = auto()  # its session says the payment's state (looked up when inconclusive)
    INTENT = auto()  # its PaymentIntent: a success is one; anything else says nothing final
    DECLINE = auto()  # a declined payment: final only once the session is closed
    CHARGE = auto()  # names no payment of ours: the payment is looked up by its PaymentIntent
    REFUND = auto()  # its refund says the refund's state


# -- the mappings -------------------------------------------------------------------------------


def session_status(status: SessionStatus, paid: SessionPaymentStatus) -> ChannelPaymentStatus:
    """A session's own word, before its PaymentIntent is considered."""
    match status:
        case SessionStatus.COMPLETE:
            match paid:
                case SessionPaymentStatus.PAID | SessionPaymentStatus.NO_PAYMENT_REQUIRED:
                    return ChannelPaymentStatus.SUCCEEDED
                case SessionPaymentStatus.UNPAID:  # a delayed method still processing
                    return ChannelPaymentStatus.PENDING
                case _:
                    assert_never(paid)
        case SessionStatus.OPEN:
            return ChannelPaymentStatus.PENDING
        case SessionStatus.EXPIRED:
            return ChannelPaymentStatus.CLOSED
        case _:
            assert_never(status)


def intent_status(status: IntentStatus, declined: bool) -> ChannelPaymentStatus:
    """A PaymentIntent's word (``declined``: it carries ``last_payment_error``)."""
    match status:
        case IntentStatus.SUCCEEDED:
            return ChannelPaymentStatus.SUCCEEDED
        case IntentStatus.REQUIRES_PAYMENT_METHOD:
            return ChannelPaymentStatus.FAILED if declined else ChannelPaymentStatus.PENDING
        case IntentStatus.CANCELED:
            return ChannelPaymentStatus.FAILED if declined else ChannelPaymentStatus.CLOSED
        case (
            IntentStatus.REQUIRES_CONFIRMATION
            | IntentStatus.REQUIRES_ACTION
            | IntentStatus.PROCESSING
            | IntentStatus.REQUIRES_CAPTURE
        ):
            return ChannelPaymentStatus.PENDING
        case _:
            assert_never(status)


def refund_status(status: RefundStatus) -> ChannelRefundStatus:
    match status:
        case RefundStatus.PENDING | RefundStatus.REQUIRES_ACTION:
            return ChannelRefundStatus.PENDING
        case RefundStatus.SUCCEEDED:
            return ChannelRefundStatus.SUCCEEDED
        case RefundStatus.FAILED | RefundStatus.CANCELED:
            return ChannelRefundStatus.FAILED
        case _:
            assert_never(status)


def decline_failure_code(code: CardErrorCode) -> str:
    """A card error in paycore's words (docs/errors.md)."""
    match code:
        case CardErrorCode.PROCESSING_ERROR:
            return "payment_failed"
        case (
            CardErrorCode.CARD_DECLINED
            | CardErrorCode.EXPIRED_CARD
            | CardErrorCode.INCORRECT_CVC
            | CardErrorCode.INCORRECT_NUMBER
            | CardErrorCode.INCORRECT_ZIP
            | CardErrorCode.INVALID_CVC
            | CardErrorCode.INVALID_EXPIRY_MONTH
            | CardErrorCode.INVALID_EXPIRY_YEAR
            | CardErrorCode.INVALID_NUMBER
            | CardErrorCode.AUTHENTICATION_REQUIRED
            | CardErrorCode.PAYMENT_INTENT_AUTHENTICATION_FAILURE
        ):
            return "payment_declined"
        case _:
            assert_never(code)


def refund_failure_code(reason: RefundFailureReason) -> str:
    match reason:
        case RefundFailureReason.UNKNOWN:
            return "refund_failed"
        case (
            RefundFailureReason.CHARGE_FOR_PENDING_REFUND_DISPUTED
            | RefundFailureReason.DECLINED
            | RefundFailureReason.EXPIRED_OR_CANCELED_CARD
            | RefundFailureReason.INSUFFICIENT_FUNDS
            | RefundFailureReason.LOST_OR_STOLEN_CARD
            | RefundFailureReason.MERCHANT_REQUEST
        ):
            return "refund_rejected"
        case _:
            assert_never(reason)


def event_meaning(kind: EventType) -> EventMeaning:
    match kind:
        case (
            EventType.CHECKOUT_SESSION_COMPLETED
            | EventType.CHECKOUT_SESSION_EXPIRED
            | EventType.CHECKOUT_SESSION_ASYNC_PAYMENT_SUCCEEDED
            | EventType.CHECKOUT_SESSION_ASYNC_PAYMENT_FAILED
        ):
            return EventMeaning.SESSION
        case (
            EventType.PAYMENT_INTENT_CREATED
            | EventType.PAYMENT_INTENT_PROCESSING
            | EventType.PAYMENT_INTENT_REQUIRES_ACTION
            | EventType.PAYMENT_INTENT_CANCELED
            | EventType.PAYMENT_INTENT_SUCCEEDED
        ):
            return EventMeaning.INTENT
        case EventType.PAYMENT_INTENT_PAYMENT_FAILED:
            return EventMeaning.DECLINE
        case EventType.CHARGE_SUCCEEDED | EventType.CHARGE_REFUNDED:
            return EventMeaning.CHARGE
        case EventType.REFUND_CREATED | EventType.REFUND_UPDATED | EventType.REFUND_FAILED:
            return EventMeaning.REFUND
        case _:
            assert_never(kind)


def balance_status(status: BalanceStatus) -> tuple[ChannelPaymentStatus, ChannelRefundStatus]:
    """What a listed balance transaction says of its payment (or refund): money that moved.
    (Stripe lists only moved money; a word other than these is not a success, see
    ``balance_line``.)"""
    match status:
        case BalanceStatus.AVAILABLE | BalanceStatus.PENDING:
            return ChannelPaymentStatus.SUCCEEDED, ChannelRefundStatus.SUCCEEDED
        case _:
            assert_never(status)


def balance_kind(kind: BalanceType) -> StatementLineKind:
    match kind:
        case BalanceType.CHARGE | BalanceType.PAYMENT:
            return StatementLineKind.PAYMENT
        case BalanceType.REFUND | BalanceType.PAYMENT_REFUND:
            return StatementLineKind.REFUND
        case _:
            assert_never(kind)


# -- our ids, times and amounts in Stripe's terms -----------------------------------------------


def id_time(object_id: str) -> datetime | None:
    """When a paycore id (``pay_...``, ``rfd_...``: ``paycore.ids.new_id``) was made, from its
    leading milliseconds; None for anything else (a derived id may decode to nonsense: callers
    check the answer is plausible)."""
    _, sep, body = object_id.partition("_")
    if not sep or len(body) != _ID_BODY or any(char not in _CROCKFORD for char in body):
        return None
    millis = 0
    for char in body[:_ID_TIME_CHARS]:
        millis = millis * 32 + _CROCKFORD.index(char)
    try:
        moment = datetime.fromtimestamp(millis / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment if 2020 <= moment.year <= 2200 else None


def session_expiry(order_expires_at: datetime, payment_started: datetime) -> int:
    """The session's ``expires_at`` (unix seconds): the order's, within [start + 1 h,
    start + 23 h] (see ``SESSION_FLOOR``)."""
    start = payment_started.replace(second=0, microsecond=0)
    bounded = min(max(order_expires_at, start + SESSION_FLOOR), start + SESSION_CEILING)
    return int(bounded.timestamp())


def stripe_currency(currency: str) -> str:
    """Stripe writes ISO 4217 codes in lower case."""
    return currency.lower()


def product_name(subject: str) -> str:
    return subject[:PRODUCT_NAME_MAX]


def simulate_metadata(switches: Mapping[str, Any]) -> str:
    """The switches as the compact JSON text the simulator reads from ``metadata[simulate]``."""
    return json.dumps(dict(switches), separators=(",", ":"), sort_keys=True)


# -- reading Stripe's JSON ----------------------------------------------------------------------


def mapping(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise Unreadable(f"{name} must be an object")
    return value


def _enum(kind: type[_E], body: Mapping[str, Any], key: str) -> _E:
    value = body.get(key)
    try:
        return kind(str(value))
    except ValueError:
        raise Unreadable(f"unknown {key} {value!r}") from None


def currency_of(body: Mapping[str, Any]) -> str:
    code = text(body, "currency").upper()
    if not is_supported_currency(code):
        raise Unreadable(f"currency {code} is not one paycore supports")
    return code


def amount_of(body: Mapping[str, Any], key: str, currency: str) -> int:
    try:
        return from_minor_units(body.get(key), currency)
    except AmountFormatError as exc:
        raise Unreadable(f"{key}: {exc}") from None


def metadata_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    value = body.get("metadata")
    return value if isinstance(value, Mapping) else {}


def object_id(value: Any, name: str) -> str | None:
    """An expandable field: null, an id, or the expanded object (its ``id``)."""
    if value is None:
        return None
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping):
        return text(value, "id")
    raise Unreadable(f"{name} must be an id, an object or null")


@dataclass(frozen=True)
class Decline:
    """A PaymentIntent's ``last_payment_error`` in paycore's words."""

    failure_code: str
    failure_message: str


def decline_of(intent: Mapping[str, Any]) -> Decline | None:
    """The decline a PaymentIntent carries, if any."""
    error = intent.get("last_payment_error")
    if error is None:
        return None
    error = mapping(error, "last_payment_error")
    code = optional_text(error, "code")
    decline_code = optional_text(error, "decline_code")
    message = optional_text(error, "message") or "Stripe declined the payment"
    words = "/".join(word for word in (code, decline_code) if word)
    try:
        failure_code = decline_failure_code(CardErrorCode(code or ""))
    except ValueError:
        failure_code = "payment_declined"
    return Decline(failure_code, f"{message} (Stripe {words or 'decline'})")


@dataclass(frozen=True)
class SessionReading:
    """What a Checkout Session says of our payment."""

    state: ChannelPaymentState
    session_id: str
    status: SessionStatus
    intent_id: str | None
    conclusive: bool  # False: its PaymentIntent is needed (retrieve it expanded)
    declined_open: bool  # declined, and the session is still open (payable)


def read_session(session: Mapping[str, Any], notification_id: str | None = None) -> SessionReading:
    """A Checkout Session (its ``payment_intent`` null, an id or expanded) as our payment's
    state (see the module docstring)."""
    if session.get("object") not in (None, "checkout.session"):
        raise Unreadable("not a checkout.session")
    session_id = text(session, "id")
    out_trade_no = text(session, "client_reference_id")
    status = _enum(SessionStatus, session, "status")
    paid = _enum(SessionPaymentStatus, session, "payment_status")
    currency = currency_of(session)
    amount = amount_of(session, "amount_total", currency)
    raw_intent = session.get("payment_intent")
    intent = mapping(raw_intent, "payment_intent") if isinstance(raw_intent, Mapping) else None
    intent_id = object_id(raw_intent, "payment_intent")
    url = optional_text(session, "url")

    outcome = session_status(status, paid)
    decline: Decline | None = None
    conclusive = True
    if intent is not None:
        decline = decline_of(intent)
        by_intent = intent_status(_enum(IntentStatus, intent, "status"), decline is not None)
        if outcome is ChannelPaymentStatus.SUCCEEDED:
            pass
        elif by_intent is ChannelPaymentStatus.SUCCEEDED and outcome is ChannelPaymentStatus.CLOSED:
            outcome = ChannelPaymentStatus.SUCCEEDED  # money taken: say so, it is refunded
        elif by_intent is ChannelPaymentStatus.FAILED:
            outcome = ChannelPaymentStatus.FAILED
        if outcome is ChannelPaymentStatus.SUCCEEDED and intent.get("status") == "succeeded":
            amount = amount_of(intent, "amount_received", currency_of(intent))
    elif intent_id is not None and outcome is not ChannelPaymentStatus.SUCCEEDED:
        conclusive = False  # the buyer acted and did not pay (yet): its PaymentIntent says why

    succeeded = outcome is ChannelPaymentStatus.SUCCEEDED
    failed = outcome is ChannelPaymentStatus.FAILED
    state = ChannelPaymentState(
        out_trade_no=out_trade_no,
        status=outcome,
        amount=amount,
        currency=currency,
        channel_order_id=session_id,
        channel_transaction_id=intent_id if succeeded else None,
        failure_code=decline.failure_code if failed and decline else None,
        failure_message=decline.failure_message if failed and decline else None,
        notification_id=notification_id,
        next_action=NextAction.redirect(url) if url and status is SessionStatus.OPEN else None,
    )
    return SessionReading(
        state=state,
        session_id=session_id,
        status=status,
        intent_id=intent_id,
        conclusive=conclusive,
        declined_open=failed and status is SessionStatus.OPEN,
    )


def read_intent(
    intent: Mapping[str, Any], notification_id: str | None = None
) -> ChannelPaymentState:
    """A PaymentIntent event of a Checkout payment: SUCCEEDED when it succeeded; otherwise it
    says nothing final (PENDING): at Checkout the session's events and a status query do."""
    if intent.get("object") not in (None, "payment_intent"):
        raise Unreadable("not a payment_intent")
    out_trade_no = metadata_of(intent).get(PAYMENT_ID_KEY)
    if not isinstance(out_trade_no, str) or not out_trade_no:
        raise Unreadable(f"the PaymentIntent's metadata has no {PAYMENT_ID_KEY}")
    intent_id = text(intent, "id")
    status = _enum(IntentStatus, intent, "status")
    currency = currency_of(intent)
    if status is IntentStatus.SUCCEEDED:
        return ChannelPaymentState(
            out_trade_no=out_trade_no,
            status=ChannelPaymentStatus.SUCCEEDED,
            amount=amount_of(intent, "amount_received", currency),
            currency=currency,
            channel_transaction_id=intent_id,
            notification_id=notification_id,
        )
    return ChannelPaymentState(
        out_trade_no=out_trade_no,
        status=ChannelPaymentStatus.PENDING,
        amount=amount_of(intent, "amount", currency),
        currency=currency,
        notification_id=notification_id,
    )


def intent_payment_id(intent: Mapping[str, Any]) -> str | None:
    """Our payment id in a PaymentIntent's metadata (set at create), if any."""
    value = metadata_of(intent).get(PAYMENT_ID_KEY)
    return value if isinstance(value, str) and value else None


def read_refund(
    refund: Mapping[str, Any], notification_id: str | None = None
) -> ChannelRefundState:
    """A Refund (its metadata names our refund and payment) as our refund's state."""
    if refund.get("object") not in (None, "refund"):
        raise Unreadable("not a refund")
    metadata = metadata_of(refund)
    out_refund_no = metadata.get(REFUND_ID_KEY)
    out_trade_no = metadata.get(PAYMENT_ID_KEY)
    if not isinstance(out_refund_no, str) or not out_refund_no:
        raise Unreadable(f"the refund's metadata has no {REFUND_ID_KEY}")
    if not isinstance(out_trade_no, str) or not out_trade_no:
        raise Unreadable(f"the refund's metadata has no {PAYMENT_ID_KEY}")
    stripe_status = _enum(RefundStatus, refund, "status")
    status = refund_status(stripe_status)
    currency = currency_of(refund)
    code = message = None
    if status is ChannelRefundStatus.FAILED:
        reason = optional_text(refund, "failure_reason")
        if stripe_status is RefundStatus.CANCELED:
            code, message = "refund_rejected", "Stripe canceled the refund"
        else:
            try:
                code = refund_failure_code(RefundFailureReason(reason or "unknown"))
            except ValueError:
                code = "refund_failed"
            message = f"Stripe failed the refund ({reason or 'no reason given'})"
    return ChannelRefundState(
        out_refund_no=out_refund_no,
        out_trade_no=out_trade_no,
        status=status,
        amount=amount_of(refund, "amount", currency),
        currency=currency,
        channel_refund_id=text(refund, "id"),
        failure_code=code,
        failure_message=message,
        notification_id=notification_id,
    )


def refund_reference(refund: Mapping[str, Any]) -> str | None:
    value = metadata_of(refund).get(REFUND_ID_KEY)
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class StripeEvent:
    id: str
    type: EventType
    object: Mapping[str, Any]


def read_event(body: bytes) -> StripeEvent:
    """A (verified) webhook body: a snapshot event of a type paycore reads."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Unreadable("not JSON") from None
    event = mapping(value, "the event")
    if event.get("object") != "event":
        raise Unreadable("not a Stripe event")
    kind = event.get("type")
    try:
        event_type = EventType(str(kind))
    except ValueError:
        raise Unreadable(
            f"paycore does not read {kind!r} events; subscribe the endpoint to: "
            + ", ".join(WEBHOOK_EVENTS)
        ) from None
    data = mapping(event.get("data"), "data")
    return StripeEvent(text(event, "id"), event_type, mapping(data.get("object"), "data.object"))


# -- the statement: balance transactions --------------------------------------------------------


@dataclass(frozen=True)
class BalanceLine:
    """A balance transaction that is a payment or a refund, before its reference is known for
    sure: ``reference`` is our id when the object names it (the PaymentIntent's or the
    refund's metadata), else None (the adapter asks the session of ``intent_id``)."""

    kind: StatementLineKind
    transaction_id: str  # the txn_ id
    source_id: str  # ch_ / py_ of a payment, re_ / pyr_ of a refund
    intent_id: str | None
    reference: str | None
    amount: int
    currency: str
    fee: int
    status: ChannelPaymentStatus | ChannelRefundStatus
    channel_status: str
    occurred_at: str


def balance_line(txn: Mapping[str, Any], day: date) -> BalanceLine | None:
    """A listed balance transaction (``expand[]=data.source.payment_intent``) of ``day``
    (UTC) as a statement line, or None when it is neither a payment nor a refund.

    ``status`` is ``available`` or ``pending`` for money that moved (a success); any other
    word (the simulator's ``statement_status`` switch) reads FAILED, the word kept in
    ``channel_status``."""
    try:
        kind = balance_kind(BalanceType(str(txn.get("type"))))
    except ValueError:
        return None
    currency = currency_of(txn)
    raw_amount, raw_fee = txn.get("amount"), txn.get("fee")
    if not isinstance(raw_amount, int) or isinstance(raw_amount, bool):
        raise Unreadable("amount must be an integer")
    if kind is StatementLineKind.REFUND:
        raw_amount = -raw_amount  # Stripe writes a refund's amount negative
    try:
        amount = from_minor_units(raw_amount, currency)
        fee = from_minor_units(raw_fee, currency)
    except AmountFormatError as exc:
        raise Unreadable(f"{txn.get('id')}: {exc}") from None
    created = txn.get("created")
    if not isinstance(created, int) or isinstance(created, bool):
        raise Unreadable("created must be unix seconds")
    occurred = datetime.fromtimestamp(created, UTC)
    if occurred.date() != day:
        raise Unreadable(f"{txn.get('id')} is not on {day} (UTC)")
    word = text(txn, "status")
    try:
        paid, refunded = balance_status(BalanceStatus(word))
    except ValueError:
        paid, refunded = ChannelPaymentStatus.FAILED, ChannelRefundStatus.FAILED
    raw_source = txn.get("source")
    source = mapping(raw_source, "source") if isinstance(raw_source, Mapping) else {}
    source_id = object_id(raw_source, "source")
    if source_id is None:
        raise Unreadable(f"{txn.get('id')} has no source")
    raw_intent = source.get("payment_intent")
    intent_id = object_id(raw_intent, "source.payment_intent")
    if kind is StatementLineKind.PAYMENT:
        reference = intent_payment_id(raw_intent) if isinstance(raw_intent, Mapping) else None
        status: ChannelPaymentStatus | ChannelRefundStatus = paid
    else:
        reference = refund_reference(source)
        status = refunded
    return BalanceLine(
        kind=kind,
        transaction_id=text(txn, "id"),
        source_id=source_id,
        intent_id=intent_id,
        reference=reference,
        amount=amount,
        currency=currency,
        fee=fee,
        status=status,
        channel_status=word,
        occurred_at=rfc3339(occurred),
    )
