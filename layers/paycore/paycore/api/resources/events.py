"""Events (what a webhook delivers), with their delivery attempts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from paycore.api.resources.common import Resource, Timestamp
from paycore.api.resources.orders import Order
from paycore.api.resources.payments import Payment
from paycore.api.resources.refunds import Refund

EventType = Literal[
    "order.paid",
    "order.closed",
    "order.confirmed",
    "payment.failed",
    "refund.succeeded",
    "refund.failed",
]


class EventData(Resource):
    object: Annotated[Order | Payment | Refund, Field(discriminator="object")]


class Event(Resource):
    """A state change a merchant cares about; also what a webhook delivers."""

    id: str = Field(pattern=r"^evt_")
    object: Literal["event"]
    type: EventType
    created_at: Timestamp
    data: EventData


class DeliveryAttempt(Resource):
    """One POST of the event to one of the merchant's webhook endpoints."""

    endpoint_id: str = Field(pattern=r"^we_")
    attempt: int = Field(ge=1, description="Counted per endpoint from 1, redeliveries included")
    status_code: int | None = Field(description="The endpoint's HTTP status; null: no answer")
    error: str | None = Field(
        description="Why there was no answer (timeout, connection error, refused URL)"
    )
    at: Timestamp


class EventWithDeliveries(Event):
    """An event, with every attempt to deliver it (newest first; the newest 50 per endpoint)."""

    deliveries: list[DeliveryAttempt]


class EventList(Resource):
    object: Literal["list"]
    data: list[Event]
    has_more: bool
