"""Settlements: a merchant's settlement of a day, and the platform's run of one (see
services/settlement.py)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from paycore.api.models import RunSettlementRequest
from paycore.api.openapi import ADMIN, MERCHANT, answers
from paycore.api.routes.http import Http, new_router
from paycore.api.routes.params import CurrencyQuery

SettlementDate = Annotated[
    str,
    Query(
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="The settlement day, YYYY-MM-DD in the settlement time zone",
    ),
]


def routes(http: Http) -> Router:
    router = new_router()

    @router.get(
        "/v1/settlements",
        operation_id="getSettlement",
        summary="What a day's settlement made available to you, in one currency",
        description="Summed over every run of that day; all figures are >= 0 and net = gross "
        "- fees - refunds + fee_refunded (channel parts only). See docs/money.md.",
        tags=["balance and settlements"],
        security=MERCHANT,
        responses=answers(200, "Settlement", "The settlement", method="GET", security=MERCHANT),
    )
    def get_settlement(date: SettlementDate, currency: CurrencyQuery) -> Response[str]:
        from paycore.services import settlement  # noqa: PLC0415 - on first need

        merchant_id = http.merchant_id()
        day = settlement.settlement_date_of(date)
        found = settlement.get_settlement(http.store(), merchant_id, day, currency)
        return http.answer("Settlement", found)

    @router.post(
        "/v1/settlements/run",
        operation_id="runSettlement",
        summary="Run a day's settlement now, for every merchant",
        description="Idempotent: a run settles what is due and not settled yet. Today's "
        "settlement settles what is due so far; running it again later settles only what "
        "became due since. The schedule runs day S at 00:00 of S.",
        tags=["balance and settlements"],
        security=ADMIN,
        responses=answers(
            200,
            "SettlementRun",
            "What this run settled",
            method="POST",
            security=ADMIN,
            invalid=["settlement_date_in_future"],
            unavailable=["service_unavailable"],
        ),
    )
    def run_settlement(body: Annotated[RunSettlementRequest, Body()]) -> Response[str]:
        from paycore.services import settlement  # noqa: PLC0415 - on first need

        http.require_admin()

        def command() -> tuple[int, dict[str, Any]]:
            day = settlement.settlement_date_of(body.date)
            return 200, settlement.run_settlement(http.store(), day).resource()

        return http.idempotent("admin", body.model_dump(), command, "SettlementRun")

    return router
