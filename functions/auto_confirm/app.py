"""Scheduled sweep: confirm every paid guaranteed order whose ``auto_confirm_at`` has passed.

Runs every minute (template ``AutoConfirmFunction``), like the order expiry sweep: the sparse
index lists paid guaranteed orders by their deadline, so a run reads only the orders due. Each
confirmation moves the order's money from escrow to pending and emits ``order.confirmed``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paycore.dal.trade_store import TradeStore
from paycore.observability import observability
from paycore.services.confirmation import auto_confirm_orders

logger, tracer, metrics = observability("auto_confirm")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    result = auto_confirm_orders(TradeStore())
    metrics.add_metric(name="OrdersAutoConfirmed", unit=MetricUnit.Count, value=result["confirmed"])
    if result["confirmed"] or result["retry_later"]:
        logger.info("auto-confirm sweep", extra=result)
    return result
