"""The sandbox's HTTP surface as a WSGI application (werkzeug routing, no framework).

Three audiences, three kinds of routes:
- the merchant's server: ``/v1/...`` (channel account ``default``) and
  ``/accounts/{account}/v1/...`` (any other account), JSON, every request HMAC-signed;
- the buyer's browser: ``/pay/{token}``, HTML pages and form posts (JSON accepted too), no
  merchant credentials, the unguessable token in the link is the only key;
- developers and tests: ``/__sandbox/...``, read-only debug views, no authentication.

The misbehaviour switches that act on the answer itself (``create_error``, ``create_timeout``,
``refund_error``, ``query_only``) are applied here; ``decline`` and ``refund_fail`` in the order
book, the notification switches in the notifier.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from local_runtime.sandbox.errors import ErrorCode, SandboxError, invalid_parameter
from local_runtime.sandbox.models import (
    SandboxBehaviour,
    parse_create_request,
    parse_refund_request,
)
from local_runtime.sandbox.notifications import (
    Notifier,
    order_notification,
    order_topic,
    refund_notification,
    refund_topic,
    stale_order_notification,
    stale_refund_notification,
)
from local_runtime.sandbox.orders import BuyerAction, Order, OrderBook, Refund, RefundStatus
from local_runtime.sandbox.pages import message_page, payment_page, result_page
from local_runtime.sandbox.scheduler import Scheduler
from local_runtime.sandbox.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    check_request_signature,
)
from local_runtime.sandbox.statements import statement_csv

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]

DEFAULT_ACCOUNT = "default"
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

# (path, method, endpoint): served un-prefixed for account "default" and under
# /accounts/<account> for any account.
_MERCHANT_ROUTES = [
    ("/v1/orders", "POST", "create_order"),
    ("/v1/orders/<out_trade_no>", "GET", "query_order"),
    ("/v1/orders/<out_trade_no>/close", "POST", "close_order"),
    ("/v1/orders/<out_trade_no>/refunds", "POST", "create_refund"),
    ("/v1/refunds/<out_refund_no>", "GET", "query_refund"),
    ("/v1/statements/<day>", "GET", "statement"),
]

_ROUTES = Map(
    [
        *(Rule(path, methods=[method], endpoint=name) for path, method, name in _MERCHANT_ROUTES),
        *(
            Rule(f"/accounts/<account>{path}", methods=[method], endpoint=name)
            for path, method, name in _MERCHANT_ROUTES
        ),
        Rule("/pay/<token>", methods=["GET"], endpoint="show_payment_page"),
        Rule("/pay/<token>", methods=["POST"], endpoint="take_buyer_choice"),
        Rule("/__sandbox/orders", methods=["GET"], endpoint="debug_orders"),
        Rule("/__sandbox/orders/<out_trade_no>", methods=["GET"], endpoint="debug_order"),
        Rule("/__sandbox/refunds", methods=["GET"], endpoint="debug_refunds"),
        Rule("/__sandbox/refunds/<out_refund_no>", methods=["GET"], endpoint="debug_refund"),
        Rule("/__sandbox/health", methods=["GET"], endpoint="health"),
    ],
    strict_slashes=False,
    merge_slashes=False,
)


_MAX_BODY_BYTES = 64 * 1024


def json_response(body: object, status: int = 200) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False),
        status=status,
        mimetype="application/json",
        headers={"Cache-Control": "no-store"},
    )


def error_response(error: SandboxError) -> Response:
    return json_response(error.to_body(), error.status)


def html_response(page: str, status: int = 200) -> Response:
    return Response(
        page, status=status, mimetype="text/html", headers={"Cache-Control": "no-store"}
    )


class SandboxApp:
    """Routes requests to the order book and the notifier; maps every failure to JSON.

    ``timers`` runs delayed refunds; ``stopping`` is set when the server stops, which ends a
    ``create_timeout`` stall at once.
    """

    def __init__(
        self,
        book: OrderBook,
        notifier: Notifier,
        secret: str,
        *,
        timers: Scheduler,
        stopping: threading.Event,
    ) -> None:
        self._book = book
        self._notifier = notifier
        self._secret = secret
        self._timers = timers
        self._stopping = stopping

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = _MAX_BODY_BYTES
        body: Iterable[bytes] = self._dispatch(request)(environ, start_response)
        return body

    def _dispatch(self, request: Request) -> Response:
        try:
            endpoint, args = _ROUTES.bind_to_environ(request.environ).match()
            handler: Callable[..., Response] = getattr(self, str(endpoint))
            return handler(request, **args)
        except SandboxError as exc:
            return error_response(exc)
        except RequestEntityTooLarge:
            return error_response(
                SandboxError(413, ErrorCode.BODY_TOO_LARGE, "the body exceeds 64 KiB")
            )
        except MethodNotAllowed:
            return error_response(
                SandboxError(405, ErrorCode.METHOD_NOT_ALLOWED, f"{request.method} not allowed")
            )
        except HTTPException:
            return error_response(
                SandboxError(404, ErrorCode.ROUTE_NOT_FOUND, f"no route {request.path}")
            )
        except Exception:
            logger.exception("sandbox bug while serving %s %s", request.method, request.path)
            return error_response(
                SandboxError(500, ErrorCode.INTERNAL_ERROR, "the sandbox failed; see its log")
            )

    # -- merchant API -----------------------------------------------------------------------

    def create_order(self, request: Request, account: str = DEFAULT_ACCOUNT) -> Response:
        self._authenticate(request)
        account = _checked_account(account)
        create = parse_create_request(_json_object(request))
        behaviour = create.sandbox_behaviour
        call = self._book.count_call("create", create.out_trade_no)
        failure = behaviour.create_error
        if failure is not None and call <= failure.times:
            if failure.after_create:
                self._book.create(account, create)
            logger.info(
                "create %s call %d: simulated HTTP %d", create.out_trade_no, call, failure.status
            )
            raise SandboxError(
                failure.status,
                ErrorCode.SYSTEM_ERROR,
                f"simulated by sandbox_behaviour.create_error (create call {call} "
                f"of the first {failure.times})",
            )
        order, created = self._book.create(account, create)
        stall = behaviour.create_timeout
        if stall is not None and call <= stall.times:
            logger.info(
                "create %s call %d: stalling %.3f s", create.out_trade_no, call, stall.seconds
            )
            self._stopping.wait(stall.seconds)
        return json_response(order.view(), 201 if created else 200)

    def query_order(
        self, request: Request, out_trade_no: str, account: str = DEFAULT_ACCOUNT
    ) -> Response:
        self._authenticate(request)
        return json_response(self._book.get(_checked_account(account), out_trade_no).view())

    def close_order(
        self, request: Request, out_trade_no: str, account: str = DEFAULT_ACCOUNT
    ) -> Response:
        self._authenticate(request)
        return json_response(self._book.close(_checked_account(account), out_trade_no).view())

    def create_refund(
        self, request: Request, out_trade_no: str, account: str = DEFAULT_ACCOUNT
    ) -> Response:
        self._authenticate(request)
        account = _checked_account(account)
        refund_request = parse_refund_request(_json_object(request))
        behaviour = self._book.get(account, out_trade_no).behaviour
        call = self._book.count_call("refund", out_trade_no)
        failure = behaviour.refund_error
        if failure is not None and call <= failure.times:
            logger.info("refund of %s call %d: simulated HTTP 503", out_trade_no, call)
            raise SandboxError(
                503,
                ErrorCode.SYSTEM_ERROR,
                f"simulated by sandbox_behaviour.refund_error (refund call {call} "
                f"of the first {failure.times})",
            )
        refund, created = self._book.refund(account, out_trade_no, refund_request)
        if created:
            if refund.status is RefundStatus.PROCESSING:
                self._timers.call_later(
                    behaviour.refund_delay_seconds or 0.0,
                    lambda: self._finish_refund(account, refund.out_refund_no),
                )
            else:
                self._notify_refund(refund, behaviour)
        return json_response(refund.view())

    def query_refund(
        self, request: Request, out_refund_no: str, account: str = DEFAULT_ACCOUNT
    ) -> Response:
        self._authenticate(request)
        return json_response(self._book.get_refund(_checked_account(account), out_refund_no).view())

    def statement(self, request: Request, day: str, account: str = DEFAULT_ACCOUNT) -> Response:
        """The account's statement file for one UTC day (statements.py); today's so far."""
        self._authenticate(request)
        account = _checked_account(account)
        wanted = _statement_day(day)
        content = statement_csv(self._book.all(), self._book.all_refunds(), account, wanted)
        return Response(
            content,
            status=200,
            mimetype="text/csv",
            headers={
                "Cache-Control": "no-store",
                "Content-Disposition": f'attachment; filename="sandbox-{account}-{day}.csv"',
            },
        )

    def _authenticate(self, request: Request) -> None:
        check_request_signature(
            self._secret,
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            method=request.method,
            path=_request_target(request),
            body=request.get_data(cache=True),
        )

    def _finish_refund(self, account: str, out_refund_no: str) -> None:
        """A delayed refund's timer: end it and notify."""
        refund = self._book.finish_refund(account, out_refund_no)
        if refund is not None:
            self._notify_refund(refund, self._book.get(account, refund.out_trade_no).behaviour)

    def _notify_refund(self, refund: Refund, behaviour: SandboxBehaviour) -> None:
        if behaviour.query_only:
            return
        self._notifier.notify(
            refund_topic(refund),
            refund.notify_url,
            refund_notification(refund),
            behaviour,
            stale_payload=stale_refund_notification(refund),
        )

    # -- buyer pages ------------------------------------------------------------------------

    def show_payment_page(self, request: Request, token: str) -> Response:
        try:
            order = self._book.find_by_token(token)
        except SandboxError as exc:
            return html_response(message_page("Payment link not found", exc.message), exc.status)
        return html_response(payment_page(order))

    def take_buyer_choice(self, request: Request, token: str) -> Response:
        """The buyer pressed Pay or Decline: JSON in, JSON out; a form in, a page or a 303."""
        wants_json = request.mimetype == "application/json"
        try:
            order, changed = self._book.act(token, _buyer_action(request, wants_json))
        except SandboxError as exc:
            if wants_json:
                return error_response(exc)
            return html_response(message_page("Payment not possible", exc.message), exc.status)
        if changed and not order.behaviour.query_only:
            self._notifier.notify(
                order_topic(order),
                order.notify_url,
                order_notification(order),
                order.behaviour,
                stale_payload=stale_order_notification(order),
            )
        if wants_json:
            return json_response({"status": order.status.value, "out_trade_no": order.out_trade_no})
        if order.return_url:
            return redirect(order.return_url, 303)
        return html_response(result_page(order))

    # -- debug views ------------------------------------------------------------------------

    def debug_orders(self, request: Request) -> Response:
        account = request.args.get("account")
        orders = [o for o in self._book.all() if account is None or o.account == account]
        return json_response({"orders": [self._debug_order(order) for order in orders]})

    def debug_order(self, request: Request, out_trade_no: str) -> Response:
        orders = self._book.find(out_trade_no)
        return json_response(self._debug_order(_one(orders, request, "order", out_trade_no)))

    def debug_refunds(self, request: Request) -> Response:
        account, out_trade_no = request.args.get("account"), request.args.get("out_trade_no")
        refunds = [
            refund
            for refund in self._book.all_refunds()
            if account in (None, refund.account) and out_trade_no in (None, refund.out_trade_no)
        ]
        return json_response({"refunds": [self._debug_refund(refund) for refund in refunds]})

    def debug_refund(self, request: Request, out_refund_no: str) -> Response:
        refunds = self._book.find_refunds(out_refund_no)
        return json_response(self._debug_refund(_one(refunds, request, "refund", out_refund_no)))

    def health(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    def _debug_order(self, order: Order) -> dict[str, Any]:
        refunds = self._book.refunds_of(order.account, order.out_trade_no)
        return {
            **order.view(),
            "account": order.account,
            "notify_url": order.notify_url,
            "return_url": order.return_url,
            "sandbox_behaviour": order.behaviour.shown(),
            "amount_refunded": sum(r.amount for r in refunds if r.status is RefundStatus.SUCCESS),
            "notifications": self._notifier.history(order_topic(order)),
            "refunds": [self._debug_refund(refund) for refund in refunds],
        }

    def _debug_refund(self, refund: Refund) -> dict[str, Any]:
        return {
            **refund.view(),
            "account": refund.account,
            "reason": refund.reason,
            "notify_url": refund.notify_url,
            "notifications": self._notifier.history(refund_topic(refund)),
        }


_Found = TypeVar("_Found", Order, Refund)


def _one(found: list[_Found], request: Request, kind: str, number: str) -> _Found:
    """The one order (or refund) the debug view asks for: ``?account=`` picks one when the
    number exists in several accounts."""
    account = request.args.get("account")
    if account is not None:
        found = [item for item in found if item.account == account]
    if not found:
        code = ErrorCode.ORDER_NOT_FOUND if kind == "order" else ErrorCode.REFUND_NOT_FOUND
        raise SandboxError(404, code, f"no {kind} {number!r}")
    if len(found) > 1:
        accounts = ", ".join(item.account for item in found)
        raise SandboxError(
            409,
            ErrorCode.ORDER_AMBIGUOUS,
            f"{kind} {number!r} exists in the accounts {accounts}: add ?account=",
        )
    return found[0]


def _checked_account(account: str) -> str:
    if not _ACCOUNT_ID.fullmatch(account):
        raise invalid_parameter("the account id must be 1-64 of [A-Za-z0-9_-]", "account")
    return account


def _statement_day(text: str) -> date:
    try:
        day = date.fromisoformat(text) if _DAY.fullmatch(text) else None
    except ValueError:
        day = None
    if day is None:
        raise invalid_parameter("the day must be a date, YYYY-MM-DD", "day")
    if day > datetime.now(UTC).date():
        raise invalid_parameter("a statement exists only for today and earlier days", "day")
    return day


def _request_target(request: Request) -> str:
    """The path (and ``?query``) exactly as the client sent it: what the signature covers."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw.startswith("/"):
        return raw
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


def _json_object(request: Request) -> dict[str, Any]:
    try:
        payload = json.loads(request.get_data(cache=True))
    except (ValueError, UnicodeDecodeError):
        raise invalid_parameter("the body must be JSON") from None
    if not isinstance(payload, dict):
        raise invalid_parameter("the body must be a JSON object")
    return payload


def _buyer_action(request: Request, wants_json: bool) -> BuyerAction:
    value = _json_object(request).get("action") if wants_json else request.form.get("action")
    try:
        return BuyerAction(str(value))
    except ValueError:
        raise invalid_parameter("action must be 'pay' or 'decline'", "action") from None
