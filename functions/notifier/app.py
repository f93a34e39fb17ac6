"""Delivers events to merchants as Standard Webhooks: an event's first delivery comes as the
payload of an asynchronous invoke (a *direct* delivery), its retries as SQS records, one at a
time.

A record that was not delivered is reported in ``batchItemFailures`` (the template sets
``ReportBatchItemFailures``) after the use case hid it for its retry backoff; the others are
deleted by Lambda. A direct delivery that failed has been queued for its retries by the use
case, so the invocation succeeds; one that crashed raises, and Lambda retries it, then puts
it in the notification queue (the function's dead-letter queue). The policy itself is in
``paycore.services.notifications``.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from paycore.dal.trade_store import TradeStore
from paycore.observability import observability
from paycore.services.notifications import (
    DeliveryOutcome,
    DeliveryReport,
    NotificationNotSettled,
    QueuedNotification,
    deliver_notification,
)

logger, tracer, metrics = observability("notifier")
# Report every failed record, even when the whole batch failed, instead of raising: the
# answer is the same to SQS, and a raise would also count as a function error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

# Seconds kept back from the invocation's remaining time for the bookkeeping after a POST.
_SAFETY_MARGIN_SECONDS = 3.0
_METRICS = {
    DeliveryOutcome.DELIVERED: "WebhookDelivered",
    DeliveryOutcome.FAILED: "WebhookDeliveryFailed",
}


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    """Deliver one record; raise so the processor reports it when it must be retried."""
    message = QueuedNotification(
        body=record.body,
        receive_count=int(record.attributes.approximate_receive_count),
        receipt_handle=record.receipt_handle,
    )
    report = _deliver(message, lambda_context, {"message_id": record.message_id})
    if not report.settled:
        raise NotificationNotSettled(f"{report.outcome} on attempt {report.attempt}")


def _deliver(
    message: QueuedNotification, lambda_context: LambdaContext, keys: dict[str, object]
) -> DeliveryReport:
    budget = lambda_context.get_remaining_time_in_millis() / 1000 - _SAFETY_MARGIN_SECONDS
    keys["attempt"] = message.receive_count
    try:
        report = deliver_notification(TradeStore(), message, time_budget=budget)
    except Exception:
        retried_by = "SQS" if message.receipt_handle else "Lambda (then the queue)"
        logger.exception("webhook delivery crashed", extra={**keys, "retried_by": retried_by})
        raise
    keys.update(report.log_keys())
    if metric := _METRICS.get(report.outcome):
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
    if report.settled:
        logger.info("webhook settled", extra=keys)
    elif report.outcome is DeliveryOutcome.POISON:
        logger.error("poison notification: on its way to the dead-letter queue", extra=keys)
    elif report.outcome is DeliveryOutcome.DEFERRED:
        logger.info("failed first attempt: held back for its first retry", extra=keys)
    else:
        logger.warning("webhook delivery failed", extra=keys)
    return report


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(
    event: dict[str, Any], context: LambdaContext
) -> PartialItemFailureResponse | dict[str, str]:
    if "Records" not in event:  # a direct delivery: the payload is the message itself
        body = json.dumps(event, separators=(",", ":"))
        report = _deliver(QueuedNotification.direct(body), context, {"direct": True})
        return {"outcome": report.outcome.value}
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
