"""A payment, with the instruments that pay it and what the buyer does next."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from paycore.api.resources.common import MinorUnits, Resource, Timestamp
from paycore.money import CurrencyCode


class RedirectAction(Resource):
    """Send the buyer's browser to ``url`` (the channel's payment page)."""

    type: Literal["redirect"]
    url: str


class QrCodeAction(Resource):
    """Show ``code_url`` as a QR code for the buyer to scan with the channel's app."""

    type: Literal["qr_code"]
    code_url: str


NextAction = Annotated[RedirectAction | QrCodeAction, Field(discriminator="type")]


class ChannelPart(Resource):
    type: Literal["channel"]
    channel: str
    amount: MinorUnits
    sandbox_behaviour: dict[str, Any] | None = Field(
        default=None, description="The sandbox misbehaviour switches this payment asked for"
    )
    simulate: dict[str, Any] | None = Field(
        default=None, description="The simulator switches this payment asked for"
    )


class BalancePart(Resource):
    type: Literal["balance"]
    amount: MinorUnits


class CouponPart(Resource):
    type: Literal["coupon"]
    coupon_id: str
    amount: MinorUnits


PaymentPart = Annotated[ChannelPart | BalancePart | CouponPart, Field(discriminator="type")]


class ChannelAttempt(Resource):
    """One try at creating the channel order at one account (routing and failover)."""

    account: str
    result: Literal["created", "created_answer_lost", "not_created", "rejected", "unknown"]
    detail: str | None
    at: Timestamp


class Payment(Resource):
    """One attempt to pay an order, with the instruments that pay it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "pay_01jefq7c2d9k4m6n8p0q2r4s6t",
                    "object": "payment",
                    "order_id": "ord_01jefq5m0v8h3t2n6p4r9s7w1x",
                    "status": "processing",
                    "amount": 1999,
                    "currency": "CNY",
                    "instruments": [{"type": "channel", "channel": "sandbox", "amount": 1999}],
                    "next_action": {"type": "redirect", "url": "https://pay.example/p/abc"},
                    "failure_code": None,
                    "failure_message": None,
                    "fee": None,
                    "net": None,
                    "channel_account": "sandbox-primary",
                    "channel_attempts": [
                        {
                            "account": "sandbox-primary",
                            "result": "created",
                            "detail": None,
                            "at": "2026-12-06T08:00:01.000Z",
                        }
                    ],
                    "created_at": "2026-12-06T08:00:00.500Z",
                    "updated_at": "2026-12-06T08:00:01.000Z",
                }
            ]
        },
    )

    id: str = Field(pattern=r"^pay_")
    object: Literal["payment"]
    order_id: str
    status: Literal["processing", "succeeded", "failed"]
    amount: MinorUnits
    currency: CurrencyCode
    instruments: list[PaymentPart]
    next_action: NextAction | None
    failure_code: str | None
    failure_message: str | None
    fee: MinorUnits | None = Field(
        description="Once succeeded: the fee on the channel part (coupon and balance parts "
        "carry none), rounded half up"
    )
    net: MinorUnits | None = Field(description="Once succeeded: the channel part less the fee")
    channel_account: str | None
    channel_attempts: list[ChannelAttempt]
    created_at: Timestamp
    updated_at: Timestamp
