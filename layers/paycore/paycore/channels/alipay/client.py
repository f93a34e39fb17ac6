"""HTTP to Alipay's gateway for one app, with the standard library only (nothing more is
needed, so Lambda carries no HTTP dependency for it).

- A server call (``alipay.trade.query`` ...) is a POST to ``gateway_url``: the common
  parameters in the query string, ``biz_content`` in the form body, as Alipay's own SDKs send
  them, all signed with the app's key (``timestamp`` in Beijing time whatever the machine's
  zone). Its answer is ``{"<method>_response": {...}, "sign": ...}``, verified with Alipay's
  public key over the exact JSON text before anything is read.
- ``alipay.trade.page.pay`` is a signed URL for the buyer's browser. Alipay creates nothing
  until that URL is requested, so the adapter requests it itself, without following the
  redirect: ``302`` = the trade exists and ``Location`` is the cashier the buyer is sent to;
  ``200`` = an error page naming the code; ``5xx`` = Alipay's system error.

Error policy, which the payment state machine relies on: anything that leaves the outcome
unknown (timeout, connection error, 5xx, 408/425/429, an unexpected redirect, an answer we
cannot read or whose signature does not verify) raises ``ChannelUnavailable``: the caller must
query before doing anything else. An unsigned answer is trusted only as the gateway's refusal of
the request itself (40001/40002: an unknown app, a missing parameter), which Alipay cannot sign.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from html import unescape
from typing import Any, NoReturn
from urllib.parse import urlencode, urljoin, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from paycore import clock
from paycore.channels.alipay.signing import SIGN_TYPE, sign_request, signed_answer, verify
from paycore.channels.alipay.transformers import ResultCode, beijing
from paycore.channels.transport import failure_reason
from paycore.errors import ChannelUnavailable

logger = logging.getLogger(__name__)

PAGE_PAY = "alipay.trade.page.pay"
_MAX_ANSWER_BYTES = 1024 * 1024
_MAX_BILL_BYTES = 64 * 1024 * 1024
_RETRYABLE_4XX = frozenset({408, 425, 429})
# The gateway's own refusals of a request it could not attribute or parse: unsigned by nature.
_UNSIGNED_REFUSALS = frozenset({ResultCode.MISSING_ARGUMENTS, ResultCode.INVALID_ARGUMENTS})
# An error page names its codes: "40004 Business Failed: ACQ.CONTEXT_INCONSISTENT ...".
_PAGE_CODE = re.compile(r"\b(10000|20000|20001|40001|40002|40004|40006)\b")
_PAGE_SUB_CODE = re.compile(
    r"\b((?:aop\.)?ACQ\.[A-Z_]+|isv\.[a-z-]+|isp\.[a-z_.-]+|aop\.[a-z_.-]+)(?=[\s<:,;]|$)"
)


@dataclass(frozen=True)
class Answer:
    """A verified gateway answer: ``code`` ``10000`` or an error with its sub_code."""

    code: str
    msg: str
    sub_code: str | None
    sub_msg: str | None
    content: dict[str, Any]
    signed: bool

    @property
    def ok(self) -> bool:
        return self.code == ResultCode.SUCCESS.value

    def describe(self) -> str:
        return f"{self.code} {self.sub_code or self.msg}: {self.sub_msg or self.msg}"


@dataclass(frozen=True)
class PagePayAnswer:
    """What requesting a page.pay URL gave: the cashier (``location``) once created, or the
    codes an error page names."""

    location: str | None
    code: str | None = None
    sub_code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Download:
    content: bytes
    filename: str | None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Surface a 3xx instead of following it: page.pay's 302 is its answer."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class AlipayClient:
    """Signed calls of ``app_id`` to the gateway at ``gateway_url``."""

    def __init__(
        self,
        gateway_url: str,
        app_id: str,
        app_key: rsa.RSAPrivateKey,
        alipay_key: rsa.RSAPublicKey,
        timeout: float,
    ) -> None:
        parts = urlsplit(gateway_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError("the gateway URL must be an absolute http(s) URL without a query")
        if timeout <= 0:
            raise ValueError("the HTTP timeout must be positive")
        self.gateway_url = gateway_url
        self.app_id = app_id
        self.timeout = timeout
        self._app_key = app_key
        self._alipay_key = alipay_key
        self._opener = urllib.request.build_opener(_NoRedirects)

    # -- requests ------------------------------------------------------------------------------

    def signed_params(
        self, method: str, biz: dict[str, Any], **extra: str | None
    ) -> dict[str, str]:
        """Every parameter of a call, ``sign`` included: the common ones, ``extra``
        (``notify_url``, ``return_url``) when given, and ``biz_content`` as compact JSON."""
        params = {
            "app_id": self.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": SIGN_TYPE,
            "timestamp": beijing(clock.now()),
            "version": "1.0",
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        params.update({name: value for name, value in extra.items() if value})
        params["sign"] = sign_request(self._app_key, params)
        return params

    def page_pay_url(self, biz: dict[str, Any], notify_url: str, return_url: str | None) -> str:
        """The signed page.pay URL (GET), as a browser would open it."""
        params = self.signed_params(PAGE_PAY, biz, notify_url=notify_url, return_url=return_url)
        return f"{self.gateway_url}?{urlencode(params)}"

    def open_page_pay(self, url: str, reference: str) -> PagePayAnswer:
        """Request a page.pay URL as the buyer's browser would, without following redirects."""
        status, raw, headers = self._exchange(
            "GET", url, None, reference, limit=_MAX_ANSWER_BYTES, headers={}
        )
        if status in (301, 302, 303, 307):
            location = headers.get("Location")
            target = urljoin(self.gateway_url, location) if location else ""
            if urlsplit(target).scheme not in ("http", "https"):
                self.unavailable(reference, f"page.pay answered {status} without a usable Location")
            return PagePayAnswer(location=target)
        if status != 200:
            self.unavailable(reference, f"page.pay answered HTTP {status}")
        page = unescape(raw.decode("utf-8", "replace"))
        code, sub_code = _PAGE_CODE.search(page), _PAGE_SUB_CODE.search(page)
        return PagePayAnswer(
            location=None,
            code=code.group(1) if code else None,
            sub_code=sub_code.group(1) if sub_code else None,
            message=_page_text(page),
        )

    def call(self, method: str, biz: dict[str, Any], reference: str) -> Answer:
        """One server call; its verified answer. ``reference`` (the payment or refund id) only
        names the call in logs and errors."""
        params = self.signed_params(method, biz)
        form = {"biz_content": params.pop("biz_content")}
        url = f"{self.gateway_url}?{urlencode(params)}"
        body = urlencode(form).encode("utf-8")
        headers = {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"}
        status, raw, _ = self._exchange(
            "POST", url, body, reference, limit=_MAX_ANSWER_BYTES, headers=headers
        )
        if status != 200:
            self.unavailable(reference, f"{method} answered HTTP {status}")
        return self._answer(method, raw, reference)

    def download(self, url: str, reference: str) -> Download:
        """GET a bill file behind a ``bill_download_url``."""
        if urlsplit(url).scheme not in ("http", "https"):
            self.unavailable(reference, "the bill link is not an http(s) URL")
        status, raw, headers = self._exchange(
            "GET", url, None, reference, limit=_MAX_BILL_BYTES, headers={}
        )
        if status != 200:  # e.g. a link that expired (30 s): ask for a new one
            self.unavailable(reference, f"the bill download answered HTTP {status}")
        if len(raw) > _MAX_BILL_BYTES:
            self.unavailable(reference, "the bill file is too large")
        return Download(raw, headers.get_filename() if isinstance(headers, Message) else None)

    def unavailable(self, reference: str, reason: str) -> NoReturn:
        logger.warning("alipay channel unavailable for %s: %s", reference, reason)
        raise ChannelUnavailable(f"alipay channel: {reason}")

    # -- answers ------------------------------------------------------------------------------

    def _answer(self, method: str, raw: bytes, reference: str) -> Answer:
        name = method.replace(".", "_") + "_response"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.unavailable(reference, f"{method} answered with text that is not UTF-8")
        found = signed_answer(text, name)
        if found is None:
            self.unavailable(reference, f"{method} answered with something that is not an answer")
        signed_text, content, signature = found
        code = content.get("code")
        if not isinstance(code, str):
            self.unavailable(reference, f"{method} answered without a code")
        if signature is None:
            try:
                refusal = ResultCode(code) in _UNSIGNED_REFUSALS
            except ValueError:
                refusal = False
            if not refusal:
                self.unavailable(reference, f"{method} answered {code} unsigned")
        elif not verify(self._alipay_key, signed_text, signature):
            self.unavailable(
                reference, f"{method}: the answer's signature does not verify (alipay_public_key)"
            )
        sub_code, sub_msg = content.get("sub_code"), content.get("sub_msg")
        return Answer(
            code=code,
            msg=str(content.get("msg") or ""),
            sub_code=sub_code if isinstance(sub_code, str) else None,
            sub_msg=sub_msg if isinstance(sub_msg, str) else None,
            content=dict(content),
            signed=signature is not None,
        )

    # -- transport ----------------------------------------------------------------------------

    def _exchange(
        self,
        method: str,
        url: str,
        data: bytes | None,
        reference: str,
        *,
        limit: int,
        headers: dict[str, str],
    ) -> tuple[int, bytes, Message]:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked by the callers
            url,
            data=data,
            headers={"User-Agent": "paycore-alipay-adapter/1", **headers},
            method=method,
        )
        what = "page.pay" if method == "GET" and "?" in url else f"{method} gateway"
        try:
            status, raw, answer_headers = self._send(request, limit)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.unavailable(reference, f"{what} failed: {failure_reason(exc)}")
        if status >= 500 or status in _RETRYABLE_4XX or status < 200:
            self.unavailable(reference, f"{what} answered HTTP {status}")
        return status, raw, answer_headers

    def _send(self, request: urllib.request.Request, limit: int) -> tuple[int, bytes, Message]:
        """(status, body, headers) for every HTTP answer, error statuses included."""
        try:
            with self._opener.open(request, timeout=self.timeout) as reply:
                return int(reply.status), reply.read(limit + 1), reply.headers
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read(limit + 1), exc.headers


def _page_text(page: str) -> str:
    """An error page's words, without markup, for the error message (bounded)."""
    words = " ".join(re.sub(r"<[^>]*>", " ", page).split())
    return words[:300]
