"""Operator tool: move webhooks parked in the dead-letter queue back to the notification queue.

Invoke it once the merchant's endpoint works again (stack output
``NotificationRedriveFunctionName``)::

    aws lambda invoke --function-name <name> --cli-binary-format raw-in-base64-out \
        --payload '{"max_messages": 100}' moved.json

Each moved webhook gets the whole retry schedule again. A single event can also be sent again
through ``POST /v1/events/{id}/redeliver``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paycore.observability import observability
from paycore.services.notifications import RedriveRequest, redrive_dead_letters

logger, tracer, metrics = observability("notification_redrive")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    request = RedriveRequest.model_validate(event or {})
    moved = redrive_dead_letters(request.max_messages)
    metrics.add_metric(name="WebhooksRedriven", unit=MetricUnit.Count, value=moved)
    logger.info("dead-lettered webhooks moved back", extra={"moved": moved})
    return {"moved": moved}
