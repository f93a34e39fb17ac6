"""Webhook endpoints: where a merchant's events go, managed by the merchant itself, and what
the notifier needs to deliver there (which endpoints receive an event, with which secrets).

A new secret is made here, sealed at once (``paycore.dal.webhook_secrets``) and handed back
in clear exactly once, to be shown in the answer that created it; only the notifier unseals.
The merchant's onboarding ``webhook_url`` is its first endpoint, subscribed to every event and
signed with the onboarding ``webhook_secret``. Merchants onboarded before endpoints existed
are migrated to that shape the first time their endpoints are needed (``ensure_migrated``),
or by the migration function (``migrate_legacy_secrets``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from paycore.clock import now, now_rfc3339, rfc3339
from paycore.dal.trade_store import TradeStore
from paycore.dal.webhook_endpoint_store import WebhookEndpointStore
from paycore.dal.webhook_secrets import encryption_context, seal, unseal
from paycore.domain.models import Merchant
from paycore.domain.webhook_endpoints import WILDCARD, SealedSecret, WebhookEndpoint
from paycore.errors import NotFound
from paycore.ids import derived_id, has_prefix, new_id
from paycore.webhooks import new_secret

ONBOARDING_DESCRIPTION = "The webhook_url given at onboarding"


def _seal(secret: str, merchant_id: str, endpoint_id: str) -> SealedSecret:
    return SealedSecret(seal(secret, encryption_context(merchant_id, endpoint_id)))


def _not_found(endpoint_id: str, param: str = "webhook_endpoint_id") -> NotFound:
    return NotFound(
        f"no webhook endpoint {endpoint_id}", code="webhook_endpoint_not_found", param=param
    )


def first_endpoint(merchant: Merchant, secret: str) -> WebhookEndpoint:
    """The endpoint the onboarding ``webhook_url`` becomes, signed with ``secret``. Its id
    derives from the merchant, so a retried migration finds it instead of making a twin."""
    if merchant.webhook_url is None:
        raise ValueError(f"merchant {merchant.id} has no webhook_url")
    endpoint_id = derived_id("we", merchant.id, "onboarding")
    return WebhookEndpoint(
        id=endpoint_id,
        merchant_id=merchant.id,
        url=merchant.webhook_url,
        enabled_events=(WILDCARD,),
        description=ONBOARDING_DESCRIPTION,
        disabled=False,
        created_at=merchant.created_at,
        updated_at=merchant.created_at,
        secret=_seal(secret, merchant.id, endpoint_id),
    )


def ensure_migrated(store: TradeStore, merchant_id: str) -> Merchant | None:
    """The merchant, its clear onboarding ``webhook_secret`` (if it still has one) moved into
    its first endpoint; None when there is no such merchant."""
    endpoints = WebhookEndpointStore.of(store)
    found = endpoints.merchant_with_legacy_secret(merchant_id)
    if found is None:
        return None
    merchant, legacy_secret = found
    if legacy_secret is not None:
        _migrate(endpoints, merchant, legacy_secret)
    return merchant


def _migrate(endpoints: WebhookEndpointStore, merchant: Merchant, legacy_secret: str) -> bool:
    """Move the clear secret into the first endpoint; False when another call did it first."""
    first = first_endpoint(merchant, legacy_secret) if merchant.webhook_url else None
    return endpoints.migrate_legacy_secret(merchant.id, legacy_secret, first)


def create_endpoint(
    store: TradeStore,
    merchant_id: str,
    *,
    url: str,
    enabled_events: Sequence[str],
    description: str | None,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (in clear: to be shown once, never stored)."""
    ensure_migrated(store, merchant_id)
    endpoint_id = new_id("we")
    secret = new_secret()
    at = now_rfc3339()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        merchant_id=merchant_id,
        url=url,
        enabled_events=tuple(enabled_events),
        description=description,
        disabled=False,
        created_at=at,
        updated_at=at,
        secret=_seal(secret, merchant_id, endpoint_id),
    )
    WebhookEndpointStore.of(store).add_endpoint(endpoint)
    return endpoint, secret


def list_endpoints(
    store: TradeStore, merchant_id: str, *, limit: int, starting_after: str | None
) -> tuple[list[WebhookEndpoint], bool]:
    """A page of the merchant's endpoints, newest first (there are at most 16)."""
    ensure_migrated(store, merchant_id)
    every = WebhookEndpointStore.of(store).endpoints_of(merchant_id)
    start = 0
    if starting_after is not None:
        ids = [endpoint.id for endpoint in every]
        if starting_after not in ids:
            raise _not_found(starting_after, param="starting_after")
        start = ids.index(starting_after) + 1
    page = every[start : start + limit]
    return page, start + limit < len(every)


def get_endpoint(store: TradeStore, merchant_id: str, endpoint_id: str) -> WebhookEndpoint:
    """The merchant's endpoint; ``NotFound`` for another merchant's or an unknown id."""
    endpoint = (
        WebhookEndpointStore.of(store).get_endpoint(merchant_id, endpoint_id)
        if has_prefix(endpoint_id, "we")
        else None
    )
    if endpoint is None:
        raise _not_found(endpoint_id)
    return endpoint


def update_endpoint(
    store: TradeStore, merchant_id: str, endpoint_id: str, changes: Mapping[str, Any]
) -> WebhookEndpoint:
    """Set the fields ``changes`` names (``url``, ``enabled_events``, ``description``,
    ``disabled``); the secret stays the same."""
    endpoint = get_endpoint(store, merchant_id, endpoint_id)
    return WebhookEndpointStore.of(store).save_endpoint(endpoint.changed(now_rfc3339(), changes))


def delete_endpoint(store: TradeStore, merchant_id: str, endpoint_id: str) -> None:
    """Delete the endpoint: nothing more is delivered there, retries pending included."""
    deleted = has_prefix(endpoint_id, "we") and WebhookEndpointStore.of(store).delete_endpoint(
        merchant_id, endpoint_id
    )
    if not deleted:
        raise _not_found(endpoint_id)


def rotate_secret(
    store: TradeStore, merchant_id: str, endpoint_id: str, expires_in: int
) -> tuple[WebhookEndpoint, str]:
    """A new signing secret for the endpoint (in clear, to be shown once); the current one
    keeps signing too for ``expires_in`` seconds (0: it stops at once)."""
    endpoint = get_endpoint(store, merchant_id, endpoint_id)
    secret = new_secret()
    moment = now()
    rotated = endpoint.rotated(
        _seal(secret, merchant_id, endpoint_id),
        at=rfc3339(moment),
        old_expires_at=rfc3339(moment + timedelta(seconds=expires_in)),
    )
    return WebhookEndpointStore.of(store).save_endpoint(rotated), secret


def receiving_endpoints(
    store: TradeStore, merchant_id: str, event_type: str
) -> list[WebhookEndpoint] | None:
    """The merchant's endpoints an event of ``event_type`` goes to now, read with the
    merchant in one Query (a merchant onboarded before endpoints is migrated first); None
    when there is no such merchant."""
    endpoints = WebhookEndpointStore.of(store)
    found = endpoints.merchant_and_endpoints(merchant_id)
    if found is None:
        return None
    merchant, legacy_secret, every = found
    if legacy_secret is not None:
        _migrate(endpoints, merchant, legacy_secret)
        every = endpoints.endpoints_of(merchant_id)
    return [endpoint for endpoint in every if endpoint.receives(event_type)]


def signing_secrets(endpoint: WebhookEndpoint, at: str) -> list[str]:
    """The secrets (in clear, for the notifier only) that sign a delivery made at ``at``."""
    context = encryption_context(endpoint.merchant_id, endpoint.id)
    return [unseal(sealed.ciphertext, context) for sealed in endpoint.signing_secrets(at)]


# Merchant items scanned per call of the migration function: well within its timeout.
MIGRATION_SCAN_PAGES = 20
_SCAN_PAGE = 100


class MigrationRequest(BaseModel):
    """What an operator asks the migration function for (its invocation payload)."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    cursor: dict[str, str] | None = None


def migrate_legacy_secrets(
    store: TradeStore, cursor: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str] | None]:
    """Migrate (``ensure_migrated``) the merchants that still keep their onboarding secret in
    clear, through up to ``MIGRATION_SCAN_PAGES`` pages of the table from ``cursor``. Returns
    how many this call migrated and where the next call starts (None: the whole table is
    done)."""
    endpoints = WebhookEndpointStore.of(store)
    migrated = 0
    position: dict[str, Any] | None = dict(cursor) if cursor else None
    for _ in range(MIGRATION_SCAN_PAGES):
        merchant_ids, position = endpoints.merchant_ids_with_legacy_secret(_SCAN_PAGE, position)
        for merchant_id in merchant_ids:
            found = endpoints.merchant_with_legacy_secret(merchant_id)
            if found is None or found[1] is None:
                continue  # deleted, or migrated since the scan read it
            if _migrate(endpoints, found[0], found[1]):
                migrated += 1
        if position is None:
            return migrated, None
    assert position is not None  # the loop returns once the scan ends
    return migrated, {key: str(value) for key, value in position.items()}
