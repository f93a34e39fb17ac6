"""What every resource model shares: the base (unknown fields refused, validators built on
first use) and the field types of money and time."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from paycore.money import MAX_AMOUNT

MinorUnits = Annotated[
    int, Field(ge=0, le=MAX_AMOUNT, description="Minor units of the currency (JPY: yen)")
]
Total = Annotated[int, Field(ge=0, description="Minor units of the currency, summed")]
Timestamp = Annotated[
    str, Field(description="RFC 3339, UTC", examples=["2026-12-06T08:00:00.000Z"])
]


class Resource(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
