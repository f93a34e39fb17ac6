"""Merchant API keys: how they look and how they are kept (as a SHA-256 hash only).

Its own small module so the authorizer, which runs on every request, imports only this."""

from __future__ import annotations

import hashlib
import secrets

API_KEY_PREFIX = "sk_live_"


def new_api_key() -> str:
    """A new key: the prefix and 256 random bits."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    """Keys carry 256 random bits, so a plain SHA-256 is a safe one-way lookup key."""
    return hashlib.sha256(api_key.encode()).hexdigest()
