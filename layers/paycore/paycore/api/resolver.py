"""The API's event resolver: Powertools' REST resolver whose request validation reads every
body through ``paycore.api.request_body``.

Why not the stock validation: Powertools reads a body as ``json.loads`` of the whole text (so
deep nesting or a 5,000-digit integer raise outside its error handling: a 5xx), accepts any
content type that merely starts with ``application/json`` and tries to parse forms and
multipart (a multipart body without a boundary raises a ``ValueError``: a 5xx), and when the
body is a JSON array it unwraps the array to its first element for a body parameter that is
not a list (``_normalize_field_value``, meant for repeated form fields): ``[orderA, orderB]``
was read as ``orderA`` and ``orderB`` dropped without a word. Our bodies are JSON objects, so
the body is read, bounded and checked to be an object before Powertools binds it to the route's
model; everything else (path, query and header parameters, the OpenAPI description) stays
Powertools'.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from paycore.api.request_body import body_bytes, read_json_object
from paycore.errors import ValidationFailed


class _RequestValidation(OpenAPIRequestValidationMiddleware):
    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def handler(self, app: Any, next_middleware: Any) -> Any:
        # A query parameter the route does not take would be silently ignored: refuse it.
        # Pages for people (outside the description: the hosted cashier's page) take what
        # browsers and channels append to their links, e.g. Alipay's signed return.
        route = app.context["_route"]
        known = {param.alias for param in route.dependant.query_params}
        for name in app.current_event.multi_value_query_string_parameters or {}:
            if name not in known and route.include_in_schema:
                raise ValidationFailed(f"{name[:64]}: unknown query parameter", param=name[:64])
        return super().handler(app, next_middleware)

    def _get_body(self, app: Any) -> dict[str, Any] | None:  # type: ignore[override]
        event = app.current_event
        raw = body_bytes(event.body, is_base64=bool(event.is_base64_encoded))
        return read_json_object(raw, (event.headers or {}).get("content-type"))


class PaycoreResolver(APIGatewayRestResolver):
    """``APIGatewayRestResolver(enable_validation=True)`` reading bodies our way, and routing
    every path parameter API Gateway routed: Powertools' own pattern for ``<order_id>`` takes
    only word characters and a few URI symbols, so an id with a space, a non-breaking space or
    a C1 control (which API Gateway passes on) found no route and answered 404 route_not_found
    instead of the route's own answer."""

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = "^{}/*$") -> re.Pattern[str]:
        return re.compile(base_regex.format(re.sub(r"(<\w+>)", r"(?P\1[^/]+)", rule)))

    def __init__(self) -> None:
        super().__init__(enable_validation=True)
        # The resolver builds its request validation middleware in __init__ and puts it first
        # in every route's chain; this is the one attribute it reads it from.
        self._request_validation_middleware = _RequestValidation()
        self._call = threading.local()

    # Powertools keeps the event being resolved in a class attribute (BaseRouter.current_event:
    # one per process). On Lambda a process serves one event at a time; where several
    # invocations share a process (the local runtime runs concurrent invocations as threads)
    # one request read another's headers and body: an order created under another request's
    # Idempotency-Key. This resolver keeps the event and the context of the call per thread.

    @property  # type: ignore[override]
    def current_event(self) -> BaseProxyEvent:
        event: BaseProxyEvent = self._call.event
        return event

    @current_event.setter
    def current_event(self, value: BaseProxyEvent) -> None:
        self._call.event = value

    @property  # type: ignore[override]
    def lambda_context(self) -> LambdaContext:
        context: LambdaContext = self._call.context
        return context

    @lambda_context.setter
    def lambda_context(self, value: LambdaContext) -> None:
        self._call.context = value

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        self.current_event = self._to_proxy_event(dict(event))
        self.lambda_context = context
        return super().resolve(event, context)
