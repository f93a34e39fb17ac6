"""Stripe's error envelope and the errors the simulator answers with.

Every failure of the API (``/v1/...``) is ``{"error": {"type", "message", ...}}`` with
``code``, ``param`` and ``decline_code`` only when they apply, as Stripe sends it. The HTTP
status is what the SDK maps to its exception classes: 400/404 ``InvalidRequestError`` (or
``IdempotencyError`` for ``type: idempotency_error``), 401 ``AuthenticationError``, 402
``CardError``, 403 ``PermissionError``, 429 ``RateLimitError``, anything else ``APIError``.
"""

from __future__ import annotations

from typing import Any

INVALID_REQUEST = "invalid_request_error"
API_ERROR = "api_error"
IDEMPOTENCY_ERROR = "idempotency_error"


class StripeError(Exception):
    """An answer in Stripe's error envelope.

    ``saved`` says whether the idempotency layer keeps this answer for the request's
    ``Idempotency-Key``: Stripe saves a result only once an endpoint began executing, so
    a request refused while its parameters were validated (or one that never reached an
    endpoint) is not saved and may simply be sent again. ``saved_instead`` is the answer
    that is saved although the client gets this error: the endpoint finished but its
    answer was lost on the way (``create_error`` with ``after_create``).
    """

    def __init__(
        self,
        http_status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        saved: bool = True,
        saved_instead: tuple[int, dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.saved = saved
        self.saved_instead = saved_instead
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code is not None:
            error["code"] = self.code
        if self.param is not None:
            error["param"] = self.param
        if self.decline_code is not None:
            error["decline_code"] = self.decline_code
        return {"error": error}


def param_error(
    message: str, param: str | None, *, code: str | None = None, http_status: int = 400
) -> StripeError:
    """A request refused while its parameters were read: never saved for its key."""
    return StripeError(http_status, message, code=code, param=param, saved=False)


def missing_param(param: str) -> StripeError:
    return param_error(f"Missing required param: {param}.", param, code="parameter_missing")


def unknown_param(param: str, *, supported_by_stripe: bool = False) -> StripeError:
    message = f"Received unknown parameter: {param}"
    if supported_by_stripe:
        message += " (Stripe has it; the local Stripe simulator does not support it)"
    return param_error(message, param, code="parameter_unknown")


def no_such(kind: str, object_id: str, param: str | None = None) -> StripeError:
    """``No such payment_intent: 'pi_...'`` (404 ``resource_missing``)."""
    return StripeError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)
