"""Events and their webhooks (merchant routes; see services/events.py)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from paycore.api.models import RedeliverEventRequest
from paycore.api.openapi import MERCHANT, answers
from paycore.api.routes.http import Http, new_router
from paycore.api.routes.params import Limit, StartingAfter
from paycore.services import events


def routes(http: Http) -> Router:
    router = new_router()

    @router.get(
        "/v1/events",
        operation_id="listEvents",
        summary="List events, newest first",
        tags=["events"],
        security=MERCHANT,
        responses=answers(
            200,
            "EventList",
            "A page of events",
            method="GET",
            security=MERCHANT,
            not_found=["event_not_found"],
            links={"GetEvent": ("getEvent", {"event_id": "$response.body#/data/0/id"})},
        ),
    )
    def list_events(limit: Limit = 10, starting_after: StartingAfter = None) -> Response[str]:
        found, has_more = events.list_events(
            http.store(), http.merchant_id(), limit=limit, starting_after=starting_after
        )
        return http.answer_list("EventList", found, has_more)

    @router.get(
        "/v1/events/<event_id>",
        operation_id="getEvent",
        summary="Retrieve an event",
        tags=["events"],
        security=MERCHANT,
        description="With `deliveries`: every attempt to deliver it to any of the merchant's "
        "webhook endpoints (the newest 50 per endpoint), newest first.",
        responses=answers(
            200,
            "EventWithDeliveries",
            "The event and its delivery attempts",
            method="GET",
            security=MERCHANT,
            not_found=["event_not_found"],
            links={"RedeliverEvent": ("redeliverEvent", {"event_id": "$response.body#/id"})},
        ),
    )
    def get_event(event_id: str) -> Response[str]:
        store = http.store()
        event = events.get_event(store, http.merchant_id(), event_id)
        attempts = events.delivery_attempts(store, event)
        answer = {**event.resource(), "deliveries": [a.resource() for a in attempts]}
        return http.answer("EventWithDeliveries", answer)

    @router.post(
        "/v1/events/<event_id>/redeliver",
        operation_id="redeliverEvent",
        summary="Send an event's webhook again",
        description="To every endpoint that receives it now, or to `endpoint_id` only; each "
        "delivery gets the whole retry schedule again.",
        tags=["events"],
        security=MERCHANT,
        responses=answers(
            202,
            "Event",
            "The event, queued for delivery",
            method="POST",
            security=MERCHANT,
            not_found=["event_not_found", "webhook_endpoint_not_found"],
            conflict=["webhook_endpoint_disabled", "webhook_endpoint_not_subscribed"],
        ),
    )
    def redeliver_event(
        event_id: str, body: Annotated[RedeliverEventRequest | None, Body()] = None
    ) -> Response[str]:
        mid = http.merchant_id()
        endpoint_id = body.endpoint_id if body is not None else None

        def command() -> tuple[int, dict[str, Any]]:
            event = events.redeliver(http.store(), mid, event_id, endpoint_id)
            return 202, event.resource()

        return http.idempotent(mid, body.model_dump() if body else None, command, "Event")

    return router
