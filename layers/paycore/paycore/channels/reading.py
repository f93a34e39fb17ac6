"""Reading a channel's JSON: the checks every channel's ``transformers`` makes of a body.

Each channel maps its own words (statuses, codes) in its own ``transformers``; what is the same
for all of them lives here: a body that is not the shape a protocol promises raises
``Unreadable`` (each ``transformers`` re-exports it, and its adapter decides what it means: an
unknown outcome for an answer, a rejection for a notification).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class Unreadable(ValueError):
    """A body (or file) that is not the shape the channel's protocol promises."""


def json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Unreadable("not JSON") from None
    if not isinstance(value, dict):
        raise Unreadable("not a JSON object")
    return value


def text(body: Mapping[str, Any], key: str) -> str:
    """``body[key]``, a non-empty string."""
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise Unreadable(f"{key} must be a non-empty string")
    return value


def optional_text(body: Mapping[str, Any], key: str, *, empty_is_none: bool = True) -> str | None:
    """``body[key]``, a string or absent/null (None). An empty string reads as absent unless
    ``empty_is_none`` is False (the sandbox's reading: its ``""`` stays ``""``)."""
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise Unreadable(f"{key} must be a string or null")
    return (value or None) if empty_is_none else value
