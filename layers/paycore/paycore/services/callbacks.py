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


def handle_notification(
    store: TradeStore, channel: str, account_id: str, headers: Mapping[str, str], body: bytes
) -> tuple[CallbackAck, str | None]:
    """Verify a notification that arrived at ``/callbacks/{channel}/{account_id}`` with that
    account's keys and hand its outcome to the state machine.

    An unknown channel or account is ``NotFound``. A forged, unsigned, stale (more than 5
    minutes off), replayed (the same signed message again) or foreign notification (about a
    payment or refund of another channel or account) raises ``CallbackRejected`` and changes
    nothing. A genuine one is acknowledged even when the
    payment is already final or no longer waiting (the status query settles it then): the
    channel must stop retrying. Returns the channel's own acknowledgement and the payment (or
    refund) id.
    """
    gateway = callback_gateway(channel, account_id)
    state = gateway.parse_notification(body, headers)
    # Verified; now refuse the same signed message a second time (a replay).
    message = notification_replays.fingerprint(channel, account_id, headers, body)
    if not notification_replays.first_sighting(message, 2 * NOTIFICATION_TOLERANCE_SECONDS):
        raise CallbackRejected("this exact notification was already received (a replay)")
    if isinstance(state, ChannelRefundState):
        refund_id = handle_refund_notification(store, state, channel, account_id)
        return gateway.acknowledge(), refund_id
    payment_id = state.out_trade_no
    payment, token = (
        store.get_payment_and_token(payment_id) if has_prefix(payment_id, "pay") else (None, None)
    )
    if payment is None or payment.channel != channel or payment.channel_account != account_id:
        raise CallbackRejected("the notification names no payment of this channel account")
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
