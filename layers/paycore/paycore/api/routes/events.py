"""Events and their webhooks (merchant routes; see services/events.py)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from paycore.api.models import NoParameters
from paycore.api.openapi import MERCHANT, answers
from paycore.api.resources import Event, EventList
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
            EventList,
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
        page = {"object": "list", "data": [e.resource() for e in found], "has_more": has_more}
        return http.answer(EventList, page)

    @router.get(
        "/v1/events/<event_id>",
        operation_id="getEvent",
        summary="Retrieve an event",
        tags=["events"],
        security=MERCHANT,
        responses=answers(
            200,
            Event,
            "The event",
            method="GET",
            security=MERCHANT,
            not_found=["event_not_found"],
            links={"RedeliverEvent": ("redeliverEvent", {"event_id": "$response.body#/id"})},
        ),
    )
    def get_event(event_id: str) -> Response[str]:
        event = events.get_event(http.store(), http.merchant_id(), event_id)
        return http.answer(Event, event.resource())

    @router.post(
        "/v1/events/<event_id>/redeliver",
        operation_id="redeliverEvent",
        summary="Send an event's webhook again",
        tags=["events"],
        security=MERCHANT,
        responses=answers(
            202,
            Event,
            "The event, queued for delivery",
            method="POST",
            security=MERCHANT,
            not_found=["event_not_found"],
        ),
    )
    def redeliver_event(
        event_id: str, body: Annotated[NoParameters | None, Body()] = None
    ) -> Response[str]:
        mid = http.merchant_id()

        def command() -> tuple[int, dict[str, Any]]:
            return 202, events.redeliver(http.store(), mid, event_id).resource()

        return http.idempotent(mid, None, command, Event)

    return router
