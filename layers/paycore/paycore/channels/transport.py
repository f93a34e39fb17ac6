"""What the channel clients that speak HTTP themselves (sandbox, WeChat Pay, Alipay) share."""

from __future__ import annotations

import urllib.error


def failure_reason(exc: BaseException) -> str:
    """A short transport failure reason for logs and error details (never headers)."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"
