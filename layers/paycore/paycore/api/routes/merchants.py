"""Merchant onboarding (platform admin)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from paycore.api.models import CreateMerchantRequest
from paycore.api.openapi import ADMIN, answers
from paycore.api.routes.http import Http, new_router


def routes(http: Http) -> Router:
    router = new_router()

    @router.post(
        "/v1/merchants",
        operation_id="createMerchant",
        summary="Onboard a merchant",
        description="Creates the merchant and its API key and webhook secret, shown in this "
        "answer only (a replay with the same Idempotency-Key shows them as null).",
        tags=["merchants"],
        security=ADMIN,
        responses=answers(201, "Merchant", "The new merchant", method="POST", security=ADMIN),
    )
    def create_merchant(body: Annotated[CreateMerchantRequest, Body()]) -> Response[str]:
        from paycore.services import merchants  # noqa: PLC0415 - on first need

        http.require_admin()
        credentials: dict[str, Any] = {}

        def command() -> tuple[int, dict[str, Any]]:
            onboarded = merchants.onboard_merchant(
                http.store(),
                body.name,
                body.webhook_url,
                fee_rate_bps=body.fee_rate_bps,
                settlement_delay_days=body.settlement_delay_days,
            )
            credentials.update(onboarded.credentials())
            # Stored for replays: never the secrets (they are shown once, then only hashed).
            return 201, {**onboarded.resource(), **dict.fromkeys(credentials)}

        return http.idempotent(
            "admin", body.model_dump(), command, "Merchant", shown_once=credentials
        )

    return router
