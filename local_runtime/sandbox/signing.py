"""HMAC-SHA256 signatures over merchant requests and notifications.

The sandbox shares one secret with the merchant (paycore). Merchant requests sign
``f"{timestamp}\\n{METHOD}\\n{path}\\n{body}"`` so a signature cannot be replayed on another
endpoint; notifications sign ``f"{timestamp}\\n{body}"``. The timestamp (unix seconds) must be
within 300 s of the receiver's clock, which bounds replays, as Stripe and WeChat Pay do.

The sandbox deliberately shares no code with paycore's adapter: it stands for a third party, and
two independent implementations of the protocol are what the adapter's tests check against
each other.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from local_runtime.sandbox.errors import ErrorCode, SandboxError

TIMESTAMP_HEADER = "Sandbox-Timestamp"
SIGNATURE_HEADER = "Sandbox-Signature"
TOLERANCE_SECONDS = 300


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def request_signature(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    """The hex signature of a merchant request (``path`` includes any ``?query``)."""
    return _hmac_hex(secret, f"{timestamp}\n{method.upper()}\n{path}\n".encode() + body)


def notification_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The hex signature of a notification body sent at ``timestamp``."""
    return _hmac_hex(secret, f"{timestamp}\n".encode() + body)


def unix_now() -> str:
    """The current time as the header value: whole unix seconds."""
    return str(int(time.time()))


def check_request_signature(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    *,
    method: str,
    path: str,
    body: bytes,
) -> None:
    """Raise a 401 ``SandboxError`` unless the request is signed with ``secret`` and fresh."""
    if not timestamp or not signature:
        raise SandboxError(
            401,
            ErrorCode.SIGNATURE_MISSING,
            f"sign the request with the {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers",
        )
    if not timestamp.isascii() or not timestamp.isdigit():
        raise SandboxError(
            401, ErrorCode.TIMESTAMP_OUT_OF_RANGE, f"{TIMESTAMP_HEADER} must be unix seconds"
        )
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        raise SandboxError(
            401,
            ErrorCode.TIMESTAMP_OUT_OF_RANGE,
            f"{TIMESTAMP_HEADER} is more than {TOLERANCE_SECONDS} s away from the sandbox clock",
        )
    expected = request_signature(secret, timestamp, method, path, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise SandboxError(
            401,
            ErrorCode.SIGNATURE_INVALID,
            "the signature does not match: sign "
            "'{timestamp}\\n{METHOD}\\n{path}\\n{body}' with HMAC-SHA256 and the shared secret",
        )
