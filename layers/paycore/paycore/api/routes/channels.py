"""The channels a payment can use here (merchant route; see services/channels.py)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from paycore.api.openapi import MERCHANT, answers
from paycore.api.routes.http import Http, new_router
from paycore.api.routes.params import CurrencyQuery
from paycore.money import MAX_AMOUNT
from paycore.services import channels

PaymentAmount = Annotated[
    int, Query(ge=1, le=MAX_AMOUNT, description="Minor units of the currency")
]


def routes(http: Http) -> Router:
    router = new_router()

    @router.get(
        "/v1/channels",
        operation_id="listChannels",
        summary="List the channels that can take a payment of this currency and amount",
        description="Channels with at least one configured account that routing accepts for "
        "the currency and amount. An empty list means no channel is configured for it.",
        tags=["channels"],
        security=MERCHANT,
        responses=answers(200, "ChannelList", "The channels", method="GET", security=MERCHANT),
    )
    def list_channels(currency: CurrencyQuery, amount: PaymentAmount) -> Response[str]:
        http.merchant_id()
        offers = channels.list_channels(currency, amount)
        return http.answer_list("ChannelList", offers, False)

    return router
