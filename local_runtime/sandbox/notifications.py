"""Asynchronous, signed, retried notifications of an order's status change.

Like WeChat Pay, the sandbox POSTs a notification to the order's ``notify_url`` and keeps
retrying on a schedule until the receiver answers HTTP 200 with JSON ``{"code": "SUCCESS"}``.
Every attempt carries the same ``notify_id`` (so the receiver can deduplicate) but a fresh
``sent_at``, timestamp and signature (so a captured request goes stale after 300 s).

One scheduler thread keeps a heap of due attempts and hands each to a small thread pool, so a
slow receiver never delays the notifications of other orders. ``stop()`` cancels everything
that has not been sent yet.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from local_runtime.sandbox.orders import Order, TradeStatus, rfc3339, utc_now
from local_runtime.sandbox.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    notification_signature,
    unix_now,
)

logger = logging.getLogger(__name__)

NOTIFY_TYPE = "trade.status_changed"
_RESPONSE_EXCERPT = 200
_MAX_RESPONSE_BYTES = 64 * 1024


class DeliveryState(StrEnum):
    PENDING = "PENDING"  # an attempt is scheduled or in flight
    DELIVERED = "DELIVERED"  # the receiver answered {"code": "SUCCESS"}
    EXHAUSTED = "EXHAUSTED"  # every scheduled attempt failed; the merchant must query
    CANCELLED = "CANCELLED"  # the sandbox stopped before it was delivered


@dataclass
class Attempt:
    """What happened when the sandbox tried once to deliver a notification."""

    number: int
    sent_at: str
    http_status: int | None
    response: str | None
    error: str | None
    acknowledged: bool


@dataclass
class Notification:
    notify_id: str
    out_trade_no: str
    notify_url: str
    payload: dict[str, Any]
    state: DeliveryState = DeliveryState.PENDING
    attempts: list[Attempt] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "notify_id": self.notify_id,
            "notify_url": self.notify_url,
            "status": self.payload["status"],
            "state": self.state.value,
            "attempts": [asdict(attempt) for attempt in self.attempts],
        }


def notification_payload(notify_id: str, order: Order) -> dict[str, Any]:
    """The notification body for ``order``'s current status, except ``sent_at``."""
    declined = order.status is TradeStatus.DECLINED
    return {
        "notify_id": notify_id,
        "notify_type": NOTIFY_TYPE,
        "out_trade_no": order.out_trade_no,
        "channel_order_id": order.channel_order_id,
        "status": order.status.value,
        "amount": order.amount,
        "currency": order.currency,
        "transaction_id": order.transaction_id,
        "paid_at": rfc3339(order.paid_at),
        "failure_code": order.failure_code if declined else None,
        "failure_message": order.failure_message if declined else None,
    }


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery, as with real channels: never follow it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Notifier:
    """Sends notifications on ``schedule``: delay (s) before attempt 1, 2, ... then gives up."""

    def __init__(
        self, secret: str, schedule: tuple[float, ...], *, timeout: float = 5.0, workers: int = 8
    ) -> None:
        if any(delay < 0 for delay in schedule):
            raise ValueError("notify_schedule delays must be >= 0")
        self._secret = secret
        self._schedule = schedule
        self._timeout = timeout
        self._opener = urllib.request.build_opener(_RefuseRedirects)
        self._lock = threading.Condition()
        self._due: list[tuple[float, int, str]] = []  # (monotonic due time, seq, notify_id)
        self._seq = itertools.count()
        self._by_id: dict[str, Notification] = {}
        self._by_order: dict[str, list[Notification]] = {}
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox-notify")
        self._thread = threading.Thread(
            target=self._run, name="sandbox-notify-scheduler", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Cancel every pending notification and stop the threads (in-flight sends finish
        in the background, bounded by the HTTP timeout, but are not retried)."""
        with self._lock:
            self._stopped = True
            for notification in self._by_id.values():
                if notification.state is DeliveryState.PENDING:
                    notification.state = DeliveryState.CANCELLED
            self._due.clear()
            self._lock.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def notify(self, order: Order) -> None:
        """Queue a notification of ``order``'s current status to its notify_url."""
        notify_id = f"ntf_{secrets.token_hex(12)}"
        notification = Notification(
            notify_id, order.out_trade_no, order.notify_url, notification_payload(notify_id, order)
        )
        with self._lock:
            if self._stopped:
                notification.state = DeliveryState.CANCELLED
            self._by_id[notify_id] = notification
            self._by_order.setdefault(order.out_trade_no, []).append(notification)
            self._schedule_next(notification)

    def history(self, out_trade_no: str) -> list[dict[str, Any]]:
        """Every notification of one order with its attempts, oldest first."""
        with self._lock:
            return [n.view() for n in self._by_order.get(out_trade_no, [])]

    def _schedule_next(self, notification: Notification) -> None:
        """Queue the next attempt, or mark the notification exhausted. Caller holds the lock."""
        if notification.state is not DeliveryState.PENDING:
            return
        attempt = len(notification.attempts)
        if attempt >= len(self._schedule):
            notification.state = DeliveryState.EXHAUSTED
            logger.warning("notification %s exhausted its retries", notification.notify_id)
            return
        due = time.monotonic() + self._schedule[attempt]
        heapq.heappush(self._due, (due, next(self._seq), notification.notify_id))
        self._lock.notify_all()

    def _run(self) -> None:
        """The scheduler loop: wait for the earliest due attempt, hand it to the pool."""
        with self._lock:
            while not self._stopped:
                if not self._due:
                    self._lock.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    self._lock.wait(timeout=wait)
                    continue
                _, _, notify_id = heapq.heappop(self._due)
                self._pool.submit(self._attempt, self._by_id[notify_id])

    def _attempt(self, notification: Notification) -> None:
        """One delivery attempt; records it and schedules the next one if it failed."""
        number = len(notification.attempts) + 1
        sent_at = rfc3339(utc_now()) or ""
        body = json.dumps({**notification.payload, "sent_at": sent_at}).encode()
        status, response, error = self._post(notification.notify_url, body)
        acknowledged = status == 200 and _is_success_ack(response)
        attempt = Attempt(number, sent_at, status, _excerpt(response), error, acknowledged)
        logger.info(
            "notification %s for %s attempt %d: http %s%s",
            notification.notify_id,
            notification.out_trade_no,
            number,
            status,
            " acknowledged" if acknowledged else f" not acknowledged {error or ''}".rstrip(),
        )
        with self._lock:
            notification.attempts.append(attempt)
            if acknowledged and notification.state is DeliveryState.PENDING:
                notification.state = DeliveryState.DELIVERED
            elif not self._stopped:
                self._schedule_next(notification)

    def _post(self, url: str, body: bytes) -> tuple[int | None, str | None, str | None]:
        """POST a freshly signed body; (http status, response text, transport error)."""
        timestamp = unix_now()
        request = urllib.request.Request(  # noqa: S310 - notify_url is validated http(s)
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "paycore-sandbox-channel/1",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: notification_signature(self._secret, timestamp, body),
            },
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as reply:
                return reply.status, _read_text(reply), None
        except urllib.error.HTTPError as exc:
            return exc.code, _read_text(exc), None
        except TimeoutError:
            return None, None, "timeout"
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                return None, None, "timeout"
            return None, None, f"connection failed: {exc.reason}"
        except (OSError, ValueError, http.client.HTTPException) as exc:
            return None, None, f"connection failed: {exc}"


def _read_text(reply: Any) -> str:
    raw: bytes = reply.read(_MAX_RESPONSE_BYTES)
    return raw.decode("utf-8", errors="replace")


def _is_success_ack(response: str | None) -> bool:
    try:
        answer = json.loads(response or "")
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("code") == "SUCCESS"


def _excerpt(response: str | None) -> str | None:
    return None if response is None else response[:_RESPONSE_EXCERPT]
