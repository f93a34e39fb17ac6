"""``Stripe-Signature`` with the ``stripe`` SDK as the oracle: our verification accepts what
``stripe.WebhookSignature.generate_signature_header`` signs and ``construct_event`` accepts,
refuses what it refuses, and is stricter where the SDK is lax (future timestamps, a second
``t``)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import stripe
from pydantic import SecretStr

from paycore import clock
from paycore.channels.stripe.signing import signed_at, verify_notification
from paycore.errors import CallbackRejected

SECRET = "whsec_" + "k" * 32
OTHER = "whsec_" + "o" * 32
BODY = json.dumps(
    {
        "id": "evt_1",
        "object": "event",
        "type": "checkout.session.completed",
        "data": {"object": {"id": "cs_test_1", "client_reference_id": "pay_1", "note": "茶"}},
    },
    indent=2,
    ensure_ascii=False,
).encode()


def sign(body: bytes = BODY, secret: str = SECRET, at: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(body.decode(), secret, at)


def sdk_accepts(body: bytes, header: str, secret: str = SECRET) -> bool:
    try:
        stripe.Webhook.construct_event(body, header, secret)
    except (stripe.SignatureVerificationError, ValueError):
        return False
    return True


def we_accept(body: bytes, header: str, secret: str = SECRET) -> bool:
    try:
        verify_notification(body, header, SecretStr(secret))
    except CallbackRejected:
        return False
    return True


def test_what_the_sdk_signs_we_accept_and_so_does_construct_event() -> None:
    header = sign()

    assert sdk_accepts(BODY, header)
    assert we_accept(BODY, header)


@pytest.mark.parametrize(
    ("body", "header"),
    [
        (BODY, sign()),
        (BODY, f"{sign()},v1={'0' * 64}"),  # one of several v1 matches (a secret being rolled)
        (BODY, f"{sign(secret=OTHER)},{sign().split(',')[1]}"),
        (BODY, f"{sign()},v0=legacy"),  # other schemes are ignored
        (BODY.replace(b"pay_1", b"pay_2"), sign()),  # a tampered body
        (BODY, sign(secret=OTHER)),  # another endpoint's secret
        (BODY, sign().split(",")[0]),  # no v1
        (BODY, sign().replace("v1=", "v2=")),  # no v1 of the expected scheme
        (BODY, "garbage"),
        (BODY, f"t=abc,{sign().split(',')[1]}"),
        (BODY, sign(at=int(time.time()) - 301)),  # past the 5 minutes
    ],
)
def test_we_agree_with_construct_event_on_every_present_signature(body: bytes, header: str) -> None:
    assert we_accept(body, header) == sdk_accepts(body, header)


def test_a_signature_from_the_future_is_refused_where_the_sdk_accepts_it() -> None:
    header = sign(at=int(time.time()) + 600)

    assert sdk_accepts(BODY, header)
    assert not we_accept(BODY, header)


def test_a_second_t_is_refused_where_the_sdk_takes_the_first() -> None:
    header = f"{sign()},t={int(time.time())}"

    assert sdk_accepts(BODY, header)
    with pytest.raises(CallbackRejected, match="exactly one t="):
        verify_notification(BODY, header, SecretStr(SECRET))


@pytest.mark.parametrize(
    ("offset", "fresh"), [(299, True), (-299, True), (301, False), (-301, False)]
)
def test_freshness_is_five_minutes_either_way_on_our_clock(
    monkeypatch: pytest.MonkeyPatch, offset: int, fresh: bool
) -> None:
    signed = datetime(2031, 3, 14, 12, 0, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: signed + timedelta(seconds=offset))

    assert we_accept(BODY, sign(at=int(signed.timestamp()))) is fresh


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "unsigned"),
        ("v1=" + "0" * 64, "exactly one t="),
        ("t=,v1=00", "not unix seconds"),
        ("t=+17,v1=00", "not unix seconds"),
        ("t= 17,v1=00", "not unix seconds"),
        ("t=١٢٣,v1=00", "not unix seconds"),  # digits, but not ASCII ones
        ("t=1" + "0" * 20 + ",v1=00", "not unix seconds"),
        ("t=1," + "v1=00," * 1000, "too long"),
    ],
)
def test_malformed_headers_are_refused_with_a_reason(header: str, message: str) -> None:
    with pytest.raises(CallbackRejected, match=message):
        verify_notification(BODY, header, SecretStr(SECRET))


def test_a_body_that_is_not_utf8_is_refused_not_crashed_on() -> None:
    body = b"\xff\xfe" + BODY
    header = f"t={int(time.time())},v1={'0' * 64}"

    with pytest.raises(CallbackRejected):
        verify_notification(body, header, SecretStr(SECRET))


def test_the_timestamp_read_is_the_one_signed() -> None:
    assert signed_at(sign(at=1_900_000_000)) == 1_900_000_000
