"""The sandbox channel's ``ChannelGateway``: one merchant account at the sandbox.

The sandbox behaves like a redirect channel (Alipay, Stripe Checkout): the merchant creates an
order, sends the buyer to its ``pay_url``, then learns the outcome from a signed notification or
a status query; a paid order can be refunded, in parts, and each refund's outcome arrives the
same two ways; every day has a statement file. The protocol is local_runtime/sandbox/README.md.

A 4xx with the sandbox's JSON ``{"code", "message"}`` is read through
``transformers.error_meaning``: a refusal (``ChannelRejected``, final), "no such order or
refund" (a query's answer), or "already paid" (a close that lost to the buyer). Anything that
leaves the outcome unknown is ``ChannelUnavailable`` (see ``client``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date
from typing import Any, ClassVar, NoReturn
from urllib.parse import quote

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
    lower_headers,
)
from paycore.channels.metering import metered
from paycore.channels.reading import Unreadable, json_object
from paycore.channels.sandbox.client import Download, SandboxClient
from paycore.channels.sandbox.settings import SandboxSettings
from paycore.channels.sandbox.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    check_notification_signature,
)
from paycore.channels.sandbox.transformers import (
    ErrorMeaning,
    meaning_of,
    payment_state,
    read_notification,
    read_order,
    refund_state,
    statement_lines,
)
from paycore.config import Settings
from paycore.errors import CallbackRejected, ChannelRejected

logger = logging.getLogger(__name__)


class SandboxGateway(AnswerChecks):
    """``ChannelGateway`` for the sandbox account ``account_id`` described by ``settings``."""

    name: ClassVar[str] = "sandbox"
    next_action_type: ClassVar[NextActionType] = NextActionType.REDIRECT

    def __init__(self, settings: SandboxSettings, *, account_id: str, timeout: float = 5.0):
        if not account_id:
            raise ValueError("the sandbox account id must not be empty")
        self.account_id = account_id
        self.simulator = settings.simulator
        self._secret = settings.secret
        self._client = SandboxClient(settings.base_url, settings.secret, timeout)

    def __repr__(self) -> str:  # never shows the secret
        return (
            f"SandboxGateway(base_url={self._client.base_url!r}, "
            f"account_id={self.account_id!r}, timeout={self._client.timeout})"
        )

    def _unavailable(self, reference: str, reason: str) -> NoReturn:
        self._client.unavailable(reference, reason)

    # -- payments ----------------------------------------------------------------------------

    @metered
    def create_order(self, request: CreateChannelOrder) -> ChannelOrder:
        """Create (or find again: the sandbox deduplicates on out_trade_no) the channel order.
        ``simulate`` travels as ``sandbox_behaviour``, which the sandbox checks (a bad switch
        is its 400 refusal)."""
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
        if request.simulate is not None:
            payload["sandbox_behaviour"] = dict(request.simulate)
        reference = request.out_trade_no
        status, body = self._client.call("POST", "/v1/orders", payload, reference)
        if status not in (200, 201):
            self._refuse(status, body, reference)
        order, amount, currency = self._readable(read_order, body, reference)
        self._check_same_order(reference, order.out_trade_no)
        if (amount, currency) != (request.amount, request.currency):
            raise ChannelRejected(f"sandbox order {reference} exists for {amount} {currency}")
        return order

    @metered
    def query_order(
        self, out_trade_no: str, channel_order_id: str | None = None
    ) -> ChannelPaymentState:
        """The channel's current view of the order; NOT_FOUND when it never got it. (The
        sandbox finds orders by out_trade_no; ``channel_order_id`` is not needed.)"""
        path = f"/v1/orders/{_segment(out_trade_no)}"
        status, body = self._client.call("GET", path, None, out_trade_no)
        return self._state_answer(status, body, out_trade_no)

    @metered
    def close_order(
        self, out_trade_no: str, channel_order_id: str | None = None
    ) -> ChannelPaymentState:
        """Close the order so it can no longer be paid. Returns the state after the attempt:
        CLOSED (or FAILED/NOT_FOUND: nothing can be taken), or SUCCEEDED when the buyer paid
        first, which the caller must then settle or refund, as with WeChat Pay."""
        path = f"/v1/orders/{_segment(out_trade_no)}/close"
        status, body = self._client.call("POST", path, {}, out_trade_no)
        paid_order = body.get("order")  # the paid order rides along with the refusal
        if (
            status == 409
            and meaning_of(str(body.get("code"))) is ErrorMeaning.ALREADY_PAID
            and isinstance(paid_order, dict)
        ):
            status, body = 200, paid_order
        return self._state_answer(status, body, out_trade_no)

    # -- refunds -----------------------------------------------------------------------------

    @metered
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
        status, body = self._client.call("POST", path, payload, request.out_refund_no)
        if status != 200:
            self._refuse(status, body, request.out_refund_no)
        state = self._readable(refund_state, body, request.out_refund_no)
        self._check_same_refund(request.out_trade_no, request.out_refund_no, state)
        return state

    @metered
    def query_refund(self, out_trade_no: str, out_refund_no: str) -> ChannelRefundState:
        """The channel's current view of a refund; NOT_FOUND when it never got it."""
        path = f"/v1/refunds/{_segment(out_refund_no)}"
        status, body = self._client.call("GET", path, None, out_refund_no)
        if status == 404 and meaning_of(str(body.get("code"))) is ErrorMeaning.NOT_FOUND:
            return ChannelRefundState(out_refund_no, out_trade_no, ChannelRefundStatus.NOT_FOUND)
        if status != 200:
            self._refuse(status, body, out_refund_no)
        state = self._readable(refund_state, body, out_refund_no)
        self._check_same_refund(out_trade_no, out_refund_no, state)
        return state

    # -- notifications -----------------------------------------------------------------------

    def parse_notification(
        self, body: bytes, headers: Mapping[str, str]
    ) -> ChannelPaymentState | ChannelRefundState:
        """Check the size, the signature (with this account's secret) and the freshness, then
        read the notification: a payment's state for ``trade.status_changed``, a refund's for
        ``refund.status_changed``. ``CallbackRejected`` for anything else."""
        if len(body) > MAX_NOTIFICATION_BYTES:
            raise CallbackRejected(f"a sandbox notification is at most {MAX_NOTIFICATION_BYTES} B")
        lowered = lower_headers(headers)
        check_notification_signature(
            self._secret,
            lowered.get(TIMESTAMP_HEADER.lower(), ""),
            lowered.get(SIGNATURE_HEADER.lower(), ""),
            body,
        )
        try:
            return read_notification(json_object(body))
        except Unreadable as exc:
            raise CallbackRejected(f"malformed sandbox notification: {exc}") from None

    def acknowledge(self) -> CallbackAck:
        """What the sandbox needs to stop retrying: HTTP 200 and ``{"code": "SUCCESS"}``."""
        return CallbackAck(200, '{"code": "SUCCESS"}')

    # -- statements --------------------------------------------------------------------------

    @metered
    def fetch_statement(self, day: date) -> ChannelStatement:
        """The account's statement file of ``day`` (UTC) and its lines."""
        reference = f"statement {day.isoformat()}"
        status, answer = self._client.download(f"/v1/statements/{day.isoformat()}", reference)
        if not isinstance(answer, Download):
            self._refuse(status, answer, reference)
        if answer.content_type != "text/csv":
            self._client.unavailable(reference, f"the statement is {answer.content_type}")
        lines = self._readable(
            lambda content: statement_lines(content, day), answer.content, reference
        )
        return ChannelStatement(
            day=day,
            filename=answer.filename or f"sandbox-{self.account_id}-{day.isoformat()}.csv",
            content_type=answer.content_type,
            content=answer.content,
            lines=lines,
        )

    # -- reading answers ---------------------------------------------------------------------

    def _state_answer(
        self, status: int, body: dict[str, Any], out_trade_no: str
    ) -> ChannelPaymentState:
        """The order state of a query or close answer (404 ORDER_NOT_FOUND is NOT_FOUND)."""
        if status == 404 and meaning_of(str(body.get("code"))) is ErrorMeaning.NOT_FOUND:
            return ChannelPaymentState(out_trade_no, ChannelPaymentStatus.NOT_FOUND)
        if status != 200:
            self._refuse(status, body, out_trade_no)
        state = self._readable(payment_state, body, out_trade_no)
        self._check_same_order(out_trade_no, state.out_trade_no)
        return state

    def _check_same_order(self, asked: str, answered: str) -> None:
        if answered != asked:
            self._client.unavailable(asked, f"the answer is about another order ({answered})")

    def _refuse(self, status: int, body: dict[str, Any], reference: str) -> NoReturn:
        """A 4xx with the sandbox's ``{"code", "message"}`` is a refusal; any other 4xx body
        does not prove the sandbox saw the request, so the outcome stays unknown."""
        code, message = body.get("code"), body.get("message")
        if not isinstance(code, str) or not isinstance(message, str):
            self._client.unavailable(reference, f"HTTP {status} without a sandbox error body")
        if meaning_of(code) is ErrorMeaning.UNAVAILABLE:
            self._client.unavailable(reference, f"HTTP {status} {code}")
        logger.info("sandbox refused %s: HTTP %s %s", reference, status, code)
        raise ChannelRejected(f"sandbox refused the request ({code}): {message}")


def create_gateway(
    account_id: str, credentials: Mapping[str, Any], settings: Settings
) -> SandboxGateway:
    """The registry's factory: a gateway for ``account_id`` from its secret's JSON
    (``pydantic.ValidationError`` when the credentials are not a sandbox account's)."""
    return SandboxGateway(
        SandboxSettings.model_validate(credentials),
        account_id=account_id,
        timeout=settings.channel_timeout_seconds,
    )


def _segment(value: str) -> str:
    """``value`` as one URL path segment."""
    return quote(value, safe="")
