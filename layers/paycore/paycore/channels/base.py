"""The channel port: neutral data types and the interface every channel adapter implements.

An adapter (``paycore.channels.<name>``) owns the integration with one channel for one merchant
account at it: its HTTP client, its signing, and a ``transformers`` module that maps the
channel's statuses and error codes into ``ChannelPaymentStatus`` and ``ChannelRefundStatus``
with an exhaustive ``match``. It raises only the channel errors of ``paycore.errors``:
``ChannelRejected`` when the channel answered "no" (final), ``ChannelUnavailable`` when there is
no usable answer (the outcome is unknown: query before doing anything else), and
``CallbackRejected`` when a notification does not verify.

Our ``out_trade_no`` is the payment id and ``out_refund_no`` the refund id: the channel
deduplicates on them, so retrying a create or refund call can never charge or refund twice, and
an operator can look a payment up at the channel by our id. Amounts are integers in minor
units; an adapter converts to its channel's format through ``paycore.money`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, ClassVar, Protocol

# Notifications are small (a few KiB at every channel); anything bigger is refused before it
# is parsed, by the callback route (413) and again by every adapter.
MAX_NOTIFICATION_BYTES = 64 * 1024
# All header names and values of one notification together.
MAX_NOTIFICATION_HEADER_BYTES = 16 * 1024
# A notification signed more than this far from our clock is stale (a replay): refused.
NOTIFICATION_TOLERANCE_SECONDS = 300


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


class NextActionType(StrEnum):
    REDIRECT = "redirect"  # send the buyer's browser to ``url``
    QR_CODE = "qr_code"  # show ``code_url`` as a QR code; the buyer scans it with the app


@dataclass(frozen=True)
class NextAction:
    """What the buyer does next at the channel: ``NextAction.redirect(url)`` or
    ``NextAction.qr_code(code_url)``; ``resource()`` is its merchant-facing JSON."""

    type: NextActionType
    url: str | None = None
    code_url: str | None = None

    def __post_init__(self) -> None:
        wanted = "url" if self.type is NextActionType.REDIRECT else "code_url"
        given = {name for name in ("url", "code_url") if getattr(self, name)}
        if given != {wanted}:
            raise ValueError(f"a {self.type.value} next action carries {wanted} and only that")

    @classmethod
    def redirect(cls, url: str) -> NextAction:
        return cls(NextActionType.REDIRECT, url=url)

    @classmethod
    def qr_code(cls, code_url: str) -> NextAction:
        return cls(NextActionType.QR_CODE, code_url=code_url)

    def resource(self) -> dict[str, str]:
        if self.type is NextActionType.REDIRECT:
            return {"type": self.type.value, "url": str(self.url)}
        return {"type": self.type.value, "code_url": str(self.code_url)}


@dataclass(frozen=True)
class CreateChannelOrder:
    out_trade_no: str
    amount: int
    currency: str
    subject: str
    notify_url: str  # this account's callback route, /callbacks/{channel}/{account}
    expires_at: str  # RFC 3339
    return_url: str | None = None
    # The payment's misbehaviour switches (``paycore.channels.simulate``), only ever set for an
    # account whose credentials say it is a simulator; the adapter forwards them in the field
    # the channel hands back untouched.
    simulate: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ChannelOrder:
    """What a create call returns: the channel's order and where the buyer goes next."""

    out_trade_no: str
    channel_order_id: str
    next_action: NextAction


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
    next_action: NextAction | None = None  # where the buyer pays, when the channel shows it


@dataclass(frozen=True)
class CreateChannelRefund:
    """Give back ``amount`` of a paid channel order; ``out_refund_no`` is our refund id (the
    channel deduplicates on it, so a retried refund call never refunds twice). The channel's
    ids of the paid order ride along for channels that refund by them."""

    out_trade_no: str
    out_refund_no: str
    amount: int
    currency: str
    notify_url: str  # this account's callback route, /callbacks/{channel}/{account}
    reason: str | None = None
    channel_order_id: str | None = None
    channel_transaction_id: str | None = None


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


class StatementLineKind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


@dataclass(frozen=True)
class StatementLine:
    """One money movement in a channel's daily statement, in neutral terms."""

    kind: StatementLineKind
    reference: str  # our id: the payment id (out_trade_no) or the refund id (out_refund_no)
    channel_transaction_id: str
    amount: int  # minor units, positive for refunds too
    currency: str
    fee: int  # what the channel kept, minor units (0 when it shows none)
    # The channel's word mapped into ours (ChannelPaymentStatus for a payment line,
    # ChannelRefundStatus for a refund line), and the word itself for the report.
    status: ChannelPaymentStatus | ChannelRefundStatus
    channel_status: str
    occurred_at: str  # RFC 3339 UTC


@dataclass(frozen=True)
class ChannelStatement:
    """A channel account's statement of one day: the file exactly as the channel gave it (to
    keep unchanged) and its lines (to reconcile)."""

    day: date
    filename: str
    content_type: str
    content: bytes
    lines: tuple[StatementLine, ...]


class ChannelGateway(Protocol):
    """The verbs every channel needs, for one merchant account at one channel.

    ``name`` is the channel ("sandbox"), ``account_id`` the routing account this gateway speaks
    for, ``simulator`` whether that account is a local simulator (only those take
    ``simulate``), ``next_action_type`` what the buyer gets after a create.
    """

    name: ClassVar[str]
    next_action_type: ClassVar[NextActionType]
    account_id: str
    simulator: bool

    def create_order(self, request: CreateChannelOrder) -> ChannelOrder:
        """Create (or find again: channels deduplicate on out_trade_no) the channel order."""
        ...

    def query_order(
        self, out_trade_no: str, channel_order_id: str | None = None
    ) -> ChannelPaymentState:
        """The channel's current view of the order; NOT_FOUND when it never got it."""
        ...

    def close_order(
        self, out_trade_no: str, channel_order_id: str | None = None
    ) -> ChannelPaymentState:
        """Close the order so it can no longer be paid; the state after the attempt: CLOSED
        (or FAILED/NOT_FOUND: nothing can be taken), or SUCCEEDED when the buyer paid first,
        which the caller must then settle or refund."""
        ...

    def refund(self, request: CreateChannelRefund) -> ChannelRefundState:
        """Ask for a refund (idempotent on out_refund_no). ``ChannelRejected`` when the channel
        refuses it (final), ``ChannelUnavailable`` when the outcome is unknown: query it."""
        ...

    def query_refund(self, out_trade_no: str, out_refund_no: str) -> ChannelRefundState:
        """The channel's current view of a refund; NOT_FOUND when it never got it."""
        ...

    def parse_notification(
        self, body: bytes, headers: Mapping[str, str]
    ) -> ChannelPaymentState | ChannelRefundState:
        """Verify a notification FIRST (size, signature with this account's keys, timestamp
        within ``NOTIFICATION_TOLERANCE_SECONDS``), then read it: a payment's or a refund's
        state. ``CallbackRejected`` for anything oversized, unsigned, forged, stale or
        malformed. ``headers`` names are matched case-insensitively."""
        ...

    def acknowledge(self) -> CallbackAck:
        """The answer that tells the channel a notification was accepted (its own format)."""
        ...

    def fetch_statement(self, day: date) -> ChannelStatement:
        """The account's statement of ``day`` (in the channel's time zone), with its lines."""
        ...


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names in lower case (HTTP header names are case-insensitive)."""
    return {str(name).lower(): str(value) for name, value in headers.items()}
