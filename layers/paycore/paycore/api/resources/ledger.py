"""The books: a trial balance, a merchant's balance."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from paycore.api.resources.common import Resource, Total
from paycore.money import CurrencyCode


class TrialBalanceAccount(Resource):
    account: str = Field(description="The account id, e.g. merchant:mch_...:pending:CNY")
    debits: Total
    credits: Total


class TrialBalance(Resource):
    """Every account of one currency with its total debits and credits (docs/ledger.md)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "object": "trial_balance",
                    "currency": "CNY",
                    "accounts": [
                        {
                            "account": "channel:sandbox:sandbox-primary:clearing:CNY",
                            "debits": 1999,
                            "credits": 0,
                        },
                        {
                            "account": "merchant:mch_01jefq3r6f4x2k8w9c7d5b1a0z:pending:CNY",
                            "debits": 0,
                            "credits": 1987,
                        },
                        {"account": "platform:fees:CNY", "debits": 0, "credits": 12},
                    ],
                    "total_debits": 1999,
                    "total_credits": 1999,
                }
            ]
        },
    )

    object: Literal["trial_balance"]
    currency: CurrencyCode
    accounts: list[TrialBalanceAccount]
    total_debits: Total
    total_credits: Total


class MerchantBalanceLine(Resource):
    currency: CurrencyCode
    escrow: Total = Field(description="Guaranteed-trade money not confirmed yet")
    pending: Total = Field(description="Waiting for its settlement day")
    available: int = Field(description="Settled; negative when refunds took more than it held")


class MerchantBalance(Resource):
    """Where the merchant's money is, per currency it has touched (docs/money.md)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "object": "balance",
                    "data": [{"currency": "CNY", "escrow": 0, "pending": 1987, "available": 0}],
                }
            ]
        },
    )

    object: Literal["balance"]
    data: list[MerchantBalanceLine]
