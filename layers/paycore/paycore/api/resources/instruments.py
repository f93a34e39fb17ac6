"""The internal instruments: a buyer's balance and coupons."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from paycore.api.resources.common import MinorUnits, Resource, Timestamp
from paycore.money import CurrencyCode


class BuyerBalance(Resource):
    """A buyer's stored balance at this merchant, in one currency."""

    object: Literal["balance"]
    buyer_id: str
    currency: CurrencyCode
    available: MinorUnits
    frozen: MinorUnits = Field(description="Reserved by payments in flight")


class Coupon(Resource):
    """A coupon a merchant gave a buyer: used whole, at most once."""

    id: str = Field(pattern=r"^cpn_")
    object: Literal["coupon"]
    buyer_id: str
    amount: MinorUnits
    currency: CurrencyCode
    status: Literal["available", "locked", "used", "expired"]
    expires_at: Timestamp | None
    created_at: Timestamp
