"""Orders: create, list, retrieve, close (merchant routes; see services/orders.py)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from paycore.api.models import CreateOrderRequest, NoParameters
from paycore.api.openapi import CHANNEL_UNAVAILABLE, MERCHANT, answers
from paycore.api.routes.http import Http, new_router
from paycore.api.routes.params import Limit, StartingAfter
from paycore.services import orders


def routes(http: Http) -> Router:
    router = new_router()

    @router.post(
        "/v1/orders",
        operation_id="createOrder",
        summary="Create an order",
        tags=["orders"],
        security=MERCHANT,
        responses=answers(
            201,
            "Order",
            "The new order",
            method="POST",
            security=MERCHANT,
            conflict=["duplicate_merchant_order_no"],
            links={
                "GetOrder": ("getOrder", {"order_id": "$response.body#/id"}),
                "PayOrder": ("createPayment", {"order_id": "$response.body#/id"}),
                "CloseOrder": ("closeOrder", {"order_id": "$response.body#/id"}),
                "RefundOrder": ("createRefund", {"order_id": "$response.body#/id"}),
                "ConfirmOrder": ("confirmOrder", {"order_id": "$response.body#/id"}),
            },
        ),
    )
    def create_order(body: Annotated[CreateOrderRequest, Body()]) -> Response[str]:
        mid = http.merchant_id()
        base_url = http.public_base_url()

        def command() -> tuple[int, dict[str, Any]]:
            return 201, orders.create_order(http.store(), mid, body, base_url).resource()

        return http.idempotent(mid, body.model_dump(), command, "Order")

    @router.get(
        "/v1/orders",
        operation_id="listOrders",
        summary="List orders, newest first",
        tags=["orders"],
        security=MERCHANT,
        responses=answers(
            200,
            "OrderList",
            "A page of orders",
            method="GET",
            security=MERCHANT,
            not_found=["order_not_found"],
        ),
    )
    def list_orders(
        limit: Limit = 10,
        starting_after: StartingAfter = None,
        merchant_order_no: Annotated[
            str | None, Query(max_length=64, description="Only the order with this number")
        ] = None,
    ) -> Response[str]:
        found, has_more = orders.list_orders(
            http.store(),
            http.merchant_id(),
            limit=limit,
            starting_after=starting_after,
            merchant_order_no=merchant_order_no,
        )
        return http.answer_list("OrderList", found, has_more)

    @router.get(
        "/v1/orders/<order_id>",
        operation_id="getOrder",
        summary="Retrieve an order",
        tags=["orders"],
        security=MERCHANT,
        responses=answers(
            200,
            "Order",
            "The order",
            method="GET",
            security=MERCHANT,
            not_found=["order_not_found"],
        ),
    )
    def get_order(order_id: str) -> Response[str]:
        return http.answer(
            "Order", orders.get_order(http.store(), http.merchant_id(), order_id).resource()
        )

    @router.post(
        "/v1/orders/<order_id>/close",
        operation_id="closeOrder",
        summary="Close an unpaid order (also one being paid)",
        description="Closes the channel order first when a payment is in flight: if the buyer "
        "paid before that, the order is paid and the close is a 409 order_not_closable.",
        tags=["orders"],
        security=MERCHANT,
        responses=answers(
            200,
            "Order",
            "The closed order",
            method="POST",
            security=MERCHANT,
            not_found=["order_not_found"],
            conflict=["order_not_closable", "payment_starting"],
            unavailable=[*CHANNEL_UNAVAILABLE, "channel_unavailable"],
            bad_gateway=["channel_rejected"],
        ),
    )
    def close_order(
        order_id: str, body: Annotated[NoParameters | None, Body()] = None
    ) -> Response[str]:
        mid = http.merchant_id()

        from paycore.services import closing  # noqa: PLC0415 - on first need (with the payment steps)

        def command() -> tuple[int, dict[str, Any]]:
            return 200, closing.close_order(http.store(), mid, order_id).resource()

        return http.idempotent(mid, None, command, "Order")

    @router.post(
        "/v1/orders/<order_id>/confirm",
        operation_id="confirmOrder",
        summary="Confirm a paid guaranteed order (the buyer received the goods)",
        description="The order's money leaves escrow for pending (and is settled like an "
        "instant order's from then on); the order gets confirmed_at and an order.confirmed "
        "event. Unconfirmed, it confirms itself auto_confirm_in seconds after it was paid.",
        tags=["orders"],
        security=MERCHANT,
        responses=answers(
            200,
            "Order",
            "The confirmed order",
            method="POST",
            security=MERCHANT,
            not_found=["order_not_found"],
            conflict=["order_not_confirmable"],
        ),
    )
    def confirm_order(
        order_id: str, body: Annotated[NoParameters | None, Body()] = None
    ) -> Response[str]:
        mid = http.merchant_id()

        from paycore.services import confirmation  # noqa: PLC0415 - on first need

        def command() -> tuple[int, dict[str, Any]]:
            return 200, confirmation.confirm_order(http.store(), mid, order_id).resource()

        return http.idempotent(mid, None, command, "Order")

    return router
