"""The sandbox's order book: in-memory orders and the rules of their status changes.

An order starts ``WAIT_BUYER_PAY`` and ends once: ``SUCCESS`` (the buyer paid), ``DECLINED``
(the buyer refused) or ``CLOSED`` (the merchant closed it, or it expired). Only an unpaid
order closes; only a waiting order can be paid or declined. Expiry is applied lazily whenever
an order is read or acted on, so no timer thread is needed and every reader sees the same
answer. Every method takes the one lock and hands out copies, never the live order.
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
from local_runtime.sandbox.models import CreateOrderRequest, SandboxBehaviour

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


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class OrderBook:
    """Every order the sandbox knows, keyed by the merchant's ``out_trade_no``."""

    def __init__(self, pay_url_for: Callable[[str], str], clock: Clock = utc_now) -> None:
        self._pay_url_for = pay_url_for
        self._clock = clock
        self._lock = threading.Lock()
        self._orders: dict[str, Order] = {}
        self._by_token: dict[str, str] = {}

    def create(self, request: CreateOrderRequest) -> tuple[Order, bool]:
        """The order for ``request`` and whether it is new. A replay with the same amount and
        currency returns the existing order, whatever its status; other values are a 409
        ORDER_PARAMS_MISMATCH. A new order must expire in the future."""
        with self._lock:
            existing = self._orders.get(request.out_trade_no)
            if existing is not None:
                _check_replay(existing, request)
                return self._snapshot(existing), False
            if request.expiry <= self._clock():
                raise invalid_parameter("expires_at: must be in the future", "expires_at")
            order = self._new_order(request)
            self._orders[order.out_trade_no] = order
            self._by_token[order.pay_token] = order.out_trade_no
            return copy.copy(order), True

    def get(self, out_trade_no: str) -> Order:
        with self._lock:
            return self._snapshot(self._find(out_trade_no))

    def find_by_token(self, token: str) -> Order:
        """The order behind a pay link; 404 PAY_LINK_NOT_FOUND for an unknown token."""
        with self._lock:
            return self._snapshot(self._find_by_token(token))

    def all(self) -> list[Order]:
        with self._lock:
            return [self._snapshot(order) for order in self._orders.values()]

    def close(self, out_trade_no: str) -> Order:
        """Close an unpaid order (idempotent); a paid one is a 409 ORDER_PAID."""
        with self._lock:
            order = self._find(out_trade_no)
            self._expire_if_due(order)
            match order.status:
                case TradeStatus.SUCCESS:
                    raise _conflict(ErrorCode.ORDER_PAID, "the order is paid", order)
                case TradeStatus.CLOSED:
                    pass
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

    def _new_order(self, request: CreateOrderRequest) -> Order:
        token = secrets.token_urlsafe(24)
        return Order(
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

    def _find(self, out_trade_no: str) -> Order:
        order = self._orders.get(out_trade_no)
        if order is None:
            raise SandboxError(404, ErrorCode.ORDER_NOT_FOUND, f"no order {out_trade_no!r}")
        return order

    def _find_by_token(self, token: str) -> Order:
        out_trade_no = self._by_token.get(token)
        if out_trade_no is None:
            raise SandboxError(404, ErrorCode.PAY_LINK_NOT_FOUND, "this payment link is unknown")
        return self._orders[out_trade_no]

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


def _apply(order: Order, action: BuyerAction, now: datetime) -> bool:
    """Move a waiting order to SUCCESS or DECLINED; True when it moved."""
    target = TradeStatus.SUCCESS if action is BuyerAction.PAY else TradeStatus.DECLINED
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
