"""Stored balance and coupons (merchant routes; see services/instruments.py)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from paycore.api.models import CreateCouponRequest, CreditBalanceRequest
from paycore.api.openapi import MERCHANT, answers
from paycore.api.routes.http import Http, new_router
from paycore.api.routes.params import BuyerId, CurrencyQuery
from paycore.dal.instruments import InstrumentStore
from paycore.services import instruments


def routes(http: Http) -> Router:
    router = new_router()

    @router.post(
        "/v1/buyers/<buyer_id>/balance/credits",
        operation_id="creditBalance",
        summary="Credit a buyer's stored balance",
        tags=["balances and coupons"],
        security=MERCHANT,
        responses=answers(
            201,
            "BuyerBalance",
            "The balance after the credit",
            method="POST",
            security=MERCHANT,
            links={
                "GetBalance": (
                    "getBalance",
                    {"buyer_id": "$request.path.buyer_id", "currency": "$response.body#/currency"},
                )
            },
        ),
    )
    def credit_balance(
        buyer_id: BuyerId, body: Annotated[CreditBalanceRequest, Body()]
    ) -> Response[str]:
        mid = http.merchant_id()

        def command() -> tuple[int, dict[str, Any]]:
            balance = instruments.credit_balance(InstrumentStore(), mid, buyer_id, body)
            return 201, balance.resource()

        return http.idempotent(mid, body.model_dump(), command, "BuyerBalance")

    @router.get(
        "/v1/buyers/<buyer_id>/balance",
        operation_id="getBalance",
        summary="Retrieve a buyer's stored balance",
        tags=["balances and coupons"],
        security=MERCHANT,
        responses=answers(200, "BuyerBalance", "The balance", method="GET", security=MERCHANT),
    )
    def get_balance(buyer_id: BuyerId, currency: CurrencyQuery) -> Response[str]:
        balance = instruments.get_balance(InstrumentStore(), http.merchant_id(), buyer_id, currency)
        return http.answer("BuyerBalance", balance.resource())

    @router.post(
        "/v1/coupons",
        operation_id="createCoupon",
        summary="Give a buyer a coupon",
        tags=["balances and coupons"],
        security=MERCHANT,
        responses=answers(
            201,
            "Coupon",
            "The new coupon",
            method="POST",
            security=MERCHANT,
            links={"GetCoupon": ("getCoupon", {"coupon_id": "$response.body#/id"})},
        ),
    )
    def create_coupon(body: Annotated[CreateCouponRequest, Body()]) -> Response[str]:
        mid = http.merchant_id()

        def command() -> tuple[int, dict[str, Any]]:
            return 201, instruments.issue_coupon(InstrumentStore(), mid, body).resource()

        return http.idempotent(mid, body.model_dump(), command, "Coupon")

    @router.get(
        "/v1/coupons/<coupon_id>",
        operation_id="getCoupon",
        summary="Retrieve a coupon",
        tags=["balances and coupons"],
        security=MERCHANT,
        responses=answers(
            200,
            "Coupon",
            "The coupon",
            method="GET",
            security=MERCHANT,
            not_found=["coupon_not_found"],
        ),
    )
    def get_coupon(coupon_id: str) -> Response[str]:
        coupon = instruments.get_coupon(InstrumentStore(), http.merchant_id(), coupon_id)
        return http.answer("Coupon", coupon.resource())

    return router
