"""The refund state machine's Lambda steps: ask the channel to refund, query it, settle."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paycore.dal.refund_store import RefundStore
from paycore.observability import observability
from paycore.services.refunds import KnownRefund, RefundSteps

logger, tracer, metrics = observability("refund_worker")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = event.get("step")
    refund_id = str(event["refund_id"])
    logger.append_keys(refund_id=refund_id, step=step)
    steps = RefundSteps(RefundStore())
    # A step's first attempt carries the refund and its payment as the API wrote and read
    # them; a retried one (or an execution started without them) reads them again.
    first = event.get("retry_count") == 0
    outcome = dict(event.get("outcome") or {})
    # A notification hands SettleRefund the refund as it took it (its fingerprint kept on the
    # refund, at the same version): written as that, the fingerprint survives the settlement.
    refund = outcome.pop("refund", None) or event.get("refund")
    known = KnownRefund.carried(refund, event.get("payment")) if first else None
    if step == "request_channel_refund":
        return steps.request_channel_refund(
            refund_id, str(event["callback_base_url"]), str(event["task_token"]), known=known
        )
    if step == "query_refund":
        return steps.query_refund(refund_id, str(event.get("callback_base_url") or ""))
    if step == "settle_refund":
        result = steps.settle_refund(refund_id, outcome, known=known)
        if result["newly_settled"]:
            name = "RefundSucceeded" if result["status"] == "succeeded" else "RefundFailed"
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
            logger.info("refund settled", extra={"status": result["status"]})
        return result
    raise ValueError(f"unknown step {step!r}")
