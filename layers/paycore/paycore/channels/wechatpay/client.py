"""HTTP to one WeChat Pay merchant account, with the standard library (nothing more is needed,
and Lambda then carries no HTTP dependency for it).

Every request is signed by the merchant (``signing.authorization``) and every answer is believed
only once it verifies with this account's WeChat Pay public key (``signing.check_signature``),
error answers included: a forged ``ORDER_NOT_EXIST`` must never make paycore think nothing was
created. The bill file itself is not signed; the adapter checks it against the SHA1 of a signed
answer.

Error policy, which the payment state machine relies on: anything that leaves the outcome
unknown (timeout, connection error, 5xx, 408/425/429, a redirect, an answer that does not
verify or that we cannot read) raises ``ChannelUnavailable``, and the caller must query before
doing anything else. Every other answer is returned for the adapter to read.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

from paycore import clock
from paycore.channels.base import lower_headers
from paycore.channels.reading import Unreadable, json_object
from paycore.channels.transport import failure_reason
from paycore.channels.wechatpay.settings import WechatPaySettings
from paycore.channels.wechatpay.signing import (
    SERIAL_HEADER,
    SignatureProblem,
    authorization,
    check_signature,
    new_nonce,
)
from paycore.errors import ChannelUnavailable

logger = logging.getLogger(__name__)

USER_AGENT = "paycore-wechatpay-adapter/1"
_MAX_ANSWER_BYTES = 1024 * 1024
# Statuses that mean "not processed, try again later" even though they are 4xx.
_RETRYABLE_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Answer:
    """A verified answer: its HTTP status, its JSON object (None for an empty body, e.g. the
    204 of a close) and WeChat Pay's ``Request-ID`` (for support requests)."""

    status: int
    body: dict[str, Any] | None
    request_id: str | None

    def json(self) -> dict[str, Any]:
        """The JSON object (``Unreadable`` for an empty answer)."""
        if self.body is None:
            raise Unreadable("the answer has no body")
        return self.body


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """WeChat Pay's API never redirects; surface a 3xx instead of following it (a followed POST
    would silently turn into a GET, and a signed request would go elsewhere)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WechatPayClient:
    """Signed requests to WeChat Pay API v3 for the merchant ``settings`` describes."""

    def __init__(self, settings: WechatPaySettings, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError("the HTTP timeout must be positive")
        parts = urlsplit(settings.api_base_url)
        self.base_url = settings.api_base_url
        self.timeout = timeout
        self._origin = (parts.scheme, parts.netloc)
        self._path_prefix = parts.path.rstrip("/")
        self._settings = settings
        self._opener = urllib.request.build_opener(_NoRedirects)

    def call(
        self,
        method: str,
        path: str,
        reference: str,
        *,
        query: dict[str, str] | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Answer:
        """One signed JSON request to ``path`` (its segments already quoted); its verified
        answer. ``reference`` (the payment or refund id) only names the call in logs and
        errors."""
        target = self._path_prefix + path + (f"?{urlencode(query)}" if query else "")
        data = b""
        if payload is not None:
            data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        status, raw, headers = self._exchange(method, target, data, reference, _MAX_ANSWER_BYTES)
        return self._verified(f"{method} {path}", status, raw, headers, reference)

    def download(self, url: str, reference: str, limit: int) -> bytes | Answer:
        """GET a bill file from a ``download_url`` (signed like any call; the file is not
        signed): its bytes, or the verified error answer. The URL must be on the API's own
        host."""
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != self._origin or not parts.path.startswith("/"):
            self.unavailable(reference, "the bill's download_url is not on the API's host")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        status, raw, headers = self._exchange("GET", target, b"", reference, limit)
        if status == 200:
            return raw
        return self._verified(f"GET {parts.path}", status, raw, headers, reference)

    def unavailable(self, reference: str, reason: str) -> NoReturn:
        logger.warning("wechatpay channel unavailable for %s: %s", reference, reason)
        raise ChannelUnavailable(f"wechatpay channel: {reason}")

    # -- the exchange --------------------------------------------------------------------------

    def _exchange(
        self, method: str, target: str, data: bytes, reference: str, limit: int
    ) -> tuple[int, bytes, Any]:
        request = self._signed_request(method, target, data)
        try:
            status, raw, headers = self._send(request, limit)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.unavailable(reference, f"{method} {_path(target)} failed: {failure_reason(exc)}")
        if status >= 500 or status in _RETRYABLE_4XX or status < 200 or 300 <= status < 400:
            self.unavailable(reference, f"{method} {_path(target)} answered HTTP {status}")
        return status, raw, headers

    def _verified(self, call: str, status: int, raw: bytes, headers: Any, reference: str) -> Answer:
        """The answer once it verifies (``call`` names the request in errors)."""
        lowered = lower_headers(dict(headers.items()))
        request_id = lowered.get("request-id")
        try:
            check_signature(
                lowered,
                raw,
                public_key=self._settings.wechatpay_key,
                public_key_id=self._settings.wechatpay_public_key_id,
                now=clock.now().timestamp(),
            )
        except SignatureProblem as exc:
            self.unavailable(
                reference,
                f"{call} answered HTTP {status} that does not verify ({exc}); "
                f"Request-ID {request_id}",
            )
        if not raw:
            return Answer(status, None, request_id)
        try:
            return Answer(status, json_object(raw), request_id)
        except Unreadable as exc:
            self.unavailable(reference, f"{call} answered {status}, unreadable: {exc}")

    def _signed_request(self, method: str, target: str, data: bytes) -> urllib.request.Request:
        settings = self._settings
        headers = {
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            # Public-key mode: the key WeChat Pay is to sign its answer with.
            SERIAL_HEADER: settings.wechatpay_public_key_id,
            "Authorization": authorization(
                mchid=settings.mchid,
                serial_no=settings.merchant_serial_no,
                private_key=settings.merchant_key,
                method=method,
                target=target,
                body=data,
                timestamp=str(int(clock.now().timestamp())),
                nonce=new_nonce(),
            ),
        }
        if method != "GET":
            headers["Content-Type"] = "application/json"
        scheme, netloc = self._origin
        return urllib.request.Request(  # noqa: S310 - the scheme is checked by the settings
            f"{scheme}://{netloc}{target}",
            data=data if method != "GET" else None,
            headers=headers,
            method=method,
        )

    def _send(self, request: urllib.request.Request, limit: int) -> tuple[int, bytes, Any]:
        """(status, body, headers) for every HTTP answer, error statuses included; a body over
        ``limit`` is a ValueError (the outcome stays unknown)."""
        try:
            with self._opener.open(request, timeout=self.timeout) as reply:
                return int(reply.status), _read(reply, limit), reply.headers
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, _read(exc, limit), exc.headers


def _read(reply: Any, limit: int) -> bytes:
    raw: bytes = reply.read(limit + 1)
    if len(raw) > limit:
        raise ValueError(f"the answer is over {limit} bytes")
    return raw


def _path(target: str) -> str:
    """The path of a request target, without its query (which may carry a download token)."""
    return target.split("?", 1)[0]
