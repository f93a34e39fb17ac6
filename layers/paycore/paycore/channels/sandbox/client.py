"""HTTP to one sandbox account, with the standard library only (the sandbox needs nothing
more, and Lambda then carries no extra dependency for it).

Error policy, which the payment state machine relies on: anything that leaves the outcome
unknown (timeout, connection error, 5xx, 408/425/429, a redirect, a body we cannot read) raises
``ChannelUnavailable``, and the caller must query before doing anything else. Every other answer
is returned as (HTTP status, JSON object) for the adapter to read.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

from pydantic import SecretStr

from paycore import clock
from paycore.channels.reading import Unreadable, json_object
from paycore.channels.sandbox.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_request
from paycore.channels.transport import failure_reason
from paycore.errors import ChannelUnavailable

logger = logging.getLogger(__name__)

_MAX_RESPONSE_BYTES = 1024 * 1024
_MAX_STATEMENT_BYTES = 64 * 1024 * 1024
# Statuses that mean "not processed, try again later" even though they are 4xx.
_RETRYABLE_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Download:
    """A file the sandbox served: its bytes, content type and suggested filename."""

    content: bytes
    content_type: str
    filename: str | None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The sandbox API never redirects; surface a 3xx instead of following it (a followed
    POST would silently turn into a GET)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class SandboxClient:
    """Signed requests to the sandbox account whose API root is ``base_url``."""

    def __init__(self, base_url: str, secret: SecretStr, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("the sandbox base URL must be an absolute http(s) URL")
        if not secret.get_secret_value():
            raise ValueError("the sandbox secret must not be empty")
        if timeout <= 0:
            raise ValueError("the HTTP timeout must be positive")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._path_prefix = parts.path.rstrip("/")
        self._secret = secret
        self._opener = urllib.request.build_opener(_NoRedirects)

    def call(
        self, method: str, path: str, payload: dict[str, Any] | None, reference: str
    ) -> tuple[int, dict[str, Any]]:
        """Send one signed JSON request; (HTTP status, JSON object) for any answer we can read.
        ``reference`` (the payment or refund id) only names the call in logs and errors."""
        data = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        status, raw, _ = self._exchange(method, path, data, reference, _MAX_RESPONSE_BYTES)
        try:
            return status, json_object(raw)
        except Unreadable as exc:
            self.unavailable(reference, f"{method} {path} answered {status}, unreadable: {exc}")

    def download(self, path: str, reference: str) -> tuple[int, Download | dict[str, Any]]:
        """GET a file: (200, the file) or (status, the JSON error body)."""
        status, raw, headers = self._exchange("GET", path, b"", reference, _MAX_STATEMENT_BYTES)
        if status == 200:
            return status, Download(
                content=raw,
                content_type=headers.get_content_type(),
                filename=headers.get_filename(),
            )
        try:
            return status, json_object(raw)
        except Unreadable as exc:
            self.unavailable(reference, f"GET {path} answered {status}, unreadable: {exc}")

    def unavailable(self, reference: str, reason: str) -> NoReturn:
        logger.warning("sandbox channel unavailable for %s: %s", reference, reason)
        raise ChannelUnavailable(f"sandbox channel: {reason}")

    def _exchange(
        self, method: str, path: str, data: bytes, reference: str, limit: int
    ) -> tuple[int, bytes, Any]:
        request = self._signed_request(method, path, data)
        try:
            status, raw, headers = self._send(request, limit)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.unavailable(reference, f"{method} {path} failed: {failure_reason(exc)}")
        if status >= 500 or status in _RETRYABLE_4XX or status < 200 or 300 <= status < 400:
            self.unavailable(reference, f"{method} {path} answered HTTP {status}")
        return status, raw, headers

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
            self.base_url + path,
            data=data if method != "GET" else None,
            headers=headers,
            method=method,
        )

    def _send(self, request: urllib.request.Request, limit: int) -> tuple[int, bytes, Any]:
        """(status, body, headers) for every HTTP answer, error statuses included."""
        try:
            with self._opener.open(request, timeout=self.timeout) as reply:
                return int(reply.status), reply.read(limit), reply.headers
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read(limit), exc.headers
