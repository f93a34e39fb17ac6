"""API Gateway (REST API, Lambda proxy integration) served locally from the transformed template.

Routes, authorizers and gateway responses are read from the OpenAPI body SAM generates for each
``AWS::ApiGateway::RestApi`` (from the functions' ``Type: Api`` events), so there is no route
list here. Requests become REST (payload 1.0) proxy events; the behaviour a client sees follows
API Gateway's:

- no matching resource or method: the ``MISSING_AUTHENTICATION_TOKEN`` gateway response;
- a route with a TOKEN/REQUEST Lambda authorizer: a missing identity is ``UNAUTHORIZED``
  without calling the authorizer; an authorizer raising ``Unauthorized`` is ``UNAUTHORIZED``;
  a policy that does not allow the method is ``ACCESS_DENIED``; an allow copies
  ``principalId`` and ``context`` into ``requestContext.authorizer``; results are cached for
  the authorizer's TTL, per identity, as API Gateway does;
- a failed or malformed Lambda response: ``DEFAULT_5XX`` with status 502;
- a request API Gateway's front door refuses before any route is matched: a body over 10 MiB
  or request headers over 10,240 bytes (``REQUEST_TOO_LARGE``, 413), a control character
  in a header value (a bare CR, say) or in the decoded path (``%00``, ``%0d%0a``), or a
  request line or header the HTTP parser cannot read (``DEFAULT_4XX``, 400).

Gateway responses (status, headers, body template with ``$context`` variables) come from the
API's ``x-amazon-apigateway-gateway-responses``; API Gateway's defaults apply where it has none.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

from werkzeug.datastructures import Headers
from werkzeug.exceptions import ClientDisconnected
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from local_runtime.lambdas import Invocation

log = logging.getLogger("local_runtime.apigateway")
access_log = logging.getLogger("local_runtime.http")

Invoke = Callable[[str, Any, str], Invocation]
FunctionLookup = Callable[[str], "str | None"]

_HTTP_METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch")
_ANY_METHOD: Final = "x-amazon-apigateway-any-method"
_FUNCTION_IN_URI = re.compile(r"functions/(.+?)/invocations")
_CONTEXT_VARIABLE = re.compile(
    r"\$(?:\{context\.([A-Za-z0-9_.]+)\}|context\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*))"
)

# API Gateway's own status and message for each gateway response type it can produce here.
_DEFAULT_STATUS: Final = {
    "ACCESS_DENIED": 403,
    "API_CONFIGURATION_ERROR": 500,
    "AUTHORIZER_CONFIGURATION_ERROR": 500,
    "AUTHORIZER_FAILURE": 500,
    "BAD_REQUEST_BODY": 400,
    "INTEGRATION_FAILURE": 504,
    "MISSING_AUTHENTICATION_TOKEN": 403,
    "THROTTLED": 429,
    "UNAUTHORIZED": 401,
    "REQUEST_TOO_LARGE": 413,
    "DEFAULT_4XX": 400,
    "DEFAULT_5XX": 502,
}
_DEFAULT_MESSAGE: Final[dict[str, str | None]] = {
    "ACCESS_DENIED": "User is not authorized to access this resource with an explicit deny",
    "AUTHORIZER_CONFIGURATION_ERROR": None,
    "MISSING_AUTHENTICATION_TOKEN": "Missing Authentication Token",
    "UNAUTHORIZED": "Unauthorized",
    "REQUEST_TOO_LARGE": "Request Too Long",
    "DEFAULT_4XX": "Bad Request",
    "DEFAULT_5XX": "Internal server error",
}

# API Gateway's quotas for a REST API request (not adjustable).
MAX_PAYLOAD_BYTES: Final = 10 * 1024 * 1024
MAX_HEADER_BYTES: Final = 10_240
# Control characters (HTAB is allowed inside a header value, never in a path).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_PATH_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")  # in raw header lines (LF ends one)


@dataclass(frozen=True)
class RestApiDefinition:
    """One ``AWS::ApiGateway::RestApi`` of the template with its resolved OpenAPI body."""

    logical_id: str
    api_id: str
    stage: str
    body: Mapping[str, Any]


@dataclass(frozen=True)
class Authorizer:
    """A Lambda authorizer (TOKEN or REQUEST) from the API's security definitions."""

    name: str
    kind: str
    function_id: str
    identity_sources: tuple[str, ...]
    ttl_seconds: int
    validation_expression: str | None = None


@dataclass(frozen=True)
class Route:
    """One method on one resource, integrated with a Lambda function (or a mock)."""

    api: RestApiDefinition
    resource_path: str
    method: str
    pattern: re.Pattern[str]
    specificity: tuple[int, ...]
    function_id: str | None
    integration: Mapping[str, Any]
    authorizer: Authorizer | None
    resource_id: str = ""


@dataclass
class _GatewayReply:
    status: int
    headers: Headers
    body: bytes


@dataclass
class _AuthorizerOutcome:
    principal_id: str
    policy: Mapping[str, Any]
    context: dict[str, str]
    expires: float


def _path_pattern(resource_path: str) -> tuple[re.Pattern[str], tuple[int, ...]]:
    """A regex for a resource path template, and how specific it is (lower wins)."""
    parts: list[str] = []
    specificity: list[int] = []
    for segment in resource_path.strip("/").split("/") if resource_path != "/" else []:
        greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
        param = re.fullmatch(r"\{(\w+)\}", segment)
        if greedy:
            parts.append(f"(?P<{greedy.group(1)}>.+)")
            specificity.append(2)
        elif param:
            parts.append(f"(?P<{param.group(1)}>[^/]+)")
            specificity.append(1)
        else:
            parts.append(re.escape(segment))
            specificity.append(0)
    return re.compile("/" + "/".join(parts)), tuple(specificity)


def _security_definitions(body: Mapping[str, Any]) -> Mapping[str, Any]:
    definitions = body.get("securityDefinitions")
    if definitions is None:
        definitions = body.get("components", {}).get("securitySchemes", {})
    return definitions or {}


@functools.lru_cache(maxsize=256)
def _arn_glob(pattern: str) -> re.Pattern[str]:
    return re.compile(
        ".*".join(".".join(map(re.escape, part.split("?"))) for part in pattern.split("*"))
    )


def policy_allows(policy: Mapping[str, Any], method_arn: str) -> bool:
    """Whether an IAM policy document allows ``execute-api:Invoke`` on ``method_arn``."""
    statements = policy.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    allowed = False
    for statement in statements:
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        if not any(_arn_glob(a).fullmatch("execute-api:Invoke") for a in actions):
            continue
        if not any(_arn_glob(r).fullmatch(method_arn) for r in resources):
            continue
        if str(statement.get("Effect", "")).lower() == "deny":
            return False
        allowed = allowed or str(statement.get("Effect", "")).lower() == "allow"
    return allowed


class RestApiGateway:
    """Routes requests to functions the way API Gateway does for the template's REST APIs."""

    def __init__(
        self,
        apis: list[RestApiDefinition],
        invoke: Invoke,
        function_id: FunctionLookup,
        region: str,
        account_id: str,
    ) -> None:
        self._invoke = invoke
        self._function_id = function_id
        self._region = region
        self._account_id = account_id
        self.domain_name = "127.0.0.1"
        self.apis = apis
        self.routes: list[Route] = []
        self._auth_cache: dict[tuple[str, tuple[str, ...]], _AuthorizerOutcome] = {}
        self._auth_lock = threading.Lock()
        for api in apis:
            self.routes.extend(self._routes_of(api))
        self._check_conflicts()

    # -- reading the template -------------------------------------------------------------

    def _function_of(self, uri: Any) -> str | None:
        match = _FUNCTION_IN_URI.search(str(uri))
        return self._function_id(match.group(1)) if match else None

    def _authorizers_of(self, api: RestApiDefinition) -> dict[str, Authorizer]:
        authorizers: dict[str, Authorizer] = {}
        for name, definition in _security_definitions(api.body).items():
            config = definition.get("x-amazon-apigateway-authorizer")
            if not isinstance(config, Mapping):
                continue
            kind = str(config.get("type", "token")).lower()
            function_id = self._function_of(config.get("authorizerUri", ""))
            if function_id is None:
                log.warning("authorizer %s: its function is not in the template", name)
                continue
            sources = config.get("identitySource")
            if sources is None and definition.get("in") == "header":
                sources = f"method.request.header.{definition.get('name', 'Authorization')}"
            authorizers[name] = Authorizer(
                name=name,
                kind=kind,
                function_id=function_id,
                identity_sources=tuple(
                    part.strip() for part in str(sources or "").split(",") if part.strip()
                ),
                ttl_seconds=int(config.get("authorizerResultTtlInSeconds", 300)),
                validation_expression=config.get("identityValidationExpression"),
            )
        return authorizers

    def _routes_of(self, api: RestApiDefinition) -> list[Route]:
        authorizers = self._authorizers_of(api)
        default_security = api.body.get("security", [])
        routes = []
        for resource_path, operations in (api.body.get("paths") or {}).items():
            pattern, specificity = _path_pattern(resource_path)
            resource_id = uuid.uuid5(uuid.NAMESPACE_URL, api.api_id + resource_path).hex[:6]
            for key, operation in operations.items():
                if key not in _HTTP_METHODS and key != _ANY_METHOD:
                    continue
                integration = operation.get("x-amazon-apigateway-integration", {})
                function_id = None
                if integration.get("type") == "aws_proxy":
                    function_id = self._function_of(integration.get("uri", ""))
                    if function_id is None:
                        log.warning(
                            "%s %s: integration target is not a local function", key, resource_path
                        )
                elif integration.get("type") != "mock":
                    log.warning(
                        "%s %s: integration type %r is not supported locally",
                        key.upper(),
                        resource_path,
                        integration.get("type"),
                    )
                authorizer = None
                for requirement in operation.get("security", default_security) or []:
                    for name in requirement:
                        authorizer = authorizer or authorizers.get(name)
                routes.append(
                    Route(
                        api=api,
                        resource_path=resource_path,
                        method="ANY" if key == _ANY_METHOD else key.upper(),
                        pattern=pattern,
                        specificity=specificity,
                        function_id=function_id,
                        integration=integration,
                        authorizer=authorizer,
                        resource_id=resource_id,
                    )
                )
        return routes

    def _check_conflicts(self) -> None:
        seen: dict[tuple[str, str], str] = {}
        for route in self.routes:
            key = (route.resource_path, route.method)
            if key in seen and seen[key] != route.api.logical_id:
                log.warning(
                    "%s %s is defined by both %s and %s; the first one is served",
                    route.method,
                    route.resource_path,
                    seen[key],
                    route.api.logical_id,
                )
            seen.setdefault(key, route.api.logical_id)

    # -- routing --------------------------------------------------------------------------

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route API Gateway would pick for ``method path``, with its path parameters.

        Like API Gateway, the resource is chosen first (literal segments beat ``{param}``,
        which beats ``{greedy+}``), then the method on it (exact, else ``ANY``); a resource
        without that method does not fall back to a less specific one.
        """
        best: tuple[tuple[int, ...], Route, dict[str, str]] | None = None
        for route in self.routes:
            matched = route.pattern.fullmatch(path)
            if matched is not None and (best is None or route.specificity < best[0]):
                best = (route.specificity, route, matched.groupdict())
        if best is None:
            return None
        _, chosen, params = best
        on_resource = [
            route
            for route in self.routes
            if route.api is chosen.api and route.resource_path == chosen.resource_path
        ]
        for wanted in (method, "ANY"):
            for route in on_resource:
                if route.method == wanted:
                    return route, params
        return None

    def _strip_stage(self, path: str) -> str:
        for api in self.apis:
            prefix = f"/{api.stage}"
            if path == prefix or path.startswith(prefix + "/"):
                return path[len(prefix) :] or "/"
        return path

    # -- gateway responses ----------------------------------------------------------------

    def gateway_response(
        self,
        response_type: str,
        api: RestApiDefinition | None,
        request: Request,
        context: Mapping[str, Any],
        status: int | None = None,
    ) -> _GatewayReply:
        """Render a gateway response from the API's definitions (or API Gateway's default)."""
        api = api or (self.apis[0] if self.apis else None)
        configured = (api.body.get("x-amazon-apigateway-gateway-responses") or {}) if api else {}
        status = status or _DEFAULT_STATUS.get(response_type, 500)
        family = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        specific, fallback = configured.get(response_type), configured.get(family)
        if specific and specific.get("statusCode"):
            status = int(specific["statusCode"])
        elif fallback and fallback.get("statusCode"):
            status = int(fallback["statusCode"])
        chosen = specific or fallback or {}
        message = _DEFAULT_MESSAGE.get(response_type, _DEFAULT_MESSAGE.get(family))
        variables = {
            **context,
            "error.message": message if message is not None else "",
            "error.messageString": json.dumps(message),
            "error.responseType": response_type,
        }
        templates: Mapping[str, str] = chosen.get("responseTemplates") or {}
        content_type = "application/json"
        if templates:
            content_type = (
                "application/json" if "application/json" in templates else next(iter(templates))
            )
            template = templates[content_type]
        else:
            template = '{"message":$context.error.messageString}'
        headers = Headers()
        headers["Content-Type"] = content_type
        for name, source in (chosen.get("responseParameters") or {}).items():
            if name.startswith("gatewayresponse.header."):
                value = _parameter_value(str(source), request, variables)
                if value is not None:
                    headers[name[len("gatewayresponse.header.") :]] = value
        body = _render_template(template, variables)
        return _GatewayReply(status, headers, body.encode("utf-8"))

    # -- authorizers ----------------------------------------------------------------------

    def _identity(
        self, authorizer: Authorizer, request: Request, path_params: Mapping[str, str]
    ) -> tuple[str, ...] | None:
        values = []
        for source in authorizer.identity_sources:
            value = _parameter_value(source, request, {}, path_params)
            if not value:
                return None
            values.append(value)
        expression = authorizer.validation_expression
        if expression and authorizer.kind == "token" and not re.fullmatch(expression, values[0]):
            return None
        return tuple(values)

    def _authorize(
        self,
        route: Route,
        request: Request,
        event: dict[str, Any],
        method_arn: str,
    ) -> tuple[str | None, dict[str, Any]]:
        """``(gateway response type or None, requestContext.authorizer)`` for this request."""
        authorizer = route.authorizer
        assert authorizer is not None
        identity = self._identity(authorizer, request, event.get("pathParameters") or {})
        if identity is None:
            return "UNAUTHORIZED", {}
        key = (f"{route.api.api_id}:{authorizer.name}", identity)
        now = time.monotonic()
        with self._auth_lock:
            outcome = self._auth_cache.get(key)
        started = time.perf_counter()
        if outcome is None or outcome.expires <= now:
            if authorizer.kind == "token":
                auth_event: dict[str, Any] = {
                    "type": "TOKEN",
                    "authorizationToken": identity[0],
                    "methodArn": method_arn,
                }
            else:
                auth_event = {**event, "type": "REQUEST", "methodArn": method_arn}
                auth_event.pop("body", None)
                auth_event.pop("isBase64Encoded", None)
            invocation = self._invoke(
                authorizer.function_id, auth_event, f"authorizer:{authorizer.name}"
            )
            if invocation.errored:
                assert invocation.error is not None
                if invocation.error.error_message == "Unauthorized":
                    return "UNAUTHORIZED", {}
                return "AUTHORIZER_CONFIGURATION_ERROR", {}
            parsed = _parse_authorizer_result(invocation.payload)
            if parsed is None:
                log.warning(
                    "authorizer %s returned an invalid result: %r",
                    authorizer.name,
                    invocation.payload,
                )
                return "AUTHORIZER_CONFIGURATION_ERROR", {}
            principal_id, policy, context = parsed
            outcome = _AuthorizerOutcome(
                principal_id, policy, context, now + authorizer.ttl_seconds
            )
            if authorizer.ttl_seconds > 0:
                with self._auth_lock:
                    self._auth_cache[key] = outcome
        if not policy_allows(outcome.policy, method_arn):
            return "ACCESS_DENIED", {}
        latency = int((time.perf_counter() - started) * 1000)
        return None, {
            **outcome.context,
            "principalId": outcome.principal_id,
            "integrationLatency": latency,
        }

    # -- requests -------------------------------------------------------------------------

    def build_event(
        self,
        route: Route,
        request: Request,
        path: str,
        path_params: dict[str, str],
        request_id: str,
    ) -> dict[str, Any]:
        """The REST API (payload 1.0) Lambda proxy event for this request."""
        headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        source_ip = request.remote_addr or "127.0.0.1"
        headers.setdefault("X-Forwarded-For", source_ip)
        multi_headers.setdefault("X-Forwarded-For", [source_ip])
        headers.setdefault("X-Forwarded-Proto", "http")
        multi_headers.setdefault("X-Forwarded-Proto", ["http"])
        query: dict[str, str] = {}
        multi_query: dict[str, list[str]] = {}
        for name, value in parse_qsl(
            request.query_string.decode("latin-1"), keep_blank_values=True
        ):
            query[name] = value
            multi_query.setdefault(name, []).append(value)
        raw = request.get_data(cache=True)
        body: str | None
        is_base64 = False
        if not raw:
            body = None
        else:
            try:
                body = raw.decode("utf-8")
            except UnicodeDecodeError:
                body, is_base64 = base64.b64encode(raw).decode(), True
        now = datetime.now(UTC)
        stage = route.api.stage
        return {
            "resource": route.resource_path,
            "path": path,
            "httpMethod": request.method,
            "headers": headers or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_params or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": self._account_id,
                "apiId": route.api.api_id,
                "resourceId": route.resource_id,
                "resourcePath": route.resource_path,
                "httpMethod": request.method,
                "path": f"/{stage}{path}",
                "stage": stage,
                "requestId": request_id,
                "extendedRequestId": request_id,
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "domainName": self.domain_name,
                "domainPrefix": self.domain_name.split(".")[0],
                "identity": {
                    "sourceIp": source_ip,
                    "userAgent": request.headers.get("User-Agent"),
                    "accountId": None,
                    "caller": None,
                    "user": None,
                    "userArn": None,
                    "apiKey": None,
                    "accessKey": None,
                    "cognitoIdentityId": None,
                    "cognitoIdentityPoolId": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "principalOrgId": None,
                },
                "authorizer": None,
            },
            "body": body,
            "isBase64Encoded": is_base64,
        }

    def handle(self, request: Request) -> Response:
        """Serve one HTTP request as API Gateway would; logs one access line."""
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        # Match on the raw path so that an encoded "/" stays inside one path parameter.
        raw = str(request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or "")
        raw_path = raw.split("?", 1)[0] or request.path
        raw_path = raw_path if raw_path == "/" else raw_path.rstrip("/")
        raw_path = self._strip_stage(raw_path)
        path = unquote(raw_path)
        context: dict[str, Any] = {
            "requestId": request_id,
            "extendedRequestId": request_id,
            "httpMethod": request.method,
            "path": path,
            "identity.sourceIp": request.remote_addr or "",
            "domainName": self.domain_name,
        }
        refusal = _front_door_refusal(request, path)
        if refusal is None:
            reply = self._dispatch(request, raw_path, request_id, context)
        else:
            reply = self.gateway_response(refusal, None, request, context)
        reply.headers["x-amzn-RequestId"] = request_id
        response = Response(reply.body, status=reply.status, headers=reply.headers)
        elapsed = (time.perf_counter() - started) * 1000
        access_log.info(
            "%s %s %d %.0fms", request.method, _logged_path(request), reply.status, elapsed
        )
        return response

    def _dispatch(
        self, request: Request, raw_path: str, request_id: str, context: dict[str, Any]
    ) -> _GatewayReply:
        found = self.match(request.method, raw_path)
        if found is None:
            return self.gateway_response("MISSING_AUTHENTICATION_TOKEN", None, request, context)
        route, raw_params = found
        path = unquote(raw_path)
        path_params = {name: unquote(value) for name, value in raw_params.items()}
        context.update(
            {
                "resourcePath": route.resource_path,
                "resourceId": route.resource_id,
                "stage": route.api.stage,
                "apiId": route.api.api_id,
            }
        )
        event = self.build_event(route, request, path, path_params, request_id)
        if route.authorizer is not None:
            method_arn = (
                f"arn:aws:execute-api:{self._region}:{self._account_id}:"
                f"{route.api.api_id}/{route.api.stage}/{request.method}{path}"
            )
            denied, authorizer_context = self._authorize(route, request, event, method_arn)
            if denied is not None:
                return self.gateway_response(denied, route.api, request, context)
            event["requestContext"]["authorizer"] = authorizer_context
            context.update({f"authorizer.{k}": v for k, v in authorizer_context.items()})
        if route.integration.get("type") == "mock":
            return _mock_reply(route.integration, request)
        if route.function_id is None:
            return self.gateway_response("API_CONFIGURATION_ERROR", route.api, request, context)
        invocation = self._invoke(
            route.function_id, event, f"{request.method} {route.resource_path}"
        )
        reply = _proxy_reply(invocation)
        if reply is None:
            return self.gateway_response("DEFAULT_5XX", route.api, request, context, status=502)
        return reply


# A hosted cashier link is a credential (whoever has it can pay the order): never logged.
_CASHIER_TOKEN = re.compile(r"^(/(?:[^/]+/)?cashier/)[^/?]+")


def _logged_path(request: Request) -> str:
    return _CASHIER_TOKEN.sub(r"\1<token>", request.full_path.rstrip("?"))


def _front_door_refusal(request: Request, path: str) -> str | None:
    """The gateway response type API Gateway answers before routing this request, or None."""
    length = request.content_length
    if length is not None and length > MAX_PAYLOAD_BYTES:
        return "REQUEST_TOO_LARGE"
    header_bytes = sum(len(name) + len(value) for name, value in request.headers.items())
    if header_bytes > MAX_HEADER_BYTES:
        return "REQUEST_TOO_LARGE"
    if any(_CONTROL.search(value) for _, value in request.headers.items()):
        return "DEFAULT_4XX"
    if _PATH_CONTROL.search(path):
        return "DEFAULT_4XX"
    return None


def _parse_authorizer_result(payload: Any) -> tuple[str, Mapping[str, Any], dict[str, str]] | None:
    if not isinstance(payload, Mapping):
        return None
    policy = payload.get("policyDocument")
    principal_id = payload.get("principalId")
    if not isinstance(policy, Mapping) or principal_id is None:
        return None
    context: dict[str, str] = {}
    for key, value in (payload.get("context") or {}).items():
        if isinstance(value, bool):
            context[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            context[key] = str(value)
        elif value is not None:
            return None  # API Gateway rejects objects and arrays in the context
    return str(principal_id), policy, context


class _MalformedResponse(ValueError):
    """A Lambda proxy result API Gateway would reject (it answers 502)."""


def _proxy_headers(result: Mapping[str, Any]) -> Headers:
    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(single, Mapping) or not isinstance(multi, Mapping):
        raise _MalformedResponse("headers must be objects")
    headers = Headers()
    for name, value in single.items():
        if name not in multi:
            headers.add(name, str(value))
    for name, values in multi.items():
        for value in values if isinstance(values, list) else [values]:
            headers.add(name, str(value))
    if "Content-Type" not in headers:
        headers["Content-Type"] = "application/json"
    return headers


def _proxy_reply(invocation: Invocation) -> _GatewayReply | None:
    """The HTTP response for a Lambda proxy result; None if it failed or is malformed."""
    result = invocation.payload
    if invocation.errored or not isinstance(result, Mapping):
        return None
    try:
        status = int(result.get("statusCode", 0))
        if not 100 <= status <= 599:
            raise _MalformedResponse(f"statusCode {status}")
        headers = _proxy_headers(result)
        body = result.get("body") or ""
        if not isinstance(body, str):
            raise _MalformedResponse("body must be a string")
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    except (TypeError, ValueError) as exc:
        log.warning("%s returned a malformed proxy response: %s", invocation.function_id, exc)
        return None
    return _GatewayReply(status, headers, raw)


def _mock_reply(integration: Mapping[str, Any], request: Request) -> _GatewayReply:
    """A MOCK integration (SAM uses one for CORS preflight): its default integration response."""
    default = (integration.get("responses") or {}).get("default", {})
    headers = Headers()
    for name, source in (default.get("responseParameters") or {}).items():
        if name.startswith("method.response.header."):
            value = _parameter_value(str(source), request, {})
            if value is not None:
                headers[name[len("method.response.header.") :]] = value
    templates = default.get("responseTemplates") or {}
    body = str(next(iter(templates.values()), "")) if templates else ""
    return _GatewayReply(int(default.get("statusCode", 200)), headers, body.encode("utf-8"))


def _parameter_value(
    source: str,
    request: Request,
    variables: Mapping[str, Any],
    path_params: Mapping[str, str] | None = None,
) -> str | None:
    """Evaluate a mapping expression: ``'literal'``, ``method.request.*`` or ``context.*``."""
    if len(source) >= 2 and source.startswith("'") and source.endswith("'"):
        return source[1:-1]
    if source.startswith("method.request.header."):
        header: str | None = request.headers.get(source[len("method.request.header.") :])
        return header
    if source.startswith("method.request.querystring."):
        argument: str | None = request.args.get(source[len("method.request.querystring.") :])
        return argument
    if source.startswith("method.request.path."):
        return (path_params or {}).get(source[len("method.request.path.") :])
    if source.startswith("context."):
        value = variables.get(source[len("context.") :])
        return None if value is None else str(value)
    return None


def _render_template(template: str, variables: Mapping[str, Any]) -> str:
    """Substitute ``$context.x`` / ``${context.x}`` in a gateway response template."""

    def replace(match: re.Match[str]) -> str:
        value = variables.get(match.group(1) or match.group(2))
        return "" if value is None else str(value)

    return _CONTEXT_VARIABLE.sub(replace, template)


class _HeaderRecorder:
    """Reads through to ``stream`` and keeps the lines read (the request's header lines)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.lines: list[bytes] = []

    def readline(self, limit: int = -1) -> bytes:
        line: bytes = self.stream.readline(limit)
        self.lines.append(line)
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class _GatewayRequestHandler(WSGIRequestHandler):  # type: ignore[misc]  # werkzeug: untyped
    """Requests Python's HTTP parser refuses itself (an unreadable request line, a header line
    over 64 KiB, too many headers) get the API's gateway response, as problem+json, instead of
    http.server's HTML error page: what API Gateway's front door would answer."""

    rfile: Any
    requestline: str

    def parse_request(self) -> bool:
        # Python's parser reads a bare CR as a line break (RFC 9112 says: reject it), so the
        # header lines are checked as they arrive, before it splits them.
        recorder = _HeaderRecorder(self.rfile)
        self.rfile = recorder
        try:
            if not super().parse_request():
                return False
        finally:
            self.rfile = recorder.stream
        raw = b"".join(recorder.lines)
        if len(raw) + len(self.requestline) > MAX_HEADER_BYTES:
            self.send_error(431, "Request headers too large")
            return False
        if _RAW_CONTROL.search(raw.replace(b"\r\n", b"\n")):
            self.send_error(400, "Control character in a header")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        response_type = "REQUEST_TOO_LARGE" if code in (413, 414, 431) else "DEFAULT_4XX"
        if code >= 500:
            response_type = "DEFAULT_5XX"
        response: Response = self.server.refusal(response_type)
        body = response.get_data()
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        self.send_response(response.status_code, message)
        for name, value in response.headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)


class ApiServer:
    """The local HTTP endpoint: binds at construction, serves once a gateway is attached.

    Binding early lets the runtime know its URL (the template's ``PublicApiUrl``) before it
    provisions; serving only after provisioning makes ``GET /health`` answer once all is ready.
    """

    def __init__(self, host: str, port: int) -> None:
        from werkzeug.serving import make_server

        self._gateway: RestApiGateway | None = None
        self._server = make_server(
            host, port, self._wsgi, threaded=True, request_handler=_GatewayRequestHandler
        )
        self._server.daemon_threads = True
        # What the handler answers for a request the HTTP parser refuses (see below).
        self._server.refusal = self._refusal  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        self.host = host
        self.port: int = self._server.server_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        gateway = self._gateway
        if gateway is None:
            response = Response("starting", status=503)
        else:
            try:
                response = gateway.handle(request)
            except ClientDisconnected:
                response = self._refusal("DEFAULT_4XX", environ)
            except Exception:
                log.exception("unexpected error serving %s %s", request.method, request.path)
                response = self._refusal("DEFAULT_5XX", environ)
        return response(environ, start_response)

    def _refusal(self, response_type: str, environ: dict[str, Any] | None = None) -> Response:
        """The API's gateway response of ``response_type`` as a WSGI response."""
        gateway = self._gateway
        request = Request(environ or {"REQUEST_METHOD": "GET", "PATH_INFO": "/"})
        if gateway is None:
            return Response("starting", status=503)
        reply = gateway.gateway_response(response_type, None, request, {})
        reply.headers["x-amzn-ErrorType"] = response_type
        return Response(reply.body, status=reply.status, headers=reply.headers)

    def start(self, gateway: RestApiGateway) -> None:
        gateway.domain_name = f"{self.host}:{self.port}"
        self._gateway = gateway
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="api-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
