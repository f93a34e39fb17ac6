"""Event sources the runtime drives itself: SQS queues and schedules.

moto's own SQS->Lambda delivery runs inside ``SendMessage``, one record per call, with canned
attributes, and ignores ``batchItemFailures``. :class:`SqsPoller` behaves like the Lambda service
instead: long-polls the queue, hands the function a real SQS event of up to ``BatchSize``
records, deletes exactly the records that succeeded, and leaves retries and the dead-letter
queue to the queue's visibility timeout and redrive policy.

:class:`ScheduleRunner` fires ``rate()``/``cron()`` schedules (EventBridge rules and Scheduler
schedules) on a timer thread. A Scheduler schedule's ``ScheduleExpressionTimezone`` applies to
its ``cron()``, and the context attributes of its input (``<aws.scheduler.scheduled-time>``
and the others) are filled in as Scheduler does.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from local_runtime.lambdas import Invocation

log = logging.getLogger("local_runtime.pollers")

Invoke = Callable[[str, Any, str], Invocation]

MAX_SQS_BATCH: Final = 10
# Lambda's SQS pollers long-poll for 20 s (ReceiveMessage's maximum): an idle queue costs
# 3 receives a minute per poller, not 60.
SQS_LONG_POLL_SECONDS: Final = 20


@dataclass(frozen=True)
class SqsEventSource:
    """An ``AWS::Lambda::EventSourceMapping`` from an SQS queue, resolved."""

    logical_id: str
    function_id: str
    queue_arn: str
    queue_url: str
    batch_size: int = 10
    report_batch_item_failures: bool = False
    enabled: bool = True


@dataclass(frozen=True)
class ScheduleSpec:
    """A scheduled invocation of a function (an EventBridge rule or a Scheduler schedule)."""

    logical_id: str
    expression: str
    function_id: str
    arn: str
    input: str | None = None
    source: str = "aws.events"
    enabled: bool = True
    timezone: str | None = None  # a Scheduler schedule's ScheduleExpressionTimezone (cron)


# -- SQS ----------------------------------------------------------------------------------


def _message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """SQS API message attributes in the shape a Lambda SQS event uses (camelCase)."""
    import base64

    converted: dict[str, Any] = {}
    for name, value in attributes.items():
        binary = value.get("BinaryValue")
        converted[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode() if binary is not None else None,
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": [
                base64.b64encode(item).decode() for item in value.get("BinaryListValues", [])
            ],
            "dataType": value.get("DataType"),
        }
    return converted


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The Lambda event for a batch of messages received from ``queue_arn``."""
    records = []
    for message in messages:
        record = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message.get("Body", ""),
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": _message_attributes(message.get("MessageAttributes", {})),
            "md5OfBody": message.get("MD5OfBody"),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}


def succeeded_messages(
    messages: list[dict[str, Any]], invocation: Invocation, report_batch_item_failures: bool
) -> list[dict[str, Any]]:
    """The messages to delete after an invocation, following the Lambda service's rules.

    An errored invocation deletes nothing. Without ``ReportBatchItemFailures`` a success
    deletes the whole batch. With it, every message except the ``batchItemFailures`` is
    deleted; a malformed failure list (an unknown or empty id) fails the whole batch.
    """
    if invocation.errored:
        return []
    if not report_batch_item_failures:
        return list(messages)
    payload = invocation.payload
    if not isinstance(payload, dict) or not payload.get("batchItemFailures"):
        return list(messages)
    failures = payload["batchItemFailures"]
    known = {message["MessageId"] for message in messages}
    failed: set[str] = set()
    for failure in failures if isinstance(failures, list) else [None]:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in known:
            log.warning("malformed batchItemFailures %r: the whole batch is retried", failures)
            return []
        failed.add(identifier)
    return [message for message in messages if message["MessageId"] not in failed]


class SqsPoller:
    """Threads that poll one SQS event source and invoke its function, like Lambda does.

    Each thread long-polls ``wait_seconds`` (20 s). :meth:`signal_stop` cannot interrupt a
    receive in progress, so the runtime joins the (daemon) threads only briefly and abandons
    them: a thread that wakes up after the stop returns without invoking anything, quietly
    (the receive's answer or error is ignored).
    """

    def __init__(
        self,
        source: SqsEventSource,
        sqs_client: Any,
        invoke: Invoke,
        region: str,
        *,
        concurrency: int = 2,
        wait_seconds: int = SQS_LONG_POLL_SECONDS,
    ) -> None:
        self.source = source
        self._sqs = sqs_client
        self._invoke = invoke
        self._region = region
        self._wait_seconds = wait_seconds
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._run, name=f"sqs-poller-{source.logical_id}-{n}", daemon=True
            )
            for n in range(max(1, concurrency))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def signal_stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning("SQS poller %s: %s", self.source.logical_id, exc)
                self._stop.wait(1.0)

    def poll_once(self) -> int:
        """Receive one batch, invoke, delete the successes; returns the batch size."""
        response = self._sqs.receive_message(
            QueueUrl=self.source.queue_url,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            MaxNumberOfMessages=max(1, min(self.source.batch_size, MAX_SQS_BATCH)),
            WaitTimeSeconds=self._wait_seconds,
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        if not messages or self._stop.is_set():
            # After a stop the messages are left to their visibility timeout.
            return 0
        event = sqs_event(messages, self.source.queue_arn, self._region)
        invocation = self._invoke(self.source.function_id, event, f"sqs:{self.source.logical_id}")
        done = succeeded_messages(messages, invocation, self.source.report_batch_item_failures)
        for start in range(0, len(done), MAX_SQS_BATCH):
            chunk = done[start : start + MAX_SQS_BATCH]
            self._sqs.delete_message_batch(
                QueueUrl=self.source.queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]}
                    for n, message in enumerate(chunk)
                ],
            )
        return len(messages)


# -- schedules ----------------------------------------------------------------------------

_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)", re.IGNORECASE)
_CRON = re.compile(r"cron\((.*)\)", re.IGNORECASE)
_RATE_UNITS: Final = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS: Final = {
    name: n
    for n, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DAYS: Final = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


class ScheduleExpressionError(ValueError):
    """A schedule expression the local runtime cannot run."""


def rate_seconds(expression: str) -> int | None:
    """The period of a ``rate()`` expression in seconds, or None if it is not one."""
    match = _RATE.fullmatch(expression.strip())
    if match is None:
        return None
    unit = match.group(2).lower().rstrip("s")
    return int(match.group(1)) * _RATE_UNITS[unit]


def _cron_value(text: str, names: dict[str, int]) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if text.isdigit():
        return int(text)
    raise ScheduleExpressionError(f"unsupported cron value {text!r}")


def _cron_field(text: str, low: int, high: int, names: dict[str, int]) -> set[int] | None:
    """The values a cron field allows; None means "any" (``*`` or ``?``)."""
    if text in ("*", "?"):
        return None
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = _cron_value(step_text, {}) if step_text else 1
        if base in ("*", "?"):
            first, last = low, high
        elif "-" in base:
            first_text, last_text = base.split("-", 1)
            first, last = _cron_value(first_text, names), _cron_value(last_text, names)
        else:
            first = _cron_value(base, names)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return values


def next_cron_time(expression: str, after: datetime, timezone: str | None = None) -> datetime:
    """The first minute strictly after ``after`` matching an AWS ``cron()`` expression read in
    ``timezone`` (default UTC), as a UTC datetime.

    Fields: minutes hours day-of-month month day-of-week year; names (JAN, MON) and ``* ? , - /``
    are supported, ``L``, ``W`` and ``#`` are not.
    """
    if timezone is not None:
        zone = ZoneInfo(timezone)
        local = after.astimezone(zone).replace(tzinfo=None)
        found = next_cron_time(expression, local.replace(tzinfo=UTC))
        return found.replace(tzinfo=zone).astimezone(UTC)
    match = _CRON.fullmatch(expression.strip())
    if match is None:
        raise ScheduleExpressionError(f"not a cron() expression: {expression!r}")
    fields = match.group(1).split()
    if len(fields) != 6:
        raise ScheduleExpressionError(f"cron() needs 6 fields: {expression!r}")
    minutes = _cron_field(fields[0], 0, 59, {})
    hours = _cron_field(fields[1], 0, 23, {})
    days = _cron_field(fields[2], 1, 31, {})
    months = _cron_field(fields[3], 1, 12, _MONTHS)
    weekdays = _cron_field(fields[4], 1, 7, _DAYS)
    years = _cron_field(fields[5], 1970, 2199, {})
    moment = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    limit = moment + timedelta(days=366 * 5)
    while moment < limit:
        aws_weekday = (moment.isoweekday() % 7) + 1  # SUN=1 ... SAT=7
        if (
            (years is None or moment.year in years)
            and (months is None or moment.month in months)
            and (days is None or moment.day in days)
            and (weekdays is None or aws_weekday in weekdays)
            and (hours is None or moment.hour in hours)
        ):
            if minutes is None or moment.minute in minutes:
                return moment
            moment += timedelta(minutes=1)
        else:
            moment = moment.replace(minute=0) + timedelta(hours=1)
    raise ScheduleExpressionError(f"{expression!r} never fires in the next five years")


def scheduled_event(spec: ScheduleSpec, region: str, account_id: str) -> Any:
    """The payload a schedule delivers: its configured Input (a Scheduler schedule's with its
    context attributes filled in; the scheduled time is the moment it fires), else an
    EventBridge event."""
    if spec.input is not None:
        text = spec.input
        if spec.source == "aws.scheduler":
            for attribute, value in {
                "<aws.scheduler.scheduled-time>": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "<aws.scheduler.schedule-arn>": spec.arn,
                "<aws.scheduler.execution-id>": str(uuid.uuid4()),
                "<aws.scheduler.attempt-number>": "1",
            }.items():
                text = text.replace(attribute, value)
        try:
            return json.loads(text)
        except ValueError:
            return text
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": spec.source,
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [spec.arn],
        "detail": {},
    }


class ScheduleRunner:
    """A timer thread that invokes a function on its schedule.

    ``time_scale`` speeds time up (2.0 fires a ``rate(1 minute)`` every 30 s); tests use it.
    """

    def __init__(
        self,
        spec: ScheduleSpec,
        invoke: Invoke,
        region: str,
        account_id: str,
        *,
        time_scale: float = 1.0,
    ) -> None:
        self.spec = spec
        self._invoke = invoke
        self._region = region
        self._account_id = account_id
        self._scale = time_scale if time_scale > 0 else 1.0
        self._stop = threading.Event()
        self.fired = 0
        self._period = rate_seconds(spec.expression)
        if self._period is None:  # validates the expression and its time zone
            next_cron_time(spec.expression, datetime.now(UTC), spec.timezone)
        self._thread = threading.Thread(
            target=self._run, name=f"schedule-{spec.logical_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def signal_stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _seconds_until_next(self) -> float:
        if self._period is not None:
            return self._period / self._scale
        now = datetime.now(UTC)
        upcoming = next_cron_time(self.spec.expression, now, self.spec.timezone)
        return (upcoming - now).total_seconds() / self._scale

    def fire(self) -> Invocation:
        """Invoke the function now, as the schedule would."""
        self.fired += 1
        event = scheduled_event(self.spec, self._region, self._account_id)
        return self._invoke(self.spec.function_id, event, f"schedule:{self.spec.logical_id}")

    def _run(self) -> None:
        while not self._stop.wait(self._seconds_until_next()):
            try:
                self.fire()
            except Exception:
                log.exception("schedule %s failed", self.spec.logical_id)
