"""The objects the API answers with, as pydantic models: the OpenAPI description is generated
from them and every answer is serialized through them (``serialize``), so the description
cannot drift from what is served: a field the domain adds without a model change fails the
request in the tests (``extra="forbid"``), it is never silently dropped or undocumented.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from paycore.money import MAX_AMOUNT, CurrencyCode

MinorUnits = Annotated[
    int, Field(ge=0, le=MAX_AMOUNT, description="Minor units of the currency (JPY: yen)")
]
Total = Annotated[int, Field(ge=0, description="Minor units of the currency, summed")]
Timestamp = Annotated[
    str, Field(description="RFC 3339, UTC", examples=["2026-12-06T08:00:00.000Z"])
]


class Resource(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


def serialize(model: type[BaseModel], payload: dict[str, Any]) -> str:
    """``payload`` as ``model`` serves it (JSON text; an optional field the payload lacks stays
    absent); raises when they disagree."""
    return model.model_validate(payload).model_dump_json(exclude_unset=True)


# -- merchants ---------------------------------------------------------------------------


class Merchant(Resource):
    """A merchant, as onboarding answers it. ``api_key`` and ``webhook_secret`` are shown in
    the first answer only; a replay of the same onboarding (same ``Idempotency-Key``) shows
    them as null, because paycore keeps only the key's hash."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "mch_01jefq3r6f4x2k8w9c7d5b1a0z",
                    "object": "merchant",
                    "name": "Tea Shop",
                    "webhook_url": "https://tea.example/webhooks",
                    "fee_rate_bps": 60,
                    "settlement_delay_days": 1,
                    "created_at": "2026-12-06T08:00:00.000Z",
                    "api_key": "sk_live_4f0c...",
                    "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                }
            ]
        },
    )

    id: str = Field(pattern=r"^mch_")
    object: Literal["merchant"]
    name: str
    webhook_url: str | None
    fee_rate_bps: int = Field(
        ge=0, le=10_000, description="Fee on channel-collected money, basis points"
    )
    settlement_delay_days: int = Field(
        ge=0, le=30, description="Days from success (or confirmation) to available"
    )
    created_at: Timestamp
    api_key: str | None = Field(description="Shown once; null in a replay")
    webhook_secret: str | None = Field(description="Standard Webhooks secret; shown once")


# -- orders ------------------------------------------------------------------------------


class Order(Resource):
    """The trade: what the buyer owes the merchant, and how much of it was paid and refunded."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "ord_01jefq5m0v8h3t2n6p4r9s7w1x",
                    "object": "order",
                    "merchant_order_no": "A-1001",
                    "amount": 1999,
                    "currency": "CNY",
                    "subject": "Green tea, 250 g",
                    "status": "paid",
                    "amount_paid": 1999,
                    "amount_refunded": 0,
                    "expires_at": "2026-12-06T08:30:00.000Z",
                    "created_at": "2026-12-06T08:00:00.000Z",
                    "updated_at": "2026-12-06T08:01:12.345Z",
                    "metadata": {"cart": "c-77"},
                    "buyer_id": "buyer-42",
                    "trade_type": "guaranteed",
                    "auto_confirm_in": 864000,
                    "auto_confirm_at": "2026-12-16T08:01:12.345Z",
                    "confirmed_at": None,
                    "cashier_url": "https://api.example.com/live/cashier/"
                    "Vx3uH0dLq8yS2mWf7tKc9bNe4pRa1gZo5jQi6wXy_Ek",
                    "return_url": "https://tea.example/orders/A-1001",
                }
            ]
        },
    )

    id: str = Field(pattern=r"^ord_")
    object: Literal["order"]
    merchant_order_no: str
    amount: MinorUnits
    currency: CurrencyCode
    subject: str
    status: Literal["created", "paying", "paid", "closed", "partially_refunded", "refunded"]
    amount_paid: MinorUnits
    amount_refunded: MinorUnits
    expires_at: Timestamp
    created_at: Timestamp
    updated_at: Timestamp
    metadata: dict[str, str]
    buyer_id: str | None
    trade_type: Literal["instant", "guaranteed"] = Field(
        description="guaranteed (担保交易): the money waits in escrow until confirmed"
    )
    auto_confirm_in: int | None = Field(
        description="Guaranteed trade: seconds after payment when the order confirms itself"
    )
    auto_confirm_at: Timestamp | None = Field(
        description="Guaranteed trade: when a paid order confirms itself unless confirmed before"
    )
    confirmed_at: Timestamp | None = Field(description="Guaranteed trade: when it was confirmed")
    cashier_url: str | None = Field(
        description="The buyer's payment page (the hosted cashier): send the buyer there. "
        "It needs no credentials and takes no payment once the order is final. Null only "
        "for an order created before the cashier existed."
    )
    return_url: str | None = Field(
        description="Where the cashier sends the buyer once the order is paid"
    )


# -- payments ----------------------------------------------------------------------------


class RedirectAction(Resource):
    """Send the buyer's browser to ``url`` (the channel's payment page)."""

    type: Literal["redirect"]
    url: str


class QrCodeAction(Resource):
    """Show ``code_url`` as a QR code for the buyer to scan with the channel's app."""

    type: Literal["qr_code"]
    code_url: str


NextAction = Annotated[RedirectAction | QrCodeAction, Field(discriminator="type")]


class ChannelPart(Resource):
    type: Literal["channel"]
    channel: str
    amount: MinorUnits
    sandbox_behaviour: dict[str, Any] | None = Field(
        default=None, description="The sandbox misbehaviour switches this payment asked for"
    )
    simulate: dict[str, Any] | None = Field(
        default=None, description="The simulator switches this payment asked for"
    )


class BalancePart(Resource):
    type: Literal["balance"]
    amount: MinorUnits


class CouponPart(Resource):
    type: Literal["coupon"]
    coupon_id: str
    amount: MinorUnits


PaymentPart = Annotated[ChannelPart | BalancePart | CouponPart, Field(discriminator="type")]


class ChannelAttempt(Resource):
    """One try at creating the channel order at one account (routing and failover)."""

    account: str
    result: Literal["created", "created_answer_lost", "not_created", "rejected", "unknown"]
    detail: str | None
    at: Timestamp


class Payment(Resource):
    """One attempt to pay an order, with the instruments that pay it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "pay_01jefq7c2d9k4m6n8p0q2r4s6t",
                    "object": "payment",
                    "order_id": "ord_01jefq5m0v8h3t2n6p4r9s7w1x",
                    "status": "processing",
                    "amount": 1999,
                    "currency": "CNY",
                    "instruments": [{"type": "channel", "channel": "sandbox", "amount": 1999}],
                    "next_action": {"type": "redirect", "url": "https://pay.example/p/abc"},
                    "failure_code": None,
                    "failure_message": None,
                    "fee": None,
                    "net": None,
                    "channel_account": "sandbox-primary",
                    "channel_attempts": [
                        {
                            "account": "sandbox-primary",
                            "result": "created",
                            "detail": None,
                            "at": "2026-12-06T08:00:01.000Z",
                        }
                    ],
                    "created_at": "2026-12-06T08:00:00.500Z",
                    "updated_at": "2026-12-06T08:00:01.000Z",
                }
            ]
        },
    )

    id: str = Field(pattern=r"^pay_")
    object: Literal["payment"]
    order_id: str
    status: Literal["processing", "succeeded", "failed"]
    amount: MinorUnits
    currency: CurrencyCode
    instruments: list[PaymentPart]
    next_action: NextAction | None
    failure_code: str | None
    failure_message: str | None
    fee: MinorUnits | None = Field(
        description="Once succeeded: the fee on the channel part (coupon and balance parts "
        "carry none), rounded half up"
    )
    net: MinorUnits | None = Field(description="Once succeeded: the channel part less the fee")
    channel_account: str | None
    channel_attempts: list[ChannelAttempt]
    created_at: Timestamp
    updated_at: Timestamp


# -- refunds -----------------------------------------------------------------------------


class RefundPart(Resource):
    """What one refund gives back through one instrument that paid."""

    type: Literal["channel", "balance", "coupon"]
    amount: MinorUnits
    coupon_id: str | None = None


class Refund(Resource):
    """Money given back to the buyer, through the instruments that paid (channel first)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "rfd_01jefqa1b3c5d7e9f1g3h5j7k9",
                    "object": "refund",
                    "order_id": "ord_01jefq5m0v8h3t2n6p4r9s7w1x",
                    "payment_id": "pay_01jefq7c2d9k4m6n8p0q2r4s6t",
                    "amount": 500,
                    "currency": "CNY",
                    "status": "succeeded",
                    "reason": "damaged box",
                    "kind": "merchant",
                    "allocations": [{"type": "channel", "amount": 500}],
                    "fee_refunded": 3,
                    "failure_code": None,
                    "failure_message": None,
                    "created_at": "2026-12-06T09:00:00.000Z",
                    "updated_at": "2026-12-06T09:00:02.000Z",
                }
            ]
        },
    )

    id: str = Field(pattern=r"^rfd_")
    object: Literal["refund"]
    order_id: str
    payment_id: str
    amount: MinorUnits
    currency: CurrencyCode
    status: Literal["processing", "succeeded", "failed"]
    reason: str | None
    kind: Literal["merchant", "late_payment"] = Field(
        description="late_payment: paycore gave back money a channel took after the payment "
        "had ended without it"
    )
    allocations: list[RefundPart]
    fee_refunded: MinorUnits | None = Field(
        description="Once succeeded: the part of the payment's fee this refund returned"
    )
    failure_code: str | None
    failure_message: str | None
    created_at: Timestamp
    updated_at: Timestamp


# -- internal instruments ----------------------------------------------------------------


class BuyerBalance(Resource):
    """A buyer's stored balance at this merchant, in one currency."""

    object: Literal["balance"]
    buyer_id: str
    currency: CurrencyCode
    available: MinorUnits
    frozen: MinorUnits = Field(description="Reserved by payments in flight")


class Coupon(Resource):
    """A coupon a merchant gave a buyer: used whole, at most once."""

    id: str = Field(pattern=r"^cpn_")
    object: Literal["coupon"]
    buyer_id: str
    amount: MinorUnits
    currency: CurrencyCode
    status: Literal["available", "locked", "used", "expired"]
    expires_at: Timestamp | None
    created_at: Timestamp


# -- events ------------------------------------------------------------------------------

EventType = Literal[
    "order.paid",
    "order.closed",
    "order.confirmed",
    "payment.failed",
    "refund.succeeded",
    "refund.failed",
]


class EventData(Resource):
    object: Annotated[Order | Payment | Refund, Field(discriminator="object")]


class Event(Resource):
    """A state change a merchant cares about; also what a webhook delivers."""

    id: str = Field(pattern=r"^evt_")
    object: Literal["event"]
    type: EventType
    created_at: Timestamp
    data: EventData


class DeliveryAttempt(Resource):
    """One POST of the event to one of the merchant's webhook endpoints."""

    endpoint_id: str = Field(pattern=r"^we_")
    attempt: int = Field(ge=1, description="Counted per endpoint from 1, redeliveries included")
    status_code: int | None = Field(description="The endpoint's HTTP status; null: no answer")
    error: str | None = Field(
        description="Why there was no answer (timeout, connection error, refused URL)"
    )
    at: Timestamp


class EventWithDeliveries(Event):
    """An event, with every attempt to deliver it (newest first; the newest 50 per endpoint)."""

    deliveries: list[DeliveryAttempt]


# -- webhook endpoints and API keys ------------------------------------------------------


class WebhookEndpoint(Resource):
    """Where the merchant's events go: each endpoint gets the events it subscribes to, signed
    with its own secret. ``secret`` is in the answers that create it (create, rotate_secret)
    only, and null in their replays."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "we_01jefq7c2m4p6r8t0v2x4z6b8d",
                    "object": "webhook_endpoint",
                    "url": "https://tea.example/webhooks",
                    "enabled_events": ["order.paid", "refund.succeeded"],
                    "description": "Fulfilment",
                    "disabled": False,
                    "created_at": "2026-12-06T08:00:00.000Z",
                    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                }
            ]
        },
    )

    id: str = Field(pattern=r"^we_")
    object: Literal["webhook_endpoint"]
    url: str
    enabled_events: list[str]
    description: str | None
    disabled: bool
    created_at: Timestamp
    secret: str | None = Field(
        default=None, description="Standard Webhooks signing secret; shown once"
    )


class WebhookEndpointList(Resource):
    object: Literal["list"]
    data: list[WebhookEndpoint]
    has_more: bool


class DeletedWebhookEndpoint(Resource):
    id: str = Field(pattern=r"^we_")
    object: Literal["webhook_endpoint"]
    deleted: Literal[True]


class RolledApiKey(Resource):
    """The new API key (shown once, null in a replay) and when the one it replaces stops
    working: API Gateway caches an authorization for 60 s, so it is refused at most 60 s
    later."""

    api_key: str | None = Field(description="Shown once; null in a replay")
    previous_key_expires_at: Timestamp


# -- lists and the rest ------------------------------------------------------------------


class OrderList(Resource):
    object: Literal["list"]
    data: list[Order]
    has_more: bool


class EventList(Resource):
    object: Literal["list"]
    data: list[Event]
    has_more: bool


class Channel(Resource):
    """A channel a payment instrument can name, and what the buyer does there."""

    object: Literal["channel"]
    channel: str
    next_action_type: Literal["redirect", "qr_code"]


class ChannelList(Resource):
    object: Literal["list"]
    data: list[Channel]
    has_more: bool


# -- the books ---------------------------------------------------------------------------


class TrialBalanceAccount(Resource):
    account: str = Field(description="The account id, e.g. merchant:mch_...:pending:CNY")
    debits: Total
    credits: Total


class TrialBalance(Resource):
    """Every account of one currency with its total debits and credits (docs/ledger.md)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "object": "trial_balance",
                    "currency": "CNY",
                    "accounts": [
                        {
                            "account": "channel:sandbox:sandbox-primary:clearing:CNY",
                            "debits": 1999,
                            "credits": 0,
                        },
                        {
                            "account": "merchant:mch_01jefq3r6f4x2k8w9c7d5b1a0z:pending:CNY",
                            "debits": 0,
                            "credits": 1987,
                        },
                        {"account": "platform:fees:CNY", "debits": 0, "credits": 12},
                    ],
                    "total_debits": 1999,
                    "total_credits": 1999,
                }
            ]
        },
    )

    object: Literal["trial_balance"]
    currency: CurrencyCode
    accounts: list[TrialBalanceAccount]
    total_debits: Total
    total_credits: Total


class MerchantBalanceLine(Resource):
    currency: CurrencyCode
    escrow: Total = Field(description="Guaranteed-trade money not confirmed yet")
    pending: Total = Field(description="Waiting for its settlement day")
    available: int = Field(description="Settled; negative when refunds took more than it held")


class MerchantBalance(Resource):
    """Where the merchant's money is, per currency it has touched (docs/money.md)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "object": "balance",
                    "data": [{"currency": "CNY", "escrow": 0, "pending": 1987, "available": 0}],
                }
            ]
        },
    )

    object: Literal["balance"]
    data: list[MerchantBalanceLine]


class Settlement(Resource):
    """Everything settlement ``date`` moved for the merchant in ``currency``, summed over its
    runs. ``gross`` and ``refunds`` count channel parts only; ``net = gross - fees - refunds +
    fee_refunded`` is what became available."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "object": "settlement",
                    "date": "2026-12-07",
                    "currency": "CNY",
                    "payments_count": 2,
                    "gross": 3998,
                    "fees": 24,
                    "refunds_count": 1,
                    "refunds": 500,
                    "fee_refunded": 3,
                    "net": 3477,
                }
            ]
        },
    )

    object: Literal["settlement"]
    date: str = Field(description="The settlement day, YYYY-MM-DD in the settlement time zone")
    currency: CurrencyCode
    payments_count: int = Field(ge=0)
    gross: Total
    fees: Total
    refunds_count: int = Field(ge=0)
    refunds: Total
    fee_refunded: Total
    net: Total


class SettlementRun(Resource):
    """What one run of a settlement day did (another run later settles only what became due
    since)."""

    object: Literal["settlement_run"]
    date: str
    payments_count: int = Field(ge=0, description="Payments this run settled")
    settlements_count: int = Field(
        ge=0, description="Merchant and currency pairs this run added to"
    )


class CashierPayment(Resource):
    """A payment as the buyer's page sees it."""

    id: str = Field(pattern=r"^pay_")
    object: Literal["payment"]
    status: Literal["processing", "succeeded", "failed"]
    amount: MinorUnits
    currency: CurrencyCode
    next_action: NextAction | None
    failure_code: str | None
    failure_message: str | None


class CashierStatus(Resource):
    """Where an order stands on its cashier page, with the payment that started last."""

    object: Literal["cashier_status"]
    state: Literal["open", "paying", "paid", "closed"] = Field(
        description="open: it can be paid; paying: a payment is in flight; paid (refunds "
        "included); closed: closed or expired unpaid"
    )
    payment: CashierPayment | None
    resumed: bool = Field(
        default=False,
        description="Only in the answer to a choice: true when a payment already in flight "
        "is answered instead of a new one",
    )


class Health(Resource):
    status: Literal["ok"]


class Problem(BaseModel):
    """An error (RFC 9457 problem details). ``code`` is stable: program against it, not
    against ``detail``; ``param`` names the field at fault when there is one."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:paycore:problem:order_not_found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(ge=400, le=599)
    detail: str
    code: str = Field(examples=["order_not_found"])
    param: str | None = None
