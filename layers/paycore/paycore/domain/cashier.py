"""The hosted cashier's link: ``{public base URL}/cashier/{token}``, the buyer's page of one order.

The token is the only credential the page needs, so it is 256 random bits (``secrets``), far
past guessing. The order keeps its whole ``cashier_url`` (the merchant sees it on every read);
the lookup item that leads from a token back to its order is keyed by the token's SHA-256
(``digest``), as API keys are: a key shows up where attribute values do not (DynamoDB's
most-accessed-key reports, error messages), and a digest there opens nothing.
"""

from __future__ import annotations

import hashlib
import re
import secrets

TOKEN_BYTES = 32
# What ``secrets.token_urlsafe(32)`` writes: 43 characters of the URL-safe base64 alphabet.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
PATH = "/cashier/"


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_token(value: str) -> bool:
    """Whether ``value`` has a token's form (anything else is refused before a lookup)."""
    return bool(_TOKEN.fullmatch(value))


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def cashier_url(public_base_url: str, token: str) -> str:
    return f"{public_base_url.rstrip('/')}{PATH}{token}"
