"""The payment state machine's Lambda steps: create the channel order, query it, settle."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paycore.dal.trade_store import TradeStore
from paycore.observability import observability
from paycore.services.orchestration import Known, PaymentSteps

logger, tracer, metrics = observability("payment_worker")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = event.get("step")
    payment_id = str(event["payment_id"])
    logger.append_keys(payment_id=payment_id, step=step)
    steps = PaymentSteps(TradeStore())
    if step == "create_channel_order":
        # A first attempt carries the order and the payment as the API wrote them; a retried
        # one (or an execution started without them) reads them again.
        first = event.get("retry_count") == 0 and "payment" in event and "order" in event
        return steps.create_channel_order(
            payment_id,
            str(event["callback_base_url"]),
            str(event["task_token"]),
            known=Known.of(event["payment"], event["order"]) if first else None,
        )
    if step == "query_channel":
        return steps.query_channel(payment_id)
    if step == "settle":
        outcome = dict(event["outcome"])
        result = steps.settle(
            payment_id, outcome, known=Known.carried(outcome.get("payment"), event.get("order"))
        )
        if result["newly_settled"]:
            name = "PaymentSucceeded" if result["status"] == "succeeded" else "PaymentFailed"
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
            logger.info("payment settled", extra={"status": result["status"]})
        return result
    raise ValueError(f"unknown step {step!r}")
