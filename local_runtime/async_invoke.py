"""Asynchronous Lambda invocation (``InvocationType="Event"``), the way the Lambda service runs it.

The caller's ``Invoke`` is answered 202 at once (see ``lambdas._hooked_function_invoke``); the
event waits in a per-function queue and runs in the background on the same
:class:`~local_runtime.lambdas.LambdaHost` as every other invoke (the function's environment,
instance pool and limit). A function error (the handler raised, or the function could not
init) is retried up to the function's ``MaximumRetryAttempts`` (its EventInvokeConfig; Lambda's
default is 2), after a delay: Lambda waits about 1 minute, then 2 minutes; locally the delays
are the profile's ``async_retry_delays`` (1 s, then 2 s by default; the last delay repeats).
An event older than ``MaximumEventAgeInSeconds`` (local seconds) is not retried. Each retry
keeps the event's request id.

When the attempts are over the event goes to the function's dead-letter queue
(``DeadLetterConfig.TargetArn``) as an SQS message whose body is the payload as invoked, with
Lambda's ``RequestID``, ``ErrorCode`` and ``ErrorMessage`` attributes, and to its on-failure
destination (``EventInvokeConfig.DestinationConfig.OnFailure``) as an invocation record. Only
SQS targets are supported (an SNS or other target is logged and ignored). Without either the
event is dropped with a warning (Lambda's ``AsyncEventsDropped``).

The background runs make no SDK calls of their own except that ``SendMessage``, which the
runtime makes with its own client (attributed to ``@runtime``). :meth:`AsyncInvoker.stop`
abandons queued and delayed events and gives running attempts a short time to finish; every
thread here is a daemon thread, so nothing blocks the process on exit.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from local_runtime.lambdas import DEFAULT_INSTANCES_PER_FUNCTION, Invocation, LambdaHost

log = logging.getLogger("local_runtime.async")

# Lambda waits ~1 min, then ~2 min, between attempts; locally 1 s, then 2 s.
DEFAULT_RETRY_DELAYS: Final = (1.0, 2.0)
ERROR_MESSAGE_LIMIT: Final = 1024  # Lambda puts the first 1 KB of the error in the DLQ message

# (queue ARN, message body, SQS message attributes) -> None
SendMessage = Callable[[str, str, dict[str, Any]], None]


@dataclass
class AsyncEvent:
    """One queued event and what happened to it so far."""

    function_id: str
    request_id: str
    event: Any
    payload_json: str  # the payload as invoked (what a dead-letter queue receives)
    source: str
    received: float  # clock() when it was queued
    received_at: datetime
    attempts: int = 0
    last: Invocation | None = None


@dataclass
class AsyncStats:
    """What became of the events since start (for tests and the CLI)."""

    queued: int = 0
    succeeded: int = 0
    retried: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    abandoned: int = 0


@dataclass
class _FunctionQueue:
    ready: deque[AsyncEvent] = field(default_factory=deque)
    workers: int = 0


class AsyncInvoker:
    """The Lambda service's asynchronous event queue, per function, with retries and the
    dead-letter queue; ``submit`` is what the moto hook calls for an ``Event`` invoke."""

    def __init__(
        self,
        host: LambdaHost,
        send_message: SendMessage,
        *,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        concurrency: int = DEFAULT_INSTANCES_PER_FUNCTION,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._host = host
        self._send_message = send_message
        self._delays = tuple(max(0.0, float(d)) for d in retry_delays) or (0.0,)
        self._concurrency = max(1, concurrency)
        self._clock = clock
        self._changed = threading.Condition()
        self._queues: dict[str, _FunctionQueue] = {}
        self._delayed: list[tuple[float, int, AsyncEvent]] = []
        self._sequence = itertools.count()
        self._running = 0
        self._stopping = False
        self._timer: threading.Thread | None = None
        self._threads: set[threading.Thread] = set()
        self.stats = AsyncStats()
        self._warned_targets: set[str] = set()

    # -- queueing -------------------------------------------------------------------------

    def submit(
        self,
        function_id: str,
        event: Any,
        source: str = "lambda:Invoke",
        *,
        raw: str | None = None,
    ) -> str:
        """Queue ``event`` for ``function_id``; returns its request id at once. ``raw``: the
        payload's JSON text as the caller sent it (default: ``event`` serialized)."""
        if function_id not in self._host.specs:
            raise KeyError(f"no function {function_id!r} in the template")
        queued = AsyncEvent(
            function_id=function_id,
            request_id=str(uuid.uuid4()),
            event=event,
            payload_json=raw if raw is not None else json.dumps(event),
            source=source,
            received=self._clock(),
            received_at=datetime.now(UTC),
        )
        with self._changed:
            if self._stopping:
                log.debug("%s: event %s after stop ignored", function_id, queued.request_id)
                return queued.request_id
            self.stats.queued += 1
            self._make_ready(queued)
        return queued.request_id

    def pending(self) -> int:
        """Events queued, waiting for a retry or running now."""
        with self._changed:
            ready = sum(len(queue.ready) for queue in self._queues.values())
            return ready + len(self._delayed) + self._running

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no event is pending (retries included); False if ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._pending_locked():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def stop(self, timeout: float = 1.0) -> None:
        """Abandon queued and delayed events; give running attempts ``timeout`` to finish."""
        with self._changed:
            if self._stopping:
                return
            self._stopping = True
            abandoned = sum(len(queue.ready) for queue in self._queues.values())
            abandoned += len(self._delayed)
            for queue in self._queues.values():
                queue.ready.clear()
            self._delayed.clear()
            self.stats.abandoned += abandoned
            running = self._running
            threads = list(self._threads)
            self._changed.notify_all()
        if abandoned or running:
            log.info(
                "stopping: %d queued asynchronous event(s) abandoned, %d running",
                abandoned,
                running,
            )
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _pending_locked(self) -> int:
        ready = sum(len(queue.ready) for queue in self._queues.values())
        return ready + len(self._delayed) + self._running

    def _make_ready(self, queued: AsyncEvent) -> None:
        """Put an event on its function's queue and start a worker if allowed (lock held)."""
        queue = self._queues.setdefault(queued.function_id, _FunctionQueue())
        queue.ready.append(queued)
        if queue.workers < self._concurrency:
            queue.workers += 1
            self._start_thread(
                lambda: self._work(queued.function_id), f"async-{queued.function_id}"
            )
        self._changed.notify_all()

    def _start_thread(self, target: Callable[[], None], name: str) -> threading.Thread:
        def run() -> None:
            try:
                target()
            finally:
                with self._changed:
                    self._threads.discard(thread)

        thread = threading.Thread(target=run, name=name, daemon=True)
        self._threads.add(thread)
        thread.start()
        return thread

    def _delay(self, queued: AsyncEvent, seconds: float) -> None:
        """Put an event back on its queue after ``seconds`` (lock held)."""
        heapq.heappush(self._delayed, (self._clock() + seconds, next(self._sequence), queued))
        if self._timer is None:
            self._timer = self._start_thread(self._run_timer, "async-retry-timer")
        self._changed.notify_all()

    def _run_timer(self) -> None:
        with self._changed:
            try:
                while not self._stopping:
                    now = self._clock()
                    while self._delayed and self._delayed[0][0] <= now:
                        _, _, queued = heapq.heappop(self._delayed)
                        self._make_ready(queued)
                    wait = self._delayed[0][0] - now if self._delayed else None
                    self._changed.wait(wait)
            finally:
                self._timer = None

    # -- running --------------------------------------------------------------------------

    def _work(self, function_id: str) -> None:
        queue = self._queues[function_id]
        while True:
            with self._changed:
                if self._stopping or not queue.ready:
                    queue.workers -= 1
                    self._changed.notify_all()
                    return
                queued = queue.ready.popleft()
                self._running += 1
            try:
                self._attempt(queued)
            except Exception:
                if not self._stopping:
                    log.exception("asynchronous event %s of %s", queued.request_id, function_id)
            finally:
                with self._changed:
                    self._running -= 1
                    self._changed.notify_all()

    def _attempt(self, queued: AsyncEvent) -> None:
        spec = self._host.specs[queued.function_id]
        queued.attempts += 1
        source = f"{queued.source} (async, attempt {queued.attempts})"
        invocation = self._host.invoke(
            queued.function_id, queued.event, source, request_id=queued.request_id
        )
        queued.last = invocation
        with self._changed:
            if self._stopping:  # the runtime is going away: nothing is retried or sent
                return
            if not invocation.errored:
                self.stats.succeeded += 1
                return
            retries_done = queued.attempts - 1
            delay = self._delays[min(retries_done, len(self._delays) - 1)]
            age_then = self._clock() + delay - queued.received
            if retries_done < spec.max_retry_attempts and age_then <= spec.max_event_age_seconds:
                self.stats.retried += 1
                log.info(
                    "%s: asynchronous event %s failed (attempt %d); retried in %g s",
                    queued.function_id,
                    queued.request_id,
                    queued.attempts,
                    delay,
                )
                self._delay(queued, delay)
                return
        condition = (
            "RetriesExhausted" if retries_done >= spec.max_retry_attempts else "EventAgeExceeded"
        )
        self._fail(queued, condition)

    def _fail(self, queued: AsyncEvent, condition: str) -> None:
        """The event's attempts are over: dead-letter queue and/or on-failure destination."""
        spec = self._host.specs[queued.function_id]
        delivered = False
        if spec.dead_letter_arn and self._supported(spec.dead_letter_arn, "dead-letter queue"):
            delivered |= self._deliver(
                spec.dead_letter_arn, queued.payload_json, _dead_letter_attributes(queued)
            )
        if spec.on_failure_arn and self._supported(spec.on_failure_arn, "on-failure destination"):
            record = invocation_record(queued, spec.function_arn, condition)
            delivered |= self._deliver(spec.on_failure_arn, json.dumps(record), {})
        with self._changed:
            if delivered:
                self.stats.dead_lettered += 1
            else:
                self.stats.dropped += 1
        if delivered:
            log.info(
                "%s: asynchronous event %s failed %d time(s) (%s); sent to its dead-letter target",
                queued.function_id,
                queued.request_id,
                queued.attempts,
                condition,
            )
        else:
            log.warning(
                "%s: asynchronous event %s dropped after %d attempt(s) (%s): no dead-letter "
                "queue or on-failure destination (AsyncEventsDropped)",
                queued.function_id,
                queued.request_id,
                queued.attempts,
                condition,
            )

    def _supported(self, arn: str, what: str) -> bool:
        if arn.startswith("arn:aws:sqs:"):
            return True
        if arn not in self._warned_targets:
            self._warned_targets.add(arn)
            log.warning("%s %s is not an SQS queue: not supported locally, ignored", what, arn)
        return False

    def _deliver(self, arn: str, body: str, attributes: dict[str, Any]) -> bool:
        try:
            self._send_message(arn, body, attributes)
        except Exception as exc:
            if not self._stopping:
                log.warning("sending a failed asynchronous event to %s failed: %s", arn, exc)
            return False
        return True


def _dead_letter_attributes(queued: AsyncEvent) -> dict[str, Any]:
    """The message attributes Lambda puts on a dead-lettered event. ``ErrorCode`` is the
    status code of the last invocation (200 for a function error)."""
    error = queued.last.error if queued.last is not None else None
    message = error.error_message if error is not None else ""
    return {
        "RequestID": {"DataType": "String", "StringValue": queued.request_id},
        "ErrorCode": {"DataType": "Number", "StringValue": "200"},
        "ErrorMessage": {
            "DataType": "String",
            "StringValue": message[:ERROR_MESSAGE_LIMIT] or "(no message)",
        },
    }


def invocation_record(queued: AsyncEvent, function_arn: str, condition: str) -> dict[str, Any]:
    """The invocation record Lambda sends to an on-failure destination."""
    last = queued.last
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": queued.request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": queued.attempts,
        },
        "requestPayload": queued.event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": last.payload if last is not None else None,
    }
