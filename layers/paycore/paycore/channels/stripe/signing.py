"""``Stripe-Signature`` verification, by the ``stripe`` library itself.

A webhook carries ``Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=...]``, the
HMAC keyed with the endpoint's whole signing secret (``whsec_...``) over ``"<t>.<raw body>"``;
any ``v1`` may match (Stripe sends two while a secret is being rolled). The match is
``stripe.WebhookSignature.verify_header``, the check ``stripe.Webhook.construct_event`` makes.

Two things are ours, and stricter than the library:

- freshness both ways: the library refuses a ``t`` more than its tolerance (300 s) in the past
  but accepts any ``t`` in the future; we refuse one more than
  ``NOTIFICATION_TOLERANCE_SECONDS`` off our clock either way (a replay, or a signer whose
  clock cannot be trusted), measured with ``paycore.clock``;
- the header's shape: exactly one ``t``, in plain digits. The library takes the first ``t`` of
  several; a second one could otherwise make us judge the freshness of another ``t`` than the
  one the signature covers.

Nothing else is parsed here: the adapter reads the body only once this passed.
"""

from __future__ import annotations

import stripe
from pydantic import SecretStr

from paycore import clock
from paycore.channels.base import NOTIFICATION_TOLERANCE_SECONDS
from paycore.errors import CallbackRejected

SIGNATURE_HEADER = "Stripe-Signature"
_MAX_HEADER_CHARS = 4096


def signed_at(header: str) -> int:
    """The one ``t`` of a ``Stripe-Signature`` header (``CallbackRejected`` otherwise)."""
    stamps = [
        value for key, _, value in (item.partition("=") for item in header.split(",")) if key == "t"
    ]
    if len(stamps) != 1:
        raise CallbackRejected("Stripe-Signature must carry exactly one t=")
    stamp = stamps[0]
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        raise CallbackRejected("Stripe-Signature t= is not unix seconds")
    return int(stamp)


def verify_notification(body: bytes, header: str, secret: SecretStr) -> None:
    """``CallbackRejected`` unless ``body`` is signed with this endpoint's ``secret`` and the
    signature is fresh (within ``NOTIFICATION_TOLERANCE_SECONDS`` of our clock, either way)."""
    if not header:
        raise CallbackRejected("unsigned Stripe notification (no Stripe-Signature)")
    if len(header) > _MAX_HEADER_CHARS:
        raise CallbackRejected("Stripe-Signature is too long")
    timestamp = signed_at(header)
    try:
        # tolerance=None: the library checks the signature only; freshness is ours, below.
        stripe.WebhookSignature.verify_header(body, header, secret.get_secret_value(), None)
    except stripe.SignatureVerificationError:
        raise CallbackRejected("Stripe notification signature does not match") from None
    except (UnicodeDecodeError, ValueError):
        raise CallbackRejected("Stripe notification body is not UTF-8") from None
    if abs(clock.now().timestamp() - timestamp) > NOTIFICATION_TOLERANCE_SECONDS:
        raise CallbackRejected("stale Stripe notification (signed more than 5 minutes off)")
