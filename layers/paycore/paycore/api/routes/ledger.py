"""The platform's view of the books (admin routes; see services/ledger.py)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from paycore.api.openapi import ADMIN, answers
from paycore.api.resources import TrialBalance
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
            TrialBalance,
            "The trial balance",
            method="GET",
            security=ADMIN,
            unavailable=["service_unavailable"],
        ),
    )
    def trial_balance(currency: CurrencyQuery) -> Response[str]:
        http.require_admin()
        balance = ledger.trial_balance(LedgerStore(http.store().table), currency)
        return http.answer(TrialBalance, balance.resource())

    return router
