"""Reading a cancelled transaction: a lost race versus an instrument not as reserved."""

from __future__ import annotations

import pytest

from paycore.dal.transaction import Cancelled, Part
from paycore.errors import Conflict

FAILED = "ConditionalCheckFailed"
# payment, order, balance, coupon, event
PARTS = (
    (Part.AGGREGATE, None),
    (Part.AGGREGATE, None),
    (Part.INSTRUMENT, Conflict("no money", code="insufficient_balance")),
    (Part.INSTRUMENT, None),
    (Part.EVENT, None),
)


@pytest.mark.parametrize(
    ("codes", "corrupt"),
    [
        ((FAILED, "None", FAILED, FAILED, "None"), False),  # lost race: re-read
        (("None", FAILED, FAILED, "None", "None"), False),  # lost race on the order
        (("None", "None", FAILED, "None", "None"), True),  # current, yet not reserved
        (("None", "None", "None", FAILED, "None"), True),
        (("None", "None", "None", "None", FAILED), False),  # the event: not an instrument
    ],
)
def test_only_a_failed_instrument_on_current_aggregates_is_corruption(
    codes: tuple[str, ...], corrupt: bool
) -> None:
    assert Cancelled(PARTS, codes).instruments_not_as_read() is corrupt


def test_the_refusals_of_failed_instruments_are_given_back_in_order() -> None:
    cancelled = Cancelled(PARTS, ("None", "None", FAILED, FAILED, "None"))
    refusals = cancelled.failed(Part.INSTRUMENT)
    assert len(refusals) == 2
    assert refusals[0] is not None and refusals[0].code == "insufficient_balance"
    assert refusals[1] is None
    assert cancelled.first_failed is Part.INSTRUMENT
    assert Cancelled(PARTS, ("None",) * 5).first_failed is None
