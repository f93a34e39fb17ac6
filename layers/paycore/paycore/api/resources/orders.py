"""Orders, one and a page of them."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from paycore.api.resources.common import MinorUnits, Resource, Timestamp
from paycore.money import CurrencyCode


class Order(Resource):
    """The trade: what the buyer owes the merchant, and how much of it was paid and refunded."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "ord_01jefq5m0v8h3t2n6p4r9s7w1x",
                    "object": "order",
                    "merchant_order_no": "A-1001",
                    "amount": 1999,
                    "currency": "CNY",
                    "subject": "Green tea, 250 g",
                    "status": "paid",
                    "amount_paid": 1999,
                    "amount_refunded": 0,
                    "expires_at": "2026-12-06T08:30:00.000Z",
                    "created_at": "2026-12-06T08:00:00.000Z",
                    "updated_at": "2026-12-06T08:01:12.345Z",
                    "metadata": {"cart": "c-77"},
                    "buyer_id": "buyer-42",
                    "trade_type": "guaranteed",
                    "auto_confirm_in": 864000,
                    "auto_confirm_at": "2026-12-16T08:01:12.345Z",
                    "confirmed_at": None,
                    "cashier_url": "https://api.example.com/live/cashier/"
                    "Vx3uH0dLq8yS2mWf7tKc9bNe4pRa1gZo5jQi6wXy_Ek",
                    "return_url": "https://tea.example/orders/A-1001",
                }
            ]
        },
    )

    id: str = Field(pattern=r"^ord_")
    object: Literal["order"]
    merchant_order_no: str
    amount: MinorUnits
    currency: CurrencyCode
    subject: str
    status: Literal["created", "paying", "paid", "closed", "partially_refunded", "refunded"]
    amount_paid: MinorUnits
    amount_refunded: MinorUnits
    expires_at: Timestamp
    created_at: Timestamp
    updated_at: Timestamp
    metadata: dict[str, str]
    buyer_id: str | None
    trade_type: Literal["instant", "guaranteed"] = Field(
        description="guaranteed (担保交易): the money waits in escrow until confirmed"
    )
    auto_confirm_in: int | None = Field(
        description="Guaranteed trade: seconds after payment when the order confirms itself"
    )
    auto_confirm_at: Timestamp | None = Field(
        description="Guaranteed trade: when a paid order confirms itself unless confirmed before"
    )
    confirmed_at: Timestamp | None = Field(description="Guaranteed trade: when it was confirmed")
    cashier_url: str | None = Field(
        description="The buyer's payment page (the hosted cashier): send the buyer there. "
        "It needs no credentials and takes no payment once the order is final. Null only "
        "for an order created before the cashier existed."
    )
    return_url: str | None = Field(
        description="Where the cashier sends the buyer once the order is paid"
    )


class OrderList(Resource):
    object: Literal["list"]
    data: list[Order]
    has_more: bool
