"""The merchant and platform API: one module of small route functions per resource.

``build_app()`` returns a fresh resolver; each Lambda container (functions/api/app.py)
keeps one. Routes read the caller from the authorizer's context, validate the body with the
request models (paycore.api.models), run the command through ``IdempotentCommands`` and answer
through the resource models (paycore.api.resources), from which the OpenAPI description at
``GET /openapi.json`` (and its pages at ``GET /docs``) is generated.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from paycore.api import problem
from paycore.api.idempotency import IdempotentCommands
from paycore.api.openapi import PUBLIC, SECURITY_SCHEMES, answers, document
from paycore.api.resolver import PaycoreResolver
from paycore.api.routes import (
    api_keys,
    cashier,
    channels,
    events,
    instruments,
    ledger,
    merchants,
    orders,
    payments,
    refunds,
    settlements,
    webhook_endpoints,
)
from paycore.api.routes.http import JSON, Http, new_router
from paycore.dal.trade_store import TradeStore
from paycore.errors import PaycoreError

TITLE = "paycore merchant API"
DESCRIPTION = (
    "Orders, payments, refunds, balances, coupons, events and the books. Money is an integer "
    "in the currency's minor unit. Every error is application/problem+json with a stable "
    "`code`."
)


def build_app(
    commands: IdempotentCommands, store_factory: type[TradeStore] = TradeStore
) -> APIGatewayRestResolver:
    app = PaycoreResolver()
    http = Http(app, commands, store_factory)
    _register_error_handlers(app)
    for module in (
        merchants,
        orders,
        payments,
        refunds,
        instruments,
        events,
        webhook_endpoints,
        api_keys,
        channels,
        ledger,
        settlements,
        cashier,
    ):
        app.include_router(module.routes(http))
    app.include_router(_platform_routes(app))
    return app


def _register_error_handlers(app: APIGatewayRestResolver) -> None:
    """Every error leaves as problem+json; this is the only place that decides how."""

    @app.exception_handler(PaycoreError)
    def handle_domain_error(error: PaycoreError) -> Response[str]:
        return problem.from_error(error)

    @app.exception_handler(RequestValidationError)
    def handle_validation_error(error: RequestValidationError) -> Response[str]:
        return problem.from_validation_errors(error.errors())

    @app.not_found
    def handle_not_found(_: Exception) -> Response[str]:
        return problem.problem(404, "route_not_found", "No such route.")


def _platform_routes(app: APIGatewayRestResolver) -> Router:
    router = new_router()

    @cache
    def description() -> str:
        # Imported here, not at cold start: Powertools' OpenAPI models (~80 ms) describe the
        # API; serving it needs only the route's own models.
        from aws_lambda_powertools.event_handler.openapi.models import (  # noqa: PLC0415
            HTTPBearer,
            Server,
        )

        raw = app.get_openapi_json_schema(
            title=TITLE,
            version="1",
            description=DESCRIPTION,
            servers=[Server(url="/")],
            security_schemes={
                name: HTTPBearer(description=text) for name, text in SECURITY_SCHEMES.items()
            },
        )
        return json.dumps(document(raw))

    @router.get(
        "/health",
        operation_id="health",
        summary="Whether the API answers",
        tags=["platform"],
        security=PUBLIC,
        responses=answers(200, "Health", "Ready", method="GET", security=PUBLIC),
    )
    def health() -> Response[str]:
        return Response(200, JSON, json.dumps({"status": "ok"}))

    @router.get("/openapi.json", include_in_schema=False)
    def openapi() -> Response[str]:
        return Response(200, JSON, description())

    @router.get("/docs", include_in_schema=False)
    def docs() -> Response[str]:
        return Response(200, "text/html; charset=utf-8", _swagger_page(description()))

    return router


def _swagger_page(spec_json: str) -> str:
    """Swagger UI with its script and styles inlined from the pinned Powertools package (it
    ships them) and the description inlined too: the page makes no request at all, so it
    works with no internet access (no CDN, no validator badge: ``validatorUrl`` is off)."""
    # Imported here, not at cold start: only this rarely called page needs it.
    from aws_lambda_powertools.event_handler.openapi import swagger_ui  # noqa: PLC0415

    assets = Path(swagger_ui.__file__).parent
    script = (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8")
    styles = (assets / "swagger-ui.min.css").read_text(encoding="utf-8")
    spec = spec_json.replace("</", "<\\/")  # never closes the <script> it sits in
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{TITLE}</title><style>{styles}</style></head><body>"
        f'<div id="swagger-ui"></div><script>{script}</script><script>'
        f'SwaggerUIBundle({{spec: {spec}, dom_id: "#swagger-ui", validatorUrl: null, '
        'deepLinking: true, docExpansion: "list", tryItOutEnabled: false});'
        "</script></body></html>"
    )
