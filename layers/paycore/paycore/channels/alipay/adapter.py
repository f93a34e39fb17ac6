"""The Alipay channel's ``ChannelGateway``: one Alipay app (merchant account), computer-website
payment (``alipay.trade.page.pay``), RSA2 public-key mode.

Create. page.pay is a signed URL for the buyer's browser, and Alipay creates no trade until that
URL is requested. So the adapter requests it itself (``client.open_page_pay``, no redirects
followed): a ``302`` means the trade exists, and its ``Location`` (Alipay's cashier) is the
buyer's ``next_action``; a ``200`` error page is a refusal (``ChannelRejected``), or, when it
names Alipay's system error, an unknown outcome; a ``5xx`` or a timeout is an unknown outcome
(``ChannelUnavailable``). The same ``out_trade_no`` and amount always find the same trade, so a
retried create never makes a second one; ``time_expire`` is the order's deadline, so Alipay
closes the trade when we give up on it.

Not found. At Alipay a page.pay trade may not exist yet although the buyer holds its link (it
appears once the buyer logs in at the cashier; the simulator creates it at the first
request). The channel order id we return at create (``<out_trade_no>@<time_expire>``, see
``transformers.page_pay_order_id``) says the buyer got a link: with it,
``ACQ.TRADE_NOT_EXIST`` is PENDING until the link expires and CLOSED after; without it (a
create whose answer was lost, so nobody holds a link), it is NOT_FOUND, which proves the
account created nothing and lets the payment fail over.

Statuses. ``TRADE_CLOSED`` is an unpaid trade closed (by us, by expiry, by the buyer giving up:
CLOSED) or a paid trade fully refunded (SUCCEEDED: the money was taken; the refunds are their
own). Refunds are synchronous: ``fund_change`` ``Y`` means this call refunded; ``N`` (a repeat,
or a refund still processing) is settled by a refund query, as Alipay asks.
``ACQ.SELLER_BALANCE_NOT_ENOUGH`` is a refund that failed (FAILED); other refusals are
``ChannelRejected``. Alipay notifies a refund only once it succeeded; a failed refund, a
merchant's close and (at the simulator) an expiry are not notified: queries tell those.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import date
from typing import Any, ClassVar, NoReturn
from urllib.parse import parse_qsl, quote

from paycore import clock
from paycore.channels.alipay.client import AlipayClient, Answer, PagePayAnswer
from paycore.channels.alipay.settings import AlipaySettings
from paycore.channels.alipay.signing import SIGN_TYPE, verify_notification
from paycore.channels.alipay.transformers import (
    CURRENCY,
    ErrorMeaning,
    beijing,
    beijing_day,
    handed_out_until,
    meaning_of,
    page_pay_order_id,
    parse_beijing,
    payment_state,
    read_notification,
    refund_query_state,
    statement_lines,
    yuan,
)
from paycore.channels.answers import AnswerChecks
from paycore.channels.base import (
    MAX_NOTIFICATION_BYTES,
    NOTIFICATION_TOLERANCE_SECONDS,
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
from paycore.channels.reading import Unreadable
from paycore.clock import parse_rfc3339
from paycore.config import Settings
from paycore.errors import CallbackRejected, ChannelRejected

logger = logging.getLogger(__name__)

PRODUCT_CODE = "FAST_INSTANT_TRADE_PAY"
QUERY = "alipay.trade.query"
CLOSE = "alipay.trade.close"
REFUND = "alipay.trade.refund"
REFUND_QUERY = "alipay.trade.fastpay.refund.query"
BILL_URL = "alipay.data.dataservice.bill.downloadurl.query"
MAX_SUBJECT = 256
MAX_REFUND_REASON = 256
MAX_PASSBACK = 512
MAX_URL = 256  # notify_url and return_url
_MAX_NOTIFICATION_FIELDS = 100
_FORM = "application/x-www-form-urlencoded"


class AlipayGateway(AnswerChecks):
    """``ChannelGateway`` for the Alipay app described by ``settings``, routing account
    ``account_id``."""

    name: ClassVar[str] = "alipay"
    next_action_type: ClassVar[NextActionType] = NextActionType.REDIRECT

    def __init__(self, settings: AlipaySettings, *, account_id: str, timeout: float = 5.0):
        if not account_id:
            raise ValueError("the Alipay account id must not be empty")
        keys = settings.load_keys()  # once per gateway; ValueError when a key does not load
        self.account_id = account_id
        self.simulator = settings.simulator
        self.app_id = settings.app_id
        self._alipay_key = keys.alipay_public_key
        self._client = AlipayClient(
            settings.gateway_url,
            settings.app_id,
            keys.app_private_key,
            keys.alipay_public_key,
            timeout,
        )

    def __repr__(self) -> str:  # never shows a key
        return (
            f"AlipayGateway(gateway_url={self._client.gateway_url!r}, app_id={self.app_id!r}, "
            f"account_id={self.account_id!r}, timeout={self._client.timeout})"
        )

    def _unavailable(self, reference: str, reason: str) -> NoReturn:
        self._client.unavailable(reference, reason)

    # -- payments ----------------------------------------------------------------------------

    @metered
    def create_order(self, request: CreateChannelOrder) -> ChannelOrder:
        """Create (or find again) the page.pay trade by requesting its signed URL; the buyer
        is sent to the cashier it redirects to."""
        reference = request.out_trade_no
        self._check_currency(request.currency)
        expires_at = parse_rfc3339(request.expires_at)
        biz: dict[str, Any] = {
            "out_trade_no": request.out_trade_no,
            "total_amount": yuan(request.amount),
            "subject": request.subject[:MAX_SUBJECT],
            "product_code": PRODUCT_CODE,
            "time_expire": beijing(expires_at),
        }
        passback = self._passback(request.simulate, reference)
        if passback is not None:
            biz["passback_params"] = passback
        url = self._client.page_pay_url(
            biz, request.notify_url, self._return_url(request.return_url, reference)
        )
        answer = self._client.open_page_pay(url, reference)
        if answer.location is None:
            self._refuse_page(answer, reference)
        return ChannelOrder(
            out_trade_no=request.out_trade_no,
            channel_order_id=page_pay_order_id(request.out_trade_no, expires_at),
            next_action=NextAction.redirect(answer.location),
        )

    @metered
    def query_order(
        self, out_trade_no: str, channel_order_id: str | None = None
    ) -> ChannelPaymentState:
        """The trade as Alipay sees it. ``ACQ.TRADE_NOT_EXIST`` is NOT_FOUND only when no
        buyer holds a link of ours (``channel_order_id`` None): see the module docstring."""
        answer = self._client.call(QUERY, {"out_trade_no": out_trade_no}, out_trade_no)
        if not answer.ok:
            meaning = meaning_of(answer.code, answer.sub_code)
            if meaning is ErrorMeaning.NOT_FOUND:
                return self._not_created(out_trade_no, channel_order_id)
            self._refuse(answer, meaning, out_trade_no)
        return self._trade(answer, out_trade_no, channel_order_id)

    @metered
    def close_order(
        self, out_trade_no: str, channel_order_id: str | None = None
    ) -> ChannelPaymentState:
        """Close the trade so it can no longer be paid: CLOSED, or the paid trade's state
        (SUCCEEDED) when the buyer paid first (``ACQ.TRADE_STATUS_ERROR``), or NOT_FOUND when
        Alipay has no trade and no buyer holds a link of ours."""
        answer = self._client.call(CLOSE, {"out_trade_no": out_trade_no}, out_trade_no)
        if answer.ok:
            self._check_same(out_trade_no, answer.content.get("out_trade_no"), out_trade_no)
            return ChannelPaymentState(
                out_trade_no,
                ChannelPaymentStatus.CLOSED,
                channel_order_id=channel_order_id,
                channel_transaction_id=_optional(answer.content, "trade_no"),
            )
        meaning = meaning_of(answer.code, answer.sub_code)
        match meaning:
            case ErrorMeaning.TRADE_STATUS:  # paid first (or already refunded): say how
                return self.query_order(out_trade_no, channel_order_id)
            case ErrorMeaning.NOT_FOUND if handed_out_until(out_trade_no, channel_order_id):
                # The buyer holds a link but never opened it, so Alipay has no trade to close.
                # It cannot be paid after time_expire; a payment before that is notified and
                # refunded as a late payment.
                logger.info("alipay close of %s: the buyer never opened the page", out_trade_no)
                return ChannelPaymentState(
                    out_trade_no, ChannelPaymentStatus.CLOSED, channel_order_id=channel_order_id
                )
            case ErrorMeaning.NOT_FOUND:
                return ChannelPaymentState(out_trade_no, ChannelPaymentStatus.NOT_FOUND)
            case _:
                self._refuse(answer, meaning, out_trade_no)

    # -- refunds -----------------------------------------------------------------------------

    @metered
    def refund(self, request: CreateChannelRefund) -> ChannelRefundState:
        """Refund ``amount`` of a paid trade; ``out_request_no`` is our refund id, so a retry
        never refunds twice. SUCCEEDED when this call moved the money (``fund_change`` Y);
        otherwise the refund query says (a repeat: SUCCEEDED; still processing: PENDING).
        FAILED for ``ACQ.SELLER_BALANCE_NOT_ENOUGH``; ``ChannelRejected`` for any other
        refusal (not paid, more than paid, the refund id reused for another amount);
        ``ChannelUnavailable`` when the outcome is unknown."""
        reference = request.out_refund_no
        self._check_currency(request.currency)
        biz: dict[str, Any] = {
            "out_trade_no": request.out_trade_no,
            "refund_amount": yuan(request.amount),
            "out_request_no": request.out_refund_no,
        }
        if request.reason:
            biz["refund_reason"] = request.reason[:MAX_REFUND_REASON]
        answer = self._client.call(REFUND, biz, reference)
        if not answer.ok:
            meaning = meaning_of(answer.code, answer.sub_code)
            if meaning is ErrorMeaning.REFUND_FAILED:
                logger.info("alipay refund %s failed: %s", reference, answer.describe())
                return ChannelRefundState(
                    out_refund_no=request.out_refund_no,
                    out_trade_no=request.out_trade_no,
                    status=ChannelRefundStatus.FAILED,
                    amount=request.amount,
                    currency=CURRENCY,
                    failure_code="merchant_balance_insufficient",
                    failure_message=(
                        f"Alipay could not refund: {answer.sub_msg or answer.msg} "
                        f"({answer.sub_code})"
                    ),
                )
            self._refuse(answer, meaning, reference)
        content = answer.content
        self._check_same(request.out_trade_no, content.get("out_trade_no"), reference)
        if content.get("fund_change") == "Y":
            return ChannelRefundState(
                out_refund_no=request.out_refund_no,
                out_trade_no=request.out_trade_no,
                status=ChannelRefundStatus.SUCCEEDED,
                amount=request.amount,
                currency=CURRENCY,
            )
        state = self.query_refund(request.out_trade_no, request.out_refund_no)
        if state.status is ChannelRefundStatus.NOT_FOUND:  # accepted a moment ago: not yet seen
            return ChannelRefundState(
                request.out_refund_no, request.out_trade_no, ChannelRefundStatus.PENDING
            )
        return state

    @metered
    def query_refund(self, out_trade_no: str, out_refund_no: str) -> ChannelRefundState:
        """The refund as Alipay sees it: SUCCEEDED (``REFUND_SUCCESS``), PENDING (received,
        processing), NOT_FOUND (not received, or failed: Alipay does not tell them apart; ask
        for the refund again with the same id, which refunds or answers the failure)."""
        biz = {
            "out_trade_no": out_trade_no,
            "out_request_no": out_refund_no,
            "query_options": ["gmt_refund_pay"],
        }
        answer = self._client.call(REFUND_QUERY, biz, out_refund_no)
        if not answer.ok:
            meaning = meaning_of(answer.code, answer.sub_code)
            if meaning is ErrorMeaning.NOT_FOUND:
                return ChannelRefundState(
                    out_refund_no, out_trade_no, ChannelRefundStatus.NOT_FOUND
                )
            self._refuse(answer, meaning, out_refund_no)
        self._check_same(out_trade_no, answer.content.get("out_trade_no"), out_refund_no)
        return self._readable(
            lambda content: refund_query_state(content, out_trade_no, out_refund_no),
            answer.content,
            out_refund_no,
        )

    # -- notifications -----------------------------------------------------------------------

    def parse_notification(
        self, body: bytes, headers: Mapping[str, str]
    ) -> ChannelPaymentState | ChannelRefundState:
        """Verify first (size, form shape, RSA2 signature with this account's Alipay key,
        this app, ``notify_time`` within five minutes), then read: a payment's state, or a
        refund's (``out_biz_no``). ``CallbackRejected`` for anything else."""
        if len(body) > MAX_NOTIFICATION_BYTES:
            raise CallbackRejected(f"an Alipay notification is at most {MAX_NOTIFICATION_BYTES} B")
        content_type = lower_headers(headers).get("content-type", _FORM)
        if content_type.split(";")[0].strip().lower() != _FORM:
            raise CallbackRejected("an Alipay notification is a form post")
        fields = _form_fields(body)
        if not fields.get("sign"):
            raise CallbackRejected("unsigned Alipay notification")
        if fields.get("sign_type") != SIGN_TYPE:
            raise CallbackRejected(f"an Alipay notification is signed {SIGN_TYPE}")
        if not verify_notification(self._alipay_key, fields):
            raise CallbackRejected("the Alipay notification's signature does not verify")
        if fields.get("app_id") != self.app_id:
            raise CallbackRejected("the Alipay notification is for another app")
        try:
            sent = parse_beijing(fields.get("notify_time", ""))
        except Unreadable:
            raise CallbackRejected("the Alipay notification has no readable notify_time") from None
        if abs((clock.now() - sent).total_seconds()) > NOTIFICATION_TOLERANCE_SECONDS:
            raise CallbackRejected("stale Alipay notification (notify_time too far from now)")
        if fields.get("charset", "utf-8").lower() != "utf-8":
            raise CallbackRejected("an Alipay notification to paycore is UTF-8")
        try:
            return read_notification(fields)
        except Unreadable as exc:
            raise CallbackRejected(f"malformed Alipay notification: {exc}") from None

    def acknowledge(self) -> CallbackAck:
        """What Alipay needs to stop resending: HTTP 200 and the seven characters
        ``success``."""
        return CallbackAck(200, "success", content_type="text/plain")

    # -- statements --------------------------------------------------------------------------

    @metered
    def fetch_statement(self, day: date) -> ChannelStatement:
        """The app's trade bill of ``day`` (a Beijing day): the ``.csv.zip`` Alipay serves
        behind ``bill_download_url``, kept as it came, and its lines. A day without trades
        has no bill at Alipay (``isp.bill_not_exist``): an empty statement. Alipay publishes
        a day's bill the next morning (Beijing) and answers the same before that, so
        reconcile day D once D+1 has begun in Beijing and the bill is out."""
        reference = f"bill {day.isoformat()}"
        if day > beijing_day(clock.now()):
            raise ChannelRejected(f"Alipay has no bill for {day}, a day that has not begun")
        answer = self._client.call(
            BILL_URL, {"bill_type": "trade", "bill_date": day.isoformat()}, reference
        )
        if not answer.ok:
            meaning = meaning_of(answer.code, answer.sub_code)
            if meaning is ErrorMeaning.NO_BILL:
                return ChannelStatement(
                    day=day,
                    filename=f"{self.app_id}_{day:%Y%m%d}_no_bill.txt",
                    content_type="text/plain",
                    content=b"",
                    lines=(),
                )
            self._refuse(answer, meaning, reference)
        url = answer.content.get("bill_download_url")
        if not isinstance(url, str) or not url:
            self._client.unavailable(reference, "the answer has no bill_download_url")
        if not self.simulator and not url.startswith("https://"):
            self._client.unavailable(reference, "a real account's bill link must be https")
        file = self._client.download(url, reference)
        lines = self._readable(
            lambda content: statement_lines(content, day), file.content, reference
        )
        return ChannelStatement(
            day=day,
            filename=file.filename or f"{self.app_id}_{day:%Y%m%d}.csv.zip",
            content_type="application/zip",
            content=file.content,
            lines=lines,
        )

    # -- reading answers ---------------------------------------------------------------------

    def _trade(
        self, answer: Answer, out_trade_no: str, channel_order_id: str | None
    ) -> ChannelPaymentState:
        """A query's trade; its channel order id is ours when we have one, else its
        out_trade_no (the trade exists: whoever adopts it holds a link to it)."""
        state = self._readable(
            lambda content: payment_state(
                content, channel_order_id=channel_order_id or out_trade_no
            ),
            answer.content,
            out_trade_no,
        )
        self._check_same(out_trade_no, state.out_trade_no, out_trade_no)
        return state

    def _not_created(self, out_trade_no: str, channel_order_id: str | None) -> ChannelPaymentState:
        """Alipay has no trade. Nobody holds a link: NOT_FOUND. The buyer holds one and has
        not opened it: PENDING until it expires, then CLOSED (it can no longer be paid)."""
        until = handed_out_until(out_trade_no, channel_order_id)
        if until is None:
            return ChannelPaymentState(out_trade_no, ChannelPaymentStatus.NOT_FOUND)
        status = (
            ChannelPaymentStatus.PENDING if clock.now() < until else ChannelPaymentStatus.CLOSED
        )
        return ChannelPaymentState(out_trade_no, status, channel_order_id=channel_order_id)

    def _check_same(self, asked: str, answered: object, reference: str) -> None:
        if answered is not None and answered != asked:
            self._client.unavailable(reference, f"the answer is about another trade ({answered})")

    def _check_currency(self, currency: str) -> None:
        if currency != CURRENCY:
            raise ChannelRejected(
                f"Alipay computer-website payment takes {CURRENCY} only, not {currency}"
            )

    def _passback(self, simulate: Mapping[str, Any] | None, reference: str) -> str | None:
        """The switches as page.pay's ``passback_params`` (URL-encoded JSON, which Alipay
        hands back untouched), for a simulator account only."""
        if not simulate:
            return None
        if not self.simulator:
            logger.warning(
                "simulate dropped for %s: alipay account %s is not a simulator",
                reference,
                self.account_id,
            )
            return None
        text = quote(json.dumps(dict(simulate), separators=(",", ":"), sort_keys=True), safe="")
        if len(text) > MAX_PASSBACK:
            raise ChannelRejected(f"simulate is too long for passback_params ({len(text)} > 512)")
        return text

    def _return_url(self, return_url: str | None, reference: str) -> str | None:
        """Alipay takes a return_url of at most 256 characters; a longer one is left out
        (the buyer then stays on Alipay's result page) rather than failing the payment."""
        if return_url is not None and len(return_url) > MAX_URL:
            logger.warning(
                "return_url of %s left out: Alipay takes %d characters", reference, MAX_URL
            )
            return None
        return return_url

    def _refuse_page(self, answer: PagePayAnswer, reference: str) -> NoReturn:
        """page.pay answered an error page: Alipay's system error leaves the outcome unknown;
        a page that names no code proves nothing either; any other code is a refusal."""
        if answer.code is None and answer.sub_code is None:
            self._client.unavailable(reference, "page.pay answered a page that names no code")
        meaning = meaning_of(answer.code or "40004", answer.sub_code)
        if meaning is ErrorMeaning.UNAVAILABLE:
            self._client.unavailable(reference, f"page.pay answered {answer.sub_code}")
        logger.info("alipay refused page.pay %s: %s %s", reference, answer.code, answer.sub_code)
        raise ChannelRejected(f"Alipay refused the payment ({answer.sub_code}): {answer.message}")

    def _refuse(self, answer: Answer, meaning: ErrorMeaning, reference: str) -> NoReturn:
        if meaning is ErrorMeaning.UNAVAILABLE:
            self._client.unavailable(reference, answer.describe())
        logger.info("alipay refused %s: %s", reference, answer.describe())
        raise ChannelRejected(f"Alipay refused the request ({answer.describe()})")


def create_gateway(
    account_id: str, credentials: Mapping[str, Any], settings: Settings
) -> AlipayGateway:
    """The registry's factory: a gateway for ``account_id`` from its secret's JSON
    (``pydantic.ValidationError`` when the credentials are not an Alipay account's,
    ``ValueError`` when a key does not load)."""
    return AlipayGateway(
        AlipaySettings.model_validate(credentials),
        account_id=account_id,
        timeout=settings.channel_timeout_seconds,
    )


def _optional(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) and value else None


def _form_fields(body: bytes) -> dict[str, str]:
    """A notification's form fields (UTF-8), each name once."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=True,
            max_num_fields=_MAX_NOTIFICATION_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise CallbackRejected("an Alipay notification is a UTF-8 form") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise CallbackRejected("an Alipay notification names each field once")
    return fields
