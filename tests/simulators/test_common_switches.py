"""``Simulate`` and ``parse_simulate``: the sandbox's switches plus the statement switches, read
from the JSON text a channel hands back untouched."""

from __future__ import annotations

import json

import pytest

from local_runtime.simulators.common.switches import InvalidSimulate, Simulate, parse_simulate
from paycore.channels.simulate import SimulateSwitches


def test_no_text_means_no_switches() -> None:
    assert parse_simulate(None) == Simulate()
    assert parse_simulate("") == Simulate()
    assert parse_simulate("{}") == Simulate()


def test_every_sandbox_switch_is_read_with_its_defaults_filled_in() -> None:
    text = json.dumps(
        {
            "decline": True,
            "notify_delay_seconds": 1.5,
            "notify_drop": True,
            "notify_duplicate": 3,
            "notify_reorder": True,
            "query_only": True,
            "create_error": {"times": 2},
            "create_timeout": {"seconds": 0.5},
            "close_ignored": True,
            "refund_fail": True,
            "refund_delay_seconds": 2,
            "refund_error": {},
        }
    )

    switches = parse_simulate(text)

    assert isinstance(switches, SimulateSwitches)
    assert switches.decline and switches.notify_drop and switches.notify_reorder
    assert switches.query_only and switches.close_ignored and switches.refund_fail
    assert (switches.notify_delay_seconds, switches.notify_duplicate) == (1.5, 3)
    assert switches.refund_delay_seconds == 2.0
    assert switches.create_error is not None and switches.create_timeout is not None
    assert (switches.create_error.times, switches.create_error.status) == (2, 503)
    assert switches.create_error.after_create is False
    assert (switches.create_timeout.times, switches.create_timeout.seconds) == (1, 0.5)
    assert switches.refund_error is not None and switches.refund_error.times == 1


def test_the_statement_switches_are_read() -> None:
    switches = parse_simulate(
        '{"statement": "omit", "statement_amount_delta": -5, "statement_status": "CLOSED"}'
    )

    assert switches.statement == "omit"
    assert switches.statement_amount_delta == -5
    assert switches.statement_status == "CLOSED"
    assert switches.shown() == {
        "statement": "omit",
        "statement_amount_delta": -5,
        "statement_status": "CLOSED",
    }


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"decline": 1}', "decline"),  # strict: 1 is not a boolean
        ('{"notify_delay_seconds": "1"}', "notify_delay_seconds"),
        ('{"notify_delay_seconds": 3601}', "notify_delay_seconds"),
        ('{"notify_duplicate": 1}', "notify_duplicate"),
        ('{"notify_duplicate": 6}', "notify_duplicate"),
        ('{"create_error": {"status": 504}}', "create_error.status"),
        ('{"create_error": {"times": 0}}', "create_error.times"),
        ('{"create_timeout": {"seconds": 61}}', "create_timeout.seconds"),
        ('{"refund_error": {"times": 1, "status": 500}}', "refund_error.status"),
        ('{"refund_delay_seconds": -1}', "refund_delay_seconds"),
        ('{"statement": "drop"}', "statement"),
        ('{"statement_amount_delta": 0}', "statement_amount_delta"),
        ('{"statement_amount_delta": 1.5}', "statement_amount_delta"),
        ('{"statement_amount_delta": 1000000000001}', "statement_amount_delta"),
        ('{"statement_status": ""}', "statement_status"),
        ('{"statement_status": "A_VERY_LONG_STATUS_THAT_IS_TOO_LONG"}', "statement_status"),
        ('{"declined": true}', "declined"),  # unknown switches are refused
    ],
)
def test_a_wrong_switch_is_refused_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(InvalidSimulate) as caught:
        parse_simulate(text)

    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"decline"', "null", " "])
def test_text_that_is_not_a_json_object_is_refused(text: str) -> None:
    with pytest.raises(InvalidSimulate) as caught:
        parse_simulate(text)

    assert caught.value.field is None
    assert "JSON object" in str(caught.value)


def test_the_extreme_deltas_are_allowed() -> None:
    assert parse_simulate('{"statement_amount_delta": 1000000000000}').statement_amount_delta
    assert parse_simulate('{"statement_amount_delta": -1000000000000}').statement_amount_delta


def test_switches_are_frozen() -> None:
    switches = parse_simulate('{"decline": true}')

    with pytest.raises(ValueError, match="frozen"):
        switches.decline = False  # type: ignore[misc]
