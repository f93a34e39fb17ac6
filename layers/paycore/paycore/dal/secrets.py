"""Secrets Manager values, cached in memory for a few minutes (never logged)."""

from __future__ import annotations

import threading
import time

from paycore.aws import client

_TTL_SECONDS = 300.0
_cache: dict[str, tuple[float, str]] = {}
_lock = threading.Lock()


def get_secret(secret_id: str) -> str:
    """The current string value of ``secret_id``."""
    now = time.monotonic()
    with _lock:
        cached = _cache.get(secret_id)
        if cached and now - cached[0] < _TTL_SECONDS:
            return cached[1]
    value = str(client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])
    with _lock:
        _cache[secret_id] = (now, value)
    return value
