"""Channel notifications: verify, then resume the payment's waiting execution."""

from __future__ import annotations

from collections.abc import Mapping

from paycore.channels.base import CallbackAck, ChannelRefundState
from paycore.channels.registry import available_channels, get_gateway
from paycore.dal.trade_store import TradeStore
from paycore.dal.workflow import resume_with_outcome
from paycore.domain.status import PaymentStatus
from paycore.errors import CallbackRejected, NotFound
from paycore.ids import has_prefix
from paycore.services.orchestration import PENDING, outcome_from_channel, refund_late_payment
from paycore.services.refunds import handle_refund_notification


def handle_notification(
    store: TradeStore, channel: str, headers: Mapping[str, str], body: bytes
) -> tuple[CallbackAck, str | None]:
    """Verify a notification and hand its outcome to the state machine.

    A forged, unsigned, stale (replayed) or foreign notification raises ``CallbackRejected``
    and changes nothing. A genuine one is acknowledged even when the payment is already final
    or no longer waiting (the status query settles it then): the channel must stop retrying.
    Returns the channel's expected acknowledgement and the payment id.
    """
    if channel not in available_channels():
        raise NotFound(f"no channel {channel!r}", code="channel_not_found", param="channel")
    gateway = get_gateway(channel)
    state = gateway.parse_notification(body, headers)
    if isinstance(state, ChannelRefundState):
        return gateway.acknowledge(), handle_refund_notification(store, state, channel)
    payment_id = state.out_trade_no
    payment = store.get_payment(payment_id) if has_prefix(payment_id, "pay") else None
    if payment is None or payment.channel != channel:
        raise CallbackRejected("the notification names no payment of this channel")
    outcome = outcome_from_channel(payment, state, "callback")
    if not payment.is_final:
        if outcome.status != PENDING:
            token = store.get_task_token(payment.id)
            if token is not None:
                resume_with_outcome(token, outcome.as_dict())
    elif outcome.paid_amount is not None and payment.status is not PaymentStatus.SUCCEEDED:
        # The buyer paid after we gave up on the payment (closed, expired): refund it.
        refund_late_payment(store, payment, outcome)
    return gateway.acknowledge(), payment.id
