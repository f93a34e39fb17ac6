"""The OpenAPI description of the API, generated from the code that serves it.

Powertools builds the paths, parameters and request bodies from the routes and their request
models (``paycore.api.models``). A route names its success answer's model
(``paycore.api.resources``) without importing it, so that INIT builds none of them: the
description refers to it by that name and its schema is generated here, with Powertools' own
generator, when the description is built (``document``). What Powertools cannot know is added
here too, from the same constants the code enforces:

- every route's error answers (``answers``): problem+json with, per status, the exact ``code``
  values that route can answer (an enum, so a client can switch on them and a fuzzer can
  check that nothing else is ever answered);
- who may call a route (``MERCHANT``, ``ADMIN`` or ``PUBLIC`` security);
- the ``Idempotency-Key`` header of every POST and the ``Idempotent-Replayed`` answer header;
- the channel callback route (served by another function) and the webhook payloads
  (OpenAPI 3.1 ``webhooks``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from paycore.api import resources
from paycore.api.idempotency import HEADER, MAX_KEY_LENGTH, REPLAYED_HEADER
from paycore.api.request_body import MAX_BODY_BYTES, MAX_DEPTH, MAX_NUMBER_DIGITS
from paycore.api.resources import ResourceName

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
REF = "#/components/schemas/"

Security = list[dict[str, list[str]]]
MERCHANT: Security = [{"merchantKey": []}]
ADMIN: Security = [{"adminToken": []}]
PUBLIC: Security = []

# What a route that reaches a channel answers when the channel's configuration cannot be read.
CHANNEL_UNAVAILABLE = [
    "service_unavailable",
    "channel_misconfigured",
    "channel_secret_unavailable",
    "channel_account_not_configured",
]

# Both are HTTP bearer tokens checked by the API Gateway authorizer; each route says which.
SECURITY_SCHEMES = {
    "merchantKey": "The merchant's API key (sk_live_...), from onboarding.",
    "adminToken": "The platform admin token (in Secrets Manager; printed by make run).",
}

_TITLES = {
    400: "The request cannot be read",
    401: "Missing or invalid credentials",
    403: "Refused from where it was sent",
    404: "No such object (or it belongs to another merchant)",
    409: "The object's state does not allow it (now)",
    413: f"The body is larger than {MAX_BODY_BYTES} bytes",
    431: "The request headers are too large",
    415: "The body is not application/json",
    422: "A field is invalid",
    429: "Too many requests: slow down and retry with the same Idempotency-Key",
    502: "Something failed on our side: retry with the same Idempotency-Key",
    503: "A dependency is unavailable: retry with the same Idempotency-Key",
}


def answers(
    status: int,
    model: ResourceName,
    description: str,
    *,
    method: str,
    security: Sequence[Mapping[str, Sequence[str]]],
    forbidden: Iterable[str] = (),
    not_found: Iterable[str] = (),
    conflict: Iterable[str] = (),
    invalid: Iterable[str] = (),
    unavailable: Iterable[str] = (),
    bad_gateway: Iterable[str] = (),
    links: Mapping[str, tuple[str, Mapping[str, str]]] | None = None,
) -> dict[int, Any]:
    """A route's ``responses``: its success answer (the resource ``model``, referred to by
    name) and every error it can give, with the codes of each. The errors every route of its
    kind shares are added here. ``links``: name -> (operationId, {parameter: runtime
    expression}), the operations the answer leads to (what a client, or a stateful fuzzer,
    calls next)."""
    posts = method.upper() == "POST"
    codes: dict[int, list[str]] = {
        403: list(forbidden),
        404: list(not_found),
        409: list(conflict),
        422: ["validation_failed", *invalid],
        502: ["internal_error", *bad_gateway],
        503: list(unavailable),
    }
    if security:
        codes[401] = ["unauthenticated"]
        codes[429] = ["rate_limited"]
    if posts:
        codes[400] = ["malformed_json"]
        codes[409] += ["idempotency_in_progress", "concurrent_update"]
        codes[413] = ["payload_too_large"]
        codes[415] = ["unsupported_media_type"]
        codes[422] += ["idempotency_key_reused", "invalid_idempotency_key"]
    success: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": {"$ref": f"{REF}{model}"}}},
    }
    if posts:
        success["headers"] = {
            REPLAYED_HEADER: {
                "description": "true when this is the stored answer of an earlier request "
                "with the same Idempotency-Key",
                "schema": {"type": "string", "enum": ["true"]},
            }
        }
    if links:
        success["links"] = {
            name: {"operationId": operation, "parameters": dict(parameters)}
            for name, (operation, parameters) in links.items()
        }
    responses: dict[int, Any] = {status: success}
    for code_status in sorted(codes):
        if codes[code_status]:
            responses[code_status] = _problem(code_status, codes[code_status])
    return responses


# What API Gateway answers itself, on any route, before any function runs (the template's
# gateway responses): headers or a body over its quotas, a control character in a header or
# the path.
_FRONT_DOOR = {400: "bad_request", 413: "payload_too_large"}

# A path parameter API Gateway routed but no route of ours takes (an id containing an encoded
# "/", which the function receives decoded): no such route, whatever the id.
_ROUTE_NOT_FOUND = "route_not_found"


def _add_code(responses: dict[str, Any], status: int, code: str) -> None:
    existing = responses.get(str(status))
    codes = _codes_of(existing) if existing else []
    responses[str(status)] = _problem(status, [*codes, code])


def _codes_of(response: dict[str, Any]) -> list[str]:
    schema = response["content"][PROBLEM_JSON]["schema"]
    return list(schema["allOf"][1]["properties"]["code"]["enum"])


def _problem(status: int, codes: list[str]) -> dict[str, Any]:
    unique = list(dict.fromkeys(codes))
    return {
        "description": f"{_TITLES[status]}. code: {', '.join(unique)}",
        "content": {
            PROBLEM_JSON: {
                "schema": {
                    "allOf": [
                        {"$ref": f"{REF}Problem"},
                        {
                            "type": "object",
                            "properties": {
                                "status": {"const": status},
                                "code": {"enum": unique},
                            },
                        },
                    ]
                }
            }
        },
    }


def document(raw_schema_json: str) -> dict[str, Any]:
    """The whole description: Powertools' generated schema, completed."""
    from paycore.api.resources.problem import Problem  # noqa: PLC0415 - only described

    spec: dict[str, Any] = json.loads(raw_schema_json)
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(unused, None)
    _add_resource_schemas(schemas)
    schemas["Problem"] = _schema_of(Problem, schemas)
    spec.pop("security", None)  # every operation says who may call it
    spec["paths"].update(_callback_paths())
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            operation.setdefault("security", [])
            for status, code in _FRONT_DOOR.items():
                _add_code(operation["responses"], status, code)
            if "{" in path:
                _add_code(operation["responses"], 404, _ROUTE_NOT_FOUND)
            if method == "post" and not path.startswith("/callbacks/"):
                operation.setdefault("parameters", []).append(_IDEMPOTENCY_KEY_PARAMETER)
                if "requestBody" in operation:
                    operation["requestBody"]["description"] = _BODY_RULES
            operation.setdefault("operationId", f"{method}_{path}")
    spec["webhooks"] = _webhooks()  # their Event schema is an answer's
    return spec


_IDEMPOTENCY_KEY_PARAMETER = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": "Makes the POST safe to retry: the same key with the same body answers "
    "the first answer (for at least 24 hours); with another body it is a 422 "
    "idempotency_key_reused; while the first is still running, a 409 idempotency_in_progress.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
}

_BODY_RULES = (
    f"A JSON object (application/json, UTF-8), at most {MAX_BODY_BYTES} bytes, nested at most "
    f"{MAX_DEPTH} levels, numbers of at most {MAX_NUMBER_DIGITS} digits, no key twice. "
    "Unknown fields are refused."
)


def _add_resource_schemas(schemas: dict[str, Any]) -> None:
    """The schemas of the answers (``ResourceName``: the routes refer to them by name) and of
    the models they nest, as Powertools describes a route's response model: one generator for
    them all in serialization mode, served through its OpenAPI model (nulls left out), in name
    order among its own. A name Powertools gave another schema is an error."""
    from aws_lambda_powertools.event_handler.openapi.models import (  # noqa: PLC0415
        Components,  # Powertools' OpenAPI models are loaded to describe the API, not at INIT
    )

    mode: Literal["serialization"] = "serialization"
    models = [(resources.model(name), mode) for name in get_args(ResourceName)]
    _, generated = models_json_schema(models, ref_template=REF + "{model}")
    served = Components.model_validate({"schemas": generated.get("$defs", {})}).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    for name, definition in served["schemas"].items():
        if schemas.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are named {name}")
    ordered = sorted(schemas.items())
    schemas.clear()
    schemas.update(ordered)


def _schema_of(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    """``model``'s JSON schema with its nested models moved into ``schemas``."""
    generated = model.model_json_schema(ref_template=REF + "{model}")
    for name, definition in generated.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    return generated


def _callback_paths() -> dict[str, Any]:
    """The channel notification route (functions/channel_callback): strangers can reach it,
    so every refusal is a 4xx and is listed here."""
    path_parameter = {"in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
    return {
        "/callbacks/{channel}/{account}": {
            "post": {
                "operationId": "receiveChannelNotification",
                "summary": "A channel's asynchronous notification (called by the channel)",
                "description": "Sizes are checked first, then the signature with that "
                "account's keys, before anything is parsed; a genuine notification gets the "
                "channel's own acknowledgement. Not for merchants.",
                "tags": ["channels"],
                "security": [],
                "parameters": [
                    {"name": "channel", **path_parameter},
                    {"name": "account", **path_parameter},
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {}},
                        "application/x-www-form-urlencoded": {"schema": {}},
                    },
                },
                "responses": {
                    "200": {
                        "description": "Accepted (the channel's acknowledgement)",
                        "content": {"*/*": {"schema": {}}},
                    },
                    "204": {"description": "Accepted (WeChat Pay's acknowledgement)"},
                    **{
                        str(status): _problem(status, codes)
                        for status, codes in {
                            400: ["malformed_body"],
                            401: ["callback_rejected"],
                            404: ["callback_not_found", "channel_not_found", "refund_not_found"],
                            413: ["payload_too_large"],
                            431: ["headers_too_large"],
                        }.items()
                    },
                },
            }
        }
    }


_EVENT_OBJECTS: dict[str, ResourceName] = {
    "order.paid": "Order",
    "order.closed": "Order",
    "order.confirmed": "Order",
    "payment.failed": "Payment",
    "refund.succeeded": "Refund",
    "refund.failed": "Refund",
}

_WEBHOOK_HEADERS = {
    "webhook-id": "The event id: deduplicate on it (delivery is at least once)",
    "webhook-timestamp": "Unix seconds when this attempt was signed: refuse it if far off",
    "webhook-signature": "v1,<base64 HMAC-SHA256> (Standard Webhooks; several, space-separated, "
    "during a secret rotation)",
}


def _webhooks() -> dict[str, Any]:
    hooks: dict[str, Any] = {}
    for event_type, model in _EVENT_OBJECTS.items():
        hooks[event_type] = {
            "post": {
                "summary": f"{event_type}: sent to the merchant's webhook URL",
                "description": "Signed per Standard Webhooks with the merchant's webhook secret. "
                "Answer 2xx within 10 s; anything else is retried with backoff, then parked "
                "in the dead-letter queue.",
                "parameters": [
                    {
                        "name": name,
                        "in": "header",
                        "required": True,
                        "description": text,
                        "schema": {"type": "string"},
                    }
                    for name, text in _WEBHOOK_HEADERS.items()
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "allOf": [
                                    {"$ref": f"{REF}Event"},
                                    {
                                        "type": "object",
                                        "properties": {
                                            "type": {"const": event_type},
                                            "data": {
                                                "type": "object",
                                                "properties": {"object": {"$ref": f"{REF}{model}"}},
                                            },
                                        },
                                    },
                                ]
                            }
                        }
                    },
                },
                "responses": {"200": {"description": "Received (any 2xx)"}},
            }
        }
    return hooks
