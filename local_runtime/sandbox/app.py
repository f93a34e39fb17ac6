"""The sandbox's HTTP surface as a WSGI application (werkzeug routing, no framework).

Three audiences, three kinds of routes:
- the merchant's server: ``/v1/orders...``, JSON, every request HMAC-signed;
- the buyer's browser: ``/pay/{token}``, HTML pages and form posts (JSON accepted too), no
  merchant credentials, the unguessable token in the link is the only key;
- developers and tests: ``/__sandbox/...``, read-only debug views, no authentication.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from local_runtime.sandbox.errors import ErrorCode, SandboxError, invalid_parameter
from local_runtime.sandbox.models import parse_create_request
from local_runtime.sandbox.notifications import Notifier
from local_runtime.sandbox.orders import BuyerAction, Order, OrderBook
from local_runtime.sandbox.pages import message_page, payment_page, result_page
from local_runtime.sandbox.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    check_request_signature,
)

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]

_ROUTES = Map(
    [
        Rule("/v1/orders", methods=["POST"], endpoint="create_order"),
        Rule("/v1/orders/<out_trade_no>", methods=["GET"], endpoint="query_order"),
        Rule("/v1/orders/<out_trade_no>/close", methods=["POST"], endpoint="close_order"),
        Rule("/pay/<token>", methods=["GET"], endpoint="show_payment_page"),
        Rule("/pay/<token>", methods=["POST"], endpoint="take_buyer_choice"),
        Rule("/__sandbox/orders", methods=["GET"], endpoint="debug_orders"),
        Rule("/__sandbox/orders/<out_trade_no>", methods=["GET"], endpoint="debug_order"),
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
    """Routes requests to the order book and the notifier; maps every failure to JSON."""

    def __init__(self, book: OrderBook, notifier: Notifier, secret: str) -> None:
        self._book = book
        self._notifier = notifier
        self._secret = secret

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

    def create_order(self, request: Request) -> Response:
        self._authenticate(request)
        order, created = self._book.create(parse_create_request(_json_object(request)))
        return json_response(order.view(), 201 if created else 200)

    def query_order(self, request: Request, out_trade_no: str) -> Response:
        self._authenticate(request)
        return json_response(self._book.get(out_trade_no).view())

    def close_order(self, request: Request, out_trade_no: str) -> Response:
        self._authenticate(request)
        return json_response(self._book.close(out_trade_no).view())

    def _authenticate(self, request: Request) -> None:
        check_request_signature(
            self._secret,
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            method=request.method,
            path=_request_target(request),
            body=request.get_data(cache=True),
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
        if changed:
            self._notifier.notify(order)
        if wants_json:
            return json_response({"status": order.status.value, "out_trade_no": order.out_trade_no})
        if order.return_url:
            return redirect(order.return_url, 303)
        return html_response(result_page(order))

    # -- debug views ------------------------------------------------------------------------

    def debug_orders(self, request: Request) -> Response:
        return json_response({"orders": [self._debug_view(order) for order in self._book.all()]})

    def debug_order(self, request: Request, out_trade_no: str) -> Response:
        return json_response(self._debug_view(self._book.get(out_trade_no)))

    def health(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    def _debug_view(self, order: Order) -> dict[str, Any]:
        return {
            **order.view(),
            "notify_url": order.notify_url,
            "return_url": order.return_url,
            "sandbox_behaviour": order.behaviour.model_dump(),
            "notifications": self._notifier.history(order.out_trade_no),
        }


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
