"""Starting a payment and reading it back (the API side of the payment flow)."""

from __future__ import annotations

import time
from dataclasses import replace

from paycore.api.models import CreatePaymentRequest
from paycore.channels.registry import get_gateway
from paycore.clock import now, now_rfc3339, parse_rfc3339
from paycore.config import get_settings
from paycore.dal.trade_store import TradeStore
from paycore.dal.workflow import start_payment_execution
from paycore.domain.models import Payment
from paycore.domain.status import OrderStatus, PaymentStatus
from paycore.errors import Conflict, NotFound, PaycoreError, ServiceUnavailable
from paycore.ids import has_prefix, new_id
from paycore.services.orders import get_order


def get_payment(store: TradeStore, merchant_id: str, payment_id: str) -> Payment:
    payment = store.get_payment(payment_id) if has_prefix(payment_id, "pay") else None
    if payment is None or payment.merchant_id != merchant_id:
        raise NotFound(f"no payment {payment_id}", code="payment_not_found", param="payment_id")
    return payment


def start_payment(
    store: TradeStore,
    merchant_id: str,
    order_id: str,
    request: CreatePaymentRequest,
    callback_base_url: str,
) -> Payment:
    """Record a payment for the whole order, move the order to ``paying`` and start the
    payment's state machine; then wait briefly for the channel's redirect URL so the
    answer can carry ``next_action``."""
    order = get_order(store, merchant_id, order_id)
    if order.status is not OrderStatus.CREATED:
        raise Conflict(f"order is {order.status.value}", code="order_not_payable")
    if parse_rfc3339(order.expires_at) <= now():
        raise Conflict("order has expired", code="order_expired")
    instrument = request.instruments[0]
    get_gateway(instrument.channel)  # refuses an unknown or disabled channel before any write
    at = now_rfc3339()
    payment = Payment(
        id=new_id("pay"),
        merchant_id=merchant_id,
        order_id=order.id,
        status=PaymentStatus.PROCESSING,
        amount=order.amount,
        currency=order.currency,
        instruments=[{"type": "channel", "channel": instrument.channel, "amount": order.amount}],
        channel=instrument.channel,
        return_url=request.return_url,
        created_at=at,
        updated_at=at,
    )
    paying, payment = store.start_payment(order.start_paying(payment.id, at), payment)
    settings = get_settings()
    try:
        start_payment_execution(
            payment.id,
            {
                "payment_id": payment.id,
                "callback_base_url": callback_base_url,
                "callback_wait_seconds": settings.callback_wait_seconds,
                "query_interval_seconds": settings.channel_query_interval_seconds,
            },
        )
    except PaycoreError:
        # Nothing reached a channel: give the order back so the merchant can retry.
        failed = payment.fail("workflow_unavailable", "the payment could not be started", at)
        store.finish_payment(failed, paying.reopen(payment.id, at), None)
        raise ServiceUnavailable("the payment could not be started; retry") from None
    return _await_next_action(store, payment, settings.payment_action_wait_seconds)


def _await_next_action(store: TradeStore, payment: Payment, wait_seconds: float) -> Payment:
    deadline = time.monotonic() + wait_seconds
    pause = 0.02
    current = payment
    while time.monotonic() < deadline:
        latest = store.get_payment(payment.id)
        if latest is not None:
            current = latest
            if latest.next_action is not None or latest.is_final:
                return latest
        time.sleep(pause)
        pause = min(pause * 2, 0.25)
    return replace(current)
