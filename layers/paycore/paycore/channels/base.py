"""The channel gateway port: neutral data types and the interface every adapter implements.

An adapter owns the HTTP integration with one channel (one merchant account at it) and maps
the channel's statuses into ``ChannelPaymentStatus`` and ``ChannelRefundStatus`` exhaustively.
It raises only the channel errors of ``paycore.errors``: ``ChannelRejected`` when the channel
answered "no" (final), ``ChannelUnavailable`` when there is no usable answer (the outcome is
unknown: query before doing anything else), and ``CallbackRejected`` when a notification does
not verify.

Our ``out_trade_no`` is the payment id and ``out_refund_no`` the refund id: the channel
deduplicates on them, so retrying a create or refund call can never charge or refund twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class ChannelPaymentStatus(StrEnum):
    PENDING = "pending"  # created, the buyer has not finished
    SUCCEEDED = "succeeded"  # the buyer's money is taken
    FAILED = "failed"  # declined by the buyer or the channel; nothing taken
    CLOSED = "closed"  # closed before payment; nothing taken, no payment possible
    NOT_FOUND = "not_found"  # the channel has no such order


class ChannelRefundStatus(StrEnum):
    PENDING = "pending"  # accepted, the channel is still processing it
    SUCCEEDED = "succeeded"  # the money went back to the buyer
    FAILED = "failed"  # the channel gave up; nothing was refunded
    NOT_FOUND = "not_found"  # the channel has no such refund


@dataclass(frozen=True)
class CreateChannelOrder:
    out_trade_no: str
    amount: int
    currency: str
    subject: str
    notify_url: str
    expires_at: str  # RFC 3339
    return_url: str | None = None
    # Channel-specific extras, e.g. {"sandbox_behaviour": {...}}; an adapter reads only its own.
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChannelOrder:
    """What a create call returns: the channel's order and where the buyer goes next."""

    out_trade_no: str
    channel_order_id: str
    redirect_url: str


@dataclass(frozen=True)
class ChannelPaymentState:
    """The channel's view of one order, from a status query or a verified notification."""

    out_trade_no: str
    status: ChannelPaymentStatus
    amount: int | None = None
    currency: str | None = None
    channel_order_id: str | None = None
    channel_transaction_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    notification_id: str | None = None
    redirect_url: str | None = None  # where the buyer pays, when the channel shows it


@dataclass(frozen=True)
class CreateChannelRefund:
    """Give back ``amount`` of a paid channel order; ``out_refund_no`` is our refund id (the
    channel deduplicates on it, so a retried refund call never refunds twice)."""

    out_trade_no: str
    out_refund_no: str
    amount: int
    currency: str
    notify_url: str
    reason: str | None = None


@dataclass(frozen=True)
class ChannelRefundState:
    """The channel's view of one refund, from a refund call, a query or a notification."""

    out_refund_no: str
    out_trade_no: str
    status: ChannelRefundStatus
    amount: int | None = None
    currency: str | None = None
    channel_refund_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    notification_id: str | None = None


@dataclass(frozen=True)
class CallbackAck:
    """The exact HTTP answer the channel expects once a notification is accepted."""

    status_code: int
    body: str
    content_type: str = "application/json"


class ChannelGateway(Protocol):
    """Create, query, close, refund, verify callback, parse statement.

    ``name`` is the channel ("sandbox"), ``account_id`` the merchant account at that channel
    this gateway speaks for.
    """

    name: str
    account_id: str

    def create_order(self, request: CreateChannelOrder) -> ChannelOrder: ...

    def query_order(self, out_trade_no: str) -> ChannelPaymentState: ...

    def close_order(self, out_trade_no: str) -> ChannelPaymentState: ...

    def refund(self, request: CreateChannelRefund) -> ChannelRefundState:
        """Ask for a refund (idempotent on out_refund_no). ``ChannelRejected`` when the channel
        refuses it (final), ``ChannelUnavailable`` when the outcome is unknown: query it."""
        ...

    def query_refund(self, out_trade_no: str, out_refund_no: str) -> ChannelRefundState: ...

    def verify_callback(
        self, headers: Mapping[str, str], body: str
    ) -> ChannelPaymentState | ChannelRefundState:
        """A verified notification: a payment's or a refund's state, by its kind."""
        ...

    def callback_ack(self) -> CallbackAck: ...
