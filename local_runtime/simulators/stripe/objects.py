"""The Stripe objects as the API shows them, rendered from the trade book.

A Checkout Session is one trade of the book, keyed by its session id; the channel's own
fields from the create call (line items, URLs, metadata, the PaymentIntent's id made ahead)
ride in ``trade.extra``. Behind a paid session there is a PaymentIntent and its Charge (the
trade's ``transaction_id``); an orphan (``POST /_sim/orphans``) is a bare Charge. Refunds are
the book's refunds, keyed by their ``re_`` id. Balance transactions are the statement lines.

Amounts are integers in the currency's minor unit, currencies lower case, times unix seconds.
Objects carry the fields the SDK's typed classes declare that matter here; the rest of
Stripe's long tail (tax, shipping, consent, ...) is present as Stripe shows it when unused.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, time, timedelta
from typing import Any

from local_runtime.simulators.common.trades import (
    Refund,
    RefundStatus,
    StatementLine,
    StatementLineKind,
    Trade,
    TradeStatus,
)

SESSION = "checkout.session"
API_VERSION = "2026-10-28.endive"  # what the pinned SDK (stripe 16.1.0) sends by default
AVAILABLE_AFTER_DAYS = 2  # card funds become available two days after the charge (T+2)
FEE_DESCRIPTION = "Stripe processing fees"


def timestamp(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def derived_id(prefix: str, source: str) -> str:
    """A stable id derived from another one (a balance transaction's from its charge)."""
    return prefix + hashlib.sha256(source.encode()).hexdigest()[:24]


def is_session(trade: Trade) -> bool:
    return trade.extra.get("object") == SESSION


def list_object(data: list[dict[str, Any]], url: str, *, has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


# -- Checkout Session ---------------------------------------------------------------------------


def session_status(trade: Trade, now: datetime) -> str:
    """``open``, ``complete`` or ``expired``. A declined buyer leaves the session open (as a
    declined card does at Stripe) until it expires or the merchant expires it."""
    if trade.status is TradeStatus.SUCCESS:
        return "complete"
    if trade.status is TradeStatus.CLOSED or now >= trade.expires_at:
        return "expired"
    return "open"


def expired_at(trade: Trade) -> datetime | None:
    """When a session that is expired now expired (a declined one at its expires_at)."""
    if trade.status is TradeStatus.CLOSED:
        return trade.closed_at
    if trade.status is TradeStatus.DECLINED:
        return trade.expires_at
    return None


def buyer_acted(trade: Trade) -> datetime | None:
    """When the PaymentIntent came to be: the buyer's Pay or decline (None before)."""
    return trade.paid_at or trade.declined_at


def checkout_session(trade: Trade, now: datetime, base_url: str) -> dict[str, Any]:
    extra = trade.extra
    status = session_status(trade, now)
    paid = trade.status is TradeStatus.SUCCESS
    customer_details: dict[str, Any] | None = None
    if paid or trade.declined_at is not None:
        customer_details = {
            "address": None,
            "email": extra.get("customer_email"),
            "name": None,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        }
    return {
        "id": trade.out_trade_no,
        "object": SESSION,
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": trade.amount,
        "amount_total": trade.amount,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": extra.get("cancel_url"),
        "client_reference_id": extra.get("client_reference_id"),
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": timestamp(trade.created_at),
        "currency": trade.currency.lower(),
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": None,
        "customer_creation": "if_required",
        "customer_details": customer_details,
        "customer_email": extra.get("customer_email"),
        "discounts": [],
        "expires_at": timestamp(trade.expires_at),
        "invoice": None,
        "invoice_creation": {"enabled": False, "invoice_data": None},
        "livemode": False,
        "locale": extra.get("locale"),
        "metadata": dict(extra.get("metadata", {})),
        "mode": "payment",
        "payment_intent": extra["payment_intent"] if buyer_acted(trade) else None,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "payment_status": "paid" if paid else "unpaid",
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": status,
        "submit_type": extra.get("submit_type"),
        "subscription": None,
        "success_url": extra.get("success_url"),
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": f"{base_url}/c/pay/{trade.out_trade_no}" if status == "open" else None,
    }


def line_items(trade: Trade) -> dict[str, Any]:
    data = []
    created = timestamp(trade.created_at)
    for item in trade.extra.get("line_items", []):
        total = item["unit_amount"] * item["quantity"]
        data.append(
            {
                "id": item["id"],
                "object": "item",
                "amount_discount": 0,
                "amount_subtotal": total,
                "amount_tax": 0,
                "amount_total": total,
                "currency": item["currency"],
                "description": item["name"],
                "price": {
                    "id": item["price"],
                    "object": "price",
                    "active": False,
                    "billing_scheme": "per_unit",
                    "created": created,
                    "currency": item["currency"],
                    "custom_unit_amount": None,
                    "livemode": False,
                    "lookup_key": None,
                    "metadata": {},
                    "nickname": None,
                    "product": item["product"],
                    "recurring": None,
                    "tax_behavior": "unspecified",
                    "tiers_mode": None,
                    "transform_quantity": None,
                    "type": "one_time",
                    "unit_amount": item["unit_amount"],
                    "unit_amount_decimal": str(item["unit_amount"]),
                },
                "quantity": item["quantity"],
            }
        )
    return list_object(data, f"/v1/checkout/sessions/{trade.out_trade_no}/line_items")


# -- PaymentIntent and Charge -------------------------------------------------------------------

_DECLINE = {
    "type": "card_error",
    "code": "card_declined",
    "decline_code": "generic_decline",
    "message": "Your card was declined.",
}


def payment_intent(trade: Trade, now: datetime, *, stage: str | None = None) -> dict[str, Any]:
    """The session's PaymentIntent as it is now, or at ``stage`` ``"created"`` (what the
    ``payment_intent.created`` event shows: not yet confirmed). Only for a session the
    buyer acted on."""
    extra = trade.extra
    acted = buyer_acted(trade)
    assert acted is not None, "a PaymentIntent exists once the buyer acted"
    status, error, latest_charge = "requires_payment_method", None, None
    canceled_at, cancellation_reason = None, None
    if stage is None and trade.status is TradeStatus.SUCCESS:
        status, latest_charge = "succeeded", trade.transaction_id
    elif stage is None:
        error = {**_DECLINE, "payment_method": _payment_method(extra)}
        if session_status(trade, now) == "expired":  # Checkout cancels it when it expires
            status, cancellation_reason = "canceled", "automatic"
            canceled_at = timestamp(expired_at(trade))
    succeeded = status == "succeeded"
    return {
        "id": extra["payment_intent"],
        "object": "payment_intent",
        "amount": trade.amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": trade.amount if succeeded else 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": canceled_at,
        "cancellation_reason": cancellation_reason,
        "capture_method": "automatic_async",
        "client_secret": f"{extra['payment_intent']}_secret_{extra['secret_suffix']}",
        "confirmation_method": "automatic",
        "created": timestamp(acted),
        "currency": trade.currency.lower(),
        "customer": None,
        "description": extra.get("payment_intent_description"),
        "last_payment_error": error,
        "latest_charge": latest_charge,
        "livemode": False,
        "metadata": dict(extra.get("payment_intent_metadata", {})),
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": _payment_method(extra) if stage is None else None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def _payment_method(extra: dict[str, Any]) -> str | None:
    return extra.get("payment_method")


def amount_refunded(refunds: list[Refund]) -> int:
    """What a charge shows refunded: every refund that has not failed (pending ones too)."""
    return sum(refund.amount for refund in refunds if refund.status is not RefundStatus.FAILED)


def charge(trade: Trade, refunds: list[Refund]) -> dict[str, Any]:
    """The successful Charge of a paid trade (a session's, or an orphan's bare charge)."""
    assert trade.transaction_id is not None
    assert trade.paid_at is not None
    extra = trade.extra
    refunded = amount_refunded(refunds)
    return {
        "id": trade.transaction_id,
        "object": "charge",
        "amount": trade.amount,
        "amount_captured": trade.amount,
        "amount_refunded": refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": derived_id("txn_", trade.transaction_id),
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": extra.get("customer_email"),
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "calculated_statement_descriptor": "PAYCORE SIMULATOR",
        "captured": True,
        "created": timestamp(trade.paid_at),
        "currency": trade.currency.lower(),
        "customer": None,
        "description": extra.get("payment_intent_description"),
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": extra.get("payment_intent"),
        "payment_method": extra.get("payment_method"),
        "payment_method_details": {
            "card": {
                "amount_authorized": trade.amount,
                "brand": "visa",
                "checks": {
                    "address_line1_check": None,
                    "address_postal_code_check": None,
                    "cvc_check": "pass",
                },
                "country": "US",
                "exp_month": 12,
                "exp_year": trade.paid_at.year + 5,
                "fingerprint": derived_id("", trade.account)[:16],
                "funding": "credit",
                "last4": "4242",
                "network": "visa",
                "three_d_secure": None,
                "wallet": None,
            },
            "type": "card",
        },
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": refunded == trade.amount,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


# -- Refund -------------------------------------------------------------------------------------

_REFUND_STATUS = {
    RefundStatus.PROCESSING: "pending",
    RefundStatus.SUCCESS: "succeeded",
    RefundStatus.FAILED: "failed",
}


def refund(item: Refund, *, status: str | None = None) -> dict[str, Any]:
    """The Refund as it is now, or as it was while ``status`` (``"pending"``)."""
    shown = status or _REFUND_STATUS[item.status]
    succeeded, failed = shown == "succeeded", shown == "failed"
    return {
        "id": item.out_refund_no,
        "object": "refund",
        "amount": item.amount,
        "balance_transaction": derived_id("txn_", item.out_refund_no) if succeeded else None,
        "charge": item.extra["charge"],
        "created": timestamp(item.created_at),
        "currency": item.currency.lower(),
        "destination_details": {
            "card": {
                "reference": None,
                "reference_status": "available" if succeeded else "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "failure_balance_transaction": None,
        "failure_reason": "declined" if failed else None,
        "metadata": dict(item.extra.get("metadata", {})),
        "payment_intent": item.extra.get("payment_intent"),
        "pending_reason": None,
        "reason": item.extra.get("reason"),
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": shown,
        "transfer_reversal": None,
    }


# -- Balance transactions (the statement) -------------------------------------------------------


def fee_of(amount: int, fee_rate_bps: int) -> int:
    """Stripe's processing fee on a charge of ``amount``: ``amount * rate``, half up."""
    return (amount * fee_rate_bps + 5_000) // 10_000 if amount > 0 else 0


def available_on(moment: datetime) -> datetime:
    """Midnight UTC, ``AVAILABLE_AFTER_DAYS`` after the day of ``moment``."""
    day = moment.astimezone(UTC).date() + timedelta(days=AVAILABLE_AFTER_DAYS)
    return datetime.combine(day, time(0), tzinfo=UTC)


def balance_transaction(line: StatementLine, fee_rate_bps: int, now: datetime) -> dict[str, Any]:
    """A statement line as Stripe's balance transaction: a ``charge`` (gross ``amount``,
    ``fee``, ``net``) or a ``refund`` (negative, no fee: Stripe keeps the charge's fee).

    ``statement_status`` shows as the lower-cased ``status`` (e.g. ``closed``) in place of
    Stripe's ``available``/``pending``; the statement switches act on charge lines only.
    """
    trade, paying = line.trade, line.kind is StatementLineKind.PAYMENT
    if paying:
        assert trade.transaction_id is not None
        source, amount = trade.transaction_id, line.amount
        fee, kind = fee_of(amount, fee_rate_bps), "charge"
        description = trade.extra.get("payment_intent_description")
    else:
        assert line.refund is not None
        source, amount, fee, kind = line.refund.out_refund_no, -line.amount, 0, "refund"
        description = None
    available = available_on(line.occurred_at)
    status = "available" if now >= available else "pending"
    if line.status != TradeStatus.SUCCESS.value:
        status = line.status.lower()
    fee_details = []
    if fee:
        fee_details.append(
            {
                "amount": fee,
                "application": None,
                "currency": line.currency.lower(),
                "description": FEE_DESCRIPTION,
                "type": "stripe_fee",
            }
        )
    return {
        "id": derived_id("txn_", source),
        "object": "balance_transaction",
        "amount": amount,
        "available_on": timestamp(available),
        "balance_type": "payments",
        "created": timestamp(line.occurred_at),
        "currency": line.currency.lower(),
        "description": description,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": fee_details,
        "net": amount - fee,
        "reporting_category": kind,
        "source": source,
        "status": status,
        "type": kind,
    }
