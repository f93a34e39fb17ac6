"""Webhook endpoints: the merchant's own management of where its events go (merchant routes;
see services/webhook_endpoints.py)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from paycore.api.models import (
    CreateWebhookEndpointRequest,
    RotateSecretRequest,
    UpdateWebhookEndpointRequest,
)
from paycore.api.openapi import MERCHANT, answers
from paycore.api.routes.http import Http, new_router
from paycore.api.routes.params import Limit, StartingAfter
from paycore.services import webhook_endpoints

NOT_FOUND = ["webhook_endpoint_not_found"]
_ID = {"webhook_endpoint_id": "$response.body#/id"}
_LINKS = {
    "GetWebhookEndpoint": ("getWebhookEndpoint", _ID),
    "UpdateWebhookEndpoint": ("updateWebhookEndpoint", _ID),
    "RotateWebhookEndpointSecret": ("rotateWebhookEndpointSecret", _ID),
    "DeleteWebhookEndpoint": ("deleteWebhookEndpoint", _ID),
}


def routes(http: Http) -> Router:
    router = new_router()

    @router.post(
        "/v1/webhook_endpoints",
        operation_id="createWebhookEndpoint",
        summary="Add a webhook endpoint",
        description="Its signing secret is in this answer only (a replay with the same "
        "Idempotency-Key shows it as null). A merchant has at most 16 endpoints.",
        tags=["webhook endpoints"],
        security=MERCHANT,
        responses=answers(
            201,
            "WebhookEndpoint",
            "The new endpoint, with its secret",
            method="POST",
            security=MERCHANT,
            conflict=["webhook_endpoint_limit_reached"],
            unavailable=["service_unavailable"],
            links=_LINKS,
        ),
    )
    def create_endpoint(body: Annotated[CreateWebhookEndpointRequest, Body()]) -> Response[str]:
        mid = http.merchant_id()
        shown_once: dict[str, Any] = {}

        def command() -> tuple[int, dict[str, Any]]:
            endpoint, secret = webhook_endpoints.create_endpoint(
                http.store(),
                mid,
                url=body.url,
                enabled_events=body.enabled_events,
                description=body.description,
            )
            shown_once["secret"] = secret
            # Stored for replays: never the secret.
            return 201, {**endpoint.resource(), "secret": None}

        return http.idempotent(
            mid, body.model_dump(), command, "WebhookEndpoint", shown_once=shown_once
        )

    @router.get(
        "/v1/webhook_endpoints",
        operation_id="listWebhookEndpoints",
        summary="List webhook endpoints, newest first",
        tags=["webhook endpoints"],
        security=MERCHANT,
        responses=answers(
            200,
            "WebhookEndpointList",
            "A page of endpoints (without secrets)",
            method="GET",
            security=MERCHANT,
            not_found=NOT_FOUND,
        ),
    )
    def list_endpoints(limit: Limit = 10, starting_after: StartingAfter = None) -> Response[str]:
        found, has_more = webhook_endpoints.list_endpoints(
            http.store(), http.merchant_id(), limit=limit, starting_after=starting_after
        )
        return http.answer_list("WebhookEndpointList", found, has_more)

    @router.get(
        "/v1/webhook_endpoints/<webhook_endpoint_id>",
        operation_id="getWebhookEndpoint",
        summary="Retrieve a webhook endpoint",
        tags=["webhook endpoints"],
        security=MERCHANT,
        responses=answers(
            200,
            "WebhookEndpoint",
            "The endpoint (without its secret)",
            method="GET",
            security=MERCHANT,
            not_found=NOT_FOUND,
        ),
    )
    def get_endpoint(webhook_endpoint_id: str) -> Response[str]:
        endpoint = webhook_endpoints.get_endpoint(
            http.store(), http.merchant_id(), webhook_endpoint_id
        )
        return http.answer("WebhookEndpoint", endpoint.resource())

    @router.post(
        "/v1/webhook_endpoints/<webhook_endpoint_id>",
        operation_id="updateWebhookEndpoint",
        summary="Change a webhook endpoint's URL, events, description, or disable it",
        description="The fields left out stay as they are; the secret stays the same. A "
        "disabled endpoint gets nothing, not even retries already scheduled.",
        tags=["webhook endpoints"],
        security=MERCHANT,
        responses=answers(
            200,
            "WebhookEndpoint",
            "The endpoint as changed",
            method="POST",
            security=MERCHANT,
            not_found=NOT_FOUND,
        ),
    )
    def update_endpoint(
        webhook_endpoint_id: str, body: Annotated[UpdateWebhookEndpointRequest, Body()]
    ) -> Response[str]:
        mid = http.merchant_id()

        def command() -> tuple[int, dict[str, Any]]:
            endpoint = webhook_endpoints.update_endpoint(
                http.store(), mid, webhook_endpoint_id, body.changes()
            )
            return 200, endpoint.resource()

        return http.idempotent(mid, body.changes(), command, "WebhookEndpoint")

    @router.delete(
        "/v1/webhook_endpoints/<webhook_endpoint_id>",
        operation_id="deleteWebhookEndpoint",
        summary="Delete a webhook endpoint",
        description="Nothing more is delivered to it, retries already scheduled included. "
        "Deleting it again is a 404.",
        tags=["webhook endpoints"],
        security=MERCHANT,
        responses=answers(
            200,
            "DeletedWebhookEndpoint",
            "The endpoint is deleted",
            method="DELETE",
            security=MERCHANT,
            not_found=NOT_FOUND,
        ),
    )
    def delete_endpoint(webhook_endpoint_id: str) -> Response[str]:
        webhook_endpoints.delete_endpoint(http.store(), http.merchant_id(), webhook_endpoint_id)
        deleted = {"id": webhook_endpoint_id, "object": "webhook_endpoint", "deleted": True}
        return http.answer("DeletedWebhookEndpoint", deleted)

    @router.post(
        "/v1/webhook_endpoints/<webhook_endpoint_id>/rotate_secret",
        operation_id="rotateWebhookEndpointSecret",
        summary="Give a webhook endpoint a new signing secret",
        description="The new secret is in this answer only. Until `expires_in` seconds from "
        "now (default 86400, at most 604800; 0: not at all) every delivery is signed with the "
        "old secret too, both signatures in webhook-signature. Rotating again within that "
        "time ends the earlier overlap: the secret being replaced is the only old one kept.",
        tags=["webhook endpoints"],
        security=MERCHANT,
        responses=answers(
            200,
            "WebhookEndpoint",
            "The endpoint, with its new secret",
            method="POST",
            security=MERCHANT,
            not_found=NOT_FOUND,
            unavailable=["service_unavailable"],
        ),
    )
    def rotate_secret(
        webhook_endpoint_id: str, body: Annotated[RotateSecretRequest | None, Body()] = None
    ) -> Response[str]:
        mid = http.merchant_id()
        request = body or RotateSecretRequest()
        shown_once: dict[str, Any] = {}

        def command() -> tuple[int, dict[str, Any]]:
            endpoint, secret = webhook_endpoints.rotate_secret(
                http.store(), mid, webhook_endpoint_id, request.expires_in
            )
            shown_once["secret"] = secret
            return 200, {**endpoint.resource(), "secret": None}

        return http.idempotent(
            mid, request.model_dump(), command, "WebhookEndpoint", shown_once=shown_once
        )

    return router
