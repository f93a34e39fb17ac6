"""Refunds: the API side (create, read), the refund state machine's steps
(statemachines/refund.asl.json), channel refund notifications, and late-payment refunds.

Money rules, each enforced by a conditional write:
- A merchant refund reserves its amount on the order (``refund_pending``) in the same
  transaction that records it, on the order's version: refunds of an order never add up to
  more than it was paid, also when they race (the loser re-reads and either fits or gets
  409 ``refund_exceeds_paid``).
- The refund is split over the payment's instruments (``paycore.domain.refunds.allocate``).
  A refund with no channel part completes at once; otherwise the state machine asks the
  channel (``out_refund_no`` = refund id, so a repeated request is one refund) and settles.
- Settling writes the final refund, the order's amounts, the internal instruments' credits
  and the event in one transaction, then queues the event (at least once).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paycore.channels.accounts import callback_url
from paycore.channels.base import (
    ChannelGateway,
    ChannelRefundState,
    ChannelRefundStatus,
    CreateChannelRefund,
)
from paycore.channels.registry import get_gateway
from paycore.clock import now_rfc3339
from paycore.config import get_settings
from paycore.dal.refund_store import RefundStore, refund_from_snapshot, refund_snapshot
from paycore.dal.trade_store import TradeStore, payment_from_snapshot, payment_snapshot
from paycore.dal.workflow import (
    caught_channel_error,
    resume_with_outcome,
    start_refund_execution,
)
from paycore.domain import postings
from paycore.domain.changes import RefundSettlement, RefundStart
from paycore.domain.models import Event, Order, Payment
from paycore.domain.refunds import (
    CHANNEL,
    Refund,
    RefundKind,
    RefundStatus,
    allocate,
)
from paycore.domain.status import PaymentStatus
from paycore.errors import (
    CallbackRejected,
    ChannelRejected,
    ConcurrentUpdate,
    Conflict,
    NotFound,
    PaycoreError,
    ServiceUnavailable,
)
from paycore.ids import derived_id, has_prefix, new_id
from paycore.services import events
from paycore.services.orders import get_order

if TYPE_CHECKING:  # the API's request model; the workers never load it
    from paycore.api.models import CreateRefundRequest

logger = logging.getLogger(__name__)

SUCCEEDED = "succeeded"
FAILED = "failed"
PENDING = "pending"
# A write that lost a race on the order re-reads and tries again this many times: enough for
# a burst of refunds of one order, each round lets at least one of them through.
WRITE_ATTEMPTS = 12


@dataclass(frozen=True)
class RefundOutcome:
    """What the channel says happened to a refund, in our words."""

    status: str  # succeeded | failed | pending
    channel_refund_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    source: str = "query"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "channel_refund_id": self.channel_refund_id,
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
            "source": self.source,
        }


@dataclass(frozen=True)
class KnownRefund:
    """A merchant refund and its payment as the API wrote and read them when it started the
    refund's execution, handed to a step's first attempt so that it does not read them
    again. The refund is only ever written on the version it holds: when that write fails,
    the step reads both again. The payment is never written by a refund; what a refund uses
    of it (its instruments, fee and channel ids) does not change once it succeeded."""

    refund: Refund
    payment: Payment

    @classmethod
    def carried(cls, refund: Any, payment: Any) -> KnownRefund | None:
        """Both, when both were carried and fit (a processing merchant refund of this
        succeeded payment); else None (read them)."""
        if not isinstance(refund, Mapping) or not isinstance(payment, Mapping):
            return None
        known = cls(refund_from_snapshot(dict(refund)), payment_from_snapshot(dict(payment)))
        fits = (
            known.refund.payment_id == known.payment.id
            and known.refund.kind is RefundKind.MERCHANT
            and not known.refund.is_final
            and known.payment.status is PaymentStatus.SUCCEEDED
        )
        return known if fits else None

    def of_refund(self, refund_id: str) -> KnownRefund | None:
        return self if self.refund.id == refund_id else None


def outcome_from_refund_state(state: ChannelRefundState, source: str) -> RefundOutcome:
    """Map the channel's view of a refund to an outcome (NOT_FOUND is still pending: the
    query step asks the channel again rather than giving up on money owed to the buyer)."""
    match state.status:
        case ChannelRefundStatus.SUCCEEDED:
            return RefundOutcome(SUCCEEDED, state.channel_refund_id, source=source)
        case ChannelRefundStatus.FAILED:
            return RefundOutcome(
                FAILED,
                state.channel_refund_id,
                failure_code=state.failure_code or "refund_rejected",
                failure_message=state.failure_message or "the channel refused the refund",
                source=source,
            )
        case ChannelRefundStatus.PENDING | ChannelRefundStatus.NOT_FOUND:
            return RefundOutcome(PENDING, state.channel_refund_id, source=source)


# -- the API side -------------------------------------------------------------------------------


def get_refund(store: TradeStore, merchant_id: str, refund_id: str) -> Refund:
    """The merchant's refund; another merchant's refund does not exist for them (404)."""
    refunds = RefundStore.of(store)
    refund = refunds.get_refund(refund_id) if has_prefix(refund_id, "rfd") else None
    if refund is None or refund.merchant_id != merchant_id:
        raise NotFound(f"no refund {refund_id}", code="refund_not_found", param="refund_id")
    return refund


def create_refund(
    store: TradeStore,
    merchant_id: str,
    order_id: str,
    request: CreateRefundRequest,
    callback_base_url: str,
) -> Refund:
    """Refund ``request.amount`` of a paid order.

    The refund and the reservation of its amount on the order are one conditional write on
    the order's version; a write that lost a race re-reads the order and tries again. A
    refund that only gives back internal instruments (balance, coupon) succeeds in that same
    write; one with a channel part is handed to the refund state machine (status
    ``processing``)."""
    refunds = RefundStore.of(store)
    for attempt in range(WRITE_ATTEMPTS):
        order = get_order(refunds, merchant_id, order_id)
        try:
            refund, payment = _record_refund(refunds, order, request)
        except ConcurrentUpdate:
            time.sleep((attempt + secrets.randbelow(10)) / 200)
            continue
        if refund.is_final:
            return refund
        try:
            start_refund_execution(
                refund.id, _execution_input(refund.id, callback_base_url, refund, payment)
            )
        except PaycoreError:
            # Nothing reached the channel: the refund fails and gives its amount back.
            _finish(
                refunds,
                refund.id,
                RefundOutcome(
                    FAILED,
                    failure_code="workflow_unavailable",
                    failure_message="the refund could not be started",
                ),
                with_event=False,
            )
            raise ServiceUnavailable("the refund could not be started; retry") from None
        return refund
    raise ConcurrentUpdate(f"order {order_id} is busy with other refunds; retry")


def _record_refund(
    refunds: RefundStore, order: Order, request: CreateRefundRequest
) -> tuple[Refund, Payment]:
    """Write the new refund against ``order`` as read (raises ``ConcurrentUpdate`` when the
    order changed meanwhile); the refund as written and the payment it refunds."""
    order.reserve_refund(request.amount)  # refuses an unpaid order or an over-refund first
    payment = _paid_payment(refunds, order)
    allocations = allocate(payment, order.refund_allocated, request.amount)
    at = now_rfc3339()
    has_channel_part = any(a["type"] == CHANNEL for a in allocations)
    refund = Refund(
        id=new_id("rfd"),
        merchant_id=order.merchant_id,
        order_id=order.id,
        payment_id=payment.id,
        amount=request.amount,
        currency=order.currency,
        status=RefundStatus.PROCESSING,
        kind=RefundKind.MERCHANT,
        allocations=allocations,
        created_at=at,
        updated_at=at,
        reason=request.reason,
        channel=payment.channel if has_channel_part else None,
        channel_account=payment.channel_account if has_channel_part else None,
    )
    reserved = order.reserve_refund(refund.amount, allocations, at)
    if has_channel_part:
        refunds.create_refund(
            RefundStart.reserving(refund, reserved, payment=payment, order_before=order)
        )
        return refund, payment
    # Only internal instruments: nothing to wait for.
    succeeded = refund.succeed(None, at, fee_refunded=0)  # no channel part: no fee
    refunded = reserved.complete_refund(refund.amount, allocations, at)
    event = _event(succeeded)
    refunds.create_refund(
        RefundStart.at_once(
            refunded, succeeded, payment=payment, order_before=order, event=event, at=at
        )
    )
    try:
        events.publish(event)
    except Exception:  # the money moved: the answer must say so (the event stays stored)
        logger.warning("refund %s succeeded but its event was not queued", succeeded.id)
    return succeeded, payment


def _paid_payment(store: TradeStore, order: Order) -> Payment:
    payment = store.get_payment(order.current_payment_id) if order.current_payment_id else None
    if payment is None or payment.status is not PaymentStatus.SUCCEEDED:
        raise Conflict(f"order {order.id} has no succeeded payment", code="order_not_refundable")
    return payment


def _execution_input(
    refund_id: str,
    callback_base_url: str,
    refund: Refund | None = None,
    payment: Payment | None = None,
) -> dict[str, Any]:
    """The refund execution's input; with the refund as written and its payment as read
    (``KnownRefund``: the steps' first attempts do not read them again), or null for both
    (a late-payment refund: its payment is not final in every caller's hands)."""
    settings = get_settings()
    return {
        "refund_id": refund_id,
        "callback_base_url": callback_base_url,
        "callback_wait_seconds": settings.callback_wait_seconds,
        "query_interval_seconds": settings.channel_query_interval_seconds,
        "refund": refund_snapshot(refund) if refund is not None else None,
        "payment": payment_snapshot(payment) if payment is not None else None,
    }


# -- late payments ------------------------------------------------------------------------------


def late_payment_refund_id(payment_id: str) -> str:
    return derived_id("rfd", payment_id, RefundKind.LATE_PAYMENT.value)


def start_late_payment_refund(
    store: TradeStore, payment: Payment, amount: int, currency: str, callback_base_url: str
) -> Refund:
    """Give back ``amount`` that the channel took for ``payment`` although the payment is
    final on our side (closed or expired first, or an amount we could not accept).

    The refund's id derives from the payment, so calling this again (a retried step, a
    duplicate notification) finds the same refund and at most restarts its execution under
    the same name: the buyer is refunded once. It is all channel and does not touch the
    order's amounts (the order never counted this money)."""
    if amount <= 0:
        raise ValueError("a late-payment refund needs the positive amount the channel took")
    if not payment.channel:
        raise ValueError(f"payment {payment.id} has no channel to refund through")
    refunds = RefundStore.of(store)
    refund_id = late_payment_refund_id(payment.id)
    refund = refunds.get_refund(refund_id)
    if refund is None:
        at = now_rfc3339()
        refund = Refund(
            id=refund_id,
            merchant_id=payment.merchant_id,
            order_id=payment.order_id,
            payment_id=payment.id,
            amount=amount,
            currency=currency,
            status=RefundStatus.PROCESSING,
            kind=RefundKind.LATE_PAYMENT,
            allocations=[{"type": CHANNEL, "amount": amount}],
            created_at=at,
            updated_at=at,
            reason="the channel took this payment after it was final",
            channel=payment.channel,
            channel_account=payment.channel_account,
        )
        try:
            refunds.create_refund(RefundStart.late_payment(refund, payment))
        except Conflict:  # a twin call recorded it first
            existing = refunds.get_refund(refund_id)
            if existing is None:
                raise
            refund = existing
    if not refund.is_final:
        start_refund_execution(refund.id, _execution_input(refund.id, callback_base_url))
    return refund


# -- channel notifications ----------------------------------------------------------------------


def handle_refund_notification(
    store: TradeStore, state: ChannelRefundState, channel: str, account_id: str, fingerprint: str
) -> str:
    """Take a verified refund notification (its message's ``fingerprint`` kept on the refund)
    and hand its outcome to the waiting refund execution.

    A replay (the refund holds ``fingerprint`` already) or a notification about no refund of
    ours (of another payment, channel or account) raises ``CallbackRejected`` and changes
    nothing; a genuine one is acknowledged even when the refund is already final or no
    longer waiting (the status query settles it then). Returns the refund id."""
    refunds = RefundStore.of(store)
    refund_id = state.out_refund_no
    if not has_prefix(refund_id, "rfd"):
        raise CallbackRejected("the notification names no refund of this channel account")
    # One conditional update refuses a replay or a refund this account does not hold, and
    # reads refund and token.
    refund, token = refunds.take_notification_of_refund(
        refund_id, state.out_trade_no, channel, account_id, fingerprint
    )
    if not refund.is_final:
        outcome = outcome_from_refund_state(state, "callback")
        if outcome.status != PENDING:
            token = token or refunds.get_refund_task_token(refund.id)  # kept apart before
            if token is not None:
                # The refund as taken goes with the outcome: SettleRefund writes it on its
                # version, so the fingerprint just added is kept.
                resume_with_outcome(token, {**outcome.as_dict(), "refund": refund_snapshot(refund)})
    return refund.id


# -- the refund state machine's steps ---------------------------------------------------------


class RefundSteps:
    """The Lambda steps of statemachines/refund.asl.json; each is safe to run again."""

    def __init__(self, store: TradeStore) -> None:
        self.store = RefundStore.of(store)

    def _refund(self, refund_id: str) -> Refund:
        refund = self.store.get_refund(refund_id)
        if refund is None:
            raise NotFound(f"no refund {refund_id}", code="refund_not_found")
        return refund

    def request_channel_refund(
        self,
        refund_id: str,
        callback_base_url: str,
        task_token: str,
        *,
        known: KnownRefund | None = None,
    ) -> dict[str, Any]:
        """Ask the channel to refund (out_refund_no = refund id: asking again is the same
        refund). A final answer resumes the execution at once; otherwise the notification
        (or, when it is late, the status query) does.

        ``known``: the refund and payment the API started the execution with, on the step's
        first attempt only: the task token is written on the carried refund's version (which
        proves it is still processing) and the payment's channel ids are taken from it,
        instead of reading them."""
        known = known.of_refund(refund_id) if known is not None else None
        refund = self._wait_for_channel(
            refund_id, task_token, known.refund if known is not None else None
        )
        if refund.is_final:
            resume_with_outcome(task_token, {"status": refund.status.value, "source": "replay"})
            return {"refund_id": refund_id, "status": refund.status.value}
        gateway = _gateway(refund)
        payment = known.payment if known is not None else None
        request = _channel_refund(self.store, gateway, refund, callback_base_url, payment)
        state = gateway.refund(request)
        outcome = outcome_from_refund_state(state, "request")
        if outcome.status != PENDING:
            resume_with_outcome(task_token, outcome.as_dict())
        return {"refund_id": refund_id, "status": outcome.status}

    def _wait_for_channel(self, refund_id: str, task_token: str, held: Refund | None) -> Refund:
        """The refund with the waiting execution's task token on it, written on the version
        ``held`` (else as read; read again when that write finds it changed); a final refund
        as read, without the token (the step replays its outcome)."""
        refund = held
        for _ in range(WRITE_ATTEMPTS):
            if refund is None:
                refund = self._refund(refund_id)
                if refund.is_final:
                    return refund
            if self.store.wait_for_channel(refund, task_token):
                return refund
            refund = None
        raise ConcurrentUpdate(f"refund {refund_id} keeps changing; retrying the step")

    def query_refund(self, refund_id: str, callback_base_url: str = "") -> dict[str, Any]:
        """Ask the channel how the refund went. A channel that never got the request (its
        answer was lost, or every try failed) is asked to refund again: same out_refund_no."""
        refund = self._refund(refund_id)
        if refund.is_final:
            return RefundOutcome(refund.status.value, refund.channel_refund_id).as_dict()
        gateway = _gateway(refund)
        state = gateway.query_refund(refund.payment_id, refund.id)
        if state.status is ChannelRefundStatus.NOT_FOUND:
            try:
                request = _channel_refund(self.store, gateway, refund, callback_base_url)
                state = gateway.refund(request)
            except ChannelRejected as exc:
                return RefundOutcome(
                    FAILED, failure_code="channel_rejected", failure_message=str(exc)
                ).as_dict()
        return outcome_from_refund_state(state, "query").as_dict()

    def settle_refund(
        self, refund_id: str, raw_outcome: dict[str, Any], *, known: KnownRefund | None = None
    ) -> dict[str, Any]:
        """Write the final refund, the order's amounts, the internal credits and the event
        in one transaction; then queue the event: the one just written, or (the refund was
        already final: an earlier try may have stopped before the queue) the stored one,
        again. Receivers dedupe on the event id.

        ``known``: the refund and payment the API started the execution with, on the step's
        first attempt only: the first write is made on the refund's version as carried (the
        order is read), and everything is read again if that write fails."""
        known = known.of_refund(refund_id) if known is not None else None
        outcome = _parse_outcome(raw_outcome)
        refund, event = _finish(self.store, refund_id, outcome, known=known)
        newly_settled = event is not None
        if event is None:
            event = self.store.get_event(events.event_id(refund.id, _event_type(refund)))
        if event is not None:
            events.publish(event)
        return {
            "refund_id": refund.id,
            "status": refund.status.value,
            "failure_code": refund.failure_code,
            "newly_settled": newly_settled,
        }


def _gateway(refund: Refund) -> ChannelGateway:
    if not refund.channel:
        raise ValueError(f"refund {refund.id} has no channel part")
    return get_gateway(refund.channel, refund.channel_account)


def _channel_refund(
    store: TradeStore,
    gateway: ChannelGateway,
    refund: Refund,
    callback_base_url: str,
    payment: Payment | None = None,
) -> CreateChannelRefund:
    """The channel's refund request; ``payment`` (its channel ids) is read when not given."""
    base = callback_base_url or get_settings().public_api_url
    if payment is None or payment.id != refund.payment_id:
        payment = store.get_payment(refund.payment_id)
    return CreateChannelRefund(
        out_trade_no=refund.payment_id,
        out_refund_no=refund.id,
        amount=refund.channel_amount,
        currency=refund.currency,
        notify_url=callback_url(base, gateway.name, gateway.account_id),
        reason=refund.reason,
        channel_order_id=payment.channel_order_id if payment else None,
        channel_transaction_id=payment.channel_transaction_id if payment else None,
    )


def _finish(
    store: RefundStore,
    refund_id: str,
    outcome: RefundOutcome,
    *,
    with_event: bool = True,
    known: KnownRefund | None = None,
) -> tuple[Refund, Event | None]:
    """Make a processing refund final (see ``RefundSteps.settle_refund``); the refund and,
    when this call finished it, the event it wrote (None: already final, or ``with_event``
    off). Re-reads and retries when the order changed meanwhile.

    ``known``: the first try takes the refund and payment from it instead of reading them
    (the order is read) and writes on the carried refund's version; when the order no longer
    holds that refund (it was settled meanwhile) or the write fails, everything is read."""
    for attempt in range(WRITE_ATTEMPTS):
        carried, known = known, None  # the carried values serve the first try only
        refund = carried.refund if carried is not None else store.get_refund(refund_id)
        if refund is None:
            raise NotFound(f"no refund {refund_id}", code="refund_not_found")
        if refund.is_final:
            return refund, None
        at = now_rfc3339()
        order = store.get_order(refund.order_id) if refund.kind is RefundKind.MERCHANT else None
        if refund.kind is RefundKind.MERCHANT and order is None:
            raise NotFound(f"no order {refund.order_id}", code="order_not_found")
        payment = carried.payment if carried is not None else store.get_payment(refund.payment_id)
        if payment is None:
            raise NotFound(f"no payment {refund.payment_id}", code="payment_not_found")
        try:
            settlement = _settlement(refund, order, payment, outcome, at=at, with_event=with_event)
        except Conflict:
            if carried is None:
                raise
            continue  # the order no longer holds the refund as carried: read the refund
        if store.finish_refund(settlement):
            return settlement.refund, settlement.event
        time.sleep((attempt + secrets.randbelow(10)) / 200)
    raise ConcurrentUpdate(f"refund {refund_id} changed while settling; retrying")


def _settlement(
    refund: Refund,
    order: Order | None,
    payment: Payment,
    outcome: RefundOutcome,
    *,
    at: str,
    with_event: bool,
) -> RefundSettlement:
    """What makes ``refund`` final by ``outcome`` against ``order`` as read (``Conflict``
    when the order does not hold the refund's amount)."""
    before = order
    if outcome.status == SUCCEEDED:
        returned = postings.fee_refunded(refund, payment, order)
        final = refund.succeed(outcome.channel_refund_id, at, fee_refunded=returned)
        if order is not None:
            order = order.complete_refund(refund.amount, refund.allocations, at)
    else:
        final = refund.fail(
            outcome.failure_code or "refund_failed",
            outcome.failure_message or "the refund failed",
            at,
        )
        if order is not None:
            order = order.release_refund(refund.amount, refund.allocations, at)
    event = _event(final) if with_event else None
    return RefundSettlement.of(
        final, order, payment=payment, order_before=before, event=event, at=at
    )


def _event_type(refund: Refund) -> str:
    return (
        events.REFUND_SUCCEEDED if refund.status is RefundStatus.SUCCEEDED else events.REFUND_FAILED
    )


def _event(refund: Refund) -> Event:
    return events.event_for(_event_type(refund), refund.merchant_id, refund.id, refund.resource())


def _parse_outcome(raw: dict[str, Any]) -> RefundOutcome:
    """The SettleRefund step's input: a channel outcome, or a caught error of the request."""
    caught = caught_channel_error(raw)
    if caught is not None:
        return RefundOutcome(FAILED, failure_code=caught[0], failure_message=caught[1])
    status = raw.get("status")
    if status not in (SUCCEEDED, FAILED):
        raise ValueError(f"settling a refund needs a final outcome, got {status!r}")
    return RefundOutcome(
        status=str(status),
        channel_refund_id=raw.get("channel_refund_id"),
        failure_code=raw.get("failure_code"),
        failure_message=raw.get("failure_message"),
        source=str(raw.get("source") or "callback"),
    )
