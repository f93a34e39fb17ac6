"""``POST /v1/checkout/sessions``: the parameters of a new Checkout Session, read and checked.

Supported (the rest of Stripe's parameters is refused by name as unsupported):
``mode=payment``, ``line_items[i][price_data][currency|unit_amount|product_data[name|
description|metadata]]`` and ``line_items[i][quantity]``, ``client_reference_id``,
``success_url`` (``{CHECKOUT_SESSION_ID}`` is filled in), ``cancel_url``, ``expires_at``
(30 minutes to 24 hours ahead; 24 hours by default), ``metadata`` (``metadata[simulate]``:
the misbehaviour switches), ``payment_intent_data[metadata|description]``,
``customer_email``, ``locale``, ``submit_type``, ``payment_method_types`` (``card``),
``ui_mode=hosted``, ``currency``, ``expand``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from local_runtime.sandbox.currencies import CURRENCY_EXPONENTS, format_amount
from local_runtime.simulators.common.keys import random_alphanumeric
from local_runtime.simulators.common.switches import InvalidSimulate, Simulate, parse_simulate
from local_runtime.simulators.stripe.errors import StripeError, param_error
from local_runtime.simulators.stripe.params import Params

MAX_AMOUNT = 99_999_999  # Stripe's ceiling for an amount: eight digits in the minor unit
SESSION_MIN_LIFETIME = timedelta(minutes=30)
SESSION_MAX_LIFETIME = timedelta(hours=24)

# Parameters real Stripe takes that the simulator refuses as unsupported (not misspelt).
_SESSION_ELSEWHERE = {
    "adaptive_pricing", "after_expiration", "allow_promotion_codes", "automatic_tax",
    "billing_address_collection", "branding_settings", "consent_collection", "custom_fields",
    "custom_text", "customer", "customer_account", "customer_creation", "customer_update",
    "discounts", "excluded_payment_method_types", "invoice_creation", "name_collection",
    "optional_items", "origin_context", "payment_method_collection",
    "payment_method_configuration", "payment_method_data", "payment_method_options",
    "permissions", "phone_number_collection", "redirect_on_completion", "return_url",
    "saved_payment_method_options", "setup_intent_data", "shipping_address_collection",
    "shipping_options", "subscription_data", "tax_id_collection", "wallet_options",
}  # fmt: skip
_INTENT_ELSEWHERE = {
    "application_fee_amount", "capture_method", "on_behalf_of", "receipt_email",
    "setup_future_usage", "shipping", "statement_descriptor", "statement_descriptor_suffix",
    "transfer_data", "transfer_group",
}  # fmt: skip
_LINE_ITEM_ELSEWHERE = {"adjustable_quantity", "dynamic_tax_rates", "tax_rates"}
_PRICE_DATA_ELSEWHERE = {"product", "recurring", "tax_behavior", "unit_amount_decimal"}
_PRODUCT_DATA_ELSEWHERE = {"images", "tax_code", "unit_label"}


@dataclass(frozen=True)
class SessionRequest:
    """A valid create call: what the session holds, its amount and its switches."""

    amount: int
    currency: str  # lower case, as Stripe writes it
    expires_at: datetime
    switches: Simulate
    client_reference_id: str | None
    subject: str  # what the buyer's page shows
    extra: dict[str, Any]  # the session's own fields, kept with its trade
    expand: list[str]


def read_session_request(params: dict[str, Any], now: datetime) -> SessionRequest:
    p = Params(params, known_elsewhere=_SESSION_ELSEWHERE)
    mode = p.choice("mode", ("payment", "setup", "subscription"), required=True)
    ui_mode = p.choice("ui_mode", ("hosted", "embedded", "custom"))
    reference = p.string("client_reference_id", max_length=200)
    fields: dict[str, Any] = {
        "client_reference_id": reference,
        "success_url": p.url("success_url"),
        "cancel_url": p.url("cancel_url"),
        "customer_email": p.string("customer_email", max_length=800),
        "locale": p.string("locale", max_length=16),
        "submit_type": p.choice("submit_type", ("auto", "book", "donate", "pay", "subscribe")),
    }
    method_types = p.strings("payment_method_types")
    expires_at = p.integer("expires_at")
    currency_param = p.string("currency")
    metadata = p.metadata()
    intent = p.child("payment_intent_data", known_elsewhere=_INTENT_ELSEWHERE)
    fields["payment_intent_metadata"] = intent.metadata() if intent else {}
    fields["payment_intent_description"] = (
        intent.string("description", max_length=1000) if intent else None
    )
    items = [
        _line_item(item)
        for item in p.children("line_items", required=True, known_elsewhere=_LINE_ITEM_ELSEWHERE)
    ]
    expand = p.strings("expand")
    p.done()

    _check_supported(mode, ui_mode, method_types)
    currency, amount = _total(items, currency_param)
    subject = items[0]["name"] + (f" and {len(items) - 1} more" if len(items) > 1 else "")
    return SessionRequest(
        amount=amount,
        currency=currency,
        expires_at=_expiry(expires_at, now),
        switches=_switches(metadata),
        client_reference_id=reference,
        subject=subject,
        extra={
            **fields,
            "object": "checkout.session",
            "metadata": metadata,
            "line_items": items,
            "payment_intent": "pi_" + random_alphanumeric(24),  # shown once the buyer acts
            "payment_method": "pm_" + random_alphanumeric(24),
            "secret_suffix": random_alphanumeric(25),
        },
        expand=expand,
    )


def _check_supported(mode: str | None, ui_mode: str | None, method_types: list[str]) -> None:
    if mode != "payment":
        raise param_error("The local Stripe simulator supports mode=payment only.", "mode")
    if ui_mode not in (None, "hosted"):
        raise param_error("The local Stripe simulator supports ui_mode=hosted only.", "ui_mode")
    for position, kind in enumerate(method_types):
        if kind != "card":
            raise param_error(
                f"The local Stripe simulator supports the payment method type card only, not "
                f"{kind}.",
                f"payment_method_types[{position}]",
            )


def _line_item(item: Params) -> dict[str, Any]:
    price = item.string("price")
    if price is not None:
        raise StripeError(
            400,
            f"No such price: '{price}' (the local Stripe simulator has no Prices; use price_data)",
            code="resource_missing",
            param=item.name("price"),
            saved=False,
        )
    data = item.child("price_data", known_elsewhere=_PRICE_DATA_ELSEWHERE)
    if data is None:
        raise param_error(
            "You must specify either `price` or `price_data` for each line item.",
            item.name("price_data"),
            code="parameter_missing",
        )
    currency = data.required_string("currency").lower()
    if currency.upper() not in CURRENCY_EXPONENTS:
        supported = ", ".join(sorted(code.lower() for code in CURRENCY_EXPONENTS))
        raise param_error(
            f"Invalid currency: {currency}. The local Stripe simulator supports: {supported}.",
            data.name("currency"),
        )
    unit_amount = data.integer("unit_amount", required=True, minimum=0, maximum=MAX_AMOUNT)
    product = data.child("product_data", known_elsewhere=_PRODUCT_DATA_ELSEWHERE)
    if product is None:
        raise param_error(
            "You must specify either `product` or `product_data` when creating a price.",
            data.name("product_data"),
            code="parameter_missing",
        )
    name = product.required_string("name", max_length=250)
    product.string("description", max_length=40_000)
    product.metadata()
    quantity = item.integer("quantity", required=True, minimum=1, maximum=999_999)
    return {
        "id": "li_" + random_alphanumeric(24),
        "name": name,
        "currency": currency,
        "unit_amount": unit_amount,
        "quantity": quantity,
        "price": "price_" + random_alphanumeric(24),
        "product": "prod_" + random_alphanumeric(14),
    }


def _total(items: list[dict[str, Any]], currency_param: str | None) -> tuple[str, int]:
    currencies = {item["currency"] for item in items}
    if len(currencies) > 1:
        raise param_error("All line items must have the same currency.", "line_items")
    currency = currencies.pop()
    if currency_param is not None and currency_param.lower() != currency:
        raise param_error(
            f"currency {currency_param} differs from the line items' {currency}.", "currency"
        )
    amount = sum(item["unit_amount"] * item["quantity"] for item in items)
    if amount < 1:
        raise param_error(
            "The Checkout Session's total amount due must be greater than zero.", "line_items"
        )
    if amount > MAX_AMOUNT:
        raise StripeError(
            400,
            f"Amount must be no more than {format_amount(MAX_AMOUNT, currency.upper())}.",
            code="amount_too_large",
            param="line_items",
            saved=False,
        )
    return currency, amount


def _expiry(expires_at: int | None, now: datetime) -> datetime:
    if expires_at is None:
        return now + SESSION_MAX_LIFETIME
    expiry = datetime.fromtimestamp(expires_at, UTC)
    if not SESSION_MIN_LIFETIME <= expiry - now <= SESSION_MAX_LIFETIME:
        raise param_error(
            "The `expires_at` timestamp must be at least 30 minutes and at most 24 hours from "
            "Checkout Session creation.",
            "expires_at",
        )
    return expiry


def _switches(metadata: dict[str, str]) -> Simulate:
    try:
        return parse_simulate(metadata.get("simulate"))
    except InvalidSimulate as exc:
        raise param_error(
            f"Invalid metadata[simulate] (the simulator's misbehaviour switches): {exc}",
            "metadata[simulate]",
        ) from None
