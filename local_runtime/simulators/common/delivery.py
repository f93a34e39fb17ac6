"""Channel notifications: POST a channel-built request until the receiver acknowledges it.

The channel builds the request (body bytes and headers) afresh for every attempt, because its
timestamp and signature change, and says what an acknowledgement is (Alipay: the body
``success``; WeChat Pay: 200 or 204; Stripe: any 2xx). ``NotificationDeliverer`` sends it on a
schedule (the delays in seconds before attempt 1, 2, ...; after the last failed attempt it
gives up: ``EXHAUSTED``) from background threads, applies the trade's notification switches
exactly as the sandbox does, and records every attempt for a debug view:

- ``notify_delay_seconds``: the first attempt waits this long instead of ``schedule[0]``;
  retries then follow the schedule;
- ``notify_drop``: nothing is sent; each notification that would have been sent is recorded
  ``DROPPED`` with no attempts (this wins over the other switches);
- ``notify_duplicate`` (n): n independent copies at the same time, each retried on its own;
- ``notify_reorder``: besides the final notification, the caller's ``stale_request`` (what the
  channel said before the final state) is sent 0.5 s after the final one's first attempt,
  duplicated and delayed like it; without a ``stale_request`` there is nothing to reorder;
- ``query_only`` is the caller's to honour: it does not call ``deliver`` at all (and keeps no
  record), because only the channel knows what else it must not publish (an event list).

A redirect, a transport error or a timeout is a failed attempt. ``stop()`` cancels every
attempt not yet sent; attempts in flight finish but are not retried.
"""

from __future__ import annotations

import http.client
import logging
import secrets
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from local_runtime.sandbox.notifications import REORDER_GAP_SECONDS, Attempt, DeliveryState
from local_runtime.sandbox.orders import rfc3339, utc_now
from local_runtime.sandbox.scheduler import Scheduler
from local_runtime.sandbox.server import DEFAULT_NOTIFY_SCHEDULE

__all__ = [
    "ALIPAY_NOTIFY_SCHEDULE",
    "LOCAL_NOTIFY_SCHEDULE",
    "REORDER_GAP_SECONDS",
    "STRIPE_NOTIFY_SCHEDULE",
    "WECHATPAY_NOTIFY_SCHEDULE",
    "AckCheck",
    "Attempt",
    "Delivery",
    "DeliveryState",
    "NotificationDeliverer",
    "RequestBuilder",
]


class NotificationSwitches(Protocol):
    """The switches that shape a delivery (``Simulate`` has them, and so does the sandbox's
    ``SandboxBehaviour``)."""

    @property
    def notify_delay_seconds(self) -> float | None: ...

    @property
    def notify_drop(self) -> bool: ...

    @property
    def notify_duplicate(self) -> int | None: ...

    @property
    def notify_reorder(self) -> bool: ...


logger = logging.getLogger(__name__)

_MINUTE = 60.0
_HOUR = 60 * _MINUTE


def _doubling(first: float, horizon: float) -> tuple[float, ...]:
    """0, then ``first``, ``2 * first``, ... while the attempts stay within ``horizon``."""
    delays, total, delay = [0.0], 0.0, first
    while total + delay <= horizon:
        delays.append(delay)
        total, delay = total + delay, delay * 2
    return tuple(delays)


# The real channels' schedules: the delays before attempt 1, 2, ... (each after the previous).
# Alipay: at once, then 4m, 10m, 10m, 1h, 2h, 6h, 15h (8 attempts over ~25 h).
ALIPAY_NOTIFY_SCHEDULE: tuple[float, ...] = (
    0.0,
    *(4 * _MINUTE, 10 * _MINUTE, 10 * _MINUTE),
    *(_HOUR, 2 * _HOUR, 6 * _HOUR, 15 * _HOUR),
)
# WeChat Pay: at once, then 15s, 15s, 30s, 3m, 10m, 20m, 30m, 30m, 30m, 60m, 3h, 3h, 3h, 6h, 6h.
WECHATPAY_NOTIFY_SCHEDULE: tuple[float, ...] = (
    *(0.0, 15.0, 15.0, 30.0),
    *(3 * _MINUTE, 10 * _MINUTE, 20 * _MINUTE, 30 * _MINUTE, 30 * _MINUTE, 30 * _MINUTE),
    *(_HOUR, 3 * _HOUR, 3 * _HOUR, 3 * _HOUR, 6 * _HOUR, 6 * _HOUR),
)
# Stripe retries "for up to 3 days with an exponential back off" and publishes no intervals:
# at once, then 1 min doubling (1m, 2m, 4m, ... ~34h), 13 attempts within 3 days.
STRIPE_NOTIFY_SCHEDULE: tuple[float, ...] = _doubling(_MINUTE, 3 * 24 * _HOUR)
# For local runs: the sandbox's compressed schedule (0, 1, 2, 5, 10, 30).
LOCAL_NOTIFY_SCHEDULE: tuple[float, ...] = DEFAULT_NOTIFY_SCHEDULE

RequestBuilder = Callable[[], tuple[bytes, Mapping[str, str]]]  # (body, headers), fresh
AckCheck = Callable[[int, bytes], bool]  # (http status, response body) -> acknowledged?
Topic = Hashable  # what a notification is about, e.g. ("trade", account, out_trade_no)

_RESPONSE_EXCERPT = 200
_MAX_RESPONSE_BYTES = 64 * 1024


@dataclass
class Delivery:
    """One notification (or one copy of it) with its own attempts and retries."""

    notification_id: str  # shared by the copies of one notification
    topic: Topic
    url: str
    label: str  # what the channel calls it, e.g. "TRANSACTION.SUCCESS"
    build_request: RequestBuilder
    is_ack: AckCheck
    first_delay: float
    copy: int = 1
    copies: int = 1
    stale: bool = False
    state: DeliveryState = DeliveryState.PENDING
    attempts: list[Attempt] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "notification_id": self.notification_id,
            "label": self.label,
            "url": self.url,
            "stale": self.stale,
            "copy": self.copy,
            "copies": self.copies,
            "state": self.state.value,
            "attempts": [asdict(attempt) for attempt in self.attempts],
        }


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery: never follow it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class NotificationDeliverer:
    """Delivers notifications on ``schedule``; ``timeout`` bounds each attempt."""

    def __init__(
        self,
        schedule: Sequence[float] = LOCAL_NOTIFY_SCHEDULE,
        *,
        timeout: float = 5.0,
        workers: int = 8,
        name: str = "sim-notify",
    ) -> None:
        if not schedule or any(delay < 0 for delay in schedule):
            raise ValueError("a notify schedule is one or more delays >= 0")
        self._schedule = tuple(float(delay) for delay in schedule)
        self._timeout = timeout
        self._opener = urllib.request.build_opener(_RefuseRedirects)
        self._lock = threading.Lock()
        self._scheduler = Scheduler(name, workers=workers)
        self._by_topic: dict[Topic, list[Delivery]] = {}
        self._stopped = False

    @property
    def schedule(self) -> tuple[float, ...]:
        return self._schedule

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        """Cancel every delivery not yet delivered and stop the threads (idempotent)."""
        with self._lock:
            self._stopped = True
            for deliveries in self._by_topic.values():
                for delivery in deliveries:
                    if delivery.state is DeliveryState.PENDING:
                        delivery.state = DeliveryState.CANCELLED
        self._scheduler.stop()

    def deliver(
        self,
        topic: Topic,
        url: str,
        build_request: RequestBuilder,
        is_ack: AckCheck,
        switches: NotificationSwitches,
        *,
        stale_request: RequestBuilder | None = None,
        label: str = "",
    ) -> list[str]:
        """Queue a notification to ``url`` as the trade's ``switches`` say (with
        ``notify_reorder`` also ``stale_request`` after it). Returns the notification ids,
        the final one first."""
        first_delay = switches.notify_delay_seconds
        if first_delay is None:
            first_delay = self._schedule[0]
        requests = [(build_request, first_delay, False)]
        if switches.notify_reorder and stale_request is not None:
            requests.append((stale_request, first_delay + REORDER_GAP_SECONDS, True))
        copies = 1 if switches.notify_drop else (switches.notify_duplicate or 1)
        notification_ids = []
        with self._lock:
            for builder, delay, stale in requests:
                notification_id = f"ntf_{secrets.token_hex(12)}"
                notification_ids.append(notification_id)
                for number in range(1, copies + 1):
                    delivery = Delivery(
                        notification_id,
                        topic,
                        url,
                        label,
                        builder,
                        is_ack,
                        delay,
                        copy=number,
                        copies=copies,
                        stale=stale,
                    )
                    self._by_topic.setdefault(topic, []).append(delivery)
                    if switches.notify_drop:
                        delivery.state = DeliveryState.DROPPED
                        logger.info("notification %s %s dropped (notify_drop)", label, topic)
                    elif self._stopped:
                        delivery.state = DeliveryState.CANCELLED
                    else:
                        self._schedule_next(delivery)
        return notification_ids

    def history(self, topic: Topic) -> list[dict[str, Any]]:
        """Every delivery (copies and stale ones included) about ``topic`` with its attempts,
        oldest first, for a debug view."""
        with self._lock:
            return [delivery.view() for delivery in self._by_topic.get(topic, [])]

    def _schedule_next(self, delivery: Delivery) -> None:
        """Queue the next attempt, or mark the delivery exhausted. Caller holds the lock."""
        if delivery.state is not DeliveryState.PENDING:
            return
        attempt = len(delivery.attempts)
        if attempt >= len(self._schedule):
            delivery.state = DeliveryState.EXHAUSTED
            logger.warning(
                "notification %s %s exhausted its retries", delivery.label, delivery.topic
            )
            return
        delay = delivery.first_delay if attempt == 0 else self._schedule[attempt]
        if not self._scheduler.call_later(delay, lambda: self._attempt(delivery)):
            delivery.state = DeliveryState.CANCELLED

    def _attempt(self, delivery: Delivery) -> None:
        """One attempt; records it and schedules the next one when it was not acknowledged."""
        number = len(delivery.attempts) + 1
        sent_at = rfc3339(utc_now()) or ""
        status, response, error = self._send(delivery)
        acknowledged = status is not None and _acknowledged(delivery, status, response)
        text = None if response is None else response.decode("utf-8", errors="replace")
        excerpt = None if text is None else text[:_RESPONSE_EXCERPT]
        logger.info(
            "notification %s %s attempt %d: http %s%s",
            delivery.label,
            delivery.topic,
            number,
            status,
            " acknowledged" if acknowledged else f" not acknowledged {error or ''}".rstrip(),
        )
        with self._lock:
            delivery.attempts.append(Attempt(number, sent_at, status, excerpt, error, acknowledged))
            if acknowledged and delivery.state is DeliveryState.PENDING:
                delivery.state = DeliveryState.DELIVERED
            elif not self._stopped:
                self._schedule_next(delivery)

    def _send(self, delivery: Delivery) -> tuple[int | None, bytes | None, str | None]:
        """POST a freshly built request: (http status, response body, transport error)."""
        try:
            body, headers = delivery.build_request()
        except Exception as exc:
            logger.exception(
                "notification %s %s: request not built", delivery.label, delivery.topic
            )
            return None, None, f"request not built: {exc}"
        return self._post(delivery.url, body, headers)

    def _post(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int | None, bytes | None, str | None]:
        request = urllib.request.Request(  # noqa: S310 - the channel gives an http(s) URL
            url,
            data=body,
            method="POST",
            headers={"User-Agent": "paycore-channel-simulator/1", **headers},
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as reply:
                return reply.status, reply.read(_MAX_RESPONSE_BYTES), None
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(_MAX_RESPONSE_BYTES), None
        except TimeoutError:
            return None, None, "timeout"
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                return None, None, "timeout"
            return None, None, f"connection failed: {exc.reason}"
        except (OSError, ValueError, http.client.HTTPException) as exc:
            return None, None, f"connection failed: {exc}"


def _acknowledged(delivery: Delivery, status: int, response: bytes | None) -> bool:
    try:
        return delivery.is_ack(status, response or b"")
    except Exception:
        logger.exception("notification %s: the ack check failed", delivery.label)
        return False
