"""Reading a cancelled transaction: a lost race versus an instrument not as reserved."""

from __future__ import annotations

import pytest

from paycore.dal.trade_store import instruments_not_as_read

FAILED = "ConditionalCheckFailed"


@pytest.mark.parametrize(
    ("codes", "corrupt"),
    [
        # payment, order, balance, coupon, event
        ([FAILED, "None", FAILED, FAILED, "None"], False),  # lost race: re-read
        (["None", FAILED, FAILED, "None", "None"], False),  # lost race on the order
        (["None", "None", FAILED, "None", "None"], True),  # current, yet not reserved
        (["None", "None", "None", FAILED, "None"], True),
        (["None", "None", "None", "None", FAILED], False),  # the event: not an instrument
    ],
)
def test_only_a_failed_instrument_on_current_aggregates_is_corruption(
    codes: list[str], corrupt: bool
) -> None:
    assert instruments_not_as_read(codes, 2, 2) is corrupt
