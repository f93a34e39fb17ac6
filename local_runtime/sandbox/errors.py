"""The sandbox's error type and its stable error codes.

Every error the sandbox answers is JSON ``{"code": "...", "message": "..."}`` (plus ``param`` when
one field is at fault, and ``order`` or ``refund`` when the current object explains the
refusal), the way Alipay and WeChat Pay answer with a machine code and a human message. Codes
never change once published: merchants branch on them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    INVALID_PARAMETER = "INVALID_PARAMETER"  # 400: a field is missing or wrong
    BODY_TOO_LARGE = "BODY_TOO_LARGE"  # 413
    SIGNATURE_MISSING = "SIGNATURE_MISSING"  # 401: no Sandbox-Timestamp / Sandbox-Signature
    SIGNATURE_INVALID = "SIGNATURE_INVALID"  # 401: the HMAC does not match
    TIMESTAMP_OUT_OF_RANGE = "TIMESTAMP_OUT_OF_RANGE"  # 401: more than 300 s away from now
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"  # 404
    PAY_LINK_NOT_FOUND = "PAY_LINK_NOT_FOUND"  # 404: unknown pay_url token
    ROUTE_NOT_FOUND = "ROUTE_NOT_FOUND"  # 404: no such endpoint
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"  # 405
    ORDER_PARAMS_MISMATCH = "ORDER_PARAMS_MISMATCH"  # 409: out_trade_no reused, other amount
    ORDER_PAID = "ORDER_PAID"  # 409: the order is paid; it cannot be closed or declined
    ORDER_CLOSED = "ORDER_CLOSED"  # 409: closed by the merchant or expired; cannot be paid
    ORDER_DECLINED = "ORDER_DECLINED"  # 409: the buyer declined; the order cannot be paid
    ORDER_NOT_PAID = "ORDER_NOT_PAID"  # 409: refunding an order that is not SUCCESS
    ORDER_AMBIGUOUS = "ORDER_AMBIGUOUS"  # 409 (debug view): the order exists in 2+ accounts
    REFUND_NOT_FOUND = "REFUND_NOT_FOUND"  # 404
    REFUND_PARAMS_MISMATCH = "REFUND_PARAMS_MISMATCH"  # 409: out_refund_no reused differently
    REFUND_EXCEEDS_PAID = "REFUND_EXCEEDS_PAID"  # 409: more than the paid amount is refunded
    SYSTEM_ERROR = "SYSTEM_ERROR"  # 5xx simulated by a sandbox_behaviour switch
    INTERNAL_ERROR = "INTERNAL_ERROR"  # 500: a bug in the sandbox


class SandboxError(Exception):
    """An error answer: HTTP status, stable code, human message and optional extra fields."""

    def __init__(
        self,
        status: int,
        code: ErrorCode,
        message: str,
        *,
        param: str | None = None,
        order: dict[str, Any] | None = None,
        refund: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.order = order
        self.refund = refund

    def to_body(self) -> dict[str, Any]:
        """The JSON body of the error answer."""
        body: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.param is not None:
            body["param"] = self.param
        if self.order is not None:
            body["order"] = self.order
        if self.refund is not None:
            body["refund"] = self.refund
        return body


def invalid_parameter(message: str, param: str | None = None) -> SandboxError:
    return SandboxError(400, ErrorCode.INVALID_PARAMETER, message, param=param)
