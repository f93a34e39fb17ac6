"""Asynchronous, signed, retried notifications of an order's or a refund's status change.

Like WeChat Pay, the sandbox POSTs a notification to the ``notify_url`` and keeps retrying on
a schedule until the receiver answers HTTP 200 with JSON ``{"code": "SUCCESS"}``. Every attempt
carries the same ``notify_id`` (so the receiver can deduplicate) but a fresh ``sent_at``,
timestamp and signature (so a captured request goes stale after 300 s).

Attempts run on a ``Scheduler`` (a timer thread and a small pool), so a slow receiver never
delays the notifications of other orders and no request thread ever waits. ``stop()`` cancels
everything that has not been sent yet.

The order's misbehaviour switches shape the delivery here (``Notifier.notify``):
``notify_delay_seconds`` delays the first attempt, ``notify_drop`` records the notification as
``DROPPED`` and never sends it, ``notify_duplicate`` sends independent concurrent copies with
the same ``notify_id``, and ``notify_reorder`` sends a stale notification (its own
``notify_id``) ``REORDER_GAP_SECONDS`` after the final one.
"""

from __future__ import annotations

import http.client
import json
import logging
import secrets
import threading
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from local_runtime.sandbox.models import SandboxBehaviour
from local_runtime.sandbox.orders import Order, Refund, RefundStatus, TradeStatus, rfc3339, utc_now
from local_runtime.sandbox.scheduler import Scheduler
from local_runtime.sandbox.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    notification_signature,
    unix_now,
)

logger = logging.getLogger(__name__)

NOTIFY_TYPE = "trade.status_changed"
REFUND_NOTIFY_TYPE = "refund.status_changed"
REORDER_GAP_SECONDS = 0.5  # how long after the final notification the stale one is sent
_RESPONSE_EXCERPT = 200
_MAX_RESPONSE_BYTES = 64 * 1024

# What a notification is about: ("order", account, out_trade_no) or
# ("refund", account, out_refund_no).
Topic = tuple[str, str, str]


def order_topic(order: Order) -> Topic:
    return ("order", order.account, order.out_trade_no)


def refund_topic(refund: Refund) -> Topic:
    return ("refund", refund.account, refund.out_refund_no)


class DeliveryState(StrEnum):
    PENDING = "PENDING"  # an attempt is scheduled or in flight
    DELIVERED = "DELIVERED"  # the receiver answered {"code": "SUCCESS"}
    EXHAUSTED = "EXHAUSTED"  # every scheduled attempt failed; the merchant must query
    CANCELLED = "CANCELLED"  # the sandbox stopped before it was delivered
    DROPPED = "DROPPED"  # never sent, on purpose (the notify_drop switch)


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
    """One delivery: a notification, or one of its copies (``notify_duplicate``), with its
    own attempts and retries."""

    notify_id: str
    topic: Topic
    notify_url: str
    payload: dict[str, Any]  # the body without sent_at
    first_delay: float
    copy: int = 1
    copies: int = 1
    stale: bool = False
    state: DeliveryState = DeliveryState.PENDING
    attempts: list[Attempt] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "notify_id": self.notify_id,
            "notify_type": self.payload["notify_type"],
            "notify_url": self.notify_url,
            "status": self.payload["status"],
            "stale": self.stale,
            "copy": self.copy,
            "copies": self.copies,
            "state": self.state.value,
            "attempts": [asdict(attempt) for attempt in self.attempts],
        }


def order_notification(order: Order) -> dict[str, Any]:
    """The notification body for ``order``'s current status, except notify_id and sent_at."""
    declined = order.status is TradeStatus.DECLINED
    return {
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


def stale_order_notification(order: Order) -> dict[str, Any]:
    """What a notification of ``order`` said while it was still waiting (notify_reorder)."""
    return {
        **order_notification(order),
        "status": TradeStatus.WAIT_BUYER_PAY.value,
        "transaction_id": None,
        "paid_at": None,
        "failure_code": None,
        "failure_message": None,
    }


def refund_notification(refund: Refund) -> dict[str, Any]:
    """The notification body for ``refund``'s current status, except notify_id and sent_at."""
    return {
        "notify_type": REFUND_NOTIFY_TYPE,
        "out_refund_no": refund.out_refund_no,
        "out_trade_no": refund.out_trade_no,
        "refund_id": refund.refund_id,
        "status": refund.status.value,
        "amount": refund.amount,
        "currency": refund.currency,
        "failure_code": refund.failure_code,
        "failure_message": refund.failure_message,
    }


def stale_refund_notification(refund: Refund) -> dict[str, Any]:
    """What a notification of ``refund`` said while it was processing (notify_reorder)."""
    return {
        **refund_notification(refund),
        "status": RefundStatus.PROCESSING.value,
        "failure_code": None,
        "failure_message": None,
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
        self._lock = threading.Lock()
        self._scheduler = Scheduler("sandbox-notify", workers=workers)
        self._by_topic: dict[Topic, list[Notification]] = {}
        self._stopped = False

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        """Cancel every pending notification and stop the threads (in-flight sends finish
        in the background, bounded by the HTTP timeout, but are not retried)."""
        with self._lock:
            self._stopped = True
            for notifications in self._by_topic.values():
                for notification in notifications:
                    if notification.state is DeliveryState.PENDING:
                        notification.state = DeliveryState.CANCELLED
        self._scheduler.stop()

    def notify(
        self,
        topic: Topic,
        notify_url: str,
        payload: dict[str, Any],
        behaviour: SandboxBehaviour,
        *,
        stale_payload: dict[str, Any] | None = None,
    ) -> list[str]:
        """Queue a notification (``payload`` without notify_id and sent_at) to ``notify_url``
        as the order's ``behaviour`` says; with ``notify_reorder`` also ``stale_payload``
        after it. Returns the notify_ids."""
        first_delay = behaviour.notify_delay_seconds
        if first_delay is None:
            first_delay = self._schedule[0] if self._schedule else 0.0
        bodies = [(payload, first_delay, False)]
        if behaviour.notify_reorder and stale_payload is not None:
            bodies.append((stale_payload, first_delay + REORDER_GAP_SECONDS, True))
        copies = 1 if behaviour.notify_drop else (behaviour.notify_duplicate or 1)
        notify_ids = []
        with self._lock:
            for body, delay, stale in bodies:
                notify_id = f"ntf_{secrets.token_hex(12)}"
                notify_ids.append(notify_id)
                for number in range(1, copies + 1):
                    notification = Notification(
                        notify_id,
                        topic,
                        notify_url,
                        {"notify_id": notify_id, **body},
                        delay,
                        copy=number,
                        copies=copies,
                        stale=stale,
                    )
                    self._by_topic.setdefault(topic, []).append(notification)
                    if behaviour.notify_drop:
                        notification.state = DeliveryState.DROPPED
                        logger.info("notification %s dropped (notify_drop)", notify_id)
                    elif self._stopped:
                        notification.state = DeliveryState.CANCELLED
                    else:
                        self._schedule_next(notification)
        return notify_ids

    def history(self, topic: Topic) -> list[dict[str, Any]]:
        """Every notification (and copy) of one order or refund with its attempts, oldest
        first."""
        with self._lock:
            return [n.view() for n in self._by_topic.get(topic, [])]

    def _schedule_next(self, notification: Notification) -> None:
        """Queue the next attempt, or mark the notification exhausted. Caller holds the lock."""
        if notification.state is not DeliveryState.PENDING:
            return
        attempt = len(notification.attempts)
        if attempt >= len(self._schedule):
            notification.state = DeliveryState.EXHAUSTED
            logger.warning("notification %s exhausted its retries", notification.notify_id)
            return
        delay = notification.first_delay if attempt == 0 else self._schedule[attempt]
        if not self._scheduler.call_later(delay, lambda: self._attempt(notification)):
            notification.state = DeliveryState.CANCELLED

    def _attempt(self, notification: Notification) -> None:
        """One delivery attempt; records it and schedules the next one if it failed."""
        number = len(notification.attempts) + 1
        sent_at = rfc3339(utc_now()) or ""
        body = json.dumps({**notification.payload, "sent_at": sent_at}).encode()
        status, response, error = self._post(notification.notify_url, body)
        acknowledged = status == 200 and _is_success_ack(response)
        attempt = Attempt(number, sent_at, status, _excerpt(response), error, acknowledged)
        logger.info(
            "notification %s for %s %s/%s attempt %d: http %s%s",
            notification.notify_id,
            *notification.topic,
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
