"""The sandbox's order book: in-memory orders and refunds and the rules of their changes.

An order starts ``WAIT_BUYER_PAY`` and ends once: ``SUCCESS`` (the buyer paid), ``DECLINED``
(the buyer refused) or ``CLOSED`` (the merchant closed it, or it expired). Only an unpaid
order closes; only a waiting order can be paid or declined. Expiry is applied lazily whenever
an order is read or acted on, so no timer thread is needed and every reader sees the same
answer. A paid order can be refunded, in parts, up to its amount; a refund is ``PROCESSING``
until it ends ``SUCCESS`` or ``FAILED``. Every method takes the one lock and hands out copies,
never the live object.
"""

from __future__ import annotations

import copy
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from local_runtime.sandbox.errors import ErrorCode, SandboxError, invalid_parameter
from local_runtime.sandbox.models import CreateOrderRequest, CreateRefundRequest, SandboxBehaviour

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime | None) -> str | None:
    """``2030-01-01T00:00:00.000Z`` (UTC, milliseconds), or None for None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TradeStatus(StrEnum):
    WAIT_BUYER_PAY = "WAIT_BUYER_PAY"
    SUCCESS = "SUCCESS"
    DECLINED = "DECLINED"
    CLOSED = "CLOSED"


class CloseReason(StrEnum):
    MERCHANT_CLOSED = "MERCHANT_CLOSED"
    EXPIRED = "EXPIRED"


class BuyerAction(StrEnum):
    PAY = "pay"
    DECLINE = "decline"


BUYER_DECLINED = ("BUYER_DECLINED", "The buyer declined the payment.")


@dataclass
class Order:
    """One channel order. Mutated only by ``OrderBook`` under its lock."""

    account: str
    out_trade_no: str
    channel_order_id: str
    pay_token: str
    pay_url: str
    amount: int
    currency: str
    subject: str
    notify_url: str
    return_url: str | None
    expires_at: datetime
    created_at: datetime
    behaviour: SandboxBehaviour
    status: TradeStatus = TradeStatus.WAIT_BUYER_PAY
    transaction_id: str | None = None
    paid_at: datetime | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    closed_at: datetime | None = None
    close_reason: CloseReason | None = None

    def view(self) -> dict[str, Any]:
        """The order as the merchant API shows it."""
        return {
            "out_trade_no": self.out_trade_no,
            "channel_order_id": self.channel_order_id,
            "status": self.status.value,
            "amount": self.amount,
            "currency": self.currency,
            "subject": self.subject,
            "pay_url": self.pay_url,
            "transaction_id": self.transaction_id,
            "paid_at": rfc3339(self.paid_at),
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
            "expires_at": rfc3339(self.expires_at),
            "created_at": rfc3339(self.created_at),
            "closed_at": rfc3339(self.closed_at),
            "close_reason": self.close_reason.value if self.close_reason else None,
        }


class RefundStatus(StrEnum):
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


REFUND_REJECTED = ("REFUND_REJECTED", "The channel rejected the refund.")


@dataclass
class Refund:
    """One refund of a paid order. Mutated only by ``OrderBook`` under its lock."""

    account: str
    out_refund_no: str
    out_trade_no: str
    refund_id: str
    amount: int
    currency: str
    notify_url: str
    reason: str | None
    created_at: datetime
    status: RefundStatus = RefundStatus.PROCESSING
    failure_code: str | None = None
    failure_message: str | None = None
    finished_at: datetime | None = None

    def view(self) -> dict[str, Any]:
        """The refund as the merchant API shows it."""
        return {
            "out_refund_no": self.out_refund_no,
            "out_trade_no": self.out_trade_no,
            "refund_id": self.refund_id,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status.value,
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
            "created_at": rfc3339(self.created_at),
            "finished_at": rfc3339(self.finished_at),
        }


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


_Key = tuple[str, str]  # (account, out_trade_no) or (account, out_refund_no)


class OrderBook:
    """Every order and refund the sandbox knows. Each channel account has its own order book
    (orders keyed by ``(account, out_trade_no)``, refunds by ``(account, out_refund_no)``);
    pay links are unique over all accounts. Also counts create and refund calls per
    ``out_trade_no`` over all accounts, for the "times" switches."""

    def __init__(self, pay_url_for: Callable[[str], str], clock: Clock = utc_now) -> None:
        self._pay_url_for = pay_url_for
        self._clock = clock
        self._lock = threading.Lock()
        self._orders: dict[_Key, Order] = {}
        self._by_token: dict[str, _Key] = {}
        self._refunds: dict[_Key, Refund] = {}
        self._refunds_of: dict[_Key, list[Refund]] = {}
        self._calls: dict[tuple[str, str], int] = {}

    def count_call(self, kind: str, out_trade_no: str) -> int:
        """Count one more ``kind`` call ("create", "refund") for ``out_trade_no`` in any
        account; returns its number, 1 for the first."""
        with self._lock:
            number = self._calls.get((kind, out_trade_no), 0) + 1
            self._calls[(kind, out_trade_no)] = number
            return number

    # -- orders ------------------------------------------------------------------------------

    def create(self, account: str, request: CreateOrderRequest) -> tuple[Order, bool]:
        """The order for ``request`` in ``account`` and whether it is new. A replay with the
        same amount and currency returns the existing order, whatever its status; other values
        are a 409 ORDER_PARAMS_MISMATCH. A new order must expire in the future."""
        with self._lock:
            existing = self._orders.get((account, request.out_trade_no))
            if existing is not None:
                _check_replay(existing, request)
                return self._snapshot(existing), False
            if request.expiry <= self._clock():
                raise invalid_parameter("expires_at: must be in the future", "expires_at")
            order = self._new_order(account, request)
            self._orders[(account, order.out_trade_no)] = order
            self._by_token[order.pay_token] = (account, order.out_trade_no)
            return copy.copy(order), True

    def get(self, account: str, out_trade_no: str) -> Order:
        with self._lock:
            return self._snapshot(self._find(account, out_trade_no))

    def find(self, out_trade_no: str) -> list[Order]:
        """The orders with this ``out_trade_no`` in every account, oldest first."""
        with self._lock:
            return [
                self._snapshot(order)
                for (_, number), order in self._orders.items()
                if number == out_trade_no
            ]

    def find_by_token(self, token: str) -> Order:
        """The order behind a pay link; 404 PAY_LINK_NOT_FOUND for an unknown token."""
        with self._lock:
            return self._snapshot(self._find_by_token(token))

    def all(self) -> list[Order]:
        """Every order of every account, oldest first."""
        with self._lock:
            return [self._snapshot(order) for order in self._orders.values()]

    def close(self, account: str, out_trade_no: str) -> Order:
        """Close an unpaid order (idempotent); a paid one is a 409 ORDER_PAID."""
        with self._lock:
            order = self._find(account, out_trade_no)
            self._expire_if_due(order)
            match order.status:
                case TradeStatus.SUCCESS:
                    raise _conflict(ErrorCode.ORDER_PAID, "the order is paid", order)
                case TradeStatus.CLOSED:
                    pass
                case TradeStatus.WAIT_BUYER_PAY if order.behaviour.close_ignored:
                    # The close "succeeds" but never takes effect: the buyer can still pay,
                    # as when a close reaches a real channel after the buyer pressed Pay.
                    answer = copy.copy(order)
                    answer.status = TradeStatus.CLOSED
                    answer.closed_at = self._clock()
                    answer.close_reason = CloseReason.MERCHANT_CLOSED
                    return answer
                case TradeStatus.WAIT_BUYER_PAY | TradeStatus.DECLINED:
                    order.status = TradeStatus.CLOSED
                    order.closed_at = self._clock()
                    order.close_reason = CloseReason.MERCHANT_CLOSED
            return copy.copy(order)

    def act(self, token: str, action: BuyerAction) -> tuple[Order, bool]:
        """Apply the buyer's choice; returns the order and whether its status changed.
        Repeating the choice already made is a no-op; any other change is a 409."""
        with self._lock:
            order = self._find_by_token(token)
            self._expire_if_due(order)
            changed = _apply(order, action, self._clock())
            return copy.copy(order), changed

    # -- refunds -----------------------------------------------------------------------------

    def refund(
        self, account: str, out_trade_no: str, request: CreateRefundRequest
    ) -> tuple[Refund, bool]:
        """The refund for ``request`` and whether it is new (idempotent on out_refund_no).

        A new refund needs a paid order (409 ORDER_NOT_PAID) and room under the paid amount
        for it beside every refund that is not FAILED (409 REFUND_EXCEEDS_PAID). It is final
        at once (SUCCESS, or FAILED with ``refund_fail``) unless the order has
        ``refund_delay_seconds``: then it stays PROCESSING until ``finish_refund``."""
        with self._lock:
            order = self._find(account, out_trade_no)
            self._expire_if_due(order)
            existing = self._refunds.get((account, request.out_refund_no))
            if existing is not None:
                _check_refund_replay(existing, out_trade_no, request)
                return copy.copy(existing), False
            if order.status is not TradeStatus.SUCCESS:
                raise _conflict(
                    ErrorCode.ORDER_NOT_PAID,
                    f"only a paid order can be refunded; this one is {order.status.value}",
                    order,
                )
            refunds = self._refunds_of.setdefault((account, out_trade_no), [])
            taken = sum(r.amount for r in refunds if r.status is not RefundStatus.FAILED)
            if taken + request.amount > order.amount:
                raise SandboxError(
                    409,
                    ErrorCode.REFUND_EXCEEDS_PAID,
                    f"{taken} of the paid {order.amount} {order.currency} is refunded or being "
                    f"refunded; at most {order.amount - taken} more can be refunded",
                    param="amount",
                    order=order.view(),
                )
            refund = Refund(
                account=account,
                out_refund_no=request.out_refund_no,
                out_trade_no=out_trade_no,
                refund_id=_new_id("sbxr"),
                amount=request.amount,
                currency=order.currency,
                notify_url=request.notify_url,
                reason=request.reason,
                created_at=self._clock(),
            )
            if order.behaviour.refund_delay_seconds is None:
                self._settle(refund, order)
            self._refunds[(account, refund.out_refund_no)] = refund
            refunds.append(refund)
            return copy.copy(refund), True

    def finish_refund(self, account: str, out_refund_no: str) -> Refund | None:
        """End a PROCESSING refund (SUCCESS, or FAILED with ``refund_fail``); None when it is
        already final."""
        with self._lock:
            refund = self._find_refund(account, out_refund_no)
            if refund.status is not RefundStatus.PROCESSING:
                return None
            self._settle(refund, self._orders[(account, refund.out_trade_no)])
            return copy.copy(refund)

    def get_refund(self, account: str, out_refund_no: str) -> Refund:
        with self._lock:
            return copy.copy(self._find_refund(account, out_refund_no))

    def refunds_of(self, account: str, out_trade_no: str) -> list[Refund]:
        """The refunds of one order, oldest first."""
        with self._lock:
            return [copy.copy(r) for r in self._refunds_of.get((account, out_trade_no), [])]

    def find_refunds(self, out_refund_no: str) -> list[Refund]:
        """The refunds with this ``out_refund_no`` in every account, oldest first."""
        with self._lock:
            return [
                copy.copy(refund)
                for (_, number), refund in self._refunds.items()
                if number == out_refund_no
            ]

    def all_refunds(self) -> list[Refund]:
        """Every refund of every account, oldest first."""
        with self._lock:
            return [copy.copy(refund) for refund in self._refunds.values()]

    # -- internals ---------------------------------------------------------------------------

    def _settle(self, refund: Refund, order: Order) -> None:
        if order.behaviour.refund_fail:
            refund.status = RefundStatus.FAILED
            refund.failure_code, refund.failure_message = REFUND_REJECTED
        else:
            refund.status = RefundStatus.SUCCESS
        refund.finished_at = self._clock()

    def _new_order(self, account: str, request: CreateOrderRequest) -> Order:
        token = secrets.token_urlsafe(24)
        return Order(
            account=account,
            out_trade_no=request.out_trade_no,
            channel_order_id=_new_id("sbxo"),
            pay_token=token,
            pay_url=self._pay_url_for(token),
            amount=request.amount,
            currency=request.currency,
            subject=request.subject,
            notify_url=request.notify_url,
            return_url=request.return_url,
            expires_at=request.expiry,
            created_at=self._clock(),
            behaviour=request.sandbox_behaviour,
        )

    def _find(self, account: str, out_trade_no: str) -> Order:
        order = self._orders.get((account, out_trade_no))
        if order is None:
            raise SandboxError(404, ErrorCode.ORDER_NOT_FOUND, f"no order {out_trade_no!r}")
        return order

    def _find_refund(self, account: str, out_refund_no: str) -> Refund:
        refund = self._refunds.get((account, out_refund_no))
        if refund is None:
            raise SandboxError(404, ErrorCode.REFUND_NOT_FOUND, f"no refund {out_refund_no!r}")
        return refund

    def _find_by_token(self, token: str) -> Order:
        key = self._by_token.get(token)
        if key is None:
            raise SandboxError(404, ErrorCode.PAY_LINK_NOT_FOUND, "this payment link is unknown")
        return self._orders[key]

    def _snapshot(self, order: Order) -> Order:
        self._expire_if_due(order)
        return copy.copy(order)

    def _expire_if_due(self, order: Order) -> None:
        if order.status is TradeStatus.WAIT_BUYER_PAY and self._clock() >= order.expires_at:
            order.status = TradeStatus.CLOSED
            order.closed_at = order.expires_at
            order.close_reason = CloseReason.EXPIRED


def _check_replay(existing: Order, request: CreateOrderRequest) -> None:
    if (existing.amount, existing.currency) != (request.amount, request.currency):
        raise SandboxError(
            409,
            ErrorCode.ORDER_PARAMS_MISMATCH,
            f"out_trade_no {request.out_trade_no!r} already exists with amount "
            f"{existing.amount} {existing.currency}",
            param="out_trade_no",
        )


def _check_refund_replay(existing: Refund, out_trade_no: str, request: CreateRefundRequest) -> None:
    if (existing.out_trade_no, existing.amount) != (out_trade_no, request.amount):
        raise SandboxError(
            409,
            ErrorCode.REFUND_PARAMS_MISMATCH,
            f"out_refund_no {request.out_refund_no!r} already exists for order "
            f"{existing.out_trade_no!r} with amount {existing.amount} {existing.currency}",
            param="out_refund_no",
            refund=existing.view(),
        )


def _apply(order: Order, action: BuyerAction, now: datetime) -> bool:
    """Move a waiting order to SUCCESS or DECLINED; True when it moved. With the ``decline``
    switch the buyer's Pay declines."""
    paying = action is BuyerAction.PAY and not order.behaviour.decline
    target = TradeStatus.SUCCESS if paying else TradeStatus.DECLINED
    if order.status is target:
        return False
    match order.status:
        case TradeStatus.SUCCESS:
            raise _conflict(ErrorCode.ORDER_PAID, "the order is already paid", order)
        case TradeStatus.DECLINED:
            raise _conflict(ErrorCode.ORDER_DECLINED, "the buyer declined this order", order)
        case TradeStatus.CLOSED:
            reason = "expired" if order.close_reason is CloseReason.EXPIRED else "closed"
            raise _conflict(ErrorCode.ORDER_CLOSED, f"the order is {reason}", order)
        case TradeStatus.WAIT_BUYER_PAY:
            pass
    if target is TradeStatus.SUCCESS:
        order.status, order.paid_at, order.transaction_id = target, now, _new_id("sbxt")
    else:
        order.status = target
        order.failure_code, order.failure_message = BUYER_DECLINED
    return True


def _conflict(code: ErrorCode, message: str, order: Order) -> SandboxError:
    return SandboxError(409, code, message, order=order.view())
