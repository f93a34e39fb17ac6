"""Each channel account's credentials, from its own Secrets Manager secret, and its callback URL.

Account ``A``'s credentials are the JSON object in the secret named
``{CHANNEL_SECRET_PREFIX}A`` (the template declares ``<stack>/channel-accounts/A`` for each of
its default accounts, holding ``{}`` until the operator puts the credentials there; locally the
runtime fills them from the local channel services). They are read through
``paycore.dal.secrets`` (cached ``SECRET_MAX_AGE_SECONDS``: rotated credentials are picked up
within five minutes, without a redeploy) and validated by the account's adapter into its own
settings model, where every key is a ``SecretStr``.

An account whose secret is missing, ``{}``, not a JSON object, or not valid for its adapter is
*not configured*: it is never routed to, and a warning names the account and the reason
(field names only, never a value). A "not configured" answer is remembered as long as a value
would be, so a missing secret costs one Secrets Manager call per five minutes, not one per
payment.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import quote

from paycore.config import get_settings
from paycore.dal.secrets import (
    SECRET_MAX_AGE_SECONDS,
    SecretMissing,
    SecretNotJson,
    get_json_secret,
)

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_not_configured: dict[str, float] = {}  # secret name -> monotonic time it was found unusable


def secret_name(account_id: str) -> str:
    """The name of the secret that holds ``account_id``'s credentials."""
    return f"{get_settings().channel_secret_prefix}{account_id}"


def read_credentials(account_id: str) -> dict[str, Any] | None:
    """The account's credentials (the secret's JSON object), or None when the account is not
    configured. Raises ``ServiceUnavailable`` when Secrets Manager cannot be read."""
    if not get_settings().channel_secret_prefix:
        return None
    name = secret_name(account_id)
    with _lock:
        found_at = _not_configured.get(name)
        if found_at is not None and time.monotonic() - found_at < SECRET_MAX_AGE_SECONDS:
            return None
    problem: str | None = None
    try:
        value = get_json_secret(name)
    except SecretMissing:
        problem = "its secret does not exist"
    except SecretNotJson:
        problem = "its secret is not JSON"
    else:
        if not isinstance(value, dict):
            problem = "its secret is not a JSON object"
        elif not value:
            problem = "its secret is {}"
    if problem is not None:
        not_configured(account_id, problem)
        return None
    return dict(value)


def not_configured(account_id: str, reason: str) -> None:
    """Remember and say that ``account_id`` cannot be used (``reason`` names no value)."""
    with _lock:
        _not_configured[secret_name(account_id)] = time.monotonic()
    logger.warning(
        "channel account %s is not configured: %s (secret %s)",
        account_id,
        reason,
        secret_name(account_id),
    )


def clear_cache() -> None:
    """Forget which accounts were found unusable (tests)."""
    with _lock:
        _not_configured.clear()


def callback_url(base_url: str, channel: str, account_id: str) -> str:
    """Where the channel notifies this account's payments and refunds: the account's own
    callback route, so each notification is verified with that account's keys."""
    return (
        f"{base_url.rstrip('/')}/callbacks/{quote(channel, safe='')}/{quote(account_id, safe='')}"
    )
