"""The payment state machine's steps (statemachines/payment.asl.json).

Each step is safe to run again: the channel deduplicates on out_trade_no (the payment id),
writes are conditional on the version read, and the settlement's event id is derived from
the payment, so a retried step finds its own earlier work instead of repeating it.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, replace
from typing import Any

from paycore.channels.base import ChannelPaymentState, ChannelPaymentStatus, CreateChannelOrder
from paycore.channels.registry import get_gateway
from paycore.clock import now, now_rfc3339, parse_rfc3339
from paycore.dal.trade_store import TradeStore
from paycore.dal.workflow import resume_with_outcome
from paycore.domain.models import Event, Payment
from paycore.domain.status import PaymentStatus
from paycore.errors import ConcurrentUpdate, NotFound
from paycore.services import events

SUCCEEDED = "succeeded"
FAILED = "failed"
PENDING = "pending"


@dataclass(frozen=True)
class Outcome:
    """What the channel says happened to a payment, in our words."""

    status: str  # succeeded | failed | pending
    channel_transaction_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    source: str = "query"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "channel_transaction_id": self.channel_transaction_id,
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
            "source": self.source,
        }


def outcome_from_channel(payment: Payment, state: ChannelPaymentState, source: str) -> Outcome:
    """Map the channel's view of an order to an outcome, refusing a success whose amount or
    currency is not the payment's."""
    match state.status:
        case ChannelPaymentStatus.SUCCEEDED:
            if (state.amount, state.currency) != (payment.amount, payment.currency):
                return Outcome(
                    FAILED,
                    failure_code="amount_mismatch",
                    failure_message=(
                        f"channel reported {state.amount} {state.currency}, "
                        f"expected {payment.amount} {payment.currency}"
                    ),
                    source=source,
                )
            return Outcome(SUCCEEDED, state.channel_transaction_id, source=source)
        case ChannelPaymentStatus.FAILED:
            return Outcome(
                FAILED,
                failure_code=state.failure_code or "payment_declined",
                failure_message=state.failure_message or "the payment was declined",
                source=source,
            )
        case ChannelPaymentStatus.CLOSED:
            return Outcome(
                FAILED,
                failure_code="channel_order_closed",
                failure_message="the channel closed the order before it was paid",
                source=source,
            )
        case ChannelPaymentStatus.NOT_FOUND:
            return Outcome(
                FAILED,
                failure_code="channel_order_not_found",
                failure_message="the channel has no order for this payment",
                source=source,
            )
        case ChannelPaymentStatus.PENDING:
            return Outcome(PENDING, source=source)


class PaymentSteps:
    def __init__(self, store: TradeStore) -> None:
        self.store = store

    def _payment(self, payment_id: str) -> Payment:
        payment = self.store.get_payment(payment_id)
        if payment is None:
            raise NotFound(f"no payment {payment_id}", code="payment_not_found")
        return payment

    def create_channel_order(
        self, payment_id: str, callback_base_url: str, task_token: str
    ) -> dict[str, Any]:
        """Create the channel order and record where the buyer goes. The execution then
        waits until the callback (or this step, for a payment already final) resumes it."""
        self.store.put_task_token(payment_id, task_token)
        payment = self._payment(payment_id)
        if payment.is_final:
            resume_with_outcome(task_token, {"status": payment.status.value, "source": "replay"})
            return {"payment_id": payment_id, "status": payment.status.value}
        order = self.store.get_order(payment.order_id)
        if order is None:
            raise NotFound(f"no order {payment.order_id}", code="order_not_found")
        gateway = get_gateway(payment.channel)
        channel_order = gateway.create_order(
            CreateChannelOrder(
                out_trade_no=payment.id,
                amount=payment.amount,
                currency=payment.currency,
                subject=order.subject,
                notify_url=f"{callback_base_url.rstrip('/')}/callbacks/{payment.channel}",
                expires_at=order.expires_at,
                return_url=payment.return_url,
            )
        )
        self.store.save_payment(
            replace(
                payment,
                channel_order_id=channel_order.channel_order_id,
                next_action={"type": "redirect", "url": channel_order.redirect_url},
                updated_at=now_rfc3339(),
            )
        )
        return {"payment_id": payment_id, "channel_order_id": channel_order.channel_order_id}

    def query_channel(self, payment_id: str) -> dict[str, Any]:
        """Ask the channel when the callback is late. Past the order's deadline the channel
        order is closed, so it can never be paid after we gave up on it."""
        payment = self._payment(payment_id)
        if payment.is_final:
            return Outcome(payment.status.value).as_dict()
        gateway = get_gateway(payment.channel)
        outcome = outcome_from_channel(payment, gateway.query_order(payment.id), "query")
        if outcome.status == PENDING:
            order = self.store.get_order(payment.order_id)
            if order is not None and parse_rfc3339(order.expires_at) <= now():
                closed = outcome_from_channel(payment, gateway.close_order(payment.id), "close")
                if closed.status == FAILED and closed.failure_code == "channel_order_closed":
                    closed = replace(
                        closed,
                        failure_code="order_expired",
                        failure_message="the buyer did not pay before the order expired",
                    )
                outcome = closed
        return outcome.as_dict()

    def settle(self, payment_id: str, raw_outcome: dict[str, Any]) -> dict[str, Any]:
        """Write the final state: payment succeeded and order paid, or payment failed and the
        order payable again; the event in the same transaction; then queue the event."""
        outcome = _parse_outcome(raw_outcome)
        payment = self._payment(payment_id)
        newly_settled = False
        if not payment.is_final:
            order = self.store.get_order(payment.order_id)
            if order is None:
                raise NotFound(f"no order {payment.order_id}", code="order_not_found")
            at = now_rfc3339()
            event: Event
            if outcome.status == SUCCEEDED:
                payment = payment.succeed(outcome.channel_transaction_id, at)
                order = order.mark_paid(payment.id, payment.amount, at)
                event = events.event_for(
                    events.ORDER_PAID, order.merchant_id, payment.id, order.resource()
                )
            else:
                payment = payment.fail(
                    outcome.failure_code or "payment_failed",
                    outcome.failure_message or "the payment failed",
                    at,
                )
                order = order.reopen(payment.id, at)
                event = events.event_for(
                    events.PAYMENT_FAILED, order.merchant_id, payment.id, payment.resource()
                )
            if not self.store.finish_payment(payment, order, event):
                raise ConcurrentUpdate(f"payment {payment_id} changed while settling; retrying")
            newly_settled = True
        # Queue the event even when an earlier try already wrote it: that try may have
        # stopped before reaching the queue. Receivers dedupe on the event id.
        event_type = (
            events.ORDER_PAID
            if payment.status is PaymentStatus.SUCCEEDED
            else events.PAYMENT_FAILED
        )
        stored = self.store.get_event(events.event_id(payment.id, event_type))
        if stored is not None:
            events.publish(stored)
        return {
            "payment_id": payment.id,
            "status": payment.status.value,
            "failure_code": payment.failure_code,
            "newly_settled": newly_settled,
        }


def _parse_outcome(raw: dict[str, Any]) -> Outcome:
    """The Settle step's input: a channel outcome, or a caught error from creating the order."""
    if "Error" in raw:
        message = str(raw.get("Cause") or "")
        with contextlib.suppress(ValueError, AttributeError):
            message = str(json.loads(message).get("errorMessage", message))
        code = "channel_rejected" if raw["Error"] == "ChannelRejected" else "channel_error"
        return Outcome(FAILED, failure_code=code, failure_message=message or raw["Error"])
    status = raw.get("status")
    if status not in (SUCCEEDED, FAILED):
        raise ValueError(f"settle needs a final outcome, got {status!r}")
    return Outcome(
        status=status,
        channel_transaction_id=raw.get("channel_transaction_id"),
        failure_code=raw.get("failure_code"),
        failure_message=raw.get("failure_message"),
        source=str(raw.get("source") or "callback"),
    )
