"""The webhook endpoint aggregate: which events it receives, which secrets sign, rotation."""

from __future__ import annotations

import re
from typing import get_args

import pytest

from paycore.api.resources.events import EventType
from paycore.domain.webhook_endpoints import SealedSecret, WebhookEndpoint
from paycore.services import events

AT = "2026-12-06T08:00:00.000Z"
LATER = "2026-12-06T09:00:00.000Z"


def _endpoint(**fields: object) -> WebhookEndpoint:
    values: dict[str, object] = {
        "id": "we_1",
        "merchant_id": "mch_1",
        "url": "https://tea.example/hooks",
        "enabled_events": ("order.paid",),
        "description": None,
        "disabled": False,
        "created_at": AT,
        "updated_at": AT,
        "secret": SealedSecret(b"current"),
        **fields,
    }
    return WebhookEndpoint(**values)  # type: ignore[arg-type]


def test_an_endpoint_receives_the_types_it_subscribes_to_while_enabled() -> None:
    endpoint = _endpoint(enabled_events=("order.paid", "refund.failed"))

    assert endpoint.receives("order.paid") and endpoint.receives("refund.failed")
    assert not endpoint.receives("order.closed")
    assert not endpoint.changed(LATER, {"disabled": True}).receives("order.paid")
    assert _endpoint(enabled_events=("*",)).receives("order.closed")


def test_a_rotation_signs_with_both_secrets_until_the_old_one_expires() -> None:
    rotated = _endpoint().rotated(SealedSecret(b"new"), at=AT, old_expires_at=LATER)

    assert rotated.signing_secrets(AT) == [SealedSecret(b"new"), SealedSecret(b"current")]
    assert rotated.signing_secrets("2026-12-06T08:59:59.999Z")[1:] == [SealedSecret(b"current")]
    assert rotated.signing_secrets(LATER) == [SealedSecret(b"new")]


def test_a_rotation_without_overlap_keeps_no_old_secret() -> None:
    rotated = _endpoint().rotated(SealedSecret(b"new"), at=AT, old_expires_at=AT)

    assert (rotated.previous_secret, rotated.previous_secret_expires_at) == (None, None)
    assert rotated.signing_secrets(AT) == [SealedSecret(b"new")]


def test_rotating_again_keeps_only_the_secret_it_replaces() -> None:
    once = _endpoint().rotated(SealedSecret(b"second"), at=AT, old_expires_at=LATER)

    twice = once.rotated(SealedSecret(b"third"), at=AT, old_expires_at=LATER)

    assert twice.signing_secrets(AT) == [SealedSecret(b"third"), SealedSecret(b"second")]


def test_a_change_names_only_changeable_fields_and_keeps_the_secret() -> None:
    changed = _endpoint().changed(LATER, {"url": "https://tea.example/v2", "description": None})

    assert (changed.url, changed.updated_at, changed.secret) == (
        "https://tea.example/v2",
        LATER,
        SealedSecret(b"current"),
    )
    with pytest.raises(ValueError, match="secret"):
        _endpoint().changed(LATER, {"secret": SealedSecret(b"mine")})


def test_a_sealed_secret_never_shows_in_a_repr() -> None:
    assert "current" not in repr(_endpoint())


def test_every_event_type_can_be_subscribed_to_and_is_described() -> None:
    constants = {
        value
        for name, value in vars(events).items()
        if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z]+\.[a-z_]+", value)
    }

    assert set(events.EVENT_TYPES) == constants == set(get_args(EventType))
