"""The merchant's API key roll (merchant route; see services/merchants.py)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from paycore.api.models import RollApiKeyRequest
from paycore.api.openapi import MERCHANT, answers
from paycore.api.routes.http import Http, new_router


def routes(http: Http) -> Router:
    router = new_router()

    @router.post(
        "/v1/api_keys/roll",
        operation_id="rollApiKey",
        summary="Replace the API key",
        description="The new key is in this answer only (a replay with the same "
        "Idempotency-Key shows it as null). The current key keeps working for `expires_in` "
        "seconds (default 86400, at most 604800; 0: it stops now); API Gateway caches an "
        "authorization for 60 seconds, so it is refused at most 60 seconds after "
        "`previous_key_expires_at`.",
        tags=["api keys"],
        security=MERCHANT,
        responses=answers(201, "RolledApiKey", "The new key", method="POST", security=MERCHANT),
    )
    def roll_api_key(body: Annotated[RollApiKeyRequest | None, Body()] = None) -> Response[str]:
        from paycore.services import merchants  # noqa: PLC0415 - on first need

        mid = http.merchant_id()
        request = body or RollApiKeyRequest()
        shown_once: dict[str, Any] = {}

        def command() -> tuple[int, dict[str, Any]]:
            rolled = merchants.roll_api_key(http.store(), mid, http.api_key(), request.expires_in)
            shown_once["api_key"] = rolled.api_key
            return 201, rolled.resource()

        return http.idempotent(
            mid, request.model_dump(), command, "RolledApiKey", shown_once=shown_once
        )

    return router
