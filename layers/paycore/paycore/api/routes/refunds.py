"""Refunds: refund an order, retrieve a refund (merchant routes; see services/refunds.py)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from paycore.api.models import CreateRefundRequest
from paycore.api.openapi import MERCHANT, answers
from paycore.api.routes.http import Http, new_router


def routes(http: Http) -> Router:
    router = new_router()

    @router.post(
        "/v1/orders/<order_id>/refunds",
        operation_id="createRefund",
        summary="Refund part or all of a paid order",
        description="Refunds of an order never add up to more than it was paid, also when "
        "they race. The money goes back through the channel first, then the balance, then "
        "the coupon.",
        tags=["refunds"],
        security=MERCHANT,
        responses=answers(
            202,
            "Refund",
            "The refund, processing (or already final when no channel is involved)",
            method="POST",
            security=MERCHANT,
            not_found=["order_not_found"],
            conflict=["order_not_refundable", "refund_exceeds_paid"],
            unavailable=[
                "service_unavailable",
                "channel_misconfigured",
                "channel_secret_unavailable",
            ],
            links={
                "GetRefund": ("getRefund", {"refund_id": "$response.body#/id"}),
                "GetOrder": ("getOrder", {"order_id": "$response.body#/order_id"}),
            },
        ),
    )
    def create_refund(order_id: str, body: Annotated[CreateRefundRequest, Body()]) -> Response[str]:
        from paycore.services import refunds  # noqa: PLC0415 - on first need

        mid = http.merchant_id()
        base_url = http.callback_base_url()

        def command() -> tuple[int, dict[str, Any]]:
            refund = refunds.create_refund(http.store(), mid, order_id, body, base_url)
            return 202, refund.resource()

        return http.idempotent(mid, body.model_dump(), command, "Refund")

    @router.get(
        "/v1/refunds/<refund_id>",
        operation_id="getRefund",
        summary="Retrieve a refund",
        tags=["refunds"],
        security=MERCHANT,
        responses=answers(
            200,
            "Refund",
            "The refund",
            method="GET",
            security=MERCHANT,
            not_found=["refund_not_found"],
        ),
    )
    def get_refund(refund_id: str) -> Response[str]:
        from paycore.services import refunds  # noqa: PLC0415 - on first need

        refund = refunds.get_refund(http.store(), http.merchant_id(), refund_id)
        return http.answer("Refund", refund.resource())

    return router
