"""Stripe events: kept per account for ``GET /v1/events`` and POSTed to the account's
webhook URL, signed ``Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The signature is HMAC-SHA256 keyed with the whole webhook secret (``whsec_...``) over
``f"{t}.{payload}"``, made afresh for every attempt (a new ``t``); the payload, the event's
JSON as Stripe sends it (pretty-printed), is the same bytes on every attempt and every
copy, so a receiver must verify the raw body and deduplicate on the event ``id``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from local_runtime.simulators.common.keys import random_alphanumeric
from local_runtime.simulators.stripe.objects import API_VERSION

SIGNATURE_HEADER = "Stripe-Signature"
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


@dataclass(frozen=True)
class EventSpec:
    """An event to publish: its type and the object as it is (or was) at that moment."""

    type: str
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


@dataclass(frozen=True)
class StoredEvent:
    id: str
    account: str
    type: str
    created: int
    payload: bytes  # the JSON sent and listed, fixed once made

    def body(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.payload)
        return loaded


def new_event_id() -> str:
    return "evt_" + random_alphanumeric(24)


def make_event(
    account: str,
    spec: EventSpec,
    *,
    created: int,
    request_id: str | None,
    idempotency_key: str | None,
    pending_webhooks: int,
) -> StoredEvent:
    data: dict[str, Any] = {"object": spec.object}
    if spec.previous_attributes is not None:
        data["previous_attributes"] = spec.previous_attributes
    event_id = new_event_id()
    body = {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": pending_webhooks,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": spec.type,
    }
    payload = json.dumps(body, indent=2, ensure_ascii=False).encode("utf-8")
    return StoredEvent(event_id, account, spec.type, created, payload)


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value for ``payload`` at ``timestamp``."""
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def webhook_request(
    event: StoredEvent, secret: str, now: Callable[[], int]
) -> Callable[[], tuple[bytes, Mapping[str, str]]]:
    """A request builder for the deliverer: same body, a fresh signature per attempt."""

    def build() -> tuple[bytes, Mapping[str, str]]:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(event.payload, secret, now()),
        }
        return event.payload, headers

    return build


def is_ack(status: int, body: bytes) -> bool:
    """Stripe counts any 2xx as delivered."""
    return 200 <= status < 300


class EventLog:
    """Every published event of every account, newest last. One lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[StoredEvent] = []
        self._by_id: dict[tuple[str, str], StoredEvent] = {}

    def add(self, event: StoredEvent) -> None:
        with self._lock:
            self._events.append(event)
            self._by_id[(event.account, event.id)] = event

    def get(self, account: str, event_id: str) -> StoredEvent | None:
        with self._lock:
            return self._by_id.get((account, event_id))

    def of(self, account: str) -> list[StoredEvent]:
        """The account's events, newest first."""
        with self._lock:
            return [event for event in reversed(self._events) if event.account == account]
