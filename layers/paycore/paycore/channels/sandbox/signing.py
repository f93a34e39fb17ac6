"""The sandbox's HMAC-SHA256 signatures (standard library only: ``hmac`` is all it needs).

Merchant requests carry ``Sandbox-Timestamp`` (unix seconds) and ``Sandbox-Signature``, the
hex HMAC-SHA256 of ``f"{timestamp}\\n{METHOD}\\n{path}\\n{body}"`` with the account's secret;
notifications carry the same headers over ``f"{timestamp}\\n{body}"``. Both are accepted only
within ``NOTIFICATION_TOLERANCE_SECONDS`` of our clock.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

from paycore import clock
from paycore.channels.base import NOTIFICATION_TOLERANCE_SECONDS
from paycore.errors import CallbackRejected

TIMESTAMP_HEADER = "Sandbox-Timestamp"
SIGNATURE_HEADER = "Sandbox-Signature"


def _text(secret: SecretStr | str) -> str:
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


def sign_request(
    secret: SecretStr | str, timestamp: str, method: str, path: str, body: bytes
) -> str:
    """The hex signature of a merchant request (``path`` as sent, with any ``?query``)."""
    message = f"{timestamp}\n{method.upper()}\n{path}\n".encode() + body
    return hmac.new(_text(secret).encode(), message, hashlib.sha256).hexdigest()


def sign_notification(secret: SecretStr | str, timestamp: str, body: bytes) -> str:
    """The hex signature the sandbox puts on a notification body."""
    message = f"{timestamp}\n".encode() + body
    return hmac.new(_text(secret).encode(), message, hashlib.sha256).hexdigest()


def check_notification_signature(
    secret: SecretStr, timestamp: str, signature: str, body: bytes
) -> None:
    """``CallbackRejected`` unless the notification is signed with ``secret`` and fresh."""
    if not timestamp or not signature:
        raise CallbackRejected("unsigned sandbox notification")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise CallbackRejected(f"{TIMESTAMP_HEADER} is not unix seconds")
    if abs(clock.now().timestamp() - int(timestamp)) > NOTIFICATION_TOLERANCE_SECONDS:
        raise CallbackRejected("stale sandbox notification")
    expected = sign_notification(secret, timestamp, body)
    given = signature.strip().lower().encode("utf-8", "replace")
    if not hmac.compare_digest(expected.encode(), given):
        raise CallbackRejected("sandbox notification signature does not match")
