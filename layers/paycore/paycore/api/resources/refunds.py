"""A refund, with what it gives back through each instrument."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from paycore.api.resources.common import MinorUnits, Resource, Timestamp
from paycore.money import CurrencyCode


class RefundPart(Resource):
    """What one refund gives back through one instrument that paid."""

    type: Literal["channel", "balance", "coupon"]
    amount: MinorUnits
    coupon_id: str | None = None


class Refund(Resource):
    """Money given back to the buyer, through the instruments that paid (channel first)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "rfd_01jefqa1b3c5d7e9f1g3h5j7k9",
                    "object": "refund",
                    "order_id": "ord_01jefq5m0v8h3t2n6p4r9s7w1x",
                    "payment_id": "pay_01jefq7c2d9k4m6n8p0q2r4s6t",
                    "amount": 500,
                    "currency": "CNY",
                    "status": "succeeded",
                    "reason": "damaged box",
                    "kind": "merchant",
                    "allocations": [{"type": "channel", "amount": 500}],
                    "fee_refunded": 3,
                    "failure_code": None,
                    "failure_message": None,
                    "created_at": "2026-12-06T09:00:00.000Z",
                    "updated_at": "2026-12-06T09:00:02.000Z",
                }
            ]
        },
    )

    id: str = Field(pattern=r"^rfd_")
    object: Literal["refund"]
    order_id: str
    payment_id: str
    amount: MinorUnits
    currency: CurrencyCode
    status: Literal["processing", "succeeded", "failed"]
    reason: str | None
    kind: Literal["merchant", "late_payment"] = Field(
        description="late_payment: paycore gave back money a channel took after the payment "
        "had ended without it"
    )
    allocations: list[RefundPart]
    fee_refunded: MinorUnits | None = Field(
        description="Once succeeded: the part of the payment's fee this refund returned"
    )
    failure_code: str | None
    failure_message: str | None
    created_at: Timestamp
    updated_at: Timestamp
