"""The ``simulate`` switches: one model the API and the local channel services agree on."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from local_runtime.sandbox.models import SandboxBehaviour
from paycore.channels.simulate import SimulateSwitches

# Each sample is judged the same way by the layer's model and the sandbox's own copy.
VALID: list[dict[str, Any]] = [
    {},
    {"decline": True},
    {"notify_delay_seconds": 0},
    {"notify_delay_seconds": 3600},
    {"notify_delay_seconds": 0.5},
    {"notify_drop": True, "notify_duplicate": 2, "notify_reorder": True},
    {"notify_duplicate": 5},
    {"query_only": True, "close_ignored": True},
    {"create_error": {}},
    {"create_error": {"times": 3, "status": 502, "after_create": True}},
    {"create_timeout": {"times": 2, "seconds": 60}},
    {"refund_fail": True, "refund_delay_seconds": 1.5, "refund_error": {"times": 2}},
    {"statement": "omit"},
    {"statement_amount_delta": -100},
    {"statement_amount_delta": 7},
    {"statement_status": "CLOSED"},
]
INVALID: list[dict[str, Any]] = [
    {"explode": True},
    {"decline": 1},
    {"decline": "yes"},
    {"decline": None},
    {"notify_delay_seconds": -1},
    {"notify_delay_seconds": 3601},
    {"notify_delay_seconds": "1"},
    {"notify_delay_seconds": float("nan")},
    {"notify_duplicate": 1},
    {"notify_duplicate": 6},
    {"notify_duplicate": 2.0},
    {"create_error": {"status": 504}},
    {"create_error": {"times": 0}},
    {"create_error": {"after": True}},
    {"create_error": True},
    {"create_timeout": {"seconds": 61}},
    {"create_timeout": {"times": True}},
    {"refund_delay_seconds": -0.5},
    {"refund_error": {"times": 0}},
    {"refund_fail": None},
    {"statement": "drop"},
    {"statement_amount_delta": 1.5},
    {"statement_amount_delta": "1"},
    {"statement_amount_delta": 10**13},
    {"statement_status": ""},
    {"statement_status": "NOT PAID"},
]


@pytest.mark.parametrize("switches", VALID)
def test_valid_switches_are_accepted_by_both(switches: dict[str, Any]) -> None:
    ours = SimulateSwitches.model_validate(switches)
    sandbox = SandboxBehaviour.model_validate(switches)

    assert ours.shown() == sandbox.shown()


@pytest.mark.parametrize("switches", INVALID)
def test_invalid_switches_are_refused_by_both(switches: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SimulateSwitches.model_validate(switches)
    with pytest.raises(ValidationError):
        SandboxBehaviour.model_validate(switches)


def test_both_models_have_the_same_switches() -> None:
    assert list(SimulateSwitches.model_fields) == list(SandboxBehaviour.model_fields)


def test_a_channel_status_word_is_any_channels_and_the_sandbox_checks_its_own() -> None:
    assert SimulateSwitches.model_validate({"statement_status": "TRADE_CLOSED"})
    with pytest.raises(ValidationError):
        SandboxBehaviour.model_validate({"statement_status": "TRADE_CLOSED"})


def test_shown_keeps_only_what_was_set_with_nested_defaults() -> None:
    switches = SimulateSwitches.model_validate({"decline": False, "create_error": {"times": 2}})

    assert switches.shown() == {
        "decline": False,
        "create_error": {"times": 2, "status": 503, "after_create": False},
    }
