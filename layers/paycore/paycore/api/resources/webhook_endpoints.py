"""The merchant's webhook endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from paycore.api.resources.common import Resource, Timestamp


class WebhookEndpoint(Resource):
    """Where the merchant's events go: each endpoint gets the events it subscribes to, signed
    with its own secret. ``secret`` is in the answers that create it (create, rotate_secret)
    only, and null in their replays."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "we_01jefq7c2m4p6r8t0v2x4z6b8d",
                    "object": "webhook_endpoint",
                    "url": "https://tea.example/webhooks",
                    "enabled_events": ["order.paid", "refund.succeeded"],
                    "description": "Fulfilment",
                    "disabled": False,
                    "created_at": "2026-12-06T08:00:00.000Z",
                    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                }
            ]
        },
    )

    id: str = Field(pattern=r"^we_")
    object: Literal["webhook_endpoint"]
    url: str
    enabled_events: list[str]
    description: str | None
    disabled: bool
    created_at: Timestamp
    secret: str | None = Field(
        default=None, description="Standard Webhooks signing secret; shown once"
    )


class WebhookEndpointList(Resource):
    object: Literal["list"]
    data: list[WebhookEndpoint]
    has_more: bool


class DeletedWebhookEndpoint(Resource):
    id: str = Field(pattern=r"^we_")
    object: Literal["webhook_endpoint"]
    deleted: Literal[True]
