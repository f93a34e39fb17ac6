"""A merchant driving the money services directly against moto: orders, payments settled by
the payment steps as a channel outcome would, refunds, credits and coupons."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from paycore.api.models import (
    CreateCouponRequest,
    CreateOrderRequest,
    CreatePaymentRequest,
    CreateRefundRequest,
    CreditBalanceRequest,
)
from paycore.dal.instruments import InstrumentStore
from paycore.dal.trade_store import TradeStore
from paycore.domain.models import Merchant
from paycore.domain.refunds import Refund
from paycore.services import instruments, merchants, orders, payments, refunds
from paycore.services.orchestration import PaymentSteps
from paycore.services.refunds import RefundSteps

BUYER = "buyer-1"
ACCOUNT = "sandbox-primary"
CHANNEL = {"type": "channel", "channel": "sandbox"}
PUBLIC_BASE_URL = "https://api.example.test/live"  # where cashier links point
SUCCEEDED = {"status": "succeeded", "source": "query"}
BASE_URL = "http://127.0.0.1:9"
_numbers = itertools.count(1)


class Shop:
    """One onboarded merchant (``terms``: ``fee_rate_bps``, ``settlement_delay_days``)."""

    def __init__(self, store: TradeStore, name: str = "Shop", **terms: int) -> None:
        self.store = store
        self.merchant: Merchant = merchants.onboard_merchant(store, name, None, **terms).merchant
        self.id = self.merchant.id

    @classmethod
    def existing(cls, store: TradeStore, merchant_id: str) -> Shop:
        """A merchant onboarded elsewhere (e.g. through the API)."""
        shop = cls.__new__(cls)
        merchant = store.get_merchant(merchant_id)
        assert merchant is not None
        shop.store, shop.merchant, shop.id = store, merchant, merchant_id
        return shop

    def order(self, amount: int, currency: str = "CNY", **extra: Any) -> str:
        request = CreateOrderRequest.model_validate(
            {
                "merchant_order_no": f"A-{next(_numbers)}",
                "amount": amount,
                "currency": currency,
                "subject": "Tea",
                "buyer_id": BUYER,
                **extra,
            }
        )
        return orders.create_order(self.store, self.id, request, PUBLIC_BASE_URL).id

    def pay(self, order_id: str, *instrument: dict[str, Any]) -> str:
        """Start a payment; one with a channel part is pinned to the account that takes it
        (what the create step records)."""
        request = CreatePaymentRequest.model_validate({"instruments": list(instrument)})
        payment = payments.start_payment(self.store, self.id, order_id, request, BASE_URL)
        if payment.channel is not None:
            self.store.save_payment(replace(payment, channel_account=ACCOUNT))
        return payment.id

    def settle(self, payment_id: str, outcome: dict[str, Any] | None = None) -> None:
        PaymentSteps(self.store).settle(payment_id, outcome or SUCCEEDED)

    def paid(self, amount: int, currency: str = "CNY", **extra: Any) -> tuple[str, str]:
        """An order paid through the channel: (order id, payment id)."""
        order_id = self.order(amount, currency, **extra)
        payment_id = self.pay(order_id, CHANNEL)
        self.settle(payment_id)
        return order_id, payment_id

    def refund(self, order_id: str, amount: int) -> Refund:
        request = CreateRefundRequest(amount=amount)
        return refunds.create_refund(self.store, self.id, order_id, request, BASE_URL)

    def finish_refund(self, refund_id: str, status: str = "succeeded") -> None:
        outcome: dict[str, Any] = {"status": status, "source": "query"}
        if status == "failed":
            outcome["failure_code"] = "refund_rejected"
        RefundSteps(self.store).settle_refund(refund_id, outcome)

    def refunded(self, order_id: str, amount: int) -> Refund:
        """A refund made and, for a channel part, succeeded at the channel."""
        refund = self.refund(order_id, amount)
        if not refund.is_final:
            self.finish_refund(refund.id)
        return refund

    def credit(self, amount: int, currency: str = "CNY") -> None:
        request = CreditBalanceRequest.model_validate({"amount": amount, "currency": currency})
        instruments.credit_balance(InstrumentStore(self.store.table), self.id, BUYER, request)

    def coupon(self, amount: int, currency: str = "CNY") -> str:
        request = CreateCouponRequest.model_validate(
            {"buyer_id": BUYER, "amount": amount, "currency": currency}
        )
        return instruments.issue_coupon(InstrumentStore(self.store.table), self.id, request).id
