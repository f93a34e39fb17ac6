"""The Stripe channel's ``ChannelGateway``: one Stripe account, paid through Checkout Sessions.

A payment is one Checkout Session (``mode=payment``, with the payment methods the account
enables; one that settles later reads PENDING until it does): ``client_reference_id`` and
``metadata[payment_id]`` (also on its PaymentIntent, through ``payment_intent_data``) are our
payment id; the buyer is sent to the session's ``url``. A refund is a Refund of the session's
PaymentIntent with ``metadata[refund_id]`` = our refund id. The statement of a day is that UTC
day's balance transactions. Stripe's semantics, and what this adapter does about them:

- **Every create makes a new session** (``client_reference_id`` is not unique at Stripe).
  Each create call of a payment sends the same parameters (the session's ``expires_at`` is
  counted from the payment's start, see ``transformers.session_expiry``) under the same
  ``Idempotency-Key`` (``paycore-checkout-<payment id>``), so a repeated call within Stripe's
  24 hours gets the same session back instead of a second one.
- **A create whose answer is lost**: Stripe has no lookup by ``client_reference_id``.
  ``query_order`` without the session id lists the account's sessions created since the
  payment began (its id says when, minus ``LOOKUP_MARGIN`` for clock skew), page by page,
  and matches ``client_reference_id`` itself: NOT_FOUND only when the whole list has none,
  which proves the account created nothing for the payment. A session exists from its
  create on, so a session the buyer has not touched is PENDING, never NOT_FOUND.
- **A decline is not final at Stripe**: the session stays open (the buyer may try another
  card) and its PaymentIntent carries ``last_payment_error``. paycore's payment is one
  attempt, so the adapter makes the decline final before reporting it: it expires the
  session, then reports FAILED (``payment_declined``; ``payment_failed`` for a processing
  error), or SUCCEEDED if the buyer paid first (the expire is refused for a complete
  session). ``query_order``, ``close_order`` and the ``payment_intent.payment_failed``
  notification all do this, so whichever comes first leaves the session closed.
- **Expiry**: an expired session is CLOSED, or FAILED when the buyer had been declined
  (``checkout.session.expired`` of a session with a PaymentIntent is read with that
  PaymentIntent, so it says what the query says). ``close_order`` expires every open session
  of the payment; ``expire`` of a session that is no longer open is a 400, answered by
  retrieving the session (complete: SUCCEEDED, for the caller to settle or refund).
- **Refunds** are idempotent on our refund id: before creating one, the PaymentIntent's
  refunds are listed and one whose ``metadata[refund_id]`` is ours is returned; the create
  carries ``Idempotency-Key: paycore-refund-<refund id>``. A refund is found again with
  ``GET /v1/refunds`` (created since the refund began, else by PaymentIntent).
- **Notifications** are snapshot events signed ``Stripe-Signature`` (``signing``); the
  account's endpoint is subscribed to ``transformers.WEBHOOK_EVENTS`` only, yet every
  ``EventType`` is read (an endpoint subscribed to more is harmless). The body alone is read
  when it is conclusive (``checkout.session.*``, ``payment_intent.*``, ``refund.*``); a
  decline, a session the buyer acted on without paying (a decline before it expired, a
  delayed method that failed) and a ``charge.*`` event (a Charge carries no id of ours) are
  read through the API, as a query would. Stale events never move anything
  backwards: an event that is not a final outcome (``payment_intent.created``, a pending
  ``refund.created``) reads PENDING, which the orchestration ignores.

Stripe's answers are turned into plain JSON (``StripeObject.to_dict()``) at once; the
``transformers`` read them. Errors: see ``client``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, assert_never

from paycore import clock
from paycore.channels.answers import AnswerChecks
from paycore.channels.base import (
    MAX_NOTIFICATION_BYTES,
    CallbackAck,
    ChannelOrder,
    ChannelPaymentState,
    ChannelPaymentStatus,
    ChannelRefundState,
    ChannelRefundStatus,
    ChannelStatement,
    CreateChannelOrder,
    CreateChannelRefund,
    NextActionType,
    StatementLine,
    StatementLineKind,
    lower_headers,
)
from paycore.channels.metering import metered
from paycore.channels.reading import Unreadable, text
from paycore.channels.stripe.client import Refused, StripeApi
from paycore.channels.stripe.settings import StripeSettings
from paycore.channels.stripe.signing import SIGNATURE_HEADER, verify_notification
from paycore.channels.stripe.transformers import (
    METADATA_VALUE_MAX,
    PAYMENT_ID_KEY,
    REASON_KEY,
    REFUND_ID_KEY,
    SIMULATE_KEY,
    BalanceLine,
    EventMeaning,
    SessionReading,
    StripeEvent,
    balance_line,
    event_meaning,
    id_time,
    intent_payment_id,
    mapping,
    object_id,
    product_name,
    read_event,
    read_intent,
    read_refund,
    read_session,
    refund_reference,
    session_expiry,
    simulate_metadata,
    stripe_currency,
)
from paycore.clock import parse_rfc3339
from paycore.config import Settings
from paycore.errors import CallbackRejected, ChannelRejected
from paycore.money import AmountFormatError, to_minor_units

if TYPE_CHECKING:
    from stripe.params import RefundCreateParams, RefundListParams
    from stripe.params.checkout import SessionCreateParams, SessionListParams

logger = logging.getLogger(__name__)

# Stripe's clock and ours may differ: a lookup by creation time starts this much earlier.
LOOKUP_MARGIN = timedelta(minutes=10)
PAGE_SIZE = 100
MAX_PAGES = 1000  # 100,000 objects: a lookup that goes further is a bug, not a busy account
# Best first, when a payment has several sessions (or a close finds several outcomes).
_PREFERENCE = (
    ChannelPaymentStatus.SUCCEEDED,
    ChannelPaymentStatus.PENDING,
    ChannelPaymentStatus.FAILED,
    ChannelPaymentStatus.CLOSED,
    ChannelPaymentStatus.NOT_FOUND,
)
_SESSION_PREFERENCE = {"complete": 0, "open": 1, "expired": 2}


class StripeGateway(AnswerChecks):
    """``ChannelGateway`` for the Stripe account ``account_id`` described by ``settings``."""

    name: ClassVar[str] = "stripe"
    next_action_type: ClassVar[NextActionType] = NextActionType.REDIRECT

    def __init__(self, settings: StripeSettings, *, account_id: str, timeout: float = 5.0):
        if not account_id:
            raise ValueError("the Stripe account id must not be empty")
        self.account_id = account_id
        self.simulator = settings.simulator
        self._webhook_secret = settings.webhook_secret
        self._api = StripeApi(settings, timeout)

    def __repr__(self) -> str:  # never shows the keys
        return f"StripeGateway(account_id={self.account_id!r}, api={self._api!r})"

    def _unavailable(self, reference: str, reason: str) -> NoReturn:
        self._api.unavailable(reference, reason)

    # -- payments ----------------------------------------------------------------------------

    @metered
    def create_order(self, request: CreateChannelOrder) -> ChannelOrder:
        """Create the payment's Checkout Session (the same one again for a repeated call: same
        parameters, same Idempotency-Key). ``simulate`` travels in ``metadata[simulate]``."""
        reference = request.out_trade_no
        try:
            order_expiry = parse_rfc3339(request.expires_at)
            amount = to_minor_units(request.amount, request.currency)
        except (ValueError, AmountFormatError) as exc:
            raise ChannelRejected(f"stripe: cannot create {reference}: {exc}") from None
        started = id_time(reference) or clock.now()
        metadata = {PAYMENT_ID_KEY: reference}
        if request.simulate is not None:
            metadata[SIMULATE_KEY] = simulate_metadata(request.simulate)
        params: SessionCreateParams = {
            "mode": "payment",
            "client_reference_id": reference,
            "line_items": [
                {
                    "price_data": {
                        "currency": stripe_currency(request.currency),
                        "unit_amount": amount,
                        "product_data": {"name": product_name(request.subject)},
                    },
                    "quantity": 1,
                }
            ],
            "expires_at": session_expiry(order_expiry, started),
            "metadata": metadata,
            "payment_intent_data": {"metadata": {PAYMENT_ID_KEY: reference}},
        }
        if request.return_url is not None:
            params["success_url"] = request.return_url
            params["cancel_url"] = request.return_url
        key = f"paycore-checkout-{reference}"
        session = self._ask(
            reference,
            "create session",
            lambda: self._api.client.v1.checkout.sessions.create(params, {"idempotency_key": key}),
        )
        reading = self._readable(read_session, session, reference)
        self._check_payment(reference, reading.state.out_trade_no)
        state = reading.state
        if (state.amount, state.currency) != (request.amount, request.currency):
            raise ChannelRejected(
                f"stripe session {reading.session_id} of {reference} is for "
                f"{state.amount} {state.currency}"
            )
        if state.next_action is None:
            self._api.unavailable(reference, f"session {reading.session_id} is not open")
        return ChannelOrder(reference, reading.session_id, state.next_action)

    @metered
    def query_order(
        self, out_trade_no: str, channel_order_id: str | None = None
    ) -> ChannelPaymentState:
        """The payment's state at Stripe (a declined payment's session is expired first, see
        the module docstring); NOT_FOUND when the account has no session for it."""
        session = self._find_session(out_trade_no, channel_order_id)
        if session is None:
            return ChannelPaymentState(out_trade_no, ChannelPaymentStatus.NOT_FOUND)
        return self._settled(session, out_trade_no)

    @metered
    def close_order(
        self, out_trade_no: str, channel_order_id: str | None = None
    ) -> ChannelPaymentState:
        """Expire every open session of the payment; the state after that: CLOSED (FAILED
        after a decline, NOT_FOUND without a session), or SUCCEEDED when the buyer paid first,
        which the caller must then settle or refund."""
        if channel_order_id is not None:
            found = self._retrieve_session(channel_order_id, out_trade_no)
            sessions = [found] if found is not None else []
        else:
            sessions = self._sessions_of(out_trade_no)
        if not sessions:
            return ChannelPaymentState(out_trade_no, ChannelPaymentStatus.NOT_FOUND)
        states = []
        for listed in sessions:
            session = (
                self._expire(
                    self._readable(lambda v: text(v, "id"), listed, out_trade_no), out_trade_no
                )
                if listed.get("status") == "open"
                else listed
            )
            states.append(self._conclusive(session, out_trade_no).state)
        return min(states, key=lambda state: _PREFERENCE.index(state.status))

    # -- refunds -----------------------------------------------------------------------------

    @metered
    def refund(self, request: CreateChannelRefund) -> ChannelRefundState:
        """Refund ``amount`` of the payment's PaymentIntent (idempotent on out_refund_no: an
        existing refund with our id is returned). ``ChannelRejected`` when Stripe refuses it
        (not paid, more than what is left, our id reused for another amount);
        ``ChannelUnavailable`` when the outcome is unknown: query the refund."""
        reference = request.out_refund_no
        try:
            amount = to_minor_units(request.amount, request.currency)
        except AmountFormatError as exc:
            raise ChannelRejected(f"stripe: cannot refund {reference}: {exc}") from None
        intent = self._intent_of(
            request.out_trade_no, request.channel_order_id, request.channel_transaction_id
        )
        if intent is None:
            raise ChannelRejected(
                f"stripe: payment {request.out_trade_no} has no PaymentIntent at account "
                f"{self.account_id}: nothing to refund"
            )
        existing = self._scan_refunds({"payment_intent": intent}, reference)
        if existing is not None:
            state = self._readable(read_refund, existing, reference)
            self._check_same_refund(request.out_trade_no, reference, state)
            if (state.amount, state.currency) != (request.amount, request.currency):
                raise ChannelRejected(
                    f"stripe refund {state.channel_refund_id} of {reference} is for "
                    f"{state.amount} {state.currency}"
                )
            return state
        metadata = {REFUND_ID_KEY: reference, PAYMENT_ID_KEY: request.out_trade_no}
        if request.reason:
            metadata[REASON_KEY] = request.reason[:METADATA_VALUE_MAX]
        params: RefundCreateParams = {
            "payment_intent": intent,
            "amount": amount,
            "metadata": metadata,
        }
        key = f"paycore-refund-{reference}"
        created = self._ask(
            reference,
            "create refund",
            lambda: self._api.client.v1.refunds.create(params, {"idempotency_key": key}),
        )
        state = self._readable(read_refund, created, reference)
        self._check_same_refund(request.out_trade_no, reference, state)
        return state

    @metered
    def query_refund(self, out_trade_no: str, out_refund_no: str) -> ChannelRefundState:
        """The refund's state at Stripe; NOT_FOUND when the account has no refund with our
        id (the request never reached Stripe: asking again is safe)."""
        refund = self._find_refund(out_trade_no, out_refund_no)
        if refund is None:
            return ChannelRefundState(out_refund_no, out_trade_no, ChannelRefundStatus.NOT_FOUND)
        state = self._readable(read_refund, refund, out_refund_no)
        self._check_same_refund(out_trade_no, out_refund_no, state)
        return state

    # -- notifications -----------------------------------------------------------------------

    def parse_notification(
        self, body: bytes, headers: Mapping[str, str]
    ) -> ChannelPaymentState | ChannelRefundState:
        """Check the size, the ``Stripe-Signature`` (this account's endpoint secret) and its
        freshness, then read the event (see the module docstring). ``CallbackRejected`` for
        anything unsigned, forged, stale, malformed, of a type paycore does not read, or
        about no payment or refund of ours."""
        if len(body) > MAX_NOTIFICATION_BYTES:
            raise CallbackRejected(f"a Stripe notification is at most {MAX_NOTIFICATION_BYTES} B")
        header = lower_headers(headers).get(SIGNATURE_HEADER.lower(), "")
        verify_notification(body, header, self._webhook_secret)
        try:
            event = read_event(body)
            return self._event_state(event)
        except Unreadable as exc:
            raise CallbackRejected(f"Stripe notification not for paycore: {exc}") from None

    def _event_state(self, event: StripeEvent) -> ChannelPaymentState | ChannelRefundState:
        """What a verified event says; ``Unreadable`` when it is about nothing of ours."""
        match event_meaning(event.type):
            case EventMeaning.REFUND:
                return read_refund(event.object, event.id)
            case EventMeaning.INTENT:
                return read_intent(event.object, event.id)
            case EventMeaning.SESSION:
                reading = read_session(event.object, event.id)
                if reading.conclusive:
                    return reading.state
                state = self._settled(event.object, reading.state.out_trade_no)
            case EventMeaning.DECLINE:
                payment_id = intent_payment_id(event.object)
                if payment_id is None:
                    raise Unreadable(f"the PaymentIntent's metadata has no {PAYMENT_ID_KEY}")
                state = self._state_of_intent(text(event.object, "id"), payment_id)
            case EventMeaning.CHARGE:
                intent = object_id(event.object.get("payment_intent"), "payment_intent")
                session = self._session_of_intent(intent) if intent else None
                if session is None:
                    raise Unreadable("the charge belongs to no Checkout Session")
                state = self._settled(session, text(session, "client_reference_id"))
            case _:
                assert_never(event.type)
        return replace(state, notification_id=event.id)

    def acknowledge(self) -> CallbackAck:
        """Stripe counts any 2xx as delivered."""
        return CallbackAck(200, '{"received": true}')

    # -- statements --------------------------------------------------------------------------

    @metered
    def fetch_statement(self, day: date) -> ChannelStatement:
        """The balance transactions of ``day`` (UTC) with their charges or refunds and the
        charges' PaymentIntents expanded: the pages exactly as Stripe sent them (a JSON array
        of the list pages), and the payment and refund lines, oldest first. A line's reference
        is our id (the PaymentIntent's or refund's metadata, else the client_reference_id of
        the PaymentIntent's session), or Stripe's id of the charge or refund when paycore
        made neither (an orphan)."""
        reference = f"statement {day.isoformat()}"
        start = datetime.combine(day, time(0), tzinfo=UTC)
        params: dict[str, Any] = {
            "created": {
                "gte": int(start.timestamp()),
                "lt": int((start + timedelta(days=1)).timestamp()),
            },
            "limit": PAGE_SIZE,
            "expand": ["data.source.payment_intent"],
        }
        pages: list[str] = []
        found: list[BalanceLine] = []
        for _ in range(MAX_PAGES):
            body, data = self._api.get_raw(reference, "/v1/balance_transactions", params)
            pages.append(body)
            page = self._readable(
                lambda value: _list_page(value, "balance_transaction"), data, reference
            )
            for txn in page[0]:
                line = self._readable(lambda value: balance_line(value, day), txn, reference)
                if line is not None:
                    found.append(line)
            if not page[1]:
                break
            params["starting_after"] = str(page[0][-1].get("id"))
        else:
            self._api.unavailable(reference, "too many pages")
        found.reverse()  # Stripe lists newest first
        references: dict[str, str | None] = {}
        lines = tuple(self._statement_line(line, references) for line in found)
        content = ("[\n" + ",\n".join(pages) + "\n]\n").encode("utf-8")
        return ChannelStatement(
            day=day,
            filename=f"stripe-{self.account_id}-{day.isoformat()}-balance_transactions.json",
            content_type="application/json",
            content=content,
            lines=lines,
        )

    def _statement_line(
        self, line: BalanceLine, references: dict[str, str | None]
    ) -> StatementLine:
        ours = line.reference
        if ours is None and line.kind is StatementLineKind.PAYMENT and line.intent_id:
            if line.intent_id not in references:
                session = self._session_of_intent(line.intent_id)
                client_reference = session.get("client_reference_id") if session else None
                references[line.intent_id] = (
                    client_reference if isinstance(client_reference, str) else None
                )
            ours = references[line.intent_id]
        paying = line.kind is StatementLineKind.PAYMENT
        return StatementLine(
            kind=line.kind,
            reference=ours or line.source_id,
            channel_transaction_id=(line.intent_id or line.source_id) if paying else line.source_id,
            amount=line.amount,
            currency=line.currency,
            fee=line.fee,
            status=line.status,
            channel_status=line.channel_status,
            occurred_at=line.occurred_at,
        )

    # -- finding sessions ----------------------------------------------------------------------

    def _find_session(
        self, out_trade_no: str, channel_order_id: str | None
    ) -> Mapping[str, Any] | None:
        """The payment's session (the best of several), its PaymentIntent expanded."""
        if channel_order_id is not None:
            return self._retrieve_session(channel_order_id, out_trade_no)
        sessions = self._sessions_of(out_trade_no)
        if not sessions:
            return None
        complete = [s for s in sessions if s.get("status") == "complete"]
        if len(complete) > 1:
            logger.error(
                "stripe: payment %s has %d complete sessions at %s: %s",
                out_trade_no,
                len(complete),
                self.account_id,
                [s.get("id") for s in complete],
            )
        best = min(sessions, key=lambda s: _SESSION_PREFERENCE.get(str(s.get("status")), 3))
        if best.get("payment_intent") is None:
            return best
        return self._retrieve_session(str(best.get("id")), out_trade_no)

    def _sessions_of(self, out_trade_no: str) -> list[Mapping[str, Any]]:
        """Every session of the account whose client_reference_id is the payment's, newest
        first: the sessions created since the payment began (all, for an id that does not
        say when), listed page by page (Stripe cannot filter on client_reference_id)."""
        params: SessionListParams = {"limit": PAGE_SIZE}
        began = id_time(out_trade_no)
        if began is not None:
            params["created"] = {"gte": int((began - LOOKUP_MARGIN).timestamp())}
        list_sessions = self._api.client.v1.checkout.sessions.list
        return [
            session
            for session in self._pages(out_trade_no, "list sessions", list_sessions, params)
            if session.get("client_reference_id") == out_trade_no
        ]

    def _session_of_intent(self, intent_id: str) -> Mapping[str, Any] | None:
        """The session whose PaymentIntent this is (its PaymentIntent expanded)."""
        params: SessionListParams = {"payment_intent": intent_id, "limit": 1}
        listed = self._ask(
            intent_id,
            "list sessions",
            lambda: self._api.client.v1.checkout.sessions.list(params),
        )
        items, _ = self._readable(
            lambda value: _list_page(value, "checkout.session"), listed, intent_id
        )
        if not items:
            return None
        return self._retrieve_session(str(items[0].get("id")), None)

    def _state_of_intent(self, intent_id: str, out_trade_no: str) -> ChannelPaymentState:
        session = self._session_of_intent(intent_id)
        if session is None or session.get("client_reference_id") != out_trade_no:
            raise Unreadable(f"no Checkout Session of {out_trade_no} has PaymentIntent {intent_id}")
        return self._settled(session, out_trade_no)

    def _retrieve_session(
        self, session_id: str, out_trade_no: str | None
    ) -> Mapping[str, Any] | None:
        """The session with its PaymentIntent expanded; None when Stripe has no such session
        at this account. ``out_trade_no``: the payment it must belong to."""
        try:
            session = self._plain(
                self._api.call(
                    out_trade_no or session_id,
                    "retrieve session",
                    lambda: self._api.client.v1.checkout.sessions.retrieve(
                        session_id, {"expand": ["payment_intent"]}
                    ),
                )
            )
        except Refused as refusal:
            if refusal.http_status == 404:
                return None
            self._reject(out_trade_no or session_id, "retrieve session", refusal)
        if out_trade_no is not None:
            self._check_payment(out_trade_no, session.get("client_reference_id"))
        return session

    def _expire(self, session_id: str, out_trade_no: str) -> Mapping[str, Any]:
        """Expire an open session; the session afterwards (its PaymentIntent expanded). A
        session that is no longer open (400) is retrieved: it is complete or expired."""
        try:
            return self._plain(
                self._api.call(
                    out_trade_no,
                    "expire session",
                    lambda: self._api.client.v1.checkout.sessions.expire(
                        session_id, {"expand": ["payment_intent"]}
                    ),
                )
            )
        except Refused as refusal:
            if refusal.http_status != 400:
                self._reject(out_trade_no, "expire session", refusal)
        session = self._retrieve_session(session_id, out_trade_no)
        if session is None:
            self._api.unavailable(out_trade_no, f"session {session_id} vanished while expiring")
        return session

    def _conclusive(self, session: Mapping[str, Any], out_trade_no: str) -> SessionReading:
        """The session's reading, with its PaymentIntent retrieved when it matters."""
        reading = self._readable(read_session, session, out_trade_no)
        self._check_payment(out_trade_no, reading.state.out_trade_no)
        if reading.conclusive:
            return reading
        again = self._retrieve_session(reading.session_id, out_trade_no)
        if again is None:
            self._api.unavailable(out_trade_no, f"session {reading.session_id} vanished")
        return self._readable(read_session, again, out_trade_no)

    def _settled(self, session: Mapping[str, Any], out_trade_no: str) -> ChannelPaymentState:
        """The payment's state from its session; a decline on an open session is made final
        (the session expired) before it is reported."""
        reading = self._conclusive(session, out_trade_no)
        if reading.declined_open:
            logger.info(
                "stripe: payment %s was declined; expiring session %s so it is final",
                out_trade_no,
                reading.session_id,
            )
            reading = self._conclusive(self._expire(reading.session_id, out_trade_no), out_trade_no)
        return reading.state

    def _intent_of(
        self, out_trade_no: str, channel_order_id: str | None, channel_transaction_id: str | None
    ) -> str | None:
        """The payment's PaymentIntent id (ours is the transaction id of a paid payment)."""
        if channel_transaction_id is not None and channel_transaction_id.startswith("pi_"):
            return channel_transaction_id
        session = self._find_session(out_trade_no, channel_order_id)
        if session is None:
            return None
        try:
            return object_id(session.get("payment_intent"), "payment_intent")
        except Unreadable as exc:
            self._api.unavailable(out_trade_no, f"unreadable session: {exc}")

    # -- finding refunds -----------------------------------------------------------------------

    def _find_refund(self, out_trade_no: str, out_refund_no: str) -> Mapping[str, Any] | None:
        """Our refund at Stripe: among the refunds created since it began (its id says when),
        else among its PaymentIntent's refunds."""
        made, paid = id_time(out_refund_no), id_time(out_trade_no)
        plausible = (
            made is not None
            and made <= clock.now() + timedelta(days=1)
            and (paid is None or made >= paid - timedelta(days=1))
        )
        if made is not None and plausible:
            since = int((made - LOOKUP_MARGIN).timestamp())
            found = self._scan_refunds({"created": {"gte": since}}, out_refund_no)
            if found is not None:
                return found
        intent = self._intent_of(out_trade_no, None, None)
        if intent is None:
            return None
        return self._scan_refunds({"payment_intent": intent}, out_refund_no)

    def _scan_refunds(
        self, filters: RefundListParams, out_refund_no: str
    ) -> Mapping[str, Any] | None:
        params: RefundListParams = {**filters, "limit": PAGE_SIZE}
        list_refunds = self._api.client.v1.refunds.list
        for refund in self._pages(out_refund_no, "list refunds", list_refunds, params):
            if refund_reference(refund) == out_refund_no:
                return refund
        return None

    # -- reading answers -----------------------------------------------------------------------

    def _pages(
        self, reference: str, what: str, send: Callable[[Any], Any], params: Any
    ) -> Iterable[Mapping[str, Any]]:
        """Every item of a list, page after page (``starting_after``), newest first."""
        params = dict(params)
        for _ in range(MAX_PAGES):
            page = self._ask(reference, what, lambda: send(params))
            items, has_more = self._readable(lambda value: _list_page(value, None), page, reference)
            yield from items
            if not has_more:
                return
            params["starting_after"] = str(items[-1].get("id"))
        self._api.unavailable(reference, f"{what}: too many pages")

    def _ask(self, reference: str, what: str, send: Callable[[], Any]) -> Mapping[str, Any]:
        """One call; a refusal is final (``ChannelRejected``); the answer as plain JSON."""
        try:
            return self._plain(self._api.call(reference, what, send))
        except Refused as refusal:
            self._reject(reference, what, refusal)

    def _plain(self, answer: Any) -> Mapping[str, Any]:
        """A StripeObject as the plain JSON it came from (StripeObject is not a dict)."""
        to_dict = getattr(answer, "to_dict", None)
        value = to_dict() if callable(to_dict) else answer
        if not isinstance(value, Mapping):
            self._api.unavailable("?", f"Stripe answered a {type(answer).__name__}")
        return value

    def _check_payment(self, asked: str, answered: Any) -> None:
        if answered != asked:
            self._api.unavailable(asked, f"the answer is about another payment ({answered})")

    def _reject(self, reference: str, what: str, refusal: Refused) -> NoReturn:
        logger.info(
            "stripe refused %s for %s: HTTP %s %s %s",
            what,
            reference,
            refusal.http_status,
            refusal.error_type,
            refusal.code,
        )
        raise ChannelRejected(
            f"stripe refused {what} ({refusal.code or refusal.error_type}): {refusal.message}"
        )


def _list_page(value: Any, kind: str | None) -> tuple[list[Mapping[str, Any]], bool]:
    """A list object's items (plain JSON) and whether more follow."""
    page = mapping(value, "the list")
    if page.get("object") != "list" or not isinstance(page.get("data"), list):
        raise Unreadable("not a list object")
    items = [mapping(item, "a list item") for item in page["data"]]
    if kind is not None and any(item.get("object") != kind for item in items):
        raise Unreadable(f"the list holds something else than {kind}")
    has_more = page.get("has_more") is True
    if has_more and not items:
        raise Unreadable("an empty page says more follow")
    return items, has_more


def create_gateway(
    account_id: str, credentials: Mapping[str, Any], settings: Settings
) -> StripeGateway:
    """The registry's factory: a gateway for ``account_id`` from its secret's JSON
    (``pydantic.ValidationError`` when the credentials are not a Stripe account's)."""
    return StripeGateway(
        StripeSettings.model_validate(credentials),
        account_id=account_id,
        timeout=settings.channel_timeout_seconds,
    )
