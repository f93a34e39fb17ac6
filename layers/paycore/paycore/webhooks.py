"""Standard Webhooks (https://www.standardwebhooks.com/): sign an event and POST it.

Signed by the ``standardwebhooks`` library (the reference implementation merchants verify
with; pure Python, no dependency): ``v1,<base64 HMAC-SHA256>`` over
``"{webhook-id}.{webhook-timestamp}.{body}"`` keyed with the base64-decoded endpoint secret
(``whsec_<base64>``). During a secret rotation a delivery is signed with every live secret, the
signatures space-separated in one ``webhook-signature`` header, as the specification allows: a
receiver holding either secret verifies it. ``webhook-id`` is the event id, stable across
retries so receivers can dedupe; ``webhook-timestamp`` is fresh on every attempt because
receivers reject signatures older than five minutes.

Nothing here logs: the caller logs ids and status codes. The secret, the signature and the
body never leave this module except on the wire.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import ipaddress
import secrets as random_source
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from standardwebhooks import Webhook

from paycore.http_urls import is_http_url

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32
USER_AGENT = "paycore-webhooks/1"


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(random_source.token_bytes(SECRET_BYTES)).decode()


def check_secret(secret: str) -> str:
    """``secret`` if it is a usable ``whsec_<base64>`` secret (padding optional, as the spec
    allows); ``ValueError`` otherwise, so a broken secret fails loudly instead of signing with
    whatever a lenient decoder makes of it."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("webhook secret is not base64") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return secret


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value of ``body`` sent as ``msg_id`` at ``timestamp``: one
    ``v1,...`` signature per secret (the current one first), space-separated."""
    if not secrets:
        raise ValueError("no webhook secret to sign with")
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    text = body.decode("utf-8")
    return " ".join(
        Webhook(check_secret(secret)).sign(msg_id=msg_id, timestamp=moment, data=text)
        for secret in secrets
    )


def signed_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Every header of one delivery attempt."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secrets, msg_id, timestamp, body),
    }


@dataclass(frozen=True)
class DeliveryResult:
    """What one POST achieved. ``error`` is a short reason safe to log (never the answer's
    body, which belongs to the merchant)."""

    delivered: bool
    status_code: int | None = None
    error: str | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a delivery: following it would re-send (or, for 302/303,
    turn into a GET without the body) to a URL the merchant never registered."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def is_deliverable_url(url: str) -> bool:
    """Only absolute http(s) URLs a request can carry as written (``paycore.http_urls``): no
    file://, ftp:// or other schemes urllib would open."""
    return is_http_url(url)


def resolves_to_private_address(url: str) -> bool:
    """Whether the URL's host is, or resolves to, an address no merchant endpoint should have:
    loopback, private ranges, link-local (cloud metadata), multicast, reserved. Webhooks run
    inside our network, so without this check a merchant could make us POST to our own
    internals (server-side request forgery). Unresolvable hosts count as private: no request."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError, UnicodeError):
        return True
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global or address.is_multicast:
            return True
    return False


def _refusal(url: str, allow_private_targets: bool) -> str | None:
    """Why no request may be sent to ``url``, or None."""
    if not is_deliverable_url(url):
        return "unsupported webhook URL"
    if not allow_private_targets and resolves_to_private_address(url):
        return "webhook URL leads to a private address"
    return None


def post_webhook(
    url: str,
    secrets: Sequence[str],
    msg_id: str,
    body: bytes,
    *,
    timeout: float,
    allow_private_targets: bool = False,
) -> DeliveryResult:
    """POST one delivery signed with ``secrets`` (see ``sign``). 2xx is delivered; any other
    status, a redirect, a timeout or a connection error is a failure the caller may retry.
    URLs that lead to private addresses are refused unless ``allow_private_targets`` (local
    development)."""
    refusal = _refusal(url, allow_private_targets)
    if refusal is not None:
        return DeliveryResult(delivered=False, error=refusal)
    headers = signed_headers(secrets, msg_id, int(time.time()), body)
    # The scheme was checked above: http(s) only.
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return DeliveryResult(delivered=False, status_code=exc.code, error=f"HTTP {exc.code}")
    except urllib.error.URLError as exc:
        return DeliveryResult(delivered=False, error=_reason(exc.reason))
    except (OSError, http.client.HTTPException) as exc:
        return DeliveryResult(delivered=False, error=_reason(exc))
    if 200 <= status < 300:
        return DeliveryResult(delivered=True, status_code=status)
    return DeliveryResult(delivered=False, status_code=status, error=f"HTTP {status}")


def _reason(exc: object) -> str:
    """A loggable reason: the kind of failure, without addresses or payloads."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    return f"connection error ({type(exc).__name__})"
