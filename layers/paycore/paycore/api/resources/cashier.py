"""The hosted cashier's status answer."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from paycore.api.resources.common import MinorUnits, Resource
from paycore.api.resources.payments import NextAction
from paycore.money import CurrencyCode


class CashierPayment(Resource):
    """A payment as the buyer's page sees it."""

    id: str = Field(pattern=r"^pay_")
    object: Literal["payment"]
    status: Literal["processing", "succeeded", "failed"]
    amount: MinorUnits
    currency: CurrencyCode
    next_action: NextAction | None
    failure_code: str | None
    failure_message: str | None


class CashierStatus(Resource):
    """Where an order stands on its cashier page, with the payment that started last."""

    object: Literal["cashier_status"]
    state: Literal["open", "paying", "paid", "closed"] = Field(
        description="open: it can be paid; paying: a payment is in flight; paid (refunds "
        "included); closed: closed or expired unpaid"
    )
    payment: CashierPayment | None
    resumed: bool = Field(
        default=False,
        description="Only in the answer to a choice: true when a payment already in flight "
        "is answered instead of a new one",
    )
