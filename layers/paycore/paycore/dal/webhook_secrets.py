"""Webhook signing secrets at rest: sealed with the stack's KMS key, never stored in clear.

A signing secret must be usable for HMAC, so it cannot be kept as a hash. Each one is
encrypted with KMS ``Encrypt`` under the template's ``WebhookSecretKey`` and stored as that
ciphertext in the endpoint's item. The encryption context names the merchant and the endpoint,
so a ciphertext copied into another endpoint's item does not decrypt there. The API function
may only encrypt (it shows a new secret once, from the value it just made); only the notifier
may decrypt.

Why KMS rather than one Secrets Manager secret per endpoint: a key costs $1 a month for the
whole stack and $0.03 per 10,000 requests, and an endpoint costs nothing at rest (a ~200-byte
ciphertext in its DynamoDB item); a Secrets Manager secret would cost $0.40 a month per
endpoint, $0.05 per 10,000 reads, and a per-region secrets quota. Decrypted secrets are cached
per container for ``CACHE_SECONDS``, keyed by the ciphertext (a rotation makes a new one), so a
busy endpoint costs at most one Decrypt per container per five minutes.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping

from botocore.exceptions import BotoCoreError, ClientError

from paycore.aws import client
from paycore.config import get_settings
from paycore.errors import ServiceUnavailable

CACHE_SECONDS = 300.0
_CACHE_SIZE = 1024
_cache: OrderedDict[tuple[bytes, tuple[tuple[str, str], ...]], tuple[float, str]] = OrderedDict()
_lock = threading.Lock()


def encryption_context(merchant_id: str, endpoint_id: str) -> dict[str, str]:
    return {"merchant_id": merchant_id, "webhook_endpoint_id": endpoint_id}


def _key_id() -> str:
    key_id = get_settings().webhook_secret_key_id
    if not key_id:
        raise RuntimeError("WEBHOOK_SECRET_KEY_ID is not set")
    return key_id


def seal(secret: str, context: Mapping[str, str]) -> bytes:
    """The ciphertext of ``secret`` under the webhook secret key, bound to ``context``."""
    try:
        answer = client("kms").encrypt(
            KeyId=_key_id(), Plaintext=secret.encode(), EncryptionContext=dict(context)
        )
    except (ClientError, BotoCoreError) as exc:
        raise ServiceUnavailable(
            "webhook secrets cannot be sealed now; retry shortly", code="service_unavailable"
        ) from exc
    return bytes(answer["CiphertextBlob"])


def unseal(ciphertext: bytes, context: Mapping[str, str]) -> str:
    """The secret sealed in ``ciphertext`` (cached ``CACHE_SECONDS``). KMS refuses a
    ciphertext whose context differs: that ``ClientError`` is raised as it is (a tampered
    item is a bug to page about, not a retry)."""
    key = (bytes(ciphertext), tuple(sorted(context.items())))
    now = time.monotonic()
    with _lock:
        cached = _cache.get(key)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
    try:
        answer = client("kms").decrypt(CiphertextBlob=key[0], EncryptionContext=dict(context))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidCiphertextException":
            raise
        raise ServiceUnavailable("webhook secrets cannot be read now") from exc
    except BotoCoreError as exc:
        raise ServiceUnavailable("webhook secrets cannot be read now") from exc
    secret = bytes(answer["Plaintext"]).decode()
    with _lock:
        _cache[key] = (now, secret)
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return secret


def clear_cache() -> None:
    """Forget every decrypted secret (tests; a new deployment in the same process)."""
    with _lock:
        _cache.clear()
