"""The hosted cashier: the buyer's page of an order and the two JSON routes its script calls
(public routes: the link's token is the credential; see services/cashier.py).

- ``GET /cashier/{token}``: the HTML page (paycore.api.cashier_page), outside the OpenAPI
  description (it is for people). Whatever goes wrong is a small HTML page with the status,
  never problem+json; query parameters other than ``lang`` and ``back`` are ignored, since
  channels append their own to the way back (Alipay's signed return).
- ``GET /cashier/{token}/status``: where the order stands and its latest payment (polled).
- ``POST /cashier/{token}/payments``: the buyer's choice; 202 with the payment started, or the
  one already in flight (``resumed``).

CSRF: there is no cookie or other ambient credential to ride on; what authorizes a choice is
the token in the path, which a forging site would have to know already. On top of that the
choice is only read as ``application/json`` (415 otherwise): no HTML form can send it, and a
script on another origin cannot send it without a CORS preflight, which nothing here answers.
And a browser's own word on where a request comes from is heeded: a ``Sec-Fetch-Site`` other
than ``same-origin`` (or ``none``) is a 403 ``cross_site_request``.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from paycore.api import problem
from paycore.api.models import CashierPaymentRequest
from paycore.api.openapi import PUBLIC, answers
from paycore.api.routes.http import Http, new_router
from paycore.domain import cashier as links
from paycore.domain.models import Order, Payment
from paycore.errors import Forbidden, PaycoreError

HTML = "text/html; charset=utf-8"
_NO_STORE = {"Cache-Control": "no-store"}
_SAME_ORIGIN = frozenset({"same-origin", "none"})


def routes(http: Http) -> Router:
    router = new_router()

    @router.get("/cashier/<token>", include_in_schema=False)
    def cashier_page_route(token: str) -> Response[str]:
        from paycore.api import cashier_page  # noqa: PLC0415 - on first need
        from paycore.services import cashier  # noqa: PLC0415 - on first need

        language, chosen = cashier_page.negotiate(
            http.header("accept-language"), http.query("lang")
        )
        nonce = cashier_page.new_nonce()
        headers = cashier_page.headers(nonce, language)
        try:
            view = cashier.view(http.store(), token)
        except PaycoreError as error:
            status = problem.status_for(error)
            return Response(status, HTML, cashier_page.error_page(status, language, nonce), headers)
        page = cashier_page.page(
            view, language, chosen=chosen, back=http.query("back") == "1", nonce=nonce
        )
        return Response(200, HTML, page, headers)

    @router.get(
        "/cashier/<token>/status",
        operation_id="getCashierStatus",
        summary="Where an order stands on its cashier page (the page polls it)",
        description="Public: the cashier link's token is the credential. The state, and the "
        "payment that started last with its next_action or failure.",
        tags=["cashier"],
        security=PUBLIC,
        responses=answers(
            200,
            "CashierStatus",
            "The order's state and latest payment",
            method="GET",
            security=PUBLIC,
            not_found=["cashier_not_found"],
        ),
    )
    def cashier_status(token: str) -> Response[str]:
        from paycore.services import cashier  # noqa: PLC0415 - on first need

        order, payment = cashier.status(http.store(), token)
        return http.answer("CashierStatus", _status(order, payment), headers=_NO_STORE)

    @router.post(
        "/cashier/<token>/payments",
        operation_id="createCashierPayment",
        summary="Pay an order the way its buyer chose on the cashier page",
        description="Public: the cashier link's token is the credential. Creates the payment "
        "exactly as POST /v1/orders/{order_id}/payments does (coupon and balance first, the "
        "channel for the rest); a payment already in flight for the order is answered "
        "instead, with resumed true. Refused from another site (Sec-Fetch-Site).",
        tags=["cashier"],
        security=PUBLIC,
        responses=answers(
            202,
            "CashierStatus",
            "The payment started (or the one in flight), with its next_action",
            method="POST",
            security=PUBLIC,
            forbidden=["cross_site_request"],
            not_found=["cashier_not_found"],
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
            ],
            unavailable=[
                "service_unavailable",
                "channel_misconfigured",
                "channel_secret_unavailable",
            ],
        ),
    )
    def create_cashier_payment(
        token: str, body: Annotated[CashierPaymentRequest, Body()]
    ) -> Response[str]:
        from paycore.services import cashier  # noqa: PLC0415 - on first need

        site = http.header("sec-fetch-site")
        if site is not None and site.lower() not in _SAME_ORIGIN:
            raise Forbidden(
                "the cashier takes choices from its own page only", code="cross_site_request"
            )
        base_url = http.callback_base_url()
        choice = cashier.CashierChoice(
            channel=body.channel,
            use_balance=body.use_balance,
            coupon_id=body.coupon_id,
            language=body.lang,
        )

        def command() -> tuple[int, dict[str, Any]]:
            order, payment, resumed = cashier.choose(
                http.store(), token, choice, callback_base_url=base_url
            )
            return 202, {**_status(order, payment), "resumed": resumed}

        # Keys are scoped to the link (by its digest: the token itself is never stored).
        scope = f"cashier#{links.digest(token)}"
        return http.idempotent(scope, body.model_dump(), command, "CashierStatus")

    return router


def _status(order: Order, payment: Payment | None) -> dict[str, Any]:
    from paycore.services import cashier  # noqa: PLC0415 - on first need

    return {
        "object": "cashier_status",
        "state": cashier.state_of(order).value,
        "payment": None if payment is None else _payment(payment),
    }


def _payment(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "object": "payment",
        "status": payment.status.value,
        "amount": payment.amount,
        "currency": payment.currency,
        "next_action": dict(payment.next_action) if payment.next_action else None,
        "failure_code": payment.failure_code,
        "failure_message": payment.failure_message,
    }
