"""Payments: pay an order, retrieve a payment (merchant routes; see services/payments.py)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from paycore.api.models import CreatePaymentRequest
from paycore.api.openapi import MERCHANT, answers
from paycore.api.routes.http import Http, new_router


def routes(http: Http) -> Router:
    router = new_router()

    @router.post(
        "/v1/orders/<order_id>/payments",
        operation_id="createPayment",
        summary="Pay an order",
        description="Internal instruments (a coupon, a balance amount) are used first; one "
        "channel instrument takes the rest. The answer carries next_action when the buyer "
        "must act at the channel.",
        tags=["payments"],
        security=MERCHANT,
        responses=answers(
            202,
            "Payment",
            "The payment, processing (or already succeeded when coupon and balance cover it)",
            method="POST",
            security=MERCHANT,
            not_found=["order_not_found"],
            conflict=[
                "order_not_payable",
                "order_expired",
                "insufficient_balance",
                "coupon_unavailable",
            ],
            invalid=[
                "buyer_required",
                "coupon_not_found",
                "instrument_amounts_mismatch",
                "unsupported_channel",
                "no_channel_account",
                "simulate_not_allowed",
            ],
            unavailable=[
                "service_unavailable",
                "channel_misconfigured",
                "channel_secret_unavailable",
            ],
            links={
                "GetPayment": ("getPayment", {"payment_id": "$response.body#/id"}),
                "GetOrder": ("getOrder", {"order_id": "$response.body#/order_id"}),
            },
        ),
    )
    def create_payment(
        order_id: str, body: Annotated[CreatePaymentRequest, Body()]
    ) -> Response[str]:
        from paycore.services import payments  # noqa: PLC0415 - on first need

        mid = http.merchant_id()
        base_url = http.callback_base_url()
        terms = http.merchant_terms()

        def command() -> tuple[int, dict[str, Any]]:
            payment = payments.start_payment(
                http.store(), mid, order_id, body, base_url, terms=terms
            )
            return 202, payment.resource()

        return http.idempotent(mid, body.model_dump(), command, "Payment")

    @router.get(
        "/v1/payments/<payment_id>",
        operation_id="getPayment",
        summary="Retrieve a payment",
        tags=["payments"],
        security=MERCHANT,
        responses=answers(
            200,
            "Payment",
            "The payment",
            method="GET",
            security=MERCHANT,
            not_found=["payment_not_found"],
        ),
    )
    def get_payment(payment_id: str) -> Response[str]:
        from paycore.services import payments  # noqa: PLC0415 - on first need

        payment = payments.get_payment(http.store(), http.merchant_id(), payment_id)
        return http.answer("Payment", payment.resource())

    return router
