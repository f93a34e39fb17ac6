"""The refund state machine's Lambda steps: ask the channel to refund, query it, settle."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paycore.dal.refund_store import RefundStore
from paycore.observability import observability
from paycore.services.refunds import RefundSteps

logger, tracer, metrics = observability("refund_worker")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = event.get("step")
    refund_id = str(event["refund_id"])
    logger.append_keys(refund_id=refund_id, step=step)
    steps = RefundSteps(RefundStore())
    if step == "request_channel_refund":
        return steps.request_channel_refund(
            refund_id, str(event["callback_base_url"]), str(event["task_token"])
        )
    if step == "query_refund":
        return steps.query_refund(refund_id, str(event.get("callback_base_url") or ""))
    if step == "settle_refund":
        result = steps.settle_refund(refund_id, dict(event["outcome"]))
        if result["newly_settled"]:
            name = "RefundSucceeded" if result["status"] == "succeeded" else "RefundFailed"
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
            logger.info("refund settled", extra={"status": result["status"]})
        return result
    raise ValueError(f"unknown step {step!r}")
