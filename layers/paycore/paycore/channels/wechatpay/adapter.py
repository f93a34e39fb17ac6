"""The WeChat Pay channel's ``ChannelGateway``: one direct merchant (直连商户) at WeChat Pay API
v3, Native pay (扫码支付), WeChat Pay public-key mode.

How Native pay meets the port:

- **create**: ``POST /v3/pay/transactions/native`` answers only a ``code_url``, which the buyer
  scans (``NextAction.qr_code``). The order exists from that moment (a query right after says
  NOTPAY, never "not found"), and WeChat Pay has no id for it until it is paid, so
  ``channel_order_id`` is our ``out_trade_no``. Creating again with the same ``out_trade_no``
  and amount answers the same ``code_url``. When a create's answer is lost (5xx, timeout), a
  query tells whether the order exists: ORDER_NOT_EXIST proves nothing was created (the caller
  may fail over); an unpaid order is created again once to recover its ``code_url`` (a query
  never shows it), and if that fails too the caller's own query adopts the order.
- **query** ``GET /v3/pay/transactions/out-trade-no/{no}?mchid=``: ``trade_state`` mapped by
  ``transformers`` (REFUND is a paid order with refunds; an expired order stays NOTPAY until
  closed; a declined payment is PAYERROR, which WeChat Pay never notifies).
- **close** ``POST .../out-trade-no/{no}/close``: 204 is CLOSED; ORDERPAID means the buyer paid
  first, so the order is queried and returned as paid.
- **refund** ``POST /v3/refund/domestic/refunds`` by ``out_trade_no`` and ``out_refund_no``
  (our refund id: a retry is the same refund), partial or full. WeChat Pay wants the order's
  total beside the refund, so the order is queried first.
- **notifications**: verified first (size, this account's key and key id, ±5 minutes), then the
  AEAD_AES_256_GCM resource is decrypted with the account's APIv3 key and decided on its own
  state (``trade_state`` / ``refund_status``), never on ``event_type``: a stale notification
  (e.g. TRANSACTION.NOTPAY after SUCCESS) reads as PENDING, which never moves a payment back.
  The envelope ``id`` is the ``notification_id``, the same on every retry and duplicate.
- **statement**: the ALL trade bill of a Beijing day (``GET /v3/bill/tradebill``, gzip), its
  SHA1 checked on the plain file, which is kept as the statement's content.

A 4xx with WeChat Pay's ``{"code", "message"}`` is read through ``transformers.meaning_of``.
Anything that leaves the outcome unknown is ``ChannelUnavailable`` (see ``client``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, ClassVar, NoReturn, TypeVar
from urllib.parse import quote

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
    NextAction,
    NextActionType,
    lower_headers,
)
from paycore.channels.metering import metered
from paycore.channels.reading import Unreadable, json_object
from paycore.channels.wechatpay.client import Answer, WechatPayClient
from paycore.channels.wechatpay.settings import WechatPaySettings
from paycore.channels.wechatpay.signing import SignatureProblem, check_signature, decrypt_resource
from paycore.channels.wechatpay.transformers import (
    CURRENCY,
    REFUND_EVENT_PREFIX,
    SHANGHAI,
    TRANSACTION_EVENT_PREFIX,
    ErrorMeaning,
    bill_lines,
    bill_link,
    code_url,
    error_code,
    meaning_of,
    notification_envelope,
    payment_state,
    refund_answer,
    refund_notification,
)
from paycore.clock import parse_rfc3339
from paycore.config import Settings
from paycore.errors import CallbackRejected, ChannelError, ChannelRejected, ChannelUnavailable
from paycore.money import AmountFormatError, to_minor_units

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

ATTACH_MAX_CHARACTERS = 128  # WeChat Pay's limit on attach (where simulate travels)
DESCRIPTION_MAX_BYTES = 127
REASON_MAX_BYTES = 80
_MAX_BILL_BYTES = 64 * 1024 * 1024  # compressed or not


class WechatPayGateway(AnswerChecks):
    """``ChannelGateway`` for the WeChat Pay merchant account ``account_id``."""

    name: ClassVar[str] = "wechatpay"
    next_action_type: ClassVar[NextActionType] = NextActionType.QR_CODE

    def __init__(self, settings: WechatPaySettings, *, account_id: str, timeout: float = 5.0):
        if not account_id:
            raise ValueError("the WeChat Pay account id must not be empty")
        self.account_id = account_id
        self.simulator = settings.simulator
        self._settings = settings
        self._client = WechatPayClient(settings, timeout)

    def __repr__(self) -> str:  # never shows a key
        return (
            f"WechatPayGateway(api_base_url={self._client.base_url!r}, "
            f"account_id={self.account_id!r}, mchid={self._settings.mchid!r}, "
            f"timeout={self._client.timeout})"
        )

    def _unavailable(self, reference: str, reason: str) -> NoReturn:
        self._client.unavailable(reference, reason)

    # -- payments ----------------------------------------------------------------------------

    @metered
    def create_order(self, request: CreateChannelOrder) -> ChannelOrder:
        """Create (or find again: WeChat Pay deduplicates on out_trade_no) the Native order;
        its ``code_url`` is the next action. ``simulate`` travels as ``attach`` (compact JSON,
        at most 128 characters), for a simulator account only."""
        reference = request.out_trade_no
        payload: dict[str, Any] = {
            "appid": self._settings.appid,
            "mchid": self._settings.mchid,
            "description": _truncate(request.subject, DESCRIPTION_MAX_BYTES),
            "out_trade_no": request.out_trade_no,
            "time_expire": _beijing_time(request.expires_at, reference),
            "notify_url": request.notify_url,
            "amount": {"total": _fen(request.amount, request.currency), "currency": CURRENCY},
        }
        if request.simulate is not None and self.simulator:
            attach = json.dumps(dict(request.simulate), separators=(",", ":"), sort_keys=True)
            if len(attach) > ATTACH_MAX_CHARACTERS:
                raise ChannelRejected(
                    f"the simulate switches take {len(attach)} characters; WeChat Pay's attach "
                    f"holds {ATTACH_MAX_CHARACTERS}"
                )
            payload["attach"] = attach
        elif request.simulate is not None:
            logger.warning("simulate ignored for %s: not a simulator account", reference)
        try:
            return self._create(payload, reference)
        except ChannelUnavailable as lost:
            return self._recover_code_url(payload, reference, lost)

    def _create(self, payload: dict[str, Any], reference: str) -> ChannelOrder:
        answer = self._client.call(
            "POST", "/v3/pay/transactions/native", reference, payload=payload
        )
        if answer.status != 200:
            if self._meaning(answer) is ErrorMeaning.ALREADY_PAID:
                # Created and paid by an earlier call: only a query can tell how.
                self._client.unavailable(reference, "the order is already paid: query it")
            self._refuse(answer, reference)
        found = self._read(code_url, answer, reference)
        return ChannelOrder(reference, reference, NextAction.qr_code(found))

    def _recover_code_url(
        self, payload: dict[str, Any], reference: str, lost: ChannelUnavailable
    ) -> ChannelOrder:
        """The create's answer was lost. If the order exists unpaid, the same create again
        answers its ``code_url`` (a query never shows it). Otherwise, or when either call
        fails in any way, the original error stands (the outcome is still unknown) and the
        caller's own query decides (NOT_FOUND: nothing was created)."""
        try:
            state = self.query_order(reference)
        except ChannelError:
            raise lost from None
        if state.status is not ChannelPaymentStatus.PENDING:
            raise lost
        logger.info("wechatpay order %s exists after a lost answer: creating it again", reference)
        try:
            return self._create(payload, reference)
        except ChannelError:
            raise lost from None

    @metered
    def query_order(
        self, out_trade_no: str, channel_order_id: str | None = None
    ) -> ChannelPaymentState:
        """The channel's current view of the order; NOT_FOUND when it never got it. (WeChat
        Pay finds a Native order by out_trade_no; ``channel_order_id`` is that too.)"""
        answer = self._client.call(
            "GET",
            f"/v3/pay/transactions/out-trade-no/{_segment(out_trade_no)}",
            out_trade_no,
            query={"mchid": self._settings.mchid},
        )
        if answer.status != 200:
            if self._meaning(answer) is ErrorMeaning.NOT_FOUND:
                return ChannelPaymentState(out_trade_no, ChannelPaymentStatus.NOT_FOUND)
            self._refuse(answer, out_trade_no)
        state = self._read(
            lambda body: payment_state(body, mchid=self._settings.mchid),
            answer,
            out_trade_no,
        )
        if state.out_trade_no != out_trade_no:
            self._client.unavailable(
                out_trade_no, f"the answer is about another order ({state.out_trade_no})"
            )
        return state

    @metered
    def close_order(
        self, out_trade_no: str, channel_order_id: str | None = None
    ) -> ChannelPaymentState:
        """Close the order so it can no longer be paid: CLOSED (WeChat Pay's 204), NOT_FOUND
        when it never existed, or the paid order (queried) when the buyer paid first, which the
        caller must then settle or refund."""
        answer = self._client.call(
            "POST",
            f"/v3/pay/transactions/out-trade-no/{_segment(out_trade_no)}/close",
            out_trade_no,
            payload={"mchid": self._settings.mchid},
        )
        if answer.status in (200, 204):
            return ChannelPaymentState(
                out_trade_no, ChannelPaymentStatus.CLOSED, channel_order_id=out_trade_no
            )
        meaning = self._meaning(answer)
        if meaning is ErrorMeaning.ALREADY_PAID:
            return self.query_order(out_trade_no)
        if meaning is ErrorMeaning.NOT_FOUND:
            return ChannelPaymentState(out_trade_no, ChannelPaymentStatus.NOT_FOUND)
        self._refuse(answer, out_trade_no)

    # -- refunds -----------------------------------------------------------------------------

    @metered
    def refund(self, request: CreateChannelRefund) -> ChannelRefundState:
        """Refund ``amount`` of a paid order (WeChat Pay deduplicates on out_refund_no, so a
        retry never refunds twice). ``ChannelRejected`` when WeChat Pay refuses it (order not
        paid or unknown, more than is left, out_refund_no reused for another amount);
        ``ChannelUnavailable`` when the outcome is unknown: query the refund."""
        reference = request.out_refund_no
        amount = _fen(request.amount, request.currency)
        order = self.query_order(request.out_trade_no)
        if order.status is ChannelPaymentStatus.NOT_FOUND or order.amount is None:
            raise ChannelRejected(f"WeChat Pay has no order {request.out_trade_no} to refund")
        payload: dict[str, Any] = {
            "out_trade_no": request.out_trade_no,
            "out_refund_no": request.out_refund_no,
            "notify_url": request.notify_url,
            "amount": {"refund": amount, "total": order.amount, "currency": CURRENCY},
        }
        if request.reason:
            payload["reason"] = _truncate(request.reason, REASON_MAX_BYTES)
        answer = self._client.call(
            "POST", "/v3/refund/domestic/refunds", reference, payload=payload
        )
        if answer.status != 200:
            self._refuse(answer, reference)
        state = self._read(refund_answer, answer, reference)
        self._check_same_refund(request.out_trade_no, request.out_refund_no, state)
        if state.amount != request.amount:
            raise ChannelRejected(
                f"WeChat Pay refund {reference} exists for {state.amount} {state.currency}"
            )
        return state

    @metered
    def query_refund(self, out_trade_no: str, out_refund_no: str) -> ChannelRefundState:
        """The channel's current view of a refund; NOT_FOUND when it never got it."""
        answer = self._client.call(
            "GET", f"/v3/refund/domestic/refunds/{_segment(out_refund_no)}", out_refund_no
        )
        if answer.status != 200:
            if self._meaning(answer) is ErrorMeaning.NOT_FOUND:
                return ChannelRefundState(
                    out_refund_no, out_trade_no, ChannelRefundStatus.NOT_FOUND
                )
            self._refuse(answer, out_refund_no)
        state = self._read(refund_answer, answer, out_refund_no)
        self._check_same_refund(out_trade_no, out_refund_no, state)
        return state

    # -- notifications -----------------------------------------------------------------------

    def parse_notification(
        self, body: bytes, headers: Mapping[str, str]
    ) -> ChannelPaymentState | ChannelRefundState:
        """Check the size, the signature (this account's WeChat Pay public key and its id,
        over the raw bytes) and the freshness (±5 minutes), then decrypt the resource with this
        account's APIv3 key and read it: a payment's state for TRANSACTION.*, a refund's for
        REFUND.*, each from the resource's own state. ``CallbackRejected`` for anything else."""
        if len(body) > MAX_NOTIFICATION_BYTES:
            raise CallbackRejected(
                f"a WeChat Pay notification is at most {MAX_NOTIFICATION_BYTES} B"
            )
        settings = self._settings
        try:
            check_signature(
                lower_headers(headers),
                body,
                public_key=settings.wechatpay_key,
                public_key_id=settings.wechatpay_public_key_id,
                now=clock.now().timestamp(),
            )
        except SignatureProblem as exc:
            raise CallbackRejected(f"WeChat Pay notification refused: {exc}") from None
        try:
            envelope = notification_envelope(json_object(body))
            if envelope.event_type.startswith(TRANSACTION_EVENT_PREFIX):
                kind = "transaction"
            elif envelope.event_type.startswith(REFUND_EVENT_PREFIX):
                kind = "refund"
            else:
                raise Unreadable(f"event_type {envelope.event_type!r} is not ours")
            if envelope.original_type != kind:
                raise Unreadable(f"a {envelope.event_type} carries a {envelope.original_type!r}")
            plain = decrypt_resource(
                settings.apiv3_key_bytes,
                nonce=envelope.nonce,
                ciphertext=envelope.ciphertext,
                associated_data=envelope.associated_data,
            )
            resource = json_object(plain)
            if kind == "refund":
                return refund_notification(
                    resource, mchid=settings.mchid, notification_id=envelope.id
                )
            if resource.get("appid", settings.appid) != settings.appid:
                raise Unreadable("the transaction is of another appid")
            return payment_state(resource, mchid=settings.mchid, notification_id=envelope.id)
        except (Unreadable, SignatureProblem) as exc:
            raise CallbackRejected(f"malformed WeChat Pay notification: {exc}") from None

    def acknowledge(self) -> CallbackAck:
        """What WeChat Pay needs to stop retrying: HTTP 200 or 204, no body needed."""
        return CallbackAck(204, "", "text/plain; charset=utf-8")

    # -- statements --------------------------------------------------------------------------

    @metered
    def fetch_statement(self, day: date) -> ChannelStatement:
        """The account's ALL trade bill of ``day`` (a Beijing day) and its lines. A day
        without trades has no bill at WeChat Pay (NO_STATEMENT_EXIST): an empty statement."""
        reference = f"trade bill {day.isoformat()}"
        filename = f"wechatpay-{self._settings.mchid}-{day.isoformat()}-ALL.csv"
        answer = self._client.call(
            "GET",
            "/v3/bill/tradebill",
            reference,
            query={"bill_date": day.isoformat(), "bill_type": "ALL", "tar_type": "GZIP"},
        )
        if answer.status != 200:
            if self._meaning(answer) is ErrorMeaning.NO_STATEMENT:
                return ChannelStatement(day, filename, "text/csv", b"", ())
            self._refuse(answer, reference)
        link = self._read(bill_link, answer, reference)
        downloaded = self._client.download(link.download_url, reference, _MAX_BILL_BYTES)
        if isinstance(downloaded, Answer):  # e.g. the 30-second download_url expired
            code = error_code(downloaded.body) if downloaded.body is not None else None
            self._client.unavailable(
                reference, f"the bill download answered HTTP {downloaded.status} {code or ''}"
            )
        content = self._readable(_gunzip, downloaded, reference)
        if hashlib.sha1(content).hexdigest() != link.hash_value:  # noqa: S324 - WeChat Pay's
            self._client.unavailable(reference, "the bill does not match its SHA1")
        lines = self._readable(
            lambda data: bill_lines(data, day, self._settings.mchid), content, reference
        )
        return ChannelStatement(day, filename, "text/csv", content, lines)

    # -- reading answers ---------------------------------------------------------------------

    def _meaning(self, answer: Answer) -> ErrorMeaning | None:
        code = error_code(answer.body) if answer.body is not None else None
        return meaning_of(code) if code is not None else None

    def _read(self, read: Callable[[dict[str, Any]], _T], answer: Answer, reference: str) -> _T:
        """``read`` of a 2xx answer's JSON object (ChannelUnavailable when it has none)."""
        return self._readable(lambda _: read(answer.json()), answer, reference)

    def _refuse(self, answer: Answer, reference: str) -> NoReturn:
        """A verified 4xx with WeChat Pay's ``{"code", "message"}`` is a refusal, unless its
        code says WeChat Pay failed; any other answer leaves the outcome unknown."""
        meaning = self._meaning(answer)
        if meaning is None or answer.body is None:
            self._client.unavailable(
                reference, f"HTTP {answer.status} without a WeChat Pay error body"
            )
        code, message = answer.body["code"], answer.body["message"]
        if meaning is ErrorMeaning.UNAVAILABLE:
            self._client.unavailable(reference, f"HTTP {answer.status} {code}")
        logger.info(
            "wechatpay refused %s: HTTP %s %s (Request-ID %s)",
            reference,
            answer.status,
            code,
            answer.request_id,
        )
        raise ChannelRejected(f"WeChat Pay refused the request ({code}): {message}")


def create_gateway(
    account_id: str, credentials: Mapping[str, Any], settings: Settings
) -> WechatPayGateway:
    """The registry's factory: a gateway for ``account_id`` from its secret's JSON
    (``pydantic.ValidationError``, a ValueError, when the credentials are not a WeChat Pay
    account's or a key does not load)."""
    return WechatPayGateway(
        WechatPaySettings.model_validate(credentials),
        account_id=account_id,
        timeout=settings.channel_timeout_seconds,
    )


def _fen(amount: int, currency: str) -> int:
    """Our amount as WeChat Pay's fen (CNY only), through ``paycore.money``."""
    if currency != CURRENCY:
        raise ChannelRejected(f"WeChat Pay Native takes {CURRENCY} only, not {currency}")
    try:
        return to_minor_units(amount, currency)
    except AmountFormatError as exc:
        raise ChannelRejected(f"not a WeChat Pay amount: {exc}") from None


def _beijing_time(expires_at: str, reference: str) -> str:
    """``time_expire`` as WeChat Pay writes times: RFC 3339 in Beijing time, to the second."""
    try:
        moment = parse_rfc3339(expires_at)
    except ValueError:
        raise ChannelRejected(f"{reference}: expires_at is not RFC 3339") from None
    return moment.astimezone(SHANGHAI).isoformat(timespec="seconds")


def _truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _gunzip(data: bytes) -> bytes:
    """A gzip file's content, at most ``_MAX_BILL_BYTES`` (a bigger one is refused)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        content = inflater.decompress(data, _MAX_BILL_BYTES)
    except zlib.error:
        raise Unreadable("the bill is not gzip") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise Unreadable("the bill is truncated or over the size limit")
    return content


def _segment(value: str) -> str:
    """``value`` as one URL path segment."""
    return quote(value, safe="")
