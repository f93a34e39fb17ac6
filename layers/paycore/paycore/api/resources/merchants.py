"""Onboarding's answer."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from paycore.api.resources.common import Resource, Timestamp


class Merchant(Resource):
    """A merchant, as onboarding answers it. ``api_key`` and ``webhook_secret`` are shown in
    the first answer only; a replay of the same onboarding (same ``Idempotency-Key``) shows
    them as null, because paycore keeps only the key's hash."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "mch_01jefq3r6f4x2k8w9c7d5b1a0z",
                    "object": "merchant",
                    "name": "Tea Shop",
                    "webhook_url": "https://tea.example/webhooks",
                    "fee_rate_bps": 60,
                    "settlement_delay_days": 1,
                    "created_at": "2026-12-06T08:00:00.000Z",
                    "api_key": "sk_live_4f0c...",
                    "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                }
            ]
        },
    )

    id: str = Field(pattern=r"^mch_")
    object: Literal["merchant"]
    name: str
    webhook_url: str | None
    fee_rate_bps: int = Field(
        ge=0, le=10_000, description="Fee on channel-collected money, basis points"
    )
    settlement_delay_days: int = Field(
        ge=0, le=30, description="Days from success (or confirmation) to available"
    )
    created_at: Timestamp
    api_key: str | None = Field(description="Shown once; null in a replay")
    webhook_secret: str | None = Field(description="Standard Webhooks secret; shown once")
