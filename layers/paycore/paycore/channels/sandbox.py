"""The sandbox channel adapter: paycore's HTTP integration with the sandbox channel service.

The sandbox behaves like a redirect channel (Alipay, WeChat Pay, Stripe Checkout): the merchant
creates an order, sends the buyer to ``pay_url``, then learns the outcome from a signed
notification or a status query; a paid order can be refunded, in parts, and each refund's
outcome arrives the same two ways. One gateway speaks for one merchant account at the sandbox
(``account_id``); its base URL already carries the account's path prefix. This module speaks
that protocol with the standard library only (it runs in Lambda with no extra dependencies):

- merchant requests carry ``Sandbox-Timestamp`` (unix seconds) and ``Sandbox-Signature``, the hex
  HMAC-SHA256 of ``f"{timestamp}\\n{METHOD}\\n{path}\\n{body}"`` with the shared secret;
- notifications carry the same headers over ``f"{timestamp}\\n{body}"``; both are accepted only
  within 300 s of our clock.

Error policy, which the payment state machine relies on: the channel's JSON refusal of a 4xx is
``ChannelRejected`` (final); anything that leaves the outcome unknown (timeout, connection
error, 5xx, 408/429, a redirect, a body we cannot read) is ``ChannelUnavailable``, and the caller
must query before doing anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, NoReturn, TypeVar, assert_never
from urllib.parse import quote, urlsplit

from paycore import clock
from paycore.channels.base import (
    CallbackAck,
    ChannelOrder,
    ChannelPaymentState,
    ChannelPaymentStatus,
    ChannelRefundState,
    ChannelRefundStatus,
    CreateChannelOrder,
    CreateChannelRefund,
)
from paycore.errors import CallbackRejected, ChannelRejected, ChannelUnavailable

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

TIMESTAMP_HEADER = "Sandbox-Timestamp"
SIGNATURE_HEADER = "Sandbox-Signature"
TOLERANCE_SECONDS = 300
NOTIFY_TYPE = "trade.status_changed"
REFUND_NOTIFY_TYPE = "refund.status_changed"
DEFAULT_ACCOUNT = "default"
_MAX_RESPONSE_BYTES = 1024 * 1024
# The sandbox's decline reasons and the payment failure codes they become; an unknown reason
# is a generic decline that keeps the sandbox's code in the message.
_FAILURE_CODES = {"BUYER_DECLINED": "buyer_declined"}
# The same for refunds.
_REFUND_FAILURE_CODES = {"REFUND_REJECTED": "refund_rejected"}
# Statuses that mean "not processed, try again later" even though they are 4xx.
_RETRYABLE_4XX = frozenset({408, 425, 429})


class SandboxStatus(StrEnum):
    """The sandbox's own order statuses, as it writes them."""

    WAIT_BUYER_PAY = "WAIT_BUYER_PAY"
    SUCCESS = "SUCCESS"
    DECLINED = "DECLINED"
    CLOSED = "CLOSED"


def to_payment_status(status: SandboxStatus) -> ChannelPaymentStatus:
    """Map a sandbox status into ours; mypy proves the match covers every status."""
    match status:
        case SandboxStatus.WAIT_BUYER_PAY:
            return ChannelPaymentStatus.PENDING
        case SandboxStatus.SUCCESS:
            return ChannelPaymentStatus.SUCCEEDED
        case SandboxStatus.DECLINED:
            return ChannelPaymentStatus.FAILED
        case SandboxStatus.CLOSED:
            return ChannelPaymentStatus.CLOSED
        case _:
            assert_never(status)


class SandboxRefundStatus(StrEnum):
    """The sandbox's own refund statuses, as it writes them."""

    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


def to_refund_status(status: SandboxRefundStatus) -> ChannelRefundStatus:
    """Map a sandbox refund status into ours; mypy proves the match covers every status."""
    match status:
        case SandboxRefundStatus.PROCESSING:
            return ChannelRefundStatus.PENDING
        case SandboxRefundStatus.SUCCESS:
            return ChannelRefundStatus.SUCCEEDED
        case SandboxRefundStatus.FAILED:
            return ChannelRefundStatus.FAILED
        case _:
            assert_never(status)


def sign_request(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    """The hex signature of a merchant request (``path`` as sent, with any ``?query``)."""
    message = f"{timestamp}\n{method.upper()}\n{path}\n".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_notification(secret: str, timestamp: str, body: bytes) -> str:
    """The hex signature the sandbox puts on a notification body."""
    return hmac.new(secret.encode(), f"{timestamp}\n".encode() + body, hashlib.sha256).hexdigest()


class _Unreadable(ValueError):
    """A body that is not the JSON shape the protocol promises."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The sandbox API never redirects; surface a 3xx instead of following it (a followed
    POST would silently turn into a GET)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class SandboxGateway:
    """``ChannelGateway`` for the sandbox channel account ``account_id`` at ``base_url``
    (which already includes the account's ``/accounts/<id>`` prefix, except for ``default``),
    signing with ``secret``."""

    name: str = "sandbox"

    def __init__(
        self,
        base_url: str,
        secret: str,
        timeout: float = 5.0,
        account_id: str = DEFAULT_ACCOUNT,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("the sandbox base URL must be an absolute http(s) URL")
        if not secret:
            raise ValueError("the sandbox secret must not be empty")
        if timeout <= 0:
            raise ValueError("the HTTP timeout must be positive")
        if not account_id:
            raise ValueError("the sandbox account id must not be empty")
        self.account_id = account_id
        self._base_url = base_url.rstrip("/")
        self._path_prefix = parts.path.rstrip("/")
        self._secret = secret
        self._timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects)

    def __repr__(self) -> str:  # never shows the secret
        return (
            f"SandboxGateway(base_url={self._base_url!r}, account_id={self.account_id!r}, "
            f"timeout={self._timeout})"
        )

    # -- the ChannelGateway verbs ------------------------------------------------------------

    def create_order(self, request: CreateChannelOrder) -> ChannelOrder:
        """Create (or find again: the sandbox deduplicates on out_trade_no) the channel order."""
        payload: dict[str, Any] = {
            "out_trade_no": request.out_trade_no,
            "amount": request.amount,
            "currency": request.currency,
            "subject": request.subject,
            "notify_url": request.notify_url,
            "expires_at": request.expires_at,
        }
        if request.return_url is not None:
            payload["return_url"] = request.return_url
        behaviour = request.options.get("sandbox_behaviour")
        if behaviour is not None:  # the sandbox checks it: a bad switch is a 400 refusal
            payload["sandbox_behaviour"] = (
                dict(behaviour) if isinstance(behaviour, Mapping) else behaviour
            )
        status, body = self._call("POST", "/v1/orders", payload, request.out_trade_no)
        if status not in (200, 201):
            self._refuse(status, body, request.out_trade_no)
        order, amount, currency = self._readable(_read_order, body, request.out_trade_no)
        self._check_same_order(request.out_trade_no, order.out_trade_no)
        if (amount, currency) != (request.amount, request.currency):
            raise ChannelRejected(
                f"sandbox order {request.out_trade_no} exists for {amount} {currency}"
            )
        return order

    def query_order(self, out_trade_no: str) -> ChannelPaymentState:
        """The channel's current view of the order; NOT_FOUND when it never got it."""
        status, body = self._call("GET", f"/v1/orders/{_segment(out_trade_no)}", None, out_trade_no)
        return self._state_answer(status, body, out_trade_no)

    def close_order(self, out_trade_no: str) -> ChannelPaymentState:
        """Close the order so it can no longer be paid. Returns the state after the attempt:
        CLOSED (or FAILED/NOT_FOUND: nothing can be taken), or SUCCEEDED when the buyer paid
        first, which the caller must then settle or refund, as with WeChat Pay."""
        path = f"/v1/orders/{_segment(out_trade_no)}/close"
        status, body = self._call("POST", path, {}, out_trade_no)
        paid_order = body.get("order")  # the paid order rides along with the refusal
        if status == 409 and body.get("code") == "ORDER_PAID" and isinstance(paid_order, dict):
            status, body = 200, paid_order
        return self._state_answer(status, body, out_trade_no)

    def refund(self, request: CreateChannelRefund) -> ChannelRefundState:
        """Refund ``amount`` of a paid order (the sandbox deduplicates on out_refund_no, so a
        retry never refunds twice). ``ChannelRejected`` when the sandbox refuses it (order not
        paid or unknown, more than paid, out_refund_no reused for another amount);
        ``ChannelUnavailable`` when the outcome is unknown: query the refund."""
        payload: dict[str, Any] = {
            "out_refund_no": request.out_refund_no,
            "amount": request.amount,
            "notify_url": request.notify_url,
        }
        if request.reason is not None:
            payload["reason"] = request.reason
        path = f"/v1/orders/{_segment(request.out_trade_no)}/refunds"
        status, body = self._call("POST", path, payload, request.out_refund_no)
        if status != 200:
            self._refuse(status, body, request.out_refund_no)
        state = self._readable(_refund_state, body, request.out_refund_no)
        self._check_same_refund(request.out_trade_no, request.out_refund_no, state)
        return state

    def query_refund(self, out_trade_no: str, out_refund_no: str) -> ChannelRefundState:
        """The channel's current view of a refund; NOT_FOUND when it never got it."""
        path = f"/v1/refunds/{_segment(out_refund_no)}"
        status, body = self._call("GET", path, None, out_refund_no)
        if status == 404 and body.get("code") == "REFUND_NOT_FOUND":
            return ChannelRefundState(out_refund_no, out_trade_no, ChannelRefundStatus.NOT_FOUND)
        if status != 200:
            self._refuse(status, body, out_refund_no)
        state = self._readable(_refund_state, body, out_refund_no)
        self._check_same_refund(out_trade_no, out_refund_no, state)
        return state

    def verify_callback(
        self, headers: Mapping[str, str], body: str
    ) -> ChannelPaymentState | ChannelRefundState:
        """Check a notification's signature and freshness, then read it: a payment's state
        for ``trade.status_changed``, a refund's for ``refund.status_changed``. Raises
        ``CallbackRejected`` for anything unsigned, forged, stale or malformed."""
        lowered = {key.lower(): value for key, value in headers.items()}
        timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
        signature = lowered.get(SIGNATURE_HEADER.lower(), "")
        raw = body.encode()
        self._check_notification_signature(timestamp, signature, raw)
        try:
            return _read_notification(_json_object(raw))
        except _Unreadable as exc:
            raise CallbackRejected(f"malformed sandbox notification: {exc}") from None

    def callback_ack(self) -> CallbackAck:
        """What the sandbox needs to stop retrying: HTTP 200 and ``{"code": "SUCCESS"}``."""
        return CallbackAck(200, '{"code": "SUCCESS"}')

    # -- HTTP --------------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, payload: dict[str, Any] | None, out_trade_no: str
    ) -> tuple[int, dict[str, Any]]:
        """Send one signed request; (HTTP status, JSON object) for any answer we can read.
        Raises ``ChannelUnavailable`` when the outcome is unknown."""
        data = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        request = self._signed_request(method, path, data)
        try:
            status, raw = self._send(request)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self._unavailable(out_trade_no, f"{method} {path} failed: {_reason(exc)}")
        if status >= 500 or status in _RETRYABLE_4XX or status < 200 or 300 <= status < 400:
            self._unavailable(out_trade_no, f"{method} {path} answered HTTP {status}")
        try:
            return status, _json_object(raw)
        except _Unreadable as exc:
            self._unavailable(out_trade_no, f"{method} {path} answered {status}, unreadable: {exc}")

    def _signed_request(self, method: str, path: str, data: bytes) -> urllib.request.Request:
        timestamp = str(int(clock.now().timestamp()))
        signed_path = self._path_prefix + path
        headers = {
            "Accept": "application/json",
            "User-Agent": "paycore-sandbox-adapter/1",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign_request(self._secret, timestamp, method, signed_path, data),
        }
        if method != "GET":
            headers["Content-Type"] = "application/json; charset=utf-8"
        return urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self._base_url + path,
            data=data if method != "GET" else None,
            headers=headers,
            method=method,
        )

    def _send(self, request: urllib.request.Request) -> tuple[int, bytes]:
        """(status, body) for every HTTP answer, error statuses included."""
        try:
            with self._opener.open(request, timeout=self._timeout) as reply:
                return int(reply.status), reply.read(_MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read(_MAX_RESPONSE_BYTES)

    def _unavailable(self, out_trade_no: str, reason: str) -> NoReturn:
        logger.warning("sandbox channel unavailable for %s: %s", out_trade_no, reason)
        raise ChannelUnavailable(f"sandbox channel: {reason}")

    # -- answers -----------------------------------------------------------------------------

    def _state_answer(
        self, status: int, body: dict[str, Any], out_trade_no: str
    ) -> ChannelPaymentState:
        """The order state of a query or close answer (404 ORDER_NOT_FOUND is NOT_FOUND)."""
        if status == 404 and body.get("code") == "ORDER_NOT_FOUND":
            return ChannelPaymentState(out_trade_no, ChannelPaymentStatus.NOT_FOUND)
        if status != 200:
            self._refuse(status, body, out_trade_no)
        state = self._readable(_payment_state, body, out_trade_no)
        self._check_same_order(out_trade_no, state.out_trade_no)
        return state

    def _readable(
        self, read: Callable[[Mapping[str, Any]], _T], body: dict[str, Any], out_trade_no: str
    ) -> _T:
        """``read(body)``, or ChannelUnavailable when a 2xx body is not what we expect."""
        try:
            return read(body)
        except _Unreadable as exc:
            self._unavailable(out_trade_no, f"unreadable answer: {exc}")

    def _check_same_order(self, asked: str, answered: str) -> None:
        if answered != asked:
            self._unavailable(asked, f"the answer is about another order ({answered})")

    def _check_same_refund(
        self, out_trade_no: str, out_refund_no: str, state: ChannelRefundState
    ) -> None:
        if (state.out_trade_no, state.out_refund_no) != (out_trade_no, out_refund_no):
            self._unavailable(
                out_refund_no,
                f"the answer is about another refund ({state.out_refund_no} of "
                f"{state.out_trade_no})",
            )

    def _refuse(self, status: int, body: dict[str, Any], out_trade_no: str) -> NoReturn:
        """A 4xx with the sandbox's ``{"code", "message"}`` is a refusal; any other 4xx body
        does not prove the sandbox saw the request, so the outcome stays unknown."""
        code, message = body.get("code"), body.get("message")
        if not isinstance(code, str) or not isinstance(message, str):
            self._unavailable(out_trade_no, f"HTTP {status} without a sandbox error body")
        logger.info("sandbox refused %s: HTTP %s %s", out_trade_no, status, code)
        raise ChannelRejected(f"sandbox refused the request ({code}): {message}")

    def _check_notification_signature(self, timestamp: str, signature: str, raw: bytes) -> None:
        if not timestamp or not signature:
            raise CallbackRejected("unsigned sandbox notification")
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise CallbackRejected(f"{TIMESTAMP_HEADER} is not unix seconds")
        if abs(clock.now().timestamp() - int(timestamp)) > TOLERANCE_SECONDS:
            raise CallbackRejected("stale sandbox notification")
        expected = sign_notification(self._secret, timestamp, raw)
        if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
            raise CallbackRejected("sandbox notification signature does not match")


# -- reading the sandbox's JSON --------------------------------------------------------------


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _Unreadable("not JSON") from None
    if not isinstance(value, dict):
        raise _Unreadable("not a JSON object")
    return value


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise _Unreadable(f"{key} must be a non-empty string")
    return value


def _optional_text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise _Unreadable(f"{key} must be a string or null")
    return value


def _amount(body: Mapping[str, Any]) -> int:
    value = body.get("amount")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise _Unreadable("amount must be a positive integer")
    return value


def _status(body: Mapping[str, Any]) -> ChannelPaymentStatus:
    try:
        return to_payment_status(SandboxStatus(_text(body, "status")))
    except ValueError:
        raise _Unreadable(f"unknown status {body.get('status')!r}") from None


def _read_order(body: Mapping[str, Any]) -> tuple[ChannelOrder, int, str]:
    """A create answer: the order, plus its amount and currency to compare with ours."""
    order = ChannelOrder(
        out_trade_no=_text(body, "out_trade_no"),
        channel_order_id=_text(body, "channel_order_id"),
        redirect_url=_text(body, "pay_url"),
    )
    return order, _amount(body), _text(body, "currency")


def _payment_state(
    body: Mapping[str, Any], notification_id: str | None = None
) -> ChannelPaymentState:
    """An order as a query, a close or a notification describes it."""
    status = _status(body)
    failed = status is ChannelPaymentStatus.FAILED
    channel_code = _optional_text(body, "failure_code")
    return ChannelPaymentState(
        out_trade_no=_text(body, "out_trade_no"),
        status=status,
        amount=_amount(body),
        currency=_text(body, "currency"),
        channel_order_id=_text(body, "channel_order_id"),
        channel_transaction_id=_optional_text(body, "transaction_id"),
        failure_code=_failure_code(channel_code) if failed else None,
        failure_message=_failure_message(channel_code, body) if failed else None,
        notification_id=notification_id,
        redirect_url=_optional_text(body, "pay_url"),
    )


def _refund_state(
    body: Mapping[str, Any], notification_id: str | None = None
) -> ChannelRefundState:
    """A refund as a refund call, a query or a notification describes it."""
    try:
        status = to_refund_status(SandboxRefundStatus(_text(body, "status")))
    except ValueError:
        raise _Unreadable(f"unknown refund status {body.get('status')!r}") from None
    channel_code = _optional_text(body, "failure_code")
    code = message = None
    if status is ChannelRefundStatus.FAILED:
        code = _REFUND_FAILURE_CODES.get(channel_code or "", "refund_failed")
        message = _optional_text(body, "failure_message") or "the sandbox rejected the refund"
        if channel_code is not None and channel_code not in _REFUND_FAILURE_CODES:
            message = f"{message} (sandbox code {channel_code})"
    return ChannelRefundState(
        out_refund_no=_text(body, "out_refund_no"),
        out_trade_no=_text(body, "out_trade_no"),
        status=status,
        amount=_amount(body),
        currency=_text(body, "currency"),
        channel_refund_id=_text(body, "refund_id"),
        failure_code=code,
        failure_message=message,
        notification_id=notification_id,
    )


def _failure_code(channel_code: str | None) -> str:
    """The sandbox's decline reason in paycore's words (stable, lower-case codes)."""
    return _FAILURE_CODES.get(channel_code or "", "payment_declined")


def _failure_message(channel_code: str | None, body: Mapping[str, Any]) -> str:
    message = _optional_text(body, "failure_message") or "the sandbox declined the payment"
    if channel_code is not None and channel_code not in _FAILURE_CODES:
        return f"{message} (sandbox code {channel_code})"
    return message


def _read_notification(body: Mapping[str, Any]) -> ChannelPaymentState | ChannelRefundState:
    notify_type = body.get("notify_type")
    if notify_type == NOTIFY_TYPE:
        return _payment_state(body, notification_id=_text(body, "notify_id"))
    if notify_type == REFUND_NOTIFY_TYPE:
        return _refund_state(body, notification_id=_text(body, "notify_id"))
    raise _Unreadable(f"notify_type must be {NOTIFY_TYPE!r} or {REFUND_NOTIFY_TYPE!r}")


def _segment(value: str) -> str:
    """``value`` as one URL path segment."""
    return quote(value, safe="")


def _reason(exc: BaseException) -> str:
    """A short transport failure reason for logs and error details (never headers)."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"
