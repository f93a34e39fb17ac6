"""The payment state machine's steps (statemachines/payment.asl.json).

Each step is safe to run again: the channel deduplicates on out_trade_no (the payment id),
writes are conditional on the version read, and the settlement's event id is derived from
the payment, so a retried step finds its own earlier work instead of repeating it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from paycore.channels.accounts import callback_url
from paycore.channels.base import (
    ChannelGateway,
    ChannelPaymentState,
    ChannelPaymentStatus,
    CreateChannelOrder,
    NextAction,
)
from paycore.channels.registry import get_gateway, route
from paycore.clock import now, now_rfc3339, parse_rfc3339
from paycore.config import get_settings
from paycore.dal.trade_store import TradeStore, order_from_snapshot, payment_from_snapshot
from paycore.dal.workflow import caught_channel_error, resume_with_outcome
from paycore.domain.changes import PaymentSettlement
from paycore.domain.models import Event, Order, Payment
from paycore.domain.status import OrderStatus, PaymentStatus
from paycore.errors import (
    ChannelError,
    ChannelRejected,
    ChannelUnavailable,
    ConcurrentUpdate,
    NotFound,
    TryAgain,
)
from paycore.services import events

logger = logging.getLogger(__name__)

# How far a channel's clock (and its whole-second deadlines) may be from ours.
_CHANNEL_CLOCK_SKEW = timedelta(seconds=2)

SUCCEEDED = "succeeded"
_SETTLE_ATTEMPTS = 5
# How long a close waits for a payment's channel order to be created before "try again".
_ACCOUNT_WAIT_SECONDS = 3.0
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
    # Money the channel took (it reported success), even when we cannot accept it (an amount
    # mismatch) or the payment is already final: such money is refunded automatically.
    paid_amount: int | None = None
    paid_currency: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "channel_transaction_id": self.channel_transaction_id,
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
            "source": self.source,
            "paid_amount": self.paid_amount,
            "paid_currency": self.paid_currency,
        }


def outcome_from_channel(payment: Payment, state: ChannelPaymentState, source: str) -> Outcome:
    """Map the channel's view of an order to an outcome, refusing a success whose amount or
    currency is not the payment's."""
    match state.status:
        case ChannelPaymentStatus.SUCCEEDED:
            accepted = (state.amount, state.currency) == (payment.channel_amount, payment.currency)
            return Outcome(
                SUCCEEDED if accepted else FAILED,
                state.channel_transaction_id,
                failure_code=None if accepted else "amount_mismatch",
                failure_message=None
                if accepted
                else (
                    f"channel reported {state.amount} {state.currency}, "
                    f"expected {payment.channel_amount} {payment.currency}"
                ),
                source=source,
                paid_amount=state.amount,
                paid_currency=state.currency,
            )
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


@dataclass(frozen=True)
class Known:
    """A payment and its order as a step was handed them (the execution's input, the
    callback's outcome), so the step does not read them again. Every write made from them is
    conditional on their versions; when one fails, the step reads both and tries again."""

    payment: Payment
    order: Order

    @classmethod
    def of(cls, payment: Mapping[str, Any], order: Mapping[str, Any]) -> Known:
        return cls(payment_from_snapshot(dict(payment)), order_from_snapshot(dict(order)))

    @classmethod
    def carried(cls, payment: Any, order: Any) -> Known | None:
        """Both, when both were carried and belong together; else None (read them)."""
        if not isinstance(payment, Mapping) or not isinstance(order, Mapping):
            return None
        known = cls.of(payment, order)
        return known if known.payment.order_id == known.order.id else None

    def of_payment(self, payment_id: str) -> Known | None:
        return self if self.payment.id == payment_id else None


class PaymentSteps:
    def __init__(self, store: TradeStore) -> None:
        self.store = store

    def _payment(self, payment_id: str) -> Payment:
        payment = self.store.get_payment(payment_id)
        if payment is None:
            raise NotFound(f"no payment {payment_id}", code="payment_not_found")
        return payment

    def _order(self, order_id: str) -> Order:
        order = self.store.get_order(order_id)
        if order is None:
            raise NotFound(f"no order {order_id}", code="order_not_found")
        return order

    # -- CreateChannelOrder ------------------------------------------------------------------

    def create_channel_order(
        self,
        payment_id: str,
        callback_base_url: str,
        task_token: str,
        *,
        known: Known | None = None,
    ) -> dict[str, Any]:
        """Route the payment to a channel account and create the channel order there, failing
        over to the next account only when the channel proves nothing was created. Records
        the redirect URL, the account, every attempt and the task token on the payment (one
        conditional write per attempt: the callback reads payment and token together). The
        execution then waits until the callback (or this step, for an outcome already known)
        resumes it.

        ``known``: the payment and order as the API wrote them, on the step's first attempt
        only (a retry reads them: an earlier attempt may have pinned an account)."""
        known = known.of_payment(payment_id) if known is not None else None
        payment = known.payment if known is not None else self._payment(payment_id)
        if payment.is_final:
            resume_with_outcome(task_token, {"status": payment.status.value, "source": "replay"})
            return {"payment_id": payment_id, "status": payment.status.value}
        order = known.order if known is not None else self._order(payment.order_id)
        channel = str(payment.channel)
        for account in self._accounts_to_try(payment):
            gateway = get_gateway(channel, account)
            request = CreateChannelOrder(
                out_trade_no=payment.id,
                amount=payment.channel_amount,
                currency=payment.currency,
                subject=order.subject,
                notify_url=callback_url(callback_base_url, channel, account),
                expires_at=order.expires_at,
                return_url=payment.return_url,
                simulate=_switches_for(gateway, payment.simulate),
            )
            try:
                created = gateway.create_order(request)
            except ChannelRejected as exc:
                self._record_attempt(payment, account, "rejected", str(exc), task_token)
                raise
            except ChannelUnavailable as exc:
                # The outcome is unknown: only the same account can say whether the order
                # exists. Never move on while it might (that could charge the buyer twice).
                state = self._ask_after_unknown_create(payment, account, gateway, exc, task_token)
                if state.status is ChannelPaymentStatus.NOT_FOUND:
                    payment = self._record_attempt(
                        payment, account, "not_created", str(exc), task_token
                    )
                    continue
                return self._adopt(
                    payment,
                    account,
                    gateway=gateway,
                    request=request,
                    state=state,
                    task_token=task_token,
                    detail=str(exc),
                )
            return self._created(
                payment,
                account,
                task_token,
                channel_order_id=created.channel_order_id,
                next_action=created.next_action,
                result="created",
            )
        raise ChannelUnavailable(f"no {channel} account could create the order")

    def _accounts_to_try(self, payment: Payment) -> list[str]:
        """The routed accounts, minus those that proved they did not create the order; only
        the chosen account once one may hold the order."""
        if payment.channel_account is not None:
            return [payment.channel_account]
        refused = {a["account"] for a in payment.channel_attempts if a["result"] == "not_created"}
        routed = route(str(payment.channel), payment.currency, payment.channel_amount)
        remaining = [account for account in routed if account not in refused]
        # Every account refused once (all were down): start the round again.
        return remaining or routed

    def _ask_after_unknown_create(
        self,
        payment: Payment,
        account: str,
        gateway: ChannelGateway,
        error: ChannelUnavailable,
        task_token: str,
    ) -> ChannelPaymentState:
        try:
            return gateway.query_order(payment.id)
        except ChannelUnavailable:
            # Still unknown: pin the payment to this account and let the state machine retry
            # the create (the same out_trade_no finds the same order) or query it later.
            self._record_attempt(payment, account, "unknown", str(error), task_token, choose=True)
            raise error from None

    def _adopt(
        self,
        payment: Payment,
        account: str,
        *,
        gateway: ChannelGateway,
        request: CreateChannelOrder,
        state: ChannelPaymentState,
        task_token: str,
        detail: str,
    ) -> dict[str, Any]:
        """The create did reach the channel (its answer was lost): use that order. A query
        rarely says where the buyer pays (Alipay's, WeChat Pay's do not), so while the order
        waits for the buyer the create is asked again: the same reference finds the same
        order, never a second one, and its answer carries the buyer's next action.

        When that create's answer is lost too, the order waits for a buyer who could never
        reach it: the payment is pinned to this account (never another: the order exists
        there) and the error goes to the state machine, whose retry of the step asks the
        create again."""
        next_action, channel_order_id = state.next_action, state.channel_order_id
        if next_action is None and state.status is ChannelPaymentStatus.PENDING:
            try:
                again = gateway.create_order(request)
            except ChannelUnavailable as exc:
                pinned = self._record_attempt(
                    payment,
                    account,
                    "created_answer_lost",
                    f"{detail}; asked again: {exc}",
                    task_token,
                    choose=True,
                    channel_order_id=channel_order_id,
                )
                if not pinned.is_final:
                    raise
                self._close_after_final(pinned)  # closed meanwhile: as _created does
                return {"payment_id": payment.id, "channel_order_id": channel_order_id}
            except ChannelError as exc:
                logger.warning("the adopted order's next action is unknown: %s", exc.code)
            else:
                next_action = again.next_action
                channel_order_id = again.channel_order_id or channel_order_id
        result = self._created(
            payment,
            account,
            task_token,
            channel_order_id=channel_order_id,
            next_action=next_action,
            result="created_answer_lost",
            detail=detail,
        )
        outcome = outcome_from_channel(payment, state, "query")
        if outcome.status != PENDING:
            resume_with_outcome(task_token, outcome.as_dict())
        return result

    def _created(
        self,
        payment: Payment,
        account: str,
        task_token: str,
        *,
        channel_order_id: str | None,
        next_action: NextAction | None,
        result: str,
        detail: str | None = None,
    ) -> dict[str, Any]:
        payment_id = payment.id
        payment = self._record_attempt(
            payment,
            account,
            result,
            detail,
            task_token,
            choose=True,
            channel_order_id=channel_order_id,
            next_action=next_action.resource() if next_action else None,
        )
        if payment.is_final:
            # Closed (or expired) while the create was in flight: the new channel order must
            # not stay payable. Money already taken is refunded.
            self._close_after_final(payment)
        return {"payment_id": payment_id, "channel_order_id": channel_order_id}

    def _record_attempt(
        self,
        known: Payment,
        account: str,
        result: str,
        detail: str | None,
        task_token: str,
        *,
        choose: bool = False,
        channel_order_id: str | None = None,
        next_action: dict[str, str] | None = None,
    ) -> Payment:
        """Append one create attempt (and, ``choose``, pin the account) to the payment, with
        the waiting execution's task token: written on the version ``known`` holds, read
        again only when that write finds it changed."""
        payment: Payment | None = known
        for _ in range(5):
            if payment is None:
                payment = self._payment(known.id)
            attempt = {"account": account, "result": result, "detail": detail, "at": now_rfc3339()}
            changed = replace(
                payment,
                channel_attempts=[*payment.channel_attempts, attempt],
                updated_at=now_rfc3339(),
            )
            if choose:
                changed = replace(changed, channel_account=account)
            if channel_order_id is not None:
                changed = replace(changed, channel_order_id=channel_order_id)
            if next_action is not None and not payment.is_final:
                changed = replace(changed, next_action=next_action)
            try:
                return self.store.save_payment(changed, task_token=task_token)
            except ConcurrentUpdate:
                payment = None
                continue
        raise ConcurrentUpdate(f"payment {known.id} keeps changing; retrying the step")

    def _close_after_final(self, payment: Payment) -> None:
        gateway = get_gateway(str(payment.channel), payment.channel_account)
        state = gateway.close_order(payment.id, payment.channel_order_id)
        outcome = outcome_from_channel(payment, state, "close")
        if outcome.paid_amount is not None:
            refund_late_payment(self.store, payment, outcome)

    # -- QueryChannel ------------------------------------------------------------------------

    def query_channel(self, payment_id: str) -> dict[str, Any]:
        """Ask the channel when the callback is late. Past the order's deadline the channel
        order is closed, so it can never be paid after we gave up on it."""
        payment = self._payment(payment_id)
        if payment.is_final:
            return Outcome(payment.status.value).as_dict()
        if payment.channel_account is None:
            return self._outcome_without_account(payment).as_dict()
        gateway = get_gateway(str(payment.channel), payment.channel_account)
        state = gateway.query_order(payment.id, payment.channel_order_id)
        outcome = outcome_from_channel(payment, state, "query")
        if outcome.status == SUCCEEDED:
            return outcome.as_dict()
        order = self._order(payment.order_id)
        deadline = parse_rfc3339(order.expires_at)
        # A channel that closes its order at our deadline by itself (Alipay's time_expire, in
        # whole seconds, so up to a second early) closed it because the order expired.
        expired_at_channel = deadline - now() <= _CHANNEL_CLOCK_SKEW
        if deadline > now() and not (
            expired_at_channel and outcome.failure_code == "channel_order_closed"
        ):
            return outcome.as_dict()
        if outcome.status == PENDING:
            closed = gateway.close_order(payment.id, payment.channel_order_id)
            outcome = outcome_from_channel(payment, closed, "close")
        if outcome.failure_code == "channel_order_closed":
            outcome = replace(
                outcome,
                failure_code="order_expired",
                failure_message="the buyer did not pay before the order expired",
            )
        return outcome.as_dict()

    def _outcome_without_account(self, payment: Payment) -> Outcome:
        """No account holds the channel order yet: the create may still be running (its
        answer is slow). Failed only when every routed account proved it created nothing,
        or when the order expired (a create that lands after that finds the payment final
        and closes its channel order)."""
        if parse_rfc3339(self._order(payment.order_id).expires_at) <= now():
            return Outcome(
                FAILED,
                failure_code="order_expired",
                failure_message="the order expired before a channel order was created",
            )
        refused = {a["account"] for a in payment.channel_attempts if a["result"] == "not_created"}
        routed = route(str(payment.channel), payment.currency, payment.channel_amount)
        if set(routed) <= refused:
            return Outcome(
                FAILED,
                failure_code="channel_unavailable",
                failure_message="no channel account could create the order",
            )
        return Outcome(PENDING)

    # -- Settle ------------------------------------------------------------------------------

    def settle(
        self, payment_id: str, raw_outcome: dict[str, Any], *, known: Known | None = None
    ) -> dict[str, Any]:
        """Write the final state: payment succeeded and order paid, or payment failed and the
        order payable again; the internal instruments confirmed or released and the event,
        all in the same transaction; then queue the event. Money the channel took for a
        payment that could not accept it is refunded.

        ``known``: the payment (as the callback read it) and its order (as the API wrote it):
        the first try writes on their versions without reading them."""
        outcome = _parse_outcome(raw_outcome)
        known = known.of_payment(payment_id) if known is not None else None
        newly_settled = False
        event: Event | None = None
        for _ in range(_SETTLE_ATTEMPTS):
            payment = known.payment if known is not None else self._payment(payment_id)
            order = known.order if known is not None else None
            known = None
            if payment.is_final:
                break
            try:
                payment, event = self._settle(payment, outcome, order)
            except ConcurrentUpdate:
                continue  # settled (or closed) meanwhile: read it again
            newly_settled = True
            break
        else:
            raise ConcurrentUpdate(f"payment {payment_id} keeps changing while settling")
        if outcome.paid_amount is not None and payment.status is not PaymentStatus.SUCCEEDED:
            refund_late_payment(self.store, payment, outcome)
        # Queue the event even when an earlier try already wrote it: that try may have
        # stopped before reaching the queue. Receivers dedupe on the event id.
        if event is not None:
            events.publish(event)
        else:
            republish(self.store, payment)
        return {
            "payment_id": payment.id,
            "status": payment.status.value,
            "failure_code": payment.failure_code,
            "newly_settled": newly_settled,
        }

    def _settle(
        self, payment: Payment, outcome: Outcome, order: Order | None = None
    ) -> tuple[Payment, Event]:
        if order is None:
            order = self._order(payment.order_id)
        if order.status is not OrderStatus.PAYING or order.current_payment_id != payment.id:
            # Read between another settlement's commit and our read of the payment.
            raise ConcurrentUpdate(f"order {order.id} moved on while {payment.id} was settling")
        at = now_rfc3339()
        event: Event
        if outcome.status == SUCCEEDED:
            payment = payment.succeed(outcome.channel_transaction_id, at)
            order = order.mark_paid(payment, at, time_zone=get_settings().settlement_time_zone)
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
        if not self.store.settle_payment(PaymentSettlement.of(payment, order, event, at=at)):
            raise ConcurrentUpdate(f"payment {payment.id} changed while settling; retrying")
        return payment, event

    # -- close while paying (merchant close, expiry) -------------------------------------------

    def _payment_and_token(self, payment_id: str) -> tuple[Payment, str | None]:
        payment, token = self.store.get_payment_and_token(payment_id)
        if payment is None:
            raise NotFound(f"no payment {payment_id}", code="payment_not_found")
        return payment, token

    def _wait_for_account(self, payment: Payment, token: str | None) -> tuple[Payment, str | None]:
        """The payment (and the waiting execution's task token) once its channel order has
        an account (the create is in flight for a moment after the payment starts);
        TryAgain when that takes too long."""
        deadline = time.monotonic() + _ACCOUNT_WAIT_SECONDS
        while payment.channel_account is None and not payment.is_final:
            if time.monotonic() >= deadline:
                raise TryAgain(
                    "the payment is still reaching its channel; retry the close shortly",
                    code="payment_starting",
                )
            time.sleep(0.2)
            payment, token = self._payment_and_token(payment.id)
        if payment.is_final:
            raise ConcurrentUpdate(f"payment {payment.id} settled while closing")
        return payment, token

    def close_paying_order(self, order: Order, code: str, message: str) -> Order:
        """Close an order whose payment is in flight, consistently with the channel: close
        the channel order first; if the buyer paid before that, the payment succeeds and the
        order cannot be closed (409); otherwise the payment fails (releasing what it reserved)
        and the order closes, in one transaction."""
        payment, token = self._payment_and_token(str(order.current_payment_id))
        if payment.channel is not None:
            payment, token = self._wait_for_account(payment, token)
            gateway = get_gateway(str(payment.channel), payment.channel_account)
            state = gateway.close_order(payment.id, payment.channel_order_id)
            outcome = outcome_from_channel(payment, state, "close")
            if outcome.status == SUCCEEDED:
                # The buyer paid first: settle that, then the caller reads the order again
                # (now paid: the close is refused with order_not_closable).
                self.settle(payment.id, outcome.as_dict())
                raise ConcurrentUpdate(f"order {order.id} was paid while closing")
            if outcome.paid_amount is not None:
                refund_late_payment(self.store, payment, outcome)
        at = now_rfc3339()
        failed = payment.fail(code, message, at)
        closed = order.reopen(payment.id, at).close(at)
        payment_event = events.event_for(
            events.PAYMENT_FAILED, order.merchant_id, payment.id, failed.resource()
        )
        order_event = events.event_for(
            events.ORDER_CLOSED, order.merchant_id, order.id, closed.resource()
        )
        settlement = PaymentSettlement.of(failed, closed, payment_event, order_event, at=at)
        if not self.store.settle_payment(settlement):
            raise ConcurrentUpdate(f"order {order.id} changed while closing; retry")
        events.publish(payment_event)
        events.publish(order_event)
        token = token or self.store.get_task_token(payment.id)  # kept apart before
        if token is not None:  # let the waiting execution finish now
            resume_with_outcome(token, {"status": FAILED, "source": "close"})
        return replace(closed, version=order.version + 1)


def _switches_for(
    gateway: ChannelGateway, switches: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The payment's misbehaviour switches, for a simulator account only: a real channel
    account never receives them (the API refuses them up front; this guards an account that
    stopped being a simulator while the payment was in flight)."""
    if switches is None or gateway.simulator:
        return switches
    logger.warning(
        "simulate dropped: %s account %s is not a simulator", gateway.name, gateway.account_id
    )
    return None


def republish(store: TradeStore, payment: Payment) -> None:
    """Queue the settlement's event again (at least once; receivers dedupe on its id)."""
    event_type = (
        events.ORDER_PAID if payment.status is PaymentStatus.SUCCEEDED else events.PAYMENT_FAILED
    )
    stored = store.get_event(events.event_id(payment.id, event_type))
    if stored is not None:
        events.publish(stored)


def refund_late_payment(store: TradeStore, payment: Payment, outcome: Outcome) -> None:
    """The channel took money for a payment that is final without it (closed, expired, or an
    amount we could not accept): give it back (a ``late_payment`` refund, started once)."""
    # Imported here: the refund service builds on this module.
    from paycore.services.refunds import start_late_payment_refund  # noqa: PLC0415

    start_late_payment_refund(
        store,
        payment,
        int(outcome.paid_amount or 0),
        outcome.paid_currency or payment.currency,
        payment.callback_base_url or "",
    )


def _parse_outcome(raw: dict[str, Any]) -> Outcome:
    """The Settle step's input: a channel outcome, or a caught error from creating the order."""
    caught = caught_channel_error(raw)
    if caught is not None:
        return Outcome(FAILED, failure_code=caught[0], failure_message=caught[1])
    status = raw.get("status")
    if status not in (SUCCEEDED, FAILED):
        raise ValueError(f"settle needs a final outcome, got {status!r}")
    return Outcome(
        status=status,
        channel_transaction_id=raw.get("channel_transaction_id"),
        failure_code=raw.get("failure_code"),
        failure_message=raw.get("failure_message"),
        source=str(raw.get("source") or "callback"),
        paid_amount=raw.get("paid_amount"),
        paid_currency=raw.get("paid_currency"),
    )
