"""The objects the API answers with, as pydantic models: the OpenAPI description is generated
from them and every answer is serialized through them (``serialize``), so the description
cannot drift from what is served: a field the domain adds without a model change fails the
request in the tests (``extra="forbid"``), it is never silently dropped or undocumented.

The models live in one module per resource, named as its routes' module (``orders``,
``payments``...), and a route names its answer (a ``ResourceName``) instead of holding its
class: registering the routes at INIT builds none of the models, and a request imports the
module of the answer it serializes when it first needs it (``model``). The OpenAPI description
(``paycore.api.openapi``) refers to each answer by that name and imports them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pydantic import BaseModel

# What a route answers with: the model's class name, also its name in the OpenAPI description.
ResourceName = Literal[
    "Merchant",
    "RolledApiKey",
    "Order",
    "OrderList",
    "Payment",
    "Refund",
    "BuyerBalance",
    "Coupon",
    "Event",
    "EventList",
    "EventWithDeliveries",
    "WebhookEndpoint",
    "WebhookEndpointList",
    "DeletedWebhookEndpoint",
    "ChannelList",
    "TrialBalance",
    "MerchantBalance",
    "Settlement",
    "SettlementRun",
    "CashierStatus",
    "Health",
]

# The module of this package that defines each answer.
MODULES: Mapping[ResourceName, str] = MappingProxyType(
    {
        "Merchant": "merchants",
        "RolledApiKey": "api_keys",
        "Order": "orders",
        "OrderList": "orders",
        "Payment": "payments",
        "Refund": "refunds",
        "BuyerBalance": "instruments",
        "Coupon": "instruments",
        "Event": "events",
        "EventList": "events",
        "EventWithDeliveries": "events",
        "WebhookEndpoint": "webhook_endpoints",
        "WebhookEndpointList": "webhook_endpoints",
        "DeletedWebhookEndpoint": "webhook_endpoints",
        "ChannelList": "channels",
        "TrialBalance": "ledger",
        "MerchantBalance": "ledger",
        "Settlement": "settlements",
        "SettlementRun": "settlements",
        "CashierStatus": "cashier",
        "Health": "platform",
    }
)


@cache
def model(name: ResourceName) -> type[BaseModel]:
    """The model of the answer ``name``; its module is imported on the first call."""
    found: type[BaseModel] = getattr(importlib.import_module(f"{__name__}.{MODULES[name]}"), name)
    return found


def serialize(name: ResourceName, payload: dict[str, Any]) -> str:
    """``payload`` as the model ``name`` serves it (JSON text; an optional field the payload
    lacks stays absent); raises when they disagree."""
    return model(name).model_validate(payload).model_dump_json(exclude_unset=True)
