"""Request bodies of the merchant API (pydantic v2, strict, unknown fields refused)."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from paycore.money import MAX_AMOUNT, is_supported_currency

_STRICT = ConfigDict(extra="forbid", strict=True)

Amount = Annotated[int, Field(gt=0, le=MAX_AMOUNT, description="Minor units of the currency")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def _check_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc or len(value) > 2048:
        raise ValueError("must be an absolute http(s) URL of at most 2048 characters")
    return value


def _check_currency(value: str) -> str:
    if not is_supported_currency(value):
        raise ValueError(f"currency {value} is not supported")
    return value


class CreateMerchantRequest(BaseModel):
    model_config = _STRICT

    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    webhook_url: str | None = None

    _url = field_validator("webhook_url")(_check_url)


class CreateOrderRequest(BaseModel):
    model_config = _STRICT

    merchant_order_no: Identifier
    amount: Amount
    currency: Currency
    subject: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    expires_in: Annotated[int, Field(ge=60, le=86400)] = 1800
    metadata: Annotated[
        dict[
            Annotated[str, StringConstraints(min_length=1, max_length=40)],
            Annotated[str, StringConstraints(max_length=500)],
        ],
        Field(max_length=50),
    ] = Field(default_factory=dict)
    buyer_id: Identifier | None = None

    _currency = field_validator("currency")(_check_currency)


class CloseOrderRequest(BaseModel):
    """Closing takes no parameters: an empty object (or no body) only."""

    model_config = _STRICT


class ChannelInstrument(BaseModel):
    model_config = _STRICT

    type: Literal["channel"]
    channel: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class CreatePaymentRequest(BaseModel):
    model_config = _STRICT

    # Combined payments (balance, coupon) arrive with the orchestration work; until then the
    # only instrument accepted is one channel, which takes the whole order amount.
    instruments: Annotated[list[ChannelInstrument], Field(min_length=1, max_length=1)]
    return_url: str | None = None

    _url = field_validator("return_url")(_check_url)
