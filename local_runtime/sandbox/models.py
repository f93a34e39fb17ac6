"""The merchant's requests (create order, create refund), validated at the edge with pydantic.

Unknown fields are refused (``extra="forbid"``) and types are strict (``"100"`` is not an
amount), so a merchant integration that sends something the sandbox would silently ignore
fails loudly in development instead of in production.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from local_runtime.sandbox.currencies import CURRENCY_EXPONENTS, MAX_AMOUNT
from local_runtime.sandbox.errors import SandboxError, invalid_parameter

_Seconds = Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)]


class CreateError(BaseModel):
    """``create_error``: the first ``times`` create calls answer ``status``; with
    ``after_create`` the order is created (or found) first, so only the answer is lost."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    times: Annotated[int, Field(ge=1)] = 1
    status: Literal[500, 502, 503] = 503
    after_create: bool = False


class CreateTimeout(BaseModel):
    """``create_timeout``: the first ``times`` create calls create the order, then stall
    ``seconds`` before answering (past a client's timeout)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    times: Annotated[int, Field(ge=1)] = 1
    seconds: Annotated[float, Field(ge=0, le=60, allow_inf_nan=False)] = 8.0


class RefundError(BaseModel):
    """``refund_error``: the first ``times`` refund create calls answer 503 and do nothing."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    times: Annotated[int, Field(ge=1)] = 1


class SandboxBehaviour(BaseModel):
    """Per-order misbehaviour switches (README.md, "Misbehaviour switches"); all optional.

    Unknown switches and wrong types are refused, so nobody relies on a switch that does
    nothing. The "times" counters count per ``out_trade_no`` over every account.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    decline: bool = False
    notify_delay_seconds: _Seconds | None = None
    notify_drop: bool = False
    notify_duplicate: Annotated[int, Field(ge=2, le=5)] | None = None
    notify_reorder: bool = False
    query_only: bool = False
    create_error: CreateError | None = None
    create_timeout: CreateTimeout | None = None
    refund_fail: bool = False
    refund_delay_seconds: _Seconds | None = None
    refund_error: RefundError | None = None
    close_ignored: bool = False
    statement: Literal["omit"] | None = None
    statement_amount_delta: Annotated[int, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT)] | None = None
    # A status word the statement line shows instead of the truth (the sandbox's own words).
    statement_status: Literal["WAIT_BUYER_PAY", "SUCCESS", "DECLINED", "CLOSED"] | None = None

    def shown(self) -> dict[str, Any]:
        """The switches the merchant set (nested objects in full, defaults included)."""
        return self.model_dump(include=set(self.model_fields_set))


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http or https URL")
    return value


class CreateOrderRequest(BaseModel):
    """``POST /v1/orders``: what the merchant wants the buyer to pay."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    out_trade_no: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    amount: Annotated[int, Field(gt=0, le=MAX_AMOUNT)]
    currency: str
    subject: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    notify_url: Annotated[str, StringConstraints(max_length=2048)]
    return_url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    expires_at: str
    sandbox_behaviour: SandboxBehaviour = SandboxBehaviour()

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in CURRENCY_EXPONENTS:
            raise ValueError(f"must be one of {', '.join(sorted(CURRENCY_EXPONENTS))}")
        return value

    @field_validator("notify_url", "return_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("expires_at")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        """Readable as RFC 3339. "In the future" is checked for new orders only (OrderBook):
        a replayed create must find its order even after the deadline has passed."""
        parse_rfc3339(value)
        return value

    @property
    def expiry(self) -> datetime:
        return parse_rfc3339(self.expires_at)


class CreateRefundRequest(BaseModel):
    """``POST /v1/orders/{out_trade_no}/refunds``: give back (part of) a paid order."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    out_refund_no: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    amount: Annotated[int, Field(gt=0, le=MAX_AMOUNT)]
    notify_url: Annotated[str, StringConstraints(max_length=2048)]
    reason: Annotated[str, StringConstraints(max_length=256)] | None = None

    @field_validator("notify_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        return _http_url(value)


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 timestamp with a zone, as an aware UTC datetime."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an RFC 3339 timestamp, e.g. 2030-01-01T00:00:00Z") from None
    if moment.tzinfo is None:
        raise ValueError("must carry a time zone (Z or +hh:mm)")
    return moment.astimezone(UTC)


def parse_create_request(payload: object) -> CreateOrderRequest:
    """Validate a decoded JSON body, turning the first problem into a 400 INVALID_PARAMETER."""
    try:
        return CreateOrderRequest.model_validate(payload)
    except ValidationError as exc:
        raise _first_problem(exc) from None


def parse_refund_request(payload: object) -> CreateRefundRequest:
    """Validate a refund request body (400 INVALID_PARAMETER naming the first problem)."""
    try:
        return CreateRefundRequest.model_validate(payload)
    except ValidationError as exc:
        raise _first_problem(exc) from None


def _first_problem(exc: ValidationError) -> SandboxError:
    error = exc.errors()[0]
    param = ".".join(str(part) for part in error["loc"]) or None
    message = str(error["msg"]).removeprefix("Value error, ")
    return invalid_parameter(f"{param}: {message}" if param else message, param)
