"""Reading a request body: the one place that turns the bytes a caller sent into a JSON object.

Every body the API takes is a JSON object, so every body goes through ``read_json_object``,
which refuses (and changes nothing) before any field is looked at:

- a content type other than JSON: 415 ``unsupported_media_type`` (``application/json``, with at
  most a ``charset=utf-8`` parameter; no content type at all is read as JSON);
- more than ``MAX_BODY_BYTES``: 413 ``payload_too_large``;
- bytes that are not UTF-8, text that is not JSON, nesting deeper than ``MAX_DEPTH``, a number
  of more than ``MAX_NUMBER_DIGITS`` digits, ``NaN``/``Infinity``, or a key given twice:
  400 ``malformed_json`` (a duplicate key would otherwise be half-read: the last one wins);
- JSON that is not an object (an array, a string, a number...): 422 ``validation_failed``.
  Reading ``[orderA, orderB]`` as ``orderA`` would silently drop ``orderB``. (``null`` is read
  as no body at all.)

The limits are checked on the raw text before it is parsed, so no input can make the parser
recurse or build huge integers (Python refuses integers past 4,300 digits with an error that
would otherwise surface as a 5xx).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from paycore.errors import (
    MalformedRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)

MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 16
MAX_NUMBER_DIGITS = 32

JSON_MEDIA_TYPE = "application/json"

# Strings (skipped whole, escapes included) and the brackets that nest.
_NESTING_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def check_content_type(content_type: str | None) -> None:
    """415 unless the content type is JSON (or absent); only ``charset=utf-8`` may follow."""
    if content_type is None or not content_type.strip():
        return
    media_type, *parameters = (part.strip() for part in content_type.split(";"))
    if media_type.lower() != JSON_MEDIA_TYPE:
        raise UnsupportedMediaType(
            f"send the body as {JSON_MEDIA_TYPE} (got {media_type[:100]!r})",
        )
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() != "utf-8":
            raise UnsupportedMediaType(
                f"send the body as {JSON_MEDIA_TYPE}; the only parameter allowed is charset=utf-8"
            )


def body_bytes(body: str | None, *, is_base64: bool) -> bytes:
    """The bytes the caller sent, from an API Gateway proxy event's ``body``."""
    if not body:
        return b""
    if not is_base64:
        return body.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedRequest("the request body could not be read", code="malformed_json") from exc


def read_json_object(
    raw: bytes, content_type: str | None, *, max_bytes: int = MAX_BODY_BYTES
) -> dict[str, Any] | None:
    """The body as a JSON object, or None when there is no body; refuses anything else."""
    check_content_type(content_type)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"the request body is larger than {max_bytes} bytes")
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedRequest("the request body is not UTF-8", code="malformed_json") from exc
    check_depth(text)
    try:
        value = json.loads(
            text,
            parse_int=_bounded_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
            object_pairs_hook=_unique_keys,
        )
    except MalformedRequest:
        raise
    except ValueError as exc:  # JSONDecodeError included
        raise MalformedRequest("the request body is not valid JSON", code="malformed_json") from exc
    if value is None:
        return None  # ``null`` says "no body", like an empty one
    if not isinstance(value, dict):
        raise ValidationFailed(f"the request body must be a JSON object, not {_kind(value)}")
    return value


def check_depth(text: str, max_depth: int = MAX_DEPTH) -> None:
    depth = 0
    for token in _NESTING_TOKENS.finditer(text):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
            if depth > max_depth:
                raise MalformedRequest(
                    f"the request body nests deeper than {max_depth} levels",
                    code="malformed_json",
                )
        elif bracket in "]}":
            depth -= 1


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise MalformedRequest(
            f"a number in the request body has more than {MAX_NUMBER_DIGITS} digits",
            code="malformed_json",
        )
    return int(digits)


def _finite_float(text: str) -> float:
    if len(text) > 2 * MAX_NUMBER_DIGITS:
        raise MalformedRequest(
            f"a number in the request body is longer than {2 * MAX_NUMBER_DIGITS} characters",
            code="malformed_json",
        )
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise MalformedRequest(
            "a number in the request body is out of range", code="malformed_json"
        )
    return value


def _no_constant(name: str) -> Any:
    raise MalformedRequest(f"{name} is not JSON", code="malformed_json")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedRequest(
                f"the key {key[:64]!r} appears twice in one JSON object", code="malformed_json"
            )
        result[key] = value
    return result


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
