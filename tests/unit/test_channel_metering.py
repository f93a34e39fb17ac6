"""Every call to a channel is counted for the channel error-rate alarms (paycore.channels.
metering): each adapter's network verbs are marked, and a marked call publishes its metrics."""

from __future__ import annotations

import importlib
import inspect
from typing import ClassVar

import pytest

from paycore.channels.metering import NETWORK_VERBS, metered
from paycore.channels.registry import FACTORIES
from paycore.errors import ChannelRejected, ChannelUnavailable
from paycore.observability import NAMESPACE
from tests.support import published_metrics


@pytest.mark.parametrize("channel", sorted(FACTORIES))
def test_every_network_verb_of_every_adapter_is_metered(channel: str) -> None:
    module = importlib.import_module(f"paycore.channels.{channel}.adapter")
    [gateway] = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__ and getattr(cls, "name", None) == channel
    ]
    unmarked = [
        verb for verb in NETWORK_VERBS if not getattr(gateway, verb).__dict__.get("metered")
    ]
    assert unmarked == []


class _Channel:
    name: ClassVar[str] = "somechannel"

    def __init__(self, failure: Exception | None) -> None:
        self.failure = failure

    @metered
    def query_order(self, out_trade_no: str) -> str:
        if self.failure is not None:
            raise self.failure
        return out_trade_no


@pytest.mark.parametrize(
    ("failure", "counted"),
    [
        (None, {"ChannelCalls"}),
        (ChannelUnavailable("timeout"), {"ChannelCalls", "ChannelCallsUnavailable"}),
        (ChannelRejected("no"), {"ChannelCalls", "ChannelCallsRejected"}),
        (ValueError("a bug"), {"ChannelCalls"}),
    ],
)
def test_a_metered_call_publishes_one_call_and_its_failure_for_its_channel_only(
    failure: Exception | None, counted: set[str], capsys: pytest.CaptureFixture[str]
) -> None:
    channel = _Channel(failure)
    if failure is None:
        assert channel.query_order("pay_1") == "pay_1"
    else:
        with pytest.raises(type(failure)):
            channel.query_order("pay_1")

    published = published_metrics(capsys.readouterr().out)

    # No service dimension: one series per channel, whichever function made the call.
    assert sorted(published) == sorted(
        (NAMESPACE, name, {"channel": "somechannel"}, 1.0) for name in counted
    )
