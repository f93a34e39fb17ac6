"""``Simulate``: the misbehaviour switches of one simulated trade.

The switches paycore's API accepts on a channel instrument's ``simulate``
(``paycore.channels.simulate.SimulateSwitches``: the sandbox's switches, same names, types,
ranges and meaning, see local_runtime/sandbox/README.md, "Misbehaviour switches", plus three
statement switches that put a discrepancy into the trade's payment line of the daily
statement), so a switch the API accepts is one every simulator understands:

- ``statement``: ``"omit"``: the line is missing (paycore has a success the channel lacks);
- ``statement_amount_delta``: int, non-zero, at most 10**12 either way: the line's amount is
  off by that many minor units;
- ``statement_status``: 1-32 of ``[A-Z0-9_]`` starting with a letter (``"CLOSED"``): the line
  shows this status instead of a success.

A channel carries the switches as JSON text in the field it hands back untouched (Alipay
``passback_params``, URL-decoded first; WeChat Pay ``attach``; Stripe ``metadata["simulate"]``)
and reads them with ``parse_simulate``; an ``InvalidSimulate`` becomes the channel's own
parameter error.
"""

from __future__ import annotations

import json

from pydantic import ValidationError, field_validator

from paycore.channels.simulate import CreateError, CreateTimeout, RefundError, SimulateSwitches

__all__ = [
    "CreateError",
    "CreateTimeout",
    "InvalidSimulate",
    "RefundError",
    "Simulate",
    "parse_simulate",
]


class Simulate(SimulateSwitches):
    """The API's switches; all optional, strict, and unknown switches refused (inherited)."""

    @field_validator("statement_amount_delta")
    @classmethod
    def _non_zero(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError("must not be 0 (leave it out for an exact amount)")
        return value


class InvalidSimulate(ValueError):
    """The switches text is not a valid ``Simulate``. ``field`` is the dotted path of the first
    faulty switch inside the object (``create_error.status``), or None when the text as a
    whole is wrong (not JSON, not an object)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def parse_simulate(text: str | None) -> Simulate:
    """The switches in ``text`` (a JSON object); no text (None or "") means no switches."""
    if not text:
        return Simulate()
    try:
        payload = json.loads(text)
    except ValueError:
        raise InvalidSimulate('must be a JSON object, e.g. {"decline": true}') from None
    if not isinstance(payload, dict):
        raise InvalidSimulate('must be a JSON object, e.g. {"decline": true}')
    try:
        return Simulate.model_validate(payload)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or None
        message = str(error["msg"]).removeprefix("Value error, ")
        raise InvalidSimulate(message, field) from None
