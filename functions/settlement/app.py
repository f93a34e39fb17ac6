"""Scheduled: the daily settlement of day S at 00:00 of S in the ``SettlementTimeZone``.

The schedule (template ``SettlementFunction``, an EventBridge Scheduler schedule with that time
zone) passes its scheduled time; the day settled is that moment's day in the settlement time
zone, so a run that starts a little late still settles the right day. The run is idempotent
(services/settlement.py): one that stops early is finished by running the day again
(``POST /v1/settlements/run``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from paycore.clock import local_date
from paycore.config import get_settings
from paycore.dal.trade_store import TradeStore
from paycore.observability import observability
from paycore.services.settlement import run_settlement, today

logger, tracer, metrics = observability("settlement")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, object]:
    scheduled = event.get("scheduled_time") if isinstance(event, dict) else None
    try:
        day = local_date(str(scheduled), get_settings().settlement_time_zone)
    except ValueError:  # no scheduled time (a manual invocation): today
        day = today()
    result = run_settlement(TradeStore(), day)
    metrics.add_metric(name="PaymentsSettled", unit=MetricUnit.Count, value=result.payments_count)
    logger.info("settlement", extra=result.resource())
    return result.resource()
