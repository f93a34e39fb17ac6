"""Scheduled sweep: close every open order that reached its ``expires_at`` unpaid.

Runs every minute (template ``OrderExpiryFunction``); an order's channel order is closed too,
and a payment still in flight fails with ``order_expired``. Orders that cannot be closed now
(channel unreachable) are left open and retried by the next sweep.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paycore.dal.trade_store import TradeStore
from paycore.observability import observability
from paycore.services.closing import expire_orders

logger, tracer, metrics = observability("order_expiry")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    result = expire_orders(TradeStore())
    metrics.add_metric(name="OrdersExpired", unit=MetricUnit.Count, value=result["closed"])
    if result["closed"] or result["retry_later"]:
        logger.info("expiry sweep", extra=result)
    return result
