"""The books: the platform's trial balance (admin) and a merchant's balance (see
services/ledger.py)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from paycore.api.openapi import ADMIN, MERCHANT, answers
from paycore.api.routes.http import Http, new_router
from paycore.api.routes.params import CurrencyQuery
from paycore.dal.ledger import LedgerStore
from paycore.services import ledger


def routes(http: Http) -> Router:
    router = new_router()

    @router.get(
        "/v1/ledger/trial_balance",
        operation_id="getTrialBalance",
        summary="The trial balance of one currency",
        description="Every account of the books in that currency with its total debits and "
        "credits; total_debits always equals total_credits (see docs/ledger.md for the chart "
        "of accounts).",
        tags=["ledger"],
        security=ADMIN,
        responses=answers(
            200,
            "TrialBalance",
            "The trial balance",
            method="GET",
            security=ADMIN,
            unavailable=["service_unavailable"],
        ),
    )
    def trial_balance(currency: CurrencyQuery) -> Response[str]:
        http.require_admin()
        balance = ledger.trial_balance(LedgerStore(http.store().table), currency)
        return http.answer("TrialBalance", balance.resource())

    @router.get(
        "/v1/balance",
        operation_id="getMerchantBalance",
        summary="Your balance: escrow, pending and available per currency",
        description="Every currency you have taken money in. escrow: guaranteed-trade money "
        "not confirmed yet; pending: waiting for its settlement day; available: settled (it "
        "may be negative). See docs/money.md.",
        tags=["balance and settlements"],
        security=MERCHANT,
        responses=answers(
            200,
            "MerchantBalance",
            "The balance",
            method="GET",
            security=MERCHANT,
            unavailable=["service_unavailable"],
        ),
    )
    def merchant_balance() -> Response[str]:
        merchant_id = http.merchant_id()
        lines = ledger.merchant_balance(LedgerStore(http.store().table), merchant_id)
        return http.answer("MerchantBalance", {"object": "balance", "data": lines})

    return router
