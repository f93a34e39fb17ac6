"""Every call an adapter makes to its channel is counted, per channel, with its failures:

- ``ChannelCalls``: every call (create, query, close, refund, refund query, statement);
- ``ChannelCallsUnavailable``: no usable answer (``ChannelUnavailable``: a timeout, a
  connection error, a 5xx), the outcome unknown;
- ``ChannelCallsRejected``: the channel answered no (``ChannelRejected``).

The metrics carry only the ``channel`` dimension, not the calling function's ``service``: the
API, the workers, the expiry sweep and the callback all call channels, and the template's
``Channel<Name>ErrorRateAlarm`` watches one series per channel whichever function made the
call. Each adapter marks its network calls with ``@metered``; a test checks that every channel
verb of every adapter is marked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar, cast

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from paycore.errors import ChannelRejected, ChannelUnavailable
from paycore.observability import NAMESPACE

# The ChannelGateway verbs that reach the channel (parse_notification and acknowledge do not).
NETWORK_VERBS = (
    "create_order",
    "query_order",
    "close_order",
    "refund",
    "query_refund",
    "fetch_statement",
)

P = ParamSpec("P")
R = TypeVar("R")


class _Named(Protocol):
    # Read-only, so an adapter's ``name: ClassVar[str]`` matches.
    @property
    def name(self) -> str: ...


G = TypeVar("G", bound=_Named)


def metered(verb: Callable[Concatenate[G, P], R]) -> Callable[Concatenate[G, P], R]:
    """Count each call of an adapter's ``verb`` for its channel (``self.name``)."""

    @functools.wraps(verb)
    def call(self: G, *args: P.args, **kwargs: P.kwargs) -> R:
        failure: type[Exception] | None = None
        try:
            return verb(self, *args, **kwargs)
        except ChannelUnavailable:
            failure = ChannelUnavailable
            raise
        except ChannelRejected:
            failure = ChannelRejected
            raise
        finally:
            count_call(str(self.name), failure)

    call.__dict__["metered"] = True
    # functools.wraps types its result as _Wrapped, which mypy does not see as the Callable it is.
    return cast("Callable[Concatenate[G, P], R]", call)


def count_call(channel: str, failure: type[Exception] | None) -> None:
    """Publish one channel call (and its failure) as an embedded-metric-format log line."""
    # service="": no service dimension (one series per channel, whichever function called).
    metrics = EphemeralMetrics(namespace=NAMESPACE, service="")
    metrics.add_dimension(name="channel", value=channel)
    metrics.add_metric(name="ChannelCalls", unit=MetricUnit.Count, value=1)
    if failure is ChannelUnavailable:
        metrics.add_metric(name="ChannelCallsUnavailable", unit=MetricUnit.Count, value=1)
    elif failure is ChannelRejected:
        metrics.add_metric(name="ChannelCallsRejected", unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()
