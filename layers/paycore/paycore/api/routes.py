"""The merchant and platform API: one small function per route.

``build_app()`` returns a fresh resolver; each Lambda container (functions/api/app.py)
keeps one. Routes read the caller from the authorizer's context, validate the body with the
request models, run the command through ``IdempotentCommands`` and shape the answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.models import (
    HTTPBearer,
    Server,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from paycore.api import problem
from paycore.api.idempotency import HEADER, IdempotentCommands
from paycore.api.models import (
    CloseOrderRequest,
    CreateCouponRequest,
    CreateMerchantRequest,
    CreateOrderRequest,
    CreatePaymentRequest,
    CreateRefundRequest,
    CreditBalanceRequest,
)
from paycore.config import get_settings
from paycore.dal.instruments import InstrumentStore
from paycore.dal.trade_store import TradeStore
from paycore.errors import PaycoreError, Unauthenticated
from paycore.money import MAX_AMOUNT
from paycore.services import (
    channels,
    closing,
    events,
    instruments,
    merchants,
    orders,
    payments,
    refunds,
)

JSON = "application/json"
Limit = Annotated[int, Query(ge=1, le=100, description="Page size")]
StartingAfter = Annotated[
    str | None, Query(max_length=64, description="Last id of the page before")
]
BuyerId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The merchant's id of the buyer")
]
BalanceCurrency = Annotated[str, Query(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
PaymentCurrency = Annotated[str, Query(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
PaymentAmount = Annotated[
    int, Query(ge=1, le=MAX_AMOUNT, description="Minor units of the currency")
]


def _listing(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": items, "has_more": has_more}


def _register_error_handlers(app: APIGatewayRestResolver) -> None:
    """Every error leaves as problem+json; this is the only place that decides how."""

    @app.exception_handler(PaycoreError)
    def handle_domain_error(error: PaycoreError) -> Response[str]:
        return problem.from_error(error)

    @app.exception_handler(RequestUnsupportedContentType)
    def handle_content_type(_: RequestUnsupportedContentType) -> Response[str]:
        return problem.problem(415, "unsupported_media_type", "Send the body as application/json.")

    @app.exception_handler(RequestValidationError)
    def handle_validation_error(error: RequestValidationError) -> Response[str]:
        return problem.from_validation_errors(error.errors())

    @app.exception_handler(UnicodeDecodeError)
    def handle_undecodable_body(_: UnicodeDecodeError) -> Response[str]:
        return problem.problem(400, "malformed_json", "The request body is not UTF-8 JSON.")

    @app.not_found
    def handle_not_found(_: Exception) -> Response[str]:
        return problem.problem(404, "route_not_found", "No such route.")


def _register_refund_routes(
    app: APIGatewayRestResolver,
    *,
    store: Callable[[], TradeStore],
    merchant_id: Callable[[], str],
    callback_base_url: Callable[[], str],
    idempotent: Callable[[str, Any, Callable[[], tuple[int, dict[str, Any]]]], Response[str]],
    ok: Callable[[dict[str, Any]], Response[str]],
) -> None:
    """Refunds (merchant routes; see services/refunds.py)."""

    @app.post("/v1/orders/<order_id>/refunds", summary="Refund part or all of a paid order")
    def create_refund(order_id: str, body: Annotated[CreateRefundRequest, Body()]) -> Response[str]:
        mid = merchant_id()
        base_url = callback_base_url()

        def command() -> tuple[int, dict[str, Any]]:
            refund = refunds.create_refund(store(), mid, order_id, body, base_url)
            return 202, refund.resource()

        return idempotent(mid, body.model_dump(), command)

    @app.get("/v1/refunds/<refund_id>", summary="Retrieve a refund")
    def get_refund(refund_id: str) -> Response[str]:
        return ok(refunds.get_refund(store(), merchant_id(), refund_id).resource())


def _register_instrument_routes(
    app: APIGatewayRestResolver,
    merchant_id: Callable[[], str],
    idempotent: Callable[[str, Any, Callable[[], tuple[int, dict[str, Any]]]], Response[str]],
    ok: Callable[[dict[str, Any]], Response[str]],
) -> None:
    """Stored balance and coupons (merchant routes; see services/instruments.py)."""

    @app.post("/v1/buyers/<buyer_id>/balance/credits", summary="Credit a buyer's balance")
    def credit_balance(
        buyer_id: BuyerId, body: Annotated[CreditBalanceRequest, Body()]
    ) -> Response[str]:
        mid = merchant_id()

        def command() -> tuple[int, dict[str, Any]]:
            balance = instruments.credit_balance(InstrumentStore(), mid, buyer_id, body)
            return 201, balance.resource()

        return idempotent(mid, body.model_dump(), command)

    @app.get("/v1/buyers/<buyer_id>/balance", summary="Retrieve a buyer's balance")
    def get_balance(buyer_id: BuyerId, currency: BalanceCurrency) -> Response[str]:
        mid = merchant_id()
        return ok(instruments.get_balance(InstrumentStore(), mid, buyer_id, currency).resource())

    @app.post("/v1/coupons", summary="Issue a coupon to a buyer")
    def create_coupon(body: Annotated[CreateCouponRequest, Body()]) -> Response[str]:
        mid = merchant_id()

        def command() -> tuple[int, dict[str, Any]]:
            return 201, instruments.issue_coupon(InstrumentStore(), mid, body).resource()

        return idempotent(mid, body.model_dump(), command)

    @app.get("/v1/coupons/<coupon_id>", summary="Retrieve a coupon")
    def get_coupon(coupon_id: str) -> Response[str]:
        mid = merchant_id()
        return ok(instruments.get_coupon(InstrumentStore(), mid, coupon_id).resource())


def _register_channel_routes(
    app: APIGatewayRestResolver,
    merchant_id: Callable[[], str],
    ok: Callable[[dict[str, Any]], Response[str]],
) -> None:
    """The channels a payment can use here (merchant route; see services/channels.py)."""

    @app.get("/v1/channels", summary="List the channels that can take a payment")
    def list_channels(currency: PaymentCurrency, amount: PaymentAmount) -> Response[str]:
        merchant_id()
        offers = channels.list_channels(currency, amount)
        return ok(_listing([offer.resource() for offer in offers], False))


def build_app(  # noqa: PLR0915 - the route table; groups move to _register_* as they grow
    commands: IdempotentCommands, store_factory: type[TradeStore] = TradeStore
) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)
    app.configure_openapi(
        title="paycore merchant API",
        version="1",
        description="Orders, payments and events. Money is an integer in minor units.",
        servers=[Server(url="/")],
        security_schemes={"bearer": HTTPBearer(description="API key or platform admin token")},
        security=[{"bearer": []}],
    )

    def store() -> TradeStore:
        return store_factory()

    def caller() -> dict[str, Any]:
        context = app.current_event.raw_event.get("requestContext", {}).get("authorizer") or {}
        return dict(context)

    def merchant_id() -> str:
        context = caller()
        if context.get("role") != "merchant" or not context.get("merchant_id"):
            raise Unauthenticated("this route needs a merchant API key")
        return str(context["merchant_id"])

    def require_admin() -> None:
        if caller().get("role") != "admin":
            raise Unauthenticated("this route needs the platform admin token")

    def idempotent(scope: str, body: Any, command: Any) -> Response[str]:
        status, payload = commands.execute(
            scope=scope,
            key=app.current_event.headers.get(HEADER) if app.current_event.headers else None,
            method=app.current_event.http_method,
            path=app.current_event.path,
            body=body,
            command=command,
        )
        content_type = problem.PROBLEM_CONTENT_TYPE if status >= 400 else JSON
        return Response(status_code=status, content_type=content_type, body=json.dumps(payload))

    def callback_base_url() -> str:
        configured = get_settings().public_api_url
        if configured:
            return configured.rstrip("/")
        context = app.current_event.raw_event.get("requestContext", {})
        return f"https://{context.get('domainName')}/{context.get('stage')}"

    def ok(payload: dict[str, Any]) -> Response[str]:
        return Response(status_code=200, content_type=JSON, body=json.dumps(payload))

    _register_error_handlers(app)

    # -- platform ------------------------------------------------------------------------

    @app.get("/health", security=[])
    def health() -> Response[str]:
        return ok({"status": "ok"})

    @app.get("/openapi.json", security=[], include_in_schema=False)
    def openapi() -> Response[str]:
        return Response(200, JSON, app.get_openapi_json_schema())

    @app.post("/v1/merchants", summary="Onboard a merchant (platform admin)")
    def create_merchant(body: Annotated[CreateMerchantRequest, Body()]) -> Response[str]:
        require_admin()

        def command() -> tuple[int, dict[str, Any]]:
            onboarded = merchants.onboard_merchant(store(), body.name, body.webhook_url)
            return 201, onboarded.resource()

        return idempotent("admin", body.model_dump(), command)

    # -- orders --------------------------------------------------------------------------

    @app.post("/v1/orders", summary="Create an order")
    def create_order(body: Annotated[CreateOrderRequest, Body()]) -> Response[str]:
        mid = merchant_id()

        def command() -> tuple[int, dict[str, Any]]:
            return 201, orders.create_order(store(), mid, body).resource()

        return idempotent(mid, body.model_dump(), command)

    @app.get("/v1/orders", summary="List orders, newest first")
    def list_orders(
        limit: Limit = 10,
        starting_after: StartingAfter = None,
        merchant_order_no: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Response[str]:
        found, has_more = orders.list_orders(
            store(),
            merchant_id(),
            limit=limit,
            starting_after=starting_after,
            merchant_order_no=merchant_order_no,
        )
        return ok(_listing([order.resource() for order in found], has_more))

    @app.get("/v1/orders/<order_id>", summary="Retrieve an order")
    def get_order(order_id: str) -> Response[str]:
        return ok(orders.get_order(store(), merchant_id(), order_id).resource())

    @app.post("/v1/orders/<order_id>/close", summary="Close an unpaid order (also one being paid)")
    def close_order(
        order_id: str, body: Annotated[CloseOrderRequest | None, Body()] = None
    ) -> Response[str]:
        mid = merchant_id()

        def command() -> tuple[int, dict[str, Any]]:
            return 200, closing.close_order(store(), mid, order_id).resource()

        return idempotent(mid, None, command)

    # -- channels ------------------------------------------------------------------------

    _register_channel_routes(app, merchant_id, ok)

    # -- payments ------------------------------------------------------------------------

    @app.post("/v1/orders/<order_id>/payments", summary="Pay an order")
    def create_payment(
        order_id: str, body: Annotated[CreatePaymentRequest, Body()]
    ) -> Response[str]:
        mid = merchant_id()
        base_url = callback_base_url()

        def command() -> tuple[int, dict[str, Any]]:
            payment = payments.start_payment(store(), mid, order_id, body, base_url)
            return 202, payment.resource()

        return idempotent(mid, body.model_dump(), command)

    @app.get("/v1/payments/<payment_id>", summary="Retrieve a payment")
    def get_payment(payment_id: str) -> Response[str]:
        return ok(payments.get_payment(store(), merchant_id(), payment_id).resource())

    # -- refunds -------------------------------------------------------------------------

    _register_refund_routes(
        app,
        store=store,
        merchant_id=merchant_id,
        callback_base_url=callback_base_url,
        idempotent=idempotent,
        ok=ok,
    )

    # -- internal instruments: stored balance and coupons ----------------------------------

    _register_instrument_routes(app, merchant_id, idempotent, ok)

    # -- events --------------------------------------------------------------------------

    @app.get("/v1/events", summary="List events, newest first")
    def list_events(limit: Limit = 10, starting_after: StartingAfter = None) -> Response[str]:
        found, has_more = events.list_events(
            store(), merchant_id(), limit=limit, starting_after=starting_after
        )
        return ok(_listing([event.resource() for event in found], has_more))

    @app.get("/v1/events/<event_id>", summary="Retrieve an event")
    def get_event(event_id: str) -> Response[str]:
        return ok(events.get_event(store(), merchant_id(), event_id).resource())

    @app.post("/v1/events/<event_id>/redeliver", summary="Send an event's webhook again")
    def redeliver_event(event_id: str) -> Response[str]:
        mid = merchant_id()

        def command() -> tuple[int, dict[str, Any]]:
            return 202, events.redeliver(store(), mid, event_id).resource()

        return idempotent(mid, None, command)

    return app
