"""problem+json (RFC 9457): the one place where domain errors become HTTP answers.

The channel callback answers with the bodies only (``error_body``, ``problem_body``); the
resolver's ``Response`` is imported by the functions that build one, so that function's cold
start does not load Powertools' event handler.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from paycore import errors

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"

_STATUS: dict[type[errors.PaycoreError], int] = {
    errors.MalformedRequest: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.IdempotencyInProgress: 409,
    errors.ConcurrentUpdate: 409,
    errors.TryAgain: 409,
    errors.ValidationFailed: 422,
    errors.IdempotencyKeyReused: 422,
    errors.Throttled: 429,
    errors.CallbackRejected: 401,
    # A channel a merchant command had to ask (closing an order being paid): it refused (502),
    # or gave no usable answer (503); both are worth retrying with the same Idempotency-Key.
    errors.ChannelRejected: 502,
    errors.ChannelUnavailable: 503,
    errors.ServiceUnavailable: 503,
}


def status_for(error: errors.PaycoreError) -> int:
    for kind in type(error).__mro__:
        if kind in _STATUS:
            return _STATUS[kind]
    return 500


def problem_body(status: int, code: str, detail: str, param: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:paycore:problem:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if param:
        body["param"] = param
    return body


def problem(status: int, code: str, detail: str, param: str | None = None) -> Response[str]:
    from aws_lambda_powertools.event_handler import Response  # noqa: PLC0415

    return Response(
        status_code=status,
        content_type=PROBLEM_CONTENT_TYPE,
        body=json.dumps(problem_body(status, code, detail, param)),
    )


def error_body(error: errors.PaycoreError) -> tuple[int, dict[str, Any]]:
    """The status and problem body of a domain error (a 5xx does not show its detail)."""
    status = status_for(error)
    detail = error.detail if status < 500 else "Something went wrong on our side; retry."
    return status, problem_body(status, error.code, detail, error.param)


def from_error(error: errors.PaycoreError) -> Response[str]:
    from aws_lambda_powertools.event_handler import Response  # noqa: PLC0415

    status, body = error_body(error)
    return Response(status_code=status, content_type=PROBLEM_CONTENT_TYPE, body=json.dumps(body))


def from_validation_errors(raw_errors: list[dict[str, Any]] | Any) -> Response[str]:
    """Map pydantic/Powertools validation errors: unreadable JSON is 400, anything else 422."""
    items = list(raw_errors)
    if any(item.get("type") == "json_invalid" for item in items):
        return problem(400, "malformed_json", "The request body is not valid JSON.")
    first = items[0] if items else {"loc": (), "msg": "invalid request"}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    param = ".".join(location) or None
    message = str(first.get("msg", "invalid value"))
    if first.get("type") == "missing":
        message = "is required"
    detail = f"{param}: {message}" if param else message
    return problem(422, "validation_failed", detail, param)
