"""Logger, tracer and metrics for a function, created once per container by its app.py.

Logs are JSON with the function's service name; ids of orders and payments are appended as
keys by the handlers. Nothing here logs events or secrets: POWERTOOLS_LOGGER_LOG_EVENT is
off in the template and tokens travel only in DynamoDB items and Step Functions calls.
"""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

NAMESPACE = "Paycore"

# Most invocations (a status query, a webhook to a merchant without a URL) publish no business
# metric; Powertools warns about each one, which only buries real log lines.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


def observability(service: str) -> tuple[Logger, Tracer, Metrics]:
    return (
        Logger(service=service),
        Tracer(service=service),
        Metrics(namespace=NAMESPACE, service=service),
    )
