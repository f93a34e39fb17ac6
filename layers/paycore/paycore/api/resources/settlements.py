"""Settlements and settlement runs."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from paycore.api.resources.common import Resource, Total
from paycore.money import CurrencyCode


class Settlement(Resource):
    """Everything settlement ``date`` moved for the merchant in ``currency``, summed over its
    runs. ``gross`` and ``refunds`` count channel parts only; ``net = gross - fees - refunds +
    fee_refunded`` is what became available."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "object": "settlement",
                    "date": "2026-12-07",
                    "currency": "CNY",
                    "payments_count": 2,
                    "gross": 3998,
                    "fees": 24,
                    "refunds_count": 1,
                    "refunds": 500,
                    "fee_refunded": 3,
                    "net": 3477,
                }
            ]
        },
    )

    object: Literal["settlement"]
    date: str = Field(description="The settlement day, YYYY-MM-DD in the settlement time zone")
    currency: CurrencyCode
    payments_count: int = Field(ge=0)
    gross: Total
    fees: Total
    refunds_count: int = Field(ge=0)
    refunds: Total
    fee_refunded: Total
    net: Total


class SettlementRun(Resource):
    """What one run of a settlement day did (another run later settles only what became due
    since)."""

    object: Literal["settlement_run"]
    date: str
    payments_count: int = Field(ge=0, description="Payments this run settled")
    settlements_count: int = Field(
        ge=0, description="Merchant and currency pairs this run added to"
    )
