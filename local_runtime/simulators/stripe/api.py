"""The Stripe simulator's HTTP surface (WSGI, werkzeug routing, no framework).

- ``/v1/...``: Stripe's API as the SDK calls it: ``Authorization: Bearer sk_test_...`` (or
  Basic with the key as user name), form-encoded parameters, JSON answers pretty-printed as
  Stripe's, errors in Stripe's envelope, ``Idempotency-Key`` on every ``POST``.
- ``/c/pay/{session_id}``: the buyer's Checkout page (a session's ``url``).
- ``/_sim/...``: the simulators' own endpoints (accounts, orphans) and a debug view.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, MapAdapter, Rule
from werkzeug.wrappers import Request, Response

from local_runtime.sandbox.currencies import format_amount
from local_runtime.simulators.common.keys import random_alphanumeric
from local_runtime.simulators.common.pages import buyer_choice, buyer_page
from local_runtime.simulators.common.sim_routes import accounts_response, orphan_response
from local_runtime.simulators.common.trades import (
    SimulatedFailure,
    Trade,
    TradeError,
    TradeErrorCode,
    TradeStatus,
)
from local_runtime.simulators.stripe import objects
from local_runtime.simulators.stripe.checkout import MAX_AMOUNT, read_session_request
from local_runtime.simulators.stripe.errors import (
    API_ERROR,
    StripeError,
    no_such,
    param_error,
)
from local_runtime.simulators.stripe.idempotency import SavedAnswer
from local_runtime.simulators.stripe.params import Params, decode

if TYPE_CHECKING:
    from local_runtime.simulators.stripe.simulator import StripeSimulator

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
Answer = tuple[int, dict[str, Any]]

MAX_BODY_BYTES = 1024 * 1024
DEFAULT_LIST_LIMIT = 10

_NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)

# Parameters real Stripe takes that the simulator refuses as unsupported (not misspelt).
_REFUND_ELSEWHERE = {
    "currency", "customer", "instructions_email", "origin", "refund_application_fee",
    "reverse_transfer",
}  # fmt: skip

# The fields each object lets ``expand`` replace by the object they name.
_EXPANDABLE: dict[str, set[str]] = {
    objects.SESSION: {"payment_intent", "line_items"},
    "payment_intent": {"latest_charge"},
    "charge": {"balance_transaction", "payment_intent", "refunds"},
    "refund": {"balance_transaction", "charge", "payment_intent"},
    "balance_transaction": {"source"},
}

_ROUTES = Map(
    [
        Rule("/v1/checkout/sessions", methods=["POST"], endpoint="create_session"),
        Rule("/v1/checkout/sessions", methods=["GET"], endpoint="list_sessions"),
        Rule("/v1/checkout/sessions/<session_id>", methods=["GET"], endpoint="retrieve_session"),
        Rule(
            "/v1/checkout/sessions/<session_id>/line_items",
            methods=["GET"],
            endpoint="session_line_items",
        ),
        Rule(
            "/v1/checkout/sessions/<session_id>/expire",
            methods=["POST"],
            endpoint="expire_session",
        ),
        Rule(
            "/v1/payment_intents/<payment_intent_id>",
            methods=["GET"],
            endpoint="retrieve_payment_intent",
        ),
        Rule("/v1/charges/<charge_id>", methods=["GET"], endpoint="retrieve_charge"),
        Rule("/v1/refunds", methods=["POST"], endpoint="create_refund"),
        Rule("/v1/refunds", methods=["GET"], endpoint="list_refunds"),
        Rule("/v1/refunds/<refund_id>", methods=["GET"], endpoint="retrieve_refund"),
        Rule("/v1/balance_transactions", methods=["GET"], endpoint="list_balance_transactions"),
        Rule(
            "/v1/balance_transactions/<transaction_id>",
            methods=["GET"],
            endpoint="retrieve_balance_transaction",
        ),
        Rule("/v1/events", methods=["GET"], endpoint="list_events"),
        Rule("/v1/events/<event_id>", methods=["GET"], endpoint="retrieve_event"),
        Rule("/c/pay/<session_id>", methods=["GET"], endpoint="buyer_page"),
        Rule("/c/pay/<session_id>", methods=["POST"], endpoint="buyer_choice"),
        Rule("/_sim/accounts", methods=["GET"], endpoint="sim_accounts"),
        Rule("/_sim/orphans", methods=["POST"], endpoint="sim_orphans"),
        Rule("/_sim/trades", methods=["GET"], endpoint="sim_trades"),
    ],
    strict_slashes=False,
    merge_slashes=False,
)


@dataclass(frozen=True)
class Call:
    """One authenticated API request."""

    account: str
    endpoint: str  # "POST /v1/refunds": what an idempotency key is bound to
    request_id: str
    idempotency_key: str | None
    params: dict[str, Any]


@dataclass(frozen=True)
class CreatedRange:
    """A ``created`` filter: ``created=<t>`` or ``created[gt|gte|lt|lte]=<t>``."""

    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None

    @classmethod
    def read(cls, params: Params, key: str = "created") -> CreatedRange:
        value = params.raw(key)
        if value is None:
            return cls()
        if isinstance(value, str):
            exact = params.integer(key)
            return cls(gte=exact, lte=exact)
        bounds = params.child(key)
        assert bounds is not None
        return cls(
            gt=bounds.integer("gt"),
            gte=bounds.integer("gte"),
            lt=bounds.integer("lt"),
            lte=bounds.integer("lte"),
        )

    def contains(self, moment: int) -> bool:
        return (
            (self.gt is None or moment > self.gt)
            and (self.gte is None or moment >= self.gte)
            and (self.lt is None or moment < self.lt)
            and (self.lte is None or moment <= self.lte)
        )

    def days(self) -> tuple[datetime | None, datetime | None]:
        """The first and last moment the range can hold (None: unbounded)."""
        lows = [bound for bound in (self.gt, self.gte) if bound is not None]
        highs = [bound for bound in (self.lt, self.lte) if bound is not None]
        first = datetime.fromtimestamp(max(lows), UTC) if lows else None
        last = datetime.fromtimestamp(min(highs), UTC) if highs else None
        return first, last


@dataclass(frozen=True)
class PageRequest:
    limit: int = DEFAULT_LIST_LIMIT
    starting_after: str | None = None
    ending_before: str | None = None
    expand: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, params: Params) -> PageRequest:
        return cls(
            limit=params.integer("limit", minimum=1, maximum=100) or DEFAULT_LIST_LIMIT,
            starting_after=params.string("starting_after"),
            ending_before=params.string("ending_before"),
            expand=params.strings("expand"),
        )

    def apply(self, rows: list[dict[str, Any]], kind: str) -> tuple[list[dict[str, Any]], bool]:
        """The page of ``rows`` (newest first) and whether more follow in its direction."""
        ids = [row["id"] for row in rows]
        if self.starting_after is not None:
            if self.starting_after not in ids:
                raise StripeError(
                    400,
                    f"No such {kind}: '{self.starting_after}'",
                    code="resource_missing",
                    param="starting_after",
                )
            rest = rows[ids.index(self.starting_after) + 1 :]
            return rest[: self.limit], len(rest) > self.limit
        if self.ending_before is not None:
            if self.ending_before not in ids:
                raise StripeError(
                    400,
                    f"No such {kind}: '{self.ending_before}'",
                    code="resource_missing",
                    param="ending_before",
                )
            before = rows[: ids.index(self.ending_before)]
            return before[-self.limit :], len(before) > self.limit
        return rows[: self.limit], len(rows) > self.limit


def new_request_id() -> str:
    return "req_" + random_alphanumeric(14)


def json_answer(status: int, body: dict[str, Any], headers: dict[str, str]) -> Response:
    text = json.dumps(body, indent=2, ensure_ascii=False)
    return Response(text, status=status, mimetype="application/json", headers=headers)


def masked(key: str) -> str:
    if len(key) <= 12:
        return "*" * len(key)
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


class StripeApi:
    """The WSGI application; every state change goes through the simulator's trade book."""

    def __init__(self, simulator: StripeSimulator) -> None:
        self.sim = simulator

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        response = self._dispatch(request)
        return response(environ, start_response)  # type: ignore[no-any-return]

    # -- dispatch -----------------------------------------------------------------------------

    def _dispatch(self, request: Request) -> Response:
        adapter = _ROUTES.bind_to_environ(request.environ)
        if request.path.startswith("/v1/") or request.path == "/v1":
            return self._api(request, adapter)
        try:
            endpoint, args = adapter.match()
        except HTTPException:
            error = StripeError(404, f"Not found: {request.method} {request.path}")
            return json_answer(404, error.body(), {})
        handler: Callable[..., Response] = getattr(self, f"_{endpoint}")
        return handler(request, **args)

    def _api(self, request: Request, adapter: MapAdapter) -> Response:
        request_id = new_request_id()
        headers = {
            "Request-Id": request_id,
            "Stripe-Version": request.headers.get("Stripe-Version") or objects.API_VERSION,
            "Cache-Control": "no-cache, no-store",
        }
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        if key is not None:
            headers["Idempotency-Key"] = key
        try:
            account = self._authenticate(request)
            try:
                endpoint, args = adapter.match()
            except HTTPException:
                raise StripeError(
                    404,
                    f"Unrecognized request URL ({request.method}: {request.path}). Please see "
                    "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                    saved=False,
                ) from None
            stripe_account = request.headers.get("Stripe-Account")
            if stripe_account:
                raise StripeError(
                    403,
                    f"The provided key '{masked(self.sim.secret_key_of(account))}' does not "
                    f"have access to account '{stripe_account}' (or that account does not "
                    "exist). Application access may have been revoked.",
                    saved=False,
                )
            endpoint_name = f"{request.method} {request.path}"
            call = Call(account, endpoint_name, request_id, key, self._params(request))
        except StripeError as error:
            return json_answer(error.http_status, error.body(), {**headers, **error.headers})
        handler: Callable[..., Answer] = getattr(self, f"_{endpoint}")
        return self._run(call, handler, args, headers)

    def _run(
        self,
        call: Call,
        handler: Callable[..., Answer],
        args: dict[str, Any],
        headers: dict[str, str],
    ) -> Response:
        """Run one endpoint behind the idempotency layer (for a POST with a key)."""
        key = call.idempotency_key
        if key is not None:
            try:
                replay = self.sim.idempotency.begin(
                    call.account, key, call.endpoint, call.params, self.sim.now()
                )
            except StripeError as error:
                return json_answer(error.http_status, error.body(), headers)
            if replay is not None:
                replayed = {
                    **headers,
                    "Idempotent-Replayed": "true",
                    "Original-Request": replay.request_id,
                }
                return json_answer(replay.status, replay.body, replayed)
        saved: tuple[int, dict[str, Any]] | None
        try:
            status, body = handler(call, **args)
            saved = (status, body)
        except StripeError as error:
            status, body = error.http_status, error.body()
            saved = error.saved_instead or ((status, body) if error.saved else None)
            headers = {**headers, **error.headers}
        except Exception:
            logger.exception("%s failed", call.endpoint)
            status, body = 500, StripeError(500, "An unknown error occurred", type=API_ERROR).body()
            saved = None
        if key is not None:
            if saved is None:
                self.sim.idempotency.forget(call.account, key)
            else:
                answer = SavedAnswer(saved[0], saved[1], call.request_id)
                self.sim.idempotency.finish(call.account, key, answer)
        return json_answer(status, body, headers)

    def _authenticate(self, request: Request) -> str:
        header = (request.headers.get("Authorization") or "").strip()
        if not header:
            raise StripeError(401, _NO_KEY, saved=False)
        scheme, _, value = header.partition(" ")
        secret = ""
        if scheme.lower() == "bearer":
            secret = value.strip()
        elif scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            secret = decoded.partition(":")[0]
        account = self.sim.account_of_key(secret) if secret else None
        if account is None:
            raise StripeError(
                401,
                f"Invalid API Key provided: {masked(secret)}",
                saved=False,
                headers={"WWW-Authenticate": 'Basic realm="Stripe"'},
            )
        return account

    def _params(self, request: Request) -> dict[str, Any]:
        if request.method != "POST":
            text = request.query_string.decode("utf-8", errors="replace")
            return decode(parse_qsl(text, keep_blank_values=True))
        if (request.content_length or 0) > MAX_BODY_BYTES:
            raise param_error("The request body is too large.", None, http_status=413)
        content_type = request.mimetype
        if content_type not in ("", "application/x-www-form-urlencoded"):
            raise param_error(
                f"Invalid request: unsupported Content-Type {content_type}. The API takes "
                "application/x-www-form-urlencoded bodies.",
                None,
            )
        try:
            text = request.get_data(cache=True).decode("utf-8")
        except UnicodeDecodeError:
            raise param_error("Invalid request: the body is not UTF-8.", None) from None
        return decode(parse_qsl(text, keep_blank_values=True))

    # -- Checkout Sessions --------------------------------------------------------------------

    def _create_session(self, call: Call) -> Answer:
        wanted = read_session_request(call.params, self.sim.now())
        _check_expand(objects.SESSION, wanted.expand)
        session_id = "cs_test_a1" + random_alphanumeric(56)
        try:
            trade, _ = self.sim.book.create(
                call.account,
                session_id,
                amount=wanted.amount,
                currency=wanted.currency.upper(),
                subject=wanted.subject,
                expires_at=wanted.expires_at,
                simulate=wanted.switches,
                extra=wanted.extra,
                pay_token=session_id,
                calls_key=wanted.client_reference_id or session_id,
            )
        except SimulatedFailure as failure:
            raise StripeError(
                failure.http_status,
                str(failure),
                type=API_ERROR,
                saved=False,
                saved_instead=self._lost_session(call, session_id, wanted.expand),
            ) from None
        except TradeError as exc:
            raise param_error(exc.message, "expires_at") from None
        self.sim.register_session(trade)
        return 200, self._session_object(call.account, trade, wanted.expand)

    def _lost_session(
        self, call: Call, session_id: str, expand: list[str]
    ) -> tuple[int, dict[str, Any]] | None:
        """``create_error`` with ``after_create``: the session exists, its answer is lost;
        the idempotency layer keeps that answer for the key."""
        try:
            trade = self.sim.book.get(call.account, session_id)
        except TradeError:
            return None
        self.sim.register_session(trade)
        return 200, self._session_object(call.account, trade, expand)

    def _retrieve_session(self, call: Call, session_id: str) -> Answer:
        p = Params(call.params)
        expand = p.strings("expand")
        p.done()
        trade = self.sim.session_trade(call.account, session_id)
        return 200, self._session_object(call.account, trade, expand)

    def _list_sessions(self, call: Call) -> Answer:
        """Stripe's filters: created, status, payment_intent, customer, customer_details
        [email], payment_link, subscription. There is no client_reference_id filter: find a
        session by it in the sessions created since the attempt began."""
        p = Params(call.params)
        created = CreatedRange.read(p)
        status = p.choice("status", ("open", "complete", "expired"))
        payment_intent = p.string("payment_intent")
        others = [p.string(name) for name in ("customer", "customer_account", "payment_link",
                                               "subscription")]  # fmt: skip
        details = p.child("customer_details")
        email = details.required_string("email") if details else None
        page = PageRequest.read(p)
        p.done()
        now = self.sim.now()
        rows = []
        for trade in self.sim.sessions(call.account):
            row = objects.checkout_session(trade, now, self.sim.url)
            details_now = row["customer_details"] or {}
            if (
                created.contains(row["created"])
                and status in (None, row["status"])
                and payment_intent in (None, row["payment_intent"])
                and not any(others)  # no session here has a customer, link or subscription
                and email in (None, details_now.get("email"))
            ):
                rows.append(row)
        return 200, self._page(call.account, rows, page, "/v1/checkout/sessions", "session")

    def _session_line_items(self, call: Call, session_id: str) -> Answer:
        p = Params(call.params)
        page = PageRequest.read(p)
        p.done()
        trade = self.sim.session_trade(call.account, session_id)
        rows = objects.line_items(trade)["data"]
        url = f"/v1/checkout/sessions/{session_id}/line_items"
        return 200, self._page(call.account, rows, page, url, "line_item")

    def _expire_session(self, call: Call, session_id: str) -> Answer:
        p = Params(call.params)
        expand = p.strings("expand")
        p.done()
        _check_expand(objects.SESSION, expand)
        trade = self.sim.session_trade(call.account, session_id)
        status = objects.session_status(trade, self.sim.now())
        if status == "open":
            try:
                trade = self.sim.book.close(call.account, session_id)
            except TradeError as exc:
                if exc.code is not TradeErrorCode.TRADE_PAID:
                    raise
                status = "complete"  # the buyer paid meanwhile
        if status != "open":
            raise StripeError(
                400,
                'Only Checkout Sessions with a status in ["open"] can be expired. This '
                f'Checkout Session has a status of "{status}".',
            )
        # With close_ignored the answer says expired, yet the session stays open (and no
        # checkout.session.expired is sent): the buyer can still pay.
        self.sim.notice_expiry(
            self.sim.book.get(call.account, session_id), (call.request_id, call.idempotency_key)
        )
        return 200, self._session_object(call.account, trade, expand)

    def _session_object(self, account: str, trade: Trade, expand: list[str]) -> dict[str, Any]:
        body = objects.checkout_session(trade, self.sim.now(), self.sim.url)
        self._expand(account, body, expand)
        return body

    # -- PaymentIntents and Charges -----------------------------------------------------------

    def _retrieve_payment_intent(self, call: Call, payment_intent_id: str) -> Answer:
        p = Params(call.params)
        expand = p.strings("expand")
        p.done()
        trade = self.sim.payment_intent_trade(call.account, payment_intent_id)
        body = objects.payment_intent(trade, self.sim.now())
        self._expand(call.account, body, expand)
        return 200, body

    def _retrieve_charge(self, call: Call, charge_id: str) -> Answer:
        p = Params(call.params)
        expand = p.strings("expand")
        p.done()
        trade = self.sim.charge_trade(call.account, charge_id)
        body = self._charge_object(trade)
        self._expand(call.account, body, expand)
        return 200, body

    def _charge_object(self, trade: Trade) -> dict[str, Any]:
        return objects.charge(trade, self.sim.book.refunds_of(trade.account, trade.out_trade_no))

    # -- Refunds ------------------------------------------------------------------------------

    def _create_refund(self, call: Call) -> Answer:
        p = Params(call.params, known_elsewhere=_REFUND_ELSEWHERE)
        payment_intent_id = p.string("payment_intent")
        charge_id = p.string("charge")
        amount = p.integer("amount", minimum=1, maximum=MAX_AMOUNT)
        metadata = p.metadata()
        reason = p.choice("reason", ("duplicate", "fraudulent", "requested_by_customer"))
        expand = p.strings("expand")
        p.done()
        _check_expand("refund", expand)
        trade = self._refunded_trade(call.account, payment_intent_id, charge_id)
        refunds = self.sim.book.refunds_of(call.account, trade.out_trade_no)
        remaining = trade.amount - objects.amount_refunded(refunds)
        charge = trade.transaction_id
        if amount is None and remaining <= 0:
            raise _already_refunded(charge)
        refund_id = "re_" + random_alphanumeric(24)
        self.sim.note_refund_request(
            call.account, refund_id, (call.request_id, call.idempotency_key)
        )
        try:
            refund, _ = self.sim.book.refund(
                call.account,
                trade.out_trade_no,
                refund_id,
                amount=amount or remaining,
                extra={
                    "charge": charge,
                    "payment_intent": trade.extra.get("payment_intent"),
                    "metadata": metadata,
                    "reason": reason,
                },
            )
        except SimulatedFailure as failure:
            raise StripeError(
                failure.http_status, str(failure), type=API_ERROR, saved=False
            ) from None
        except TradeError as exc:
            raise self._refund_refused(exc, trade, payment_intent_id, amount, remaining) from None
        self.sim.refund_created(refund, trade)
        body = objects.refund(refund)
        self._expand(call.account, body, expand)
        return 200, body

    def _refunded_trade(
        self, account: str, payment_intent_id: str | None, charge_id: str | None
    ) -> Trade:
        if payment_intent_id is None and charge_id is None:
            raise param_error(
                "One of the following params should be provided for this request: "
                "payment_intent or charge.",
                None,
            )
        try:
            if payment_intent_id is not None:
                trade = self.sim.payment_intent_trade(account, payment_intent_id)
                if charge_id is not None and charge_id != trade.transaction_id:
                    raise param_error(
                        f"Charge {charge_id} does not belong to PaymentIntent {payment_intent_id}.",
                        "charge",
                    )
                return trade
            assert charge_id is not None
            return self.sim.charge_trade(account, charge_id)
        except StripeError as error:
            if error.http_status != 404:
                raise
            param = "payment_intent" if payment_intent_id is not None else "charge"
            raise StripeError(400, error.message, code="resource_missing", param=param) from None

    @staticmethod
    def _refund_refused(
        exc: TradeError,
        trade: Trade,
        payment_intent_id: str | None,
        amount: int | None,
        remaining: int,
    ) -> StripeError:
        if exc.code is TradeErrorCode.TRADE_NOT_PAID:
            return StripeError(
                400,
                f"This PaymentIntent ({payment_intent_id}) does not have a successful charge "
                "to refund.",
                param="payment_intent",
            )
        if exc.code is TradeErrorCode.REFUND_EXCEEDS_PAID:
            if remaining <= 0:
                return _already_refunded(trade.transaction_id)
            currency = trade.currency
            return StripeError(
                400,
                f"Refund amount ({format_amount(amount or 0, currency)}) is greater than "
                f"unrefunded amount on charge ({format_amount(remaining, currency)})",
                code="amount_too_large",
                param="amount",
            )
        return StripeError(400, exc.message)

    def _retrieve_refund(self, call: Call, refund_id: str) -> Answer:
        p = Params(call.params)
        expand = p.strings("expand")
        p.done()
        body = objects.refund(self.sim.refund_of(call.account, refund_id))
        self._expand(call.account, body, expand)
        return 200, body

    def _list_refunds(self, call: Call) -> Answer:
        p = Params(call.params)
        charge = p.string("charge")
        payment_intent = p.string("payment_intent")
        created = CreatedRange.read(p)
        page = PageRequest.read(p)
        p.done()
        rows = [objects.refund(refund) for refund in reversed(self.sim.book.refunds(call.account))]
        rows = [
            row
            for row in rows
            if charge in (None, row["charge"])
            and payment_intent in (None, row["payment_intent"])
            and created.contains(row["created"])
        ]
        return 200, self._page(call.account, rows, page, "/v1/refunds", "refund")

    # -- Balance transactions -----------------------------------------------------------------

    def _list_balance_transactions(self, call: Call) -> Answer:
        """The statement: ``created[gte]=<day 00:00 UTC>&created[lt]=<next day>`` for a day."""
        p = Params(call.params)
        created = CreatedRange.read(p)
        kind = p.string("type")
        source = p.string("source")
        currency = p.string("currency")
        payout = p.string("payout")
        page = PageRequest.read(p)
        p.done()
        first, last = created.days()
        rows = [
            row
            for row in reversed(self._balance_transactions(call.account, first, last))
            if created.contains(row["created"])
            and kind in (None, row["type"])
            and source in (None, row["source"])
            and (currency is None or currency.lower() == row["currency"])
            and payout is None  # nothing here has been paid out
        ]
        url = "/v1/balance_transactions"
        return 200, self._page(call.account, rows, page, url, "balance_transaction")

    def _retrieve_balance_transaction(self, call: Call, transaction_id: str) -> Answer:
        p = Params(call.params)
        expand = p.strings("expand")
        p.done()
        body = self._balance_transaction(call.account, transaction_id)
        if body is None:
            raise no_such("balance transaction", transaction_id)
        self._expand(call.account, body, expand)
        return 200, body

    def _balance_transactions(
        self, account: str, first: datetime | None = None, last: datetime | None = None
    ) -> list[dict[str, Any]]:
        now = self.sim.now()
        return [
            objects.balance_transaction(line, self.sim.fee_rate_bps, now)
            for line in self.sim.statement(account, first, last)
        ]

    def _balance_transaction(self, account: str, transaction_id: str) -> dict[str, Any] | None:
        for row in self._balance_transactions(account):
            if row["id"] == transaction_id:
                return row
        return None

    # -- Events -------------------------------------------------------------------------------

    def _list_events(self, call: Call) -> Answer:
        p = Params(call.params, known_elsewhere={"delivery_success"})
        kind = p.string("type")
        kinds = p.strings("types")
        created = CreatedRange.read(p)
        page = PageRequest.read(p)
        p.done()
        if kind is not None and kinds:
            raise param_error("You may pass either type or types, not both.", "types")
        rows = [
            event.body()
            for event in self.sim.events.of(call.account)
            if created.contains(event.created)
            and (kind is None or fnmatch.fnmatchcase(event.type, kind))
            and (not kinds or event.type in kinds)
        ]
        return 200, self._page(call.account, rows, page, "/v1/events", "event")

    def _retrieve_event(self, call: Call, event_id: str) -> Answer:
        p = Params(call.params)
        expand = p.strings("expand")
        p.done()
        event = self.sim.events.get(call.account, event_id)
        if event is None:
            raise no_such("event", event_id)
        body = event.body()
        self._expand(call.account, body, expand)
        return 200, body

    # -- lists and expansion ------------------------------------------------------------------

    def _page(
        self,
        account: str,
        rows: list[dict[str, Any]],
        page: PageRequest,
        url: str,
        kind: str,
    ) -> dict[str, Any]:
        data, has_more = page.apply(rows, kind)
        body = objects.list_object(data, url, has_more=has_more)
        self._expand(account, body, page.expand)
        return body

    def _expand(self, account: str, body: dict[str, Any], paths: list[str]) -> None:
        for path in paths:
            parts = path.split(".")
            if len(parts) > 4:
                raise param_error(
                    f"You cannot expand more than 4 levels of a property ({path}).", "expand"
                )
            self._expand_path(account, body, parts, path)

    def _expand_path(self, account: str, node: Any, parts: list[str], path: str) -> None:
        if not isinstance(node, dict):
            return
        head, rest = parts[0], parts[1:]
        kind = node.get("object")
        if kind == "list":
            if head != "data" or not rest:
                raise _cannot_expand(head)
            for item in node["data"]:
                self._expand_path(account, item, rest, path)
            return
        if head not in _EXPANDABLE.get(str(kind), set()):
            raise _cannot_expand(head)
        if kind == objects.SESSION and head == "line_items":
            node[head] = objects.line_items(self.sim.session_trade(account, node["id"]))
        elif kind == "charge" and head == "refunds":
            trade = self.sim.charge_trade(account, node["id"])
            refunds = self.sim.book.refunds_of(account, trade.out_trade_no)
            rows = [objects.refund(refund) for refund in reversed(refunds)]
            node[head] = objects.list_object(rows, f"/v1/charges/{node['id']}/refunds")
        elif isinstance(node.get(head), str):
            node[head] = self._resolve(account, node[head])
        if rest:
            self._expand_path(account, node[head], rest, path)

    def _resolve(self, account: str, object_id: str) -> dict[str, Any] | str | None:
        """The object an id names, as its own endpoint shows it."""
        try:
            if object_id.startswith("pi_"):
                trade = self.sim.payment_intent_trade(account, object_id)
                return objects.payment_intent(trade, self.sim.now())
            if object_id.startswith("ch_"):
                return self._charge_object(self.sim.charge_trade(account, object_id))
            if object_id.startswith("re_"):
                return objects.refund(self.sim.refund_of(account, object_id))
            if object_id.startswith("txn_"):
                return self._balance_transaction(account, object_id)
        except StripeError:
            return None
        return object_id

    # -- the buyer's page ---------------------------------------------------------------------

    def _buyer_page(self, request: Request, session_id: str) -> Response:
        self._notice(session_id)
        return buyer_page(self.sim.book, session_id, channel="Stripe")

    def _buyer_choice(self, request: Request, session_id: str) -> Response:
        self._notice(session_id)
        return buyer_choice(
            request,
            self.sim.book,
            session_id,
            channel="Stripe",
            return_url=_return_url,
            on_change=self.sim.buyer_acted,
        )

    def _notice(self, session_id: str) -> None:
        try:
            trade = self.sim.book.get_by_token(session_id)
        except TradeError:
            return
        if objects.is_session(trade):
            self.sim.notice_expiry(trade)

    # -- /_sim --------------------------------------------------------------------------------

    def _sim_accounts(self, request: Request) -> Response:
        return accounts_response(self.sim.accounts())

    def _sim_orphans(self, request: Request) -> Response:
        return orphan_response(request, self.sim.book, accounts=self.sim.account_ids(), tz=UTC)

    def _sim_trades(self, request: Request) -> Response:
        view = self.sim.debug_view(request.args.get("account"))
        return json_answer(200, view, {"Cache-Control": "no-store"})


def _return_url(trade: Trade) -> str | None:
    """Where the buyer's browser goes after a form choice: ``success_url`` (with
    ``{CHECKOUT_SESSION_ID}`` filled in) once paid, ``cancel_url`` after a decline."""
    if trade.status is TradeStatus.SUCCESS:
        url = trade.extra.get("success_url")
        return url.replace("{CHECKOUT_SESSION_ID}", trade.out_trade_no) if url else None
    if trade.status is TradeStatus.DECLINED:
        cancel: str | None = trade.extra.get("cancel_url")
        return cancel
    return None


def _already_refunded(charge: str | None) -> StripeError:
    return StripeError(
        400, f"Charge {charge} has already been refunded.", code="charge_already_refunded"
    )


def _check_expand(kind: str, paths: list[str]) -> None:
    """Refuse an expansion a POST cannot honour before the POST changes anything."""
    for path in paths:
        head = path.split(".")[0]
        if head not in _EXPANDABLE[kind]:
            raise _cannot_expand(head)


def _cannot_expand(field_name: str) -> StripeError:
    return param_error(f"This property cannot be expanded ({field_name}).", "expand")
