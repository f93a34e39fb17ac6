"""A merchant's webhook endpoints: where its events go, which ones, and the secrets that sign
them.

An endpoint holds its signing secret sealed (the ciphertext ``paycore.dal.webhook_secrets``
made); the domain never sees a secret in clear. A rotation keeps the secret it replaces until
``previous_secret_expires_at``; while that lies ahead, every delivery is signed with both.
A second rotation within that window ends the first one's overlap: only the current secret and
the one just replaced ever sign.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

WILDCARD = "*"
# Stripe's limit too: enough for staging, production and a few tools; bounds the fan-out.
MAX_ENDPOINTS_PER_MERCHANT = 16
CHANGEABLE = frozenset({"url", "enabled_events", "description", "disabled"})


@dataclass(frozen=True)
class SealedSecret:
    """A signing secret as stored: KMS ciphertext, readable only through KMS."""

    ciphertext: bytes = field(repr=False)


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    merchant_id: str
    url: str
    enabled_events: tuple[str, ...]
    description: str | None
    disabled: bool
    created_at: str
    updated_at: str
    secret: SealedSecret
    previous_secret: SealedSecret | None = None
    previous_secret_expires_at: str | None = None
    version: int = 0  # optimistic lock, as for orders

    def subscribes_to(self, event_type: str) -> bool:
        return WILDCARD in self.enabled_events or event_type in self.enabled_events

    def receives(self, event_type: str) -> bool:
        """Whether an event of ``event_type`` is delivered here now."""
        return not self.disabled and self.subscribes_to(event_type)

    def signing_secrets(self, now_rfc3339: str) -> list[SealedSecret]:
        """The secrets that sign a delivery made at ``now_rfc3339``: the current one first,
        then the replaced one while its overlap lasts."""
        secrets = [self.secret]
        if (
            self.previous_secret is not None
            and self.previous_secret_expires_at is not None
            and now_rfc3339 < self.previous_secret_expires_at
        ):
            secrets.append(self.previous_secret)
        return secrets

    def changed(self, at: str, changes: Mapping[str, Any]) -> WebhookEndpoint:
        """The endpoint with the fields ``changes`` names set (``url``, ``enabled_events``,
        ``description``, ``disabled``); the secret stays."""
        unknown = set(changes) - CHANGEABLE
        if unknown:
            raise ValueError(f"webhook endpoint fields {sorted(unknown)} cannot be changed")
        values = dict(changes)
        if "enabled_events" in values:
            values["enabled_events"] = tuple(values["enabled_events"])
        return replace(self, **values, updated_at=at)

    def rotated(self, new_secret: SealedSecret, at: str, old_expires_at: str) -> WebhookEndpoint:
        """Sign with ``new_secret`` from now on, and with the current one too until
        ``old_expires_at`` (``at`` or earlier: not at all)."""
        keep_old = old_expires_at > at
        return replace(
            self,
            secret=new_secret,
            previous_secret=self.secret if keep_old else None,
            previous_secret_expires_at=old_expires_at if keep_old else None,
            updated_at=at,
        )

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "webhook_endpoint",
            "url": self.url,
            "enabled_events": list(self.enabled_events),
            "description": self.description,
            "disabled": self.disabled,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST of one event to one endpoint: the endpoint's answer (``status_code``) or,
    when there was none, why (``error``: a timeout, a refused connection, a refused URL)."""

    endpoint_id: str
    attempt: int  # counted per event and endpoint from 1, redeliveries included
    at: str
    status_code: int | None
    error: str | None

    def resource(self) -> dict[str, Any]:
        return {
            "endpoint_id": self.endpoint_id,
            "attempt": self.attempt,
            "status_code": self.status_code,
            "error": self.error,
            "at": self.at,
        }
