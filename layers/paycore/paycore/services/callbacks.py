"""Channel notifications: verify with the account's keys, then resume the waiting execution."""

from __future__ import annotations

from collections.abc import Mapping

from paycore.channels.base import NOTIFICATION_TOLERANCE_SECONDS, CallbackAck, ChannelRefundState
from paycore.channels.registry import callback_gateway
from paycore.dal import notification_replays
from paycore.dal.trade_store import TradeStore, payment_snapshot
from paycore.dal.workflow import resume_with_outcome
from paycore.domain.status import PaymentStatus
from paycore.errors import CallbackRejected
from paycore.ids import has_prefix
from paycore.services.orchestration import PENDING, outcome_from_channel, refund_late_payment
from paycore.services.refunds import handle_refund_notification

# A payment keeps the fingerprints of its notifications, in every later write of its item:
# 128 bits of the SHA-256 are plenty to tell its few messages apart, in half the bytes (a
# collision would only refuse a genuine message, which its channel re-delivers signed anew).
_FINGERPRINT_CHARS = 32


def handle_notification(
    store: TradeStore, channel: str, account_id: str, headers: Mapping[str, str], body: bytes
) -> tuple[CallbackAck, str | None]:
    """Verify a notification that arrived at ``/callbacks/{channel}/{account_id}`` with that
    account's keys and hand its outcome to the state machine.

    An unknown channel or account is ``NotFound``. A forged, unsigned, stale (more than 5
    minutes off), replayed (the same signed message again: the payment keeps the fingerprints
    of the messages taken for it, the idempotency table a refund's for twice the freshness
    window) or foreign notification (about a payment or refund of another channel or account)
    raises ``CallbackRejected`` and changes nothing. A genuine one is acknowledged even when the
    payment is already final or no longer waiting (the status query settles it then): the
    channel must stop retrying. Returns the channel's own acknowledgement and the payment (or
    refund) id.
    """
    gateway = callback_gateway(channel, account_id)
    state = gateway.parse_notification(body, headers)
    # Verified; now refuse the same signed message a second time (a replay).
    message = notification_replays.fingerprint(channel, account_id, headers, body)
    if isinstance(state, ChannelRefundState):
        if not notification_replays.first_sighting(message, 2 * NOTIFICATION_TOLERANCE_SECONDS):
            raise CallbackRejected("this exact notification was already received (a replay)")
        refund_id = handle_refund_notification(store, state, channel, account_id)
        return gateway.acknowledge(), refund_id
    payment_id = state.out_trade_no
    if not has_prefix(payment_id, "pay"):
        raise CallbackRejected("the notification names no payment of this channel account")
    # A payment's messages are remembered on the payment itself: one conditional update
    # refuses a replay or a payment this account does not hold, and reads payment and token.
    payment, token = store.take_notification(
        payment_id, channel, account_id, message[:_FINGERPRINT_CHARS]
    )
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
