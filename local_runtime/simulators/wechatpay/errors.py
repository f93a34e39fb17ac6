"""WeChat Pay v3's error answer: an HTTP status and ``{"code", "message"[, "detail"]}``.

The codes are WeChat Pay's own (``PARAM_ERROR``, ``SIGN_ERROR``, ``ORDER_NOT_EXIST``, ...); the
messages follow its wording where it is known. ``detail`` says which field is at fault
(``{"field": "/amount/total", "location": "body", "issue": "..."}``), as WeChat Pay does for a
parameter error. An adapter decides on ``code`` and the HTTP status, never on ``message``.
"""

from __future__ import annotations

from typing import Any


class WechatPayError(Exception):
    """A refused request, answered ``status`` with WeChat Pay's error body."""

    def __init__(
        self, status: int, code: str, message: str, *, detail: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        return body


def param_error(
    message: str, *, field: str | None = None, issue: str | None = None, location: str = "body"
) -> WechatPayError:
    """``400 PARAM_ERROR``; ``field`` as a JSON pointer into the ``location`` (``/attach``)."""
    detail: dict[str, Any] | None = None
    if field is not None:
        detail = {"field": field, "location": location, "issue": issue or message}
    return WechatPayError(400, "PARAM_ERROR", message, detail=detail)


def sign_error(message: str) -> WechatPayError:
    """``401 SIGN_ERROR``: the request's Authorization was missing, malformed, stale or wrong."""
    return WechatPayError(401, "SIGN_ERROR", message)


def invalid_request(message: str) -> WechatPayError:
    """``400 INVALID_REQUEST``: well-formed, but against the business rules."""
    return WechatPayError(400, "INVALID_REQUEST", message)
