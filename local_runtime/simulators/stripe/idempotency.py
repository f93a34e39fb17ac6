"""Stripe's idempotency layer for ``POST`` requests with an ``Idempotency-Key`` header.

As Stripe documents it (API v1):

- Keys are the account's (scoped per secret key's account), at most 255 characters, and kept
  24 hours; after that the key is new again.
- The first request with a key runs; once its endpoint began executing, its status and body
  are saved, errors (500s included) too. A request refused while its parameters were read is
  not saved, nor is one that never reached an endpoint: it may be sent again.
- A later request with the key and the same endpoint and parameters gets the saved answer
  again (header ``Idempotent-Replayed: true``), without running anything.
- Other parameters, or another endpoint, with a used key: ``400 idempotency_error``.
- While the first request still runs, another with its key: ``409 idempotency_error``
  (``idempotency_key_in_use``), not saved.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from local_runtime.simulators.stripe.errors import IDEMPOTENCY_ERROR, StripeError

KEY_MAX_LENGTH = 255
KEY_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class SavedAnswer:
    status: int
    body: dict[str, Any]
    request_id: str  # the request that produced it: the replay's Original-Request


@dataclass
class _Entry:
    endpoint: str  # "POST /v1/refunds"
    params: Any
    started_at: datetime
    answer: SavedAnswer | None = None  # None while the first request runs


class IdempotencyStore:
    """What each account's keys answered, for replays. One lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}

    def begin(
        self, account: str, key: str, endpoint: str, params: Any, now: datetime
    ) -> SavedAnswer | None:
        """The saved answer to replay, or None when this request runs (then ``finish`` or
        ``forget`` it). Raises the idempotency errors."""
        if len(key) > KEY_MAX_LENGTH:
            raise StripeError(
                400,
                f"Idempotency keys can be at most {KEY_MAX_LENGTH} characters long.",
                type=IDEMPOTENCY_ERROR,
                saved=False,
            )
        with self._lock:
            entry = self._entries.get((account, key))
            if entry is not None and now - entry.started_at >= KEY_LIFETIME:
                entry = None
            if entry is None:
                self._entries[(account, key)] = _Entry(endpoint, params, now)
                return None
            if entry.endpoint != endpoint:
                raise StripeError(
                    400,
                    "Keys for idempotent requests can only be used for the same endpoint they "
                    f"were first used for ('{entry.endpoint}' vs '{endpoint}'). Try using a "
                    f"key other than '{key}' if you meant to execute a different request.",
                    type=IDEMPOTENCY_ERROR,
                    saved=False,
                )
            if entry.params != params:
                raise StripeError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request.",
                    type=IDEMPOTENCY_ERROR,
                    saved=False,
                )
            if entry.answer is None:
                raise StripeError(
                    409,
                    "There is currently another in-progress request using this Idempotent "
                    "Key (that probably means you submitted twice, and the other request is "
                    f"still going through): {key}. Please try again later.",
                    type=IDEMPOTENCY_ERROR,
                    code="idempotency_key_in_use",
                    saved=False,
                )
            return entry.answer

    def finish(self, account: str, key: str, answer: SavedAnswer) -> None:
        with self._lock:
            entry = self._entries.get((account, key))
            if entry is not None and entry.answer is None:
                entry.answer = answer

    def forget(self, account: str, key: str) -> None:
        """The request ran no endpoint (or it is not saved): the key is free again."""
        with self._lock:
            entry = self._entries.get((account, key))
            if entry is not None and entry.answer is None:
                del self._entries[(account, key)]
