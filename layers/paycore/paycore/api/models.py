"""Request bodies of the merchant API (pydantic v2, strict, unknown fields refused)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from paycore.channels.simulate import SimulateSwitches
from paycore.clock import parse_rfc3339, rfc3339
from paycore.domain.models import (
    DEFAULT_SETTLEMENT_DELAY_DAYS,
    MAX_AUTO_CONFIRM_IN,
    MAX_SETTLEMENT_DELAY_DAYS,
    MIN_AUTO_CONFIRM_IN,
)
from paycore.domain.webhook_endpoints import WILDCARD
from paycore.http_urls import check_http_url
from paycore.ledger.fees import DEFAULT_FEE_RATE_BPS, MAX_FEE_RATE_BPS
from paycore.money import MAX_AMOUNT, CurrencyCode
from paycore.services.events import EVENT_TYPES

_STRICT = ConfigDict(extra="forbid", strict=True, defer_build=True)
_I = TypeVar("_I", bound=BaseModel)

Amount = Annotated[int, Field(gt=0, le=MAX_AMOUNT, description="Minor units of the currency")]
Currency = Annotated[CurrencyCode, Field(description="ISO 4217 code")]
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$")


def _check_url(value: str | None) -> str | None:
    return None if value is None else check_http_url(value)


class CreateMerchantRequest(BaseModel):
    """``fee_rate_bps``: the fee on channel-collected money, in basis points (60 = 0.60%);
    ``settlement_delay_days``: how many days after a payment succeeds (or, for guaranteed
    trade, is confirmed) its money becomes available."""

    model_config = _STRICT

    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    webhook_url: str | None = None
    fee_rate_bps: Annotated[int, Field(ge=0, le=MAX_FEE_RATE_BPS)] = DEFAULT_FEE_RATE_BPS
    settlement_delay_days: Annotated[int, Field(ge=0, le=MAX_SETTLEMENT_DELAY_DAYS)] = (
        DEFAULT_SETTLEMENT_DELAY_DAYS
    )

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
    trade_type: Literal["instant", "guaranteed"] = "instant"
    auto_confirm_in: (
        Annotated[int, Field(ge=MIN_AUTO_CONFIRM_IN, le=MAX_AUTO_CONFIRM_IN)] | None
    ) = None

    @model_validator(mode="after")
    def _auto_confirm_for_guaranteed_trade(self) -> CreateOrderRequest:
        if self.auto_confirm_in is not None and self.trade_type != "guaranteed":
            raise ValueError("auto_confirm_in is for guaranteed orders only")
        return self

    return_url: str | None = None

    _url = field_validator("return_url")(_check_url)


class NoParameters(BaseModel):
    """The body of a command that takes no parameters (close, redeliver): an empty object,
    ``null`` or no body at all; any field is refused rather than ignored."""

    model_config = _STRICT


class CreditBalanceRequest(BaseModel):
    model_config = _STRICT

    amount: Amount
    currency: Currency


class CreateCouponRequest(BaseModel):
    """``expires_at``: RFC 3339 with a zone (kept as UTC, milliseconds); absent or null: the
    coupon never expires. That it lies in the future is checked when the coupon is issued."""

    model_config = _STRICT

    buyer_id: Identifier
    amount: Amount
    currency: Currency
    expires_at: str | None = None

    @field_validator("expires_at")
    @classmethod
    def _rfc3339_with_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _RFC3339.match(value):
            raise ValueError("must be an RFC 3339 timestamp with a time zone")
        try:
            return rfc3339(parse_rfc3339(value.upper()))
        except (ValueError, OverflowError) as exc:
            raise ValueError("must be an RFC 3339 timestamp with a time zone") from exc


class ChannelInstrument(BaseModel):
    """Pay (the rest) through a channel; routing picks one of its accounts. ``simulate`` makes
    a local channel simulator misbehave on purpose (refused with 422 ``simulate_not_allowed``
    when an account it may be routed to is a real one); ``sandbox_behaviour`` is the sandbox's
    older name for it."""

    model_config = _STRICT

    type: Literal["channel"]
    channel: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    simulate: SimulateSwitches | None = None
    sandbox_behaviour: SimulateSwitches | None = None

    @model_validator(mode="after")
    def _one_set_of_switches(self) -> ChannelInstrument:
        if self.sandbox_behaviour is not None:
            if self.channel != "sandbox":
                raise ValueError("sandbox_behaviour is only accepted for the sandbox; use simulate")
            if self.simulate is not None:
                raise ValueError("give simulate or sandbox_behaviour, not both")
        return self

    def switches(self) -> dict[str, Any] | None:
        """The misbehaviour switches set, whichever name carried them."""
        chosen = self.simulate if self.simulate is not None else self.sandbox_behaviour
        return None if chosen is None else chosen.shown()


class BalanceInstrument(BaseModel):
    model_config = _STRICT

    type: Literal["balance"]
    amount: Amount


class CouponInstrument(BaseModel):
    model_config = _STRICT

    type: Literal["coupon"]
    coupon_id: Annotated[str, StringConstraints(pattern=r"^cpn_[A-Za-z0-9]{1,60}$")]


Instrument = Annotated[
    ChannelInstrument | BalanceInstrument | CouponInstrument, Field(discriminator="type")
]


class CreatePaymentRequest(BaseModel):
    """At most one instrument of each type. Internal instruments (a coupon, a balance amount)
    are used first; a channel instrument takes the rest of the order amount."""

    model_config = _STRICT

    instruments: Annotated[list[Instrument], Field(min_length=1, max_length=3)]
    return_url: str | None = None

    _url = field_validator("return_url")(_check_url)

    @field_validator("instruments")
    @classmethod
    def _one_of_each_type(cls, value: list[Instrument]) -> list[Instrument]:
        types = [instrument.type for instrument in value]
        if len(types) != len(set(types)):
            raise ValueError("at most one instrument of each type (channel, balance, coupon)")
        return value

    def instrument(self, kind: type[_I]) -> _I | None:
        for instrument in self.instruments:
            if isinstance(instrument, kind):
                return instrument
        return None


class CashierPaymentRequest(BaseModel):
    """The buyer's choice on the hosted cashier page: a channel for what is left to pay, the
    stored balance (as much of it as the order needs) and one coupon. Never misbehaviour
    switches: those are the merchant's, for its tests."""

    model_config = _STRICT

    channel: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    use_balance: bool = False
    coupon_id: Annotated[str, StringConstraints(pattern=r"^cpn_[A-Za-z0-9]{1,60}$")] | None = None
    lang: Literal["en", "zh-CN"] | None = Field(
        default=None, description="The page's language, kept when the channel sends the buyer back"
    )


class CreateRefundRequest(BaseModel):
    """Give back part or all of what an order was paid."""

    model_config = _STRICT

    amount: Amount
    reason: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None


# -- webhook endpoints and API keys ----------------------------------------------------------

# A grace period (seconds) for the credential being replaced: 0 (it stops at once) to 7 days.
GracePeriod = Annotated[int, Field(ge=0, le=604800)]


def _check_enabled_events(value: list[str]) -> list[str]:
    unknown = [name for name in value if name != WILDCARD and name not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event types {unknown}; known: {[*EVENT_TYPES, WILDCARD]}")
    if len(set(value)) != len(value):
        raise ValueError("lists an event type twice")
    if WILDCARD in value and len(value) > 1:
        raise ValueError(f'"{WILDCARD}" (every event type) stands alone')
    return value


EnabledEvents = Annotated[
    list[str],
    Field(
        min_length=1,
        max_length=len(EVENT_TYPES),
        description=f'Event types to receive, or ["{WILDCARD}"] for all (new types included)',
        examples=[["order.paid", "refund.succeeded"], [WILDCARD]],
    ),
]
Description = Annotated[str, StringConstraints(max_length=256)]


class CreateWebhookEndpointRequest(BaseModel):
    model_config = _STRICT

    url: str
    enabled_events: EnabledEvents
    description: Description | None = None

    _url = field_validator("url")(check_http_url)
    _events = field_validator("enabled_events")(_check_enabled_events)


class UpdateWebhookEndpointRequest(BaseModel):
    """The fields to change; those left out stay as they are (``description: null`` removes
    it). The secret never changes here: rotate it."""

    model_config = _STRICT

    url: str | None = None
    enabled_events: EnabledEvents | None = None
    description: Description | None = None
    disabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("cannot be null")
        return check_http_url(value)

    @field_validator("enabled_events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str]:
        if value is None:
            raise ValueError("cannot be null")
        return _check_enabled_events(value)

    @field_validator("disabled")
    @classmethod
    def _flag(cls, value: bool | None) -> bool:
        if value is None:
            raise ValueError("cannot be null")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields the request sets."""
        return self.model_dump(exclude_unset=True)


class RotateSecretRequest(BaseModel):
    model_config = _STRICT

    expires_in: GracePeriod = Field(
        default=86400, description="Seconds the current secret keeps signing too (0-604800)"
    )


class RollApiKeyRequest(BaseModel):
    model_config = _STRICT

    expires_in: GracePeriod = Field(
        default=86400, description="Seconds the current key keeps working (0-604800)"
    )


class RedeliverEventRequest(BaseModel):
    """No body (or ``{}``): to every endpoint that receives the event; ``endpoint_id``: to
    that one only."""

    model_config = _STRICT

    endpoint_id: Annotated[str, StringConstraints(pattern=r"^we_[A-Za-z0-9]{1,60}$")] | None = None


class RunSettlementRequest(BaseModel):
    """The settlement day to run, ``YYYY-MM-DD`` in the settlement time zone (today or
    before)."""

    model_config = _STRICT

    date: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")]
