"""The channel gateway port: neutral data types and the interface every adapter implements.

An adapter owns the HTTP integration with one channel and maps the channel's statuses into
``ChannelPaymentStatus`` exhaustively. It raises only the channel errors of ``paycore.errors``:
``ChannelRejected`` when the channel answered "no" (final), ``ChannelUnavailable`` when there
is no usable answer (the outcome is unknown: query before doing anything else), and
``CallbackRejected`` when a notification does not verify.

Our ``out_trade_no`` is the payment id: the channel deduplicates on it, so retrying a create
call can never make a second charge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class ChannelPaymentStatus(StrEnum):
    PENDING = "pending"  # created, the buyer has not finished
    SUCCEEDED = "succeeded"  # the buyer's money is taken
    FAILED = "failed"  # declined by the buyer or the channel; nothing taken
    CLOSED = "closed"  # closed before payment; nothing taken, no payment possible
    NOT_FOUND = "not_found"  # the channel has no such order


@dataclass(frozen=True)
class CreateChannelOrder:
    out_trade_no: str
    amount: int
    currency: str
    subject: str
    notify_url: str
    expires_at: str  # RFC 3339
    return_url: str | None = None


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


@dataclass(frozen=True)
class CallbackAck:
    """The exact HTTP answer the channel expects once a notification is accepted."""

    status_code: int
    body: str
    content_type: str = "application/json"


class ChannelGateway(Protocol):
    """Create, query, close, refund, verify callback, parse statement."""

    name: str

    def create_order(self, request: CreateChannelOrder) -> ChannelOrder: ...

    def query_order(self, out_trade_no: str) -> ChannelPaymentState: ...

    def close_order(self, out_trade_no: str) -> ChannelPaymentState: ...

    def verify_callback(self, headers: Mapping[str, str], body: str) -> ChannelPaymentState: ...

    def callback_ack(self) -> CallbackAck: ...
