"""Channel notifications: verify with the account's keys, then resume the waiting execution."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from paycore.channels.base import CallbackAck, ChannelRefundState
from paycore.channels.registry import callback_gateway
from paycore.dal.trade_store import TradeStore, payment_snapshot
from paycore.dal.workflow import resume_with_outcome
from paycore.domain.status import PaymentStatus
from paycore.errors import CallbackRejected
from paycore.ids import has_prefix
from paycore.services.orchestration import PENDING, outcome_from_channel, refund_late_payment
from paycore.services.refunds import handle_refund_notification

# Headers that carry or bind a signature (Stripe-Signature, Wechatpay-Signature/-Timestamp/
# -Nonce/-Serial, Sandbox-Signature/-Timestamp); Alipay signs inside the body.
_SIGNED_HEADER_WORDS = ("signature", "timestamp", "nonce", "serial")
# A payment or refund keeps the fingerprints of its notifications, in every later write of its
# item: 128 bits of the SHA-256 are plenty to tell its few messages apart, in half the bytes (a
# collision would only refuse a genuine message, which its channel re-delivers signed anew).
_FINGERPRINT_CHARS = 32


def fingerprint(channel: str, account_id: str, headers: Mapping[str, str], body: bytes) -> str:
    """The short fingerprint of a signed message: a SHA-256 of the account it came to, the
    signature-bearing headers and the body, cut to ``_FINGERPRINT_CHARS`` hex digits.

    A channel re-sends a notification it thinks was lost with a fresh signature (a new
    timestamp, nonce or body), so a re-delivery is a new message and is taken again. An
    attacker who captured a genuine notification can only send it again byte for byte within
    the 5 minutes its signature stays fresh: that exact message, seen a second time, is a
    replay."""
    digest = hashlib.sha256()
    for part in (channel, account_id):
        digest.update(part.encode() + b"\n")
    for name in sorted(headers):
        if any(word in name.lower() for word in _SIGNED_HEADER_WORDS):
            digest.update(f"{name.lower()}:{headers[name]}\n".encode())
    digest.update(body)
    return digest.hexdigest()[:_FINGERPRINT_CHARS]


def handle_notification(
    store: TradeStore, channel: str, account_id: str, headers: Mapping[str, str], body: bytes
) -> tuple[CallbackAck, str | None]:
    """Verify a notification that arrived at ``/callbacks/{channel}/{account_id}`` with that
    account's keys and hand its outcome to the state machine.

    An unknown channel or account is ``NotFound``. A forged, unsigned, stale (more than 5
    minutes off), replayed (the same signed message again: the payment or refund keeps the
    fingerprints of the messages taken for it) or foreign notification (about a payment or
    refund of another channel or account) raises ``CallbackRejected`` and changes nothing. A
    genuine one is acknowledged even when the payment or refund is already final or no longer
    waiting (the status query settles it then): the channel must stop retrying. Returns the
    channel's own acknowledgement and the payment (or refund) id.
    """
    gateway = callback_gateway(channel, account_id)
    state = gateway.parse_notification(body, headers)
    # Verified; now refuse the same signed message a second time (a replay). A payment's or
    # refund's messages are remembered on its own item: one conditional update refuses a
    # replay or a payment (refund) this account does not hold, and reads it and its token.
    message = fingerprint(channel, account_id, headers, body)
    if isinstance(state, ChannelRefundState):
        refund_id = handle_refund_notification(store, state, channel, account_id, message)
        return gateway.acknowledge(), refund_id
    payment_id = state.out_trade_no
    if not has_prefix(payment_id, "pay"):
        raise CallbackRejected("the notification names no payment of this channel account")
    payment, token = store.take_notification(payment_id, channel, account_id, message)
    outcome = outcome_from_channel(payment, state, "callback")
    if not payment.is_final:
        if outcome.status != PENDING:
            token = token or store.get_task_token(payment.id)  # kept apart before
            if token is not None:
                # The payment as read goes with the outcome: Settle writes on its version.
                resume_with_outcome(
                    token, {**outcome.as_dict(), "payment": payment_snapshot(payment)}
                )
    elif outcome.paid_amount is not None and payment.status is not PaymentStatus.SUCCEEDED:
        # The buyer paid after we gave up on the payment (closed, expired): refund it.
        refund_late_payment(store, payment, outcome)
    return gateway.acknowledge(), payment.id
