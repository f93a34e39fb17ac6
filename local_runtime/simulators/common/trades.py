"""The trade book every channel simulator keeps: trades, refunds and the daily statement.

Neutral (no channel's words) and in integer minor units, modelled on the sandbox's order book
(local_runtime/sandbox/orders.py) and with the same rules:

- A trade belongs to one account and is keyed there by the merchant's ``out_trade_no``.
  Creating is idempotent: the same ``out_trade_no`` with the same amount and currency returns
  the existing trade whatever its status; another amount or currency is
  ``TRADE_PARAMS_MISMATCH``. A new trade must expire in the future.
- ``WAIT_BUYER_PAY`` ends once: ``SUCCESS`` (paid: ``transaction_id`` and ``paid_at`` set),
  ``DECLINED`` or ``CLOSED`` (closed by the merchant, or expired: applied lazily whenever a
  trade is read or acted on). Only an unpaid trade closes.
- A paid trade is refunded in parts, keyed per account by ``out_refund_no`` (idempotent: the
  same number for the same trade and amount returns the existing refund), never beyond the
  paid amount counting every refund that is not ``FAILED``. A refund is ``PROCESSING`` until
  it ends ``SUCCESS`` or ``FAILED``.
- The switches (``Simulate``) act exactly as in the sandbox: ``decline`` in ``act``,
  ``close_ignored`` in ``close``, ``refund_fail``/``refund_delay_seconds`` in ``refund`` (a
  timer), and the "times" switches ``create_error``, ``create_timeout`` (from each create
  call's own switches) and ``refund_error`` (the trade's), counted per ``out_trade_no`` over
  every account: every create call counts, and every refund call for an existing trade.

One lock guards everything; every method hands out deep copies, never the live objects.
"""

from __future__ import annotations

import copy
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from enum import StrEnum
from typing import Any

from local_runtime.sandbox.currencies import CURRENCY_EXPONENTS, MAX_AMOUNT
from local_runtime.sandbox.orders import (
    BuyerAction,
    Clock,
    CloseReason,
    RefundStatus,
    TradeStatus,
    rfc3339,
    utc_now,
)
from local_runtime.sandbox.scheduler import Scheduler
from local_runtime.simulators.common.switches import Simulate

__all__ = [
    "BuyerAction",
    "CloseReason",
    "Refund",
    "RefundStatus",
    "SimulatedFailure",
    "StatementLine",
    "StatementLineKind",
    "Trade",
    "TradeBook",
    "TradeError",
    "TradeErrorCode",
    "TradeStatus",
]

logger = logging.getLogger(__name__)


class TradeErrorCode(StrEnum):
    TRADE_NOT_FOUND = "TRADE_NOT_FOUND"  # no trade with that out_trade_no in the account
    PAY_LINK_NOT_FOUND = "PAY_LINK_NOT_FOUND"  # no trade behind that buyer token
    REFUND_NOT_FOUND = "REFUND_NOT_FOUND"  # no refund with that out_refund_no in the account
    EXPIRY_PASSED = "EXPIRY_PASSED"  # a new trade whose expires_at is not in the future
    TRADE_PARAMS_MISMATCH = "TRADE_PARAMS_MISMATCH"  # out_trade_no reused, other amount
    TRADE_PAID = "TRADE_PAID"  # closing or declining a paid trade
    TRADE_DECLINED = "TRADE_DECLINED"  # paying a declined trade
    TRADE_CLOSED = "TRADE_CLOSED"  # paying or declining a closed or expired trade
    TRADE_NOT_PAID = "TRADE_NOT_PAID"  # refunding a trade that is not SUCCESS
    REFUND_PARAMS_MISMATCH = "REFUND_PARAMS_MISMATCH"  # out_refund_no reused differently
    REFUND_EXCEEDS_PAID = "REFUND_EXCEEDS_PAID"  # the refunds would exceed the paid amount


_HTTP_STATUS = {
    TradeErrorCode.TRADE_NOT_FOUND: 404,
    TradeErrorCode.PAY_LINK_NOT_FOUND: 404,
    TradeErrorCode.REFUND_NOT_FOUND: 404,
    TradeErrorCode.EXPIRY_PASSED: 400,
}


class TradeError(Exception):
    """A refused change or an unknown trade; a channel maps ``code`` to its own error.
    ``trade``/``refund`` (copies) explain a conflict, e.g. the paid trade a close found."""

    def __init__(
        self,
        code: TradeErrorCode,
        message: str,
        *,
        trade: Trade | None = None,
        refund: Refund | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.trade = trade
        self.refund = refund

    @property
    def http_status(self) -> int:
        """A neutral HTTP status: 404 unknown, 400 bad expiry, 409 any conflict."""
        return _HTTP_STATUS.get(self.code, 409)


class SimulatedFailure(Exception):
    """A ``create_error`` or ``refund_error`` switch answered this call: the channel answers
    its system error (``http_status`` 500, 502 or 503) and does nothing else."""

    def __init__(self, switch: str, http_status: int, call: int, times: int) -> None:
        kind = "create" if switch.startswith("create") else "refund"
        super().__init__(
            f"simulated by simulate.{switch} ({kind} call {call} of the first {times})"
        )
        self.switch = switch
        self.http_status = http_status


@dataclass
class Trade:
    """One trade at the channel. Mutated only by ``TradeBook`` under its lock."""

    account: str
    out_trade_no: str
    amount: int  # minor units
    currency: str  # ISO 4217, upper case
    subject: str
    simulate: Simulate  # the switches of the create call that created it
    expires_at: datetime
    created_at: datetime
    pay_token: str  # unguessable, unique over all accounts: the buyer page's key
    extra: dict[str, Any]  # the channel's own fields, stored as given, never read here
    status: TradeStatus = TradeStatus.WAIT_BUYER_PAY
    transaction_id: str | None = None  # the channel's id of the payment, set when paid
    paid_at: datetime | None = None
    declined_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: CloseReason | None = None
    amount_refunded: int = 0  # the sum of its SUCCESS refunds
    orphan: bool = False  # added by add_orphan: paid at the channel, never created by paycore

    def view(self) -> dict[str, Any]:
        """A JSON-ready neutral view (for debug pages)."""
        return {
            "account": self.account,
            "out_trade_no": self.out_trade_no,
            "status": self.status.value,
            "amount": self.amount,
            "currency": self.currency,
            "subject": self.subject,
            "transaction_id": self.transaction_id,
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
            "paid_at": rfc3339(self.paid_at),
            "declined_at": rfc3339(self.declined_at),
            "closed_at": rfc3339(self.closed_at),
            "close_reason": self.close_reason.value if self.close_reason else None,
            "amount_refunded": self.amount_refunded,
            "orphan": self.orphan,
            "simulate": self.simulate.shown(),
            "extra": self.extra,
        }


@dataclass
class Refund:
    """One refund of a paid trade. Mutated only by ``TradeBook`` under its lock."""

    account: str
    out_refund_no: str
    out_trade_no: str
    refund_id: str  # the channel's id of the refund
    amount: int
    currency: str
    created_at: datetime
    extra: dict[str, Any]
    status: RefundStatus = RefundStatus.PROCESSING
    finished_at: datetime | None = None

    def view(self) -> dict[str, Any]:
        """A JSON-ready neutral view (for debug pages)."""
        return {
            "account": self.account,
            "out_refund_no": self.out_refund_no,
            "out_trade_no": self.out_trade_no,
            "refund_id": self.refund_id,
            "status": self.status.value,
            "amount": self.amount,
            "currency": self.currency,
            "created_at": rfc3339(self.created_at),
            "finished_at": rfc3339(self.finished_at),
            "extra": self.extra,
        }


class StatementLineKind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"


@dataclass(frozen=True)
class StatementLine:
    """One line of an account's daily statement, before a channel renders it in its format.

    ``amount`` is positive, in minor units; a payment line has ``statement_amount_delta``
    applied (it may then be 0 or negative, if that was asked for). ``status`` is ``SUCCESS``
    unless ``statement_status`` overrides a payment line. ``trade`` (and ``refund`` for a
    refund line) are copies with everything else a channel's format needs.
    """

    kind: StatementLineKind
    amount: int
    currency: str
    status: str
    occurred_at: datetime  # paid_at of a payment, finished_at of a refund (UTC)
    trade: Trade
    refund: Refund | None = None


def default_transaction_id(paid_at: datetime) -> str:
    return f"simt_{secrets.token_hex(12)}"


def default_refund_id(created_at: datetime) -> str:
    return f"simr_{secrets.token_hex(12)}"


_Key = tuple[str, str]  # (account, out_trade_no) or (account, out_refund_no)
RefundListener = Callable[[Refund, Trade], None]


class TradeBook:
    """Every trade and refund of one simulator, over all its accounts.

    ``new_transaction_id(paid_at)`` and ``new_refund_id(created_at)`` make the channel's ids
    in its own shape. ``on_refund_final(refund, trade)`` (copies) is called when a new refund
    becomes SUCCESS or FAILED: on the calling thread when it is final at once, on a timer
    thread after ``refund_delay_seconds``; the channel notifies from there (unless
    ``query_only``). ``start()`` starts the refund timer; ``stop()`` cancels pending refund
    timers and ends every ``create_timeout`` stall at once.
    """

    def __init__(
        self,
        *,
        clock: Clock = utc_now,
        new_transaction_id: Callable[[datetime], str] = default_transaction_id,
        new_refund_id: Callable[[datetime], str] = default_refund_id,
        on_refund_final: RefundListener | None = None,
    ) -> None:
        self._clock = clock
        self._new_transaction_id = new_transaction_id
        self._new_refund_id = new_refund_id
        self._on_refund_final = on_refund_final
        self._lock = threading.Lock()
        self._trades: dict[_Key, Trade] = {}
        self._by_token: dict[str, _Key] = {}
        self._refunds: dict[_Key, Refund] = {}
        self._refunds_of: dict[_Key, list[Refund]] = {}
        self._calls: dict[tuple[str, str], int] = {}
        self._timers = Scheduler("sim-refunds", workers=2)
        self._stopping = threading.Event()

    def start(self) -> None:
        self._timers.start()

    def stop(self) -> None:
        """End create stalls, forget refund timers not yet due (idempotent)."""
        self._stopping.set()
        self._timers.stop()

    # -- trades ------------------------------------------------------------------------------

    def create(
        self,
        account: str,
        out_trade_no: str,
        *,
        amount: int,
        currency: str,
        subject: str,
        expires_at: datetime,
        simulate: Simulate | None = None,
        extra: dict[str, Any] | None = None,
        pay_token: str | None = None,
        calls_key: str | None = None,
    ) -> tuple[Trade, bool]:
        """The trade for this create call and whether it is new, with the call's
        ``create_error`` and ``create_timeout`` applied.

        Counts the call for ``out_trade_no`` (or for ``calls_key`` when given: a channel
        whose every create makes a new object, e.g. a Stripe Checkout Session keyed by its
        own id, counts the calls for the merchant's reference instead). Within
        ``create_error``'s first ``times`` calls raises ``SimulatedFailure`` (having created
        or found the trade first with ``after_create``). Within ``create_timeout``'s (and
        not failed) creates or finds the trade, then blocks the calling thread ``seconds``
        (less if the book stops).
        ``pay_token`` lets a channel use its own unguessable id (a session id) as the buyer
        page's key; by default one is made. ``extra`` is kept for the channel as given.
        """
        checked = simulate if simulate is not None else Simulate()
        _check_amount(amount, currency)
        if expires_at.tzinfo is None:
            raise ValueError("expires_at must be an aware datetime")

        def find_or_create() -> tuple[Trade, bool]:
            return self._create(
                account,
                out_trade_no,
                amount=amount,
                currency=currency,
                subject=subject,
                expires_at=expires_at,
                simulate=checked,
                extra=extra,
                pay_token=pay_token,
            )

        call = self._count_call("create", calls_key or out_trade_no)
        failure = checked.create_error
        if failure is not None and call <= failure.times:
            if failure.after_create:
                find_or_create()
            logger.info("create %s call %d: simulated %d", out_trade_no, call, failure.status)
            raise SimulatedFailure("create_error", failure.status, call, failure.times)
        trade, created = find_or_create()
        stall = checked.create_timeout
        if stall is not None and call <= stall.times:
            logger.info("create %s call %d: stalling %.3f s", out_trade_no, call, stall.seconds)
            self._stopping.wait(stall.seconds)
        return trade, created

    def get(self, account: str, out_trade_no: str) -> Trade:
        """The trade (TRADE_NOT_FOUND when the account has none with that number)."""
        with self._lock:
            return self._snapshot(self._find(account, out_trade_no))

    def get_by_token(self, pay_token: str) -> Trade:
        """The trade behind a buyer page's token (PAY_LINK_NOT_FOUND)."""
        with self._lock:
            return self._snapshot(self._find_by_token(pay_token))

    def trades(self, account: str | None = None) -> list[Trade]:
        """Every trade (orphans included) of ``account``, or of every account; oldest first."""
        with self._lock:
            return [
                self._snapshot(trade)
                for trade in self._trades.values()
                if account in (None, trade.account)
            ]

    def act(self, pay_token: str, action: BuyerAction) -> tuple[Trade, bool]:
        """The buyer's choice; returns the trade and whether its status changed.

        With ``decline`` the buyer's Pay declines. Repeating the choice already made is a
        no-op; paying a declined or closed trade, or declining a paid or closed one, is an
        error (TRADE_DECLINED, TRADE_CLOSED, TRADE_PAID) with the trade.
        """
        with self._lock:
            trade = self._find_by_token(pay_token)
            self._expire_if_due(trade)
            changed = self._apply(trade, action)
            return copy.deepcopy(trade), changed

    def close(self, account: str, out_trade_no: str) -> Trade:
        """Close an unpaid trade (idempotent); a paid one is TRADE_PAID. With
        ``close_ignored`` the answer says CLOSED but the trade stays payable."""
        with self._lock:
            trade = self._find(account, out_trade_no)
            self._expire_if_due(trade)
            match trade.status:
                case TradeStatus.SUCCESS:
                    raise _conflict(TradeErrorCode.TRADE_PAID, "the trade is paid", trade)
                case TradeStatus.CLOSED:
                    pass
                case TradeStatus.WAIT_BUYER_PAY if trade.simulate.close_ignored:
                    answer = copy.deepcopy(trade)
                    _mark_closed(answer, self._clock(), CloseReason.MERCHANT_CLOSED)
                    return answer
                case TradeStatus.WAIT_BUYER_PAY | TradeStatus.DECLINED:
                    _mark_closed(trade, self._clock(), CloseReason.MERCHANT_CLOSED)
            return copy.deepcopy(trade)

    def add_orphan(
        self,
        account: str,
        amount: int,
        currency: str,
        day: date,
        *,
        tz: tzinfo = UTC,
        out_trade_no: str | None = None,
        subject: str = "Payment not created by paycore",
    ) -> Trade:
        """A trade paid on ``day`` (at noon in ``tz``) that paycore never created: it is in
        that day's statement and, like any trade, can be queried and refunded."""
        _check_amount(amount, currency)
        paid_at = datetime.combine(day, time(12), tzinfo=tz).astimezone(UTC)
        number = out_trade_no or f"orphan_{secrets.token_hex(8)}"
        with self._lock:
            if (account, number) in self._trades:
                raise _conflict(
                    TradeErrorCode.TRADE_PARAMS_MISMATCH,
                    f"out_trade_no {number!r} already exists",
                    self._trades[(account, number)],
                )
            trade = Trade(
                account=account,
                out_trade_no=number,
                amount=amount,
                currency=currency,
                subject=subject,
                simulate=Simulate(),
                expires_at=paid_at,
                created_at=paid_at,
                pay_token=self._unused_token(None),
                extra={},
                status=TradeStatus.SUCCESS,
                transaction_id=self._new_transaction_id(paid_at),
                paid_at=paid_at,
                orphan=True,
            )
            self._store(trade)
            return copy.deepcopy(trade)

    # -- refunds -----------------------------------------------------------------------------

    def refund(
        self,
        account: str,
        out_trade_no: str,
        out_refund_no: str,
        *,
        amount: int,
        extra: dict[str, Any] | None = None,
    ) -> tuple[Refund, bool]:
        """The refund for this call and whether it is new.

        In this order: TRADE_NOT_FOUND (not counted); the call is counted and
        ``refund_error`` raises ``SimulatedFailure`` (503) within its first ``times``; a known
        ``out_refund_no`` returns its refund when trade and amount match, else
        REFUND_PARAMS_MISMATCH; the trade must be SUCCESS (TRADE_NOT_PAID) with room for the
        amount beside every refund that is not FAILED (REFUND_EXCEEDS_PAID). A new refund is
        final at once (SUCCESS, or FAILED with ``refund_fail``) unless the trade has
        ``refund_delay_seconds``: then it stays PROCESSING until its timer.
        """
        if not 0 < amount <= MAX_AMOUNT:
            raise ValueError(f"a refund amount is 1..{MAX_AMOUNT} minor units")
        with self._lock:
            trade = self._find(account, out_trade_no)
            call = self._count_call_locked("refund", out_trade_no)
            failure = trade.simulate.refund_error
            if failure is not None and call <= failure.times:
                logger.info("refund of %s call %d: simulated 503", out_trade_no, call)
                raise SimulatedFailure("refund_error", 503, call, failure.times)
            self._expire_if_due(trade)
            existing = self._refunds.get((account, out_refund_no))
            if existing is not None:
                if (existing.out_trade_no, existing.amount) != (out_trade_no, amount):
                    raise TradeError(
                        TradeErrorCode.REFUND_PARAMS_MISMATCH,
                        f"out_refund_no {out_refund_no!r} already exists for trade "
                        f"{existing.out_trade_no!r} with amount {existing.amount} "
                        f"{existing.currency}",
                        refund=copy.deepcopy(existing),
                    )
                return copy.deepcopy(existing), False
            if trade.status is not TradeStatus.SUCCESS:
                raise _conflict(
                    TradeErrorCode.TRADE_NOT_PAID,
                    f"only a paid trade can be refunded; this one is {trade.status.value}",
                    trade,
                )
            refunds = self._refunds_of.setdefault((account, out_trade_no), [])
            taken = sum(r.amount for r in refunds if r.status is not RefundStatus.FAILED)
            if taken + amount > trade.amount:
                raise _conflict(
                    TradeErrorCode.REFUND_EXCEEDS_PAID,
                    f"{taken} of the paid {trade.amount} {trade.currency} is refunded or being "
                    f"refunded; at most {trade.amount - taken} more can be refunded",
                    trade,
                )
            now = self._clock()
            refund = Refund(
                account=account,
                out_refund_no=out_refund_no,
                out_trade_no=out_trade_no,
                refund_id=self._new_refund_id(now),
                amount=amount,
                currency=trade.currency,
                created_at=now,
                extra=copy.deepcopy(extra) if extra else {},
            )
            delay = trade.simulate.refund_delay_seconds
            if delay is None:
                self._settle(refund, trade)
            self._refunds[(account, out_refund_no)] = refund
            refunds.append(refund)
            answer, trade_now = copy.deepcopy(refund), copy.deepcopy(trade)
        if delay is not None:
            self._timers.call_later(delay, lambda: self._finish_refund(account, out_refund_no))
        elif self._on_refund_final is not None:
            self._on_refund_final(answer, trade_now)
        return answer, True

    def get_refund(self, account: str, out_refund_no: str) -> Refund:
        """The refund (REFUND_NOT_FOUND when the account has none with that number)."""
        with self._lock:
            return copy.deepcopy(self._find_refund(account, out_refund_no))

    def refunds_of(self, account: str, out_trade_no: str) -> list[Refund]:
        """The refunds of one trade, oldest first."""
        with self._lock:
            return copy.deepcopy(self._refunds_of.get((account, out_trade_no), []))

    def refunds(self, account: str | None = None) -> list[Refund]:
        """Every refund of ``account``, or of every account; oldest first."""
        with self._lock:
            return [
                copy.deepcopy(refund)
                for refund in self._refunds.values()
                if account in (None, refund.account)
            ]

    # -- statements --------------------------------------------------------------------------

    def statement_lines(self, account: str, day: date, tz: tzinfo) -> list[StatementLine]:
        """The account's statement of ``day`` in time zone ``tz``: a line for every trade paid
        that day (orphans included) and every refund that succeeded that day, in time order
        (at the same moment payments first, each kind in the order it was made).

        The trade's statement switches act on its payment line only: ``statement: "omit"``
        leaves it out, ``statement_amount_delta`` is added to its amount,
        ``statement_status`` replaces ``SUCCESS``. Refund lines are as they happened.
        """
        lines: list[StatementLine] = []
        with self._lock:
            for trade in self._trades.values():
                if (
                    trade.account == account
                    and trade.status is TradeStatus.SUCCESS
                    and _day_of(trade.paid_at, tz) == day
                ):
                    line = _payment_line(trade)
                    if line is not None:
                        lines.append(line)
            for refund in self._refunds.values():
                if (
                    refund.account == account
                    and refund.status is RefundStatus.SUCCESS
                    and _day_of(refund.finished_at, tz) == day
                ):
                    trade = self._trades[(account, refund.out_trade_no)]
                    lines.append(_refund_line(trade, refund))
        return sorted(lines, key=lambda line: line.occurred_at)

    def statement_days(self, account: str, tz: tzinfo) -> list[date]:
        """The days (in ``tz``) the account has a statement for: every day a trade was created
        or paid or a refund finished, orphans' days included; ascending."""
        with self._lock:
            moments: list[datetime | None] = []
            for trade in self._trades.values():
                if trade.account == account:
                    moments += [trade.created_at, trade.paid_at]
            for refund in self._refunds.values():
                if refund.account == account:
                    moments.append(refund.finished_at)
        return sorted({moment.astimezone(tz).date() for moment in moments if moment})

    # -- internals ---------------------------------------------------------------------------

    def _count_call(self, kind: str, out_trade_no: str) -> int:
        with self._lock:
            return self._count_call_locked(kind, out_trade_no)

    def _count_call_locked(self, kind: str, out_trade_no: str) -> int:
        number = self._calls.get((kind, out_trade_no), 0) + 1
        self._calls[(kind, out_trade_no)] = number
        return number

    def _create(
        self,
        account: str,
        out_trade_no: str,
        *,
        amount: int,
        currency: str,
        subject: str,
        expires_at: datetime,
        simulate: Simulate,
        extra: dict[str, Any] | None,
        pay_token: str | None,
    ) -> tuple[Trade, bool]:
        with self._lock:
            existing = self._trades.get((account, out_trade_no))
            if existing is not None:
                if (existing.amount, existing.currency) != (amount, currency):
                    raise TradeError(
                        TradeErrorCode.TRADE_PARAMS_MISMATCH,
                        f"out_trade_no {out_trade_no!r} already exists with amount "
                        f"{existing.amount} {existing.currency}",
                        trade=self._snapshot(existing),
                    )
                return self._snapshot(existing), False
            now = self._clock()
            if expires_at <= now:
                raise TradeError(TradeErrorCode.EXPIRY_PASSED, "expires_at must be in the future")
            trade = Trade(
                account=account,
                out_trade_no=out_trade_no,
                amount=amount,
                currency=currency,
                subject=subject,
                simulate=simulate,
                expires_at=expires_at.astimezone(UTC),
                created_at=now,
                pay_token=self._unused_token(pay_token),
                extra=copy.deepcopy(extra) if extra else {},
            )
            self._store(trade)
            return copy.deepcopy(trade), True

    def _unused_token(self, wanted: str | None) -> str:
        token = wanted or secrets.token_urlsafe(24)
        if token in self._by_token:
            raise ValueError("pay_token is already used by another trade")
        return token

    def _store(self, trade: Trade) -> None:
        self._trades[(trade.account, trade.out_trade_no)] = trade
        self._by_token[trade.pay_token] = (trade.account, trade.out_trade_no)

    def _apply(self, trade: Trade, action: BuyerAction) -> bool:
        paying = action is BuyerAction.PAY and not trade.simulate.decline
        target = TradeStatus.SUCCESS if paying else TradeStatus.DECLINED
        if trade.status is target:
            return False
        match trade.status:
            case TradeStatus.SUCCESS:
                raise _conflict(TradeErrorCode.TRADE_PAID, "the trade is already paid", trade)
            case TradeStatus.DECLINED:
                raise _conflict(TradeErrorCode.TRADE_DECLINED, "the buyer declined it", trade)
            case TradeStatus.CLOSED:
                reason = "expired" if trade.close_reason is CloseReason.EXPIRED else "closed"
                raise _conflict(TradeErrorCode.TRADE_CLOSED, f"the trade is {reason}", trade)
            case TradeStatus.WAIT_BUYER_PAY:
                pass
        now = self._clock()
        trade.status = target
        if target is TradeStatus.SUCCESS:
            trade.paid_at, trade.transaction_id = now, self._new_transaction_id(now)
        else:
            trade.declined_at = now
        return True

    def _finish_refund(self, account: str, out_refund_no: str) -> None:
        """A delayed refund's timer: end it and tell the channel."""
        with self._lock:
            refund = self._refunds[(account, out_refund_no)]
            if refund.status is not RefundStatus.PROCESSING:
                return
            trade = self._trades[(account, refund.out_trade_no)]
            self._settle(refund, trade)
            answer, trade_now = copy.deepcopy(refund), copy.deepcopy(trade)
        if self._on_refund_final is not None:
            self._on_refund_final(answer, trade_now)

    def _settle(self, refund: Refund, trade: Trade) -> None:
        if trade.simulate.refund_fail:
            refund.status = RefundStatus.FAILED
        else:
            refund.status = RefundStatus.SUCCESS
            trade.amount_refunded += refund.amount
        refund.finished_at = self._clock()

    def _find(self, account: str, out_trade_no: str) -> Trade:
        trade = self._trades.get((account, out_trade_no))
        if trade is None:
            raise TradeError(TradeErrorCode.TRADE_NOT_FOUND, f"no trade {out_trade_no!r}")
        return trade

    def _find_by_token(self, pay_token: str) -> Trade:
        key = self._by_token.get(pay_token)
        if key is None:
            raise TradeError(TradeErrorCode.PAY_LINK_NOT_FOUND, "this payment link is unknown")
        return self._trades[key]

    def _find_refund(self, account: str, out_refund_no: str) -> Refund:
        refund = self._refunds.get((account, out_refund_no))
        if refund is None:
            raise TradeError(TradeErrorCode.REFUND_NOT_FOUND, f"no refund {out_refund_no!r}")
        return refund

    def _snapshot(self, trade: Trade) -> Trade:
        self._expire_if_due(trade)
        return copy.deepcopy(trade)

    def _expire_if_due(self, trade: Trade) -> None:
        if trade.status is TradeStatus.WAIT_BUYER_PAY and self._clock() >= trade.expires_at:
            _mark_closed(trade, trade.expires_at, CloseReason.EXPIRED)


def _check_amount(amount: int, currency: str) -> None:
    """Guards against a channel bug: the channel validates its own wire parameters."""
    if not 0 < amount <= MAX_AMOUNT:
        raise ValueError(f"an amount is 1..{MAX_AMOUNT} minor units")
    if currency not in CURRENCY_EXPONENTS:
        raise ValueError(f"unknown currency {currency!r}")


def _mark_closed(trade: Trade, at: datetime, reason: CloseReason) -> None:
    trade.status, trade.closed_at, trade.close_reason = TradeStatus.CLOSED, at, reason


def _conflict(code: TradeErrorCode, message: str, trade: Trade) -> TradeError:
    return TradeError(code, message, trade=copy.deepcopy(trade))


def _day_of(moment: datetime | None, tz: tzinfo) -> date | None:
    return None if moment is None else moment.astimezone(tz).date()


def _payment_line(trade: Trade) -> StatementLine | None:
    switches = trade.simulate
    if switches.statement == "omit" or trade.paid_at is None:
        return None
    return StatementLine(
        kind=StatementLineKind.PAYMENT,
        amount=trade.amount + (switches.statement_amount_delta or 0),
        currency=trade.currency,
        status=switches.statement_status or TradeStatus.SUCCESS.value,
        occurred_at=trade.paid_at,
        trade=copy.deepcopy(trade),
    )


def _refund_line(trade: Trade, refund: Refund) -> StatementLine:
    assert refund.finished_at is not None
    return StatementLine(
        kind=StatementLineKind.REFUND,
        amount=refund.amount,
        currency=refund.currency,
        status=RefundStatus.SUCCESS.value,
        occurred_at=refund.finished_at,
        trade=copy.deepcopy(trade),
        refund=copy.deepcopy(refund),
    )
