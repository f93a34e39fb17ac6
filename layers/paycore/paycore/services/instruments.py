"""Internal instruments as merchants manage them: credit and read a buyer's stored balance,
issue and read coupons. (Payments reserve, spend and release them with the item builders of
``paycore.dal.instruments`` inside their own transactions.)

Everything is scoped to the calling merchant: a balance is per merchant, buyer and currency,
and another merchant's coupon does not exist for the caller (404).
"""

from __future__ import annotations

from paycore.api.models import CreateCouponRequest, CreditBalanceRequest
from paycore.clock import now, now_rfc3339, parse_rfc3339
from paycore.dal.instruments import InstrumentStore
from paycore.domain.changes import BalanceCredit, CouponIssue
from paycore.domain.instruments import Balance, Coupon, CouponStatus
from paycore.errors import NotFound, ValidationFailed
from paycore.ids import has_prefix, new_id
from paycore.money import is_supported_currency


def credit_balance(
    store: InstrumentStore, merchant_id: str, buyer_id: str, request: CreditBalanceRequest
) -> Balance:
    """Top up the buyer's available balance; the balance after the credit."""
    credit = BalanceCredit(
        new_id("crd"), merchant_id, buyer_id, request.currency, request.amount, now_rfc3339()
    )
    return store.credit_balance(credit)


def get_balance(store: InstrumentStore, merchant_id: str, buyer_id: str, currency: str) -> Balance:
    """The buyer's balance with this merchant; never credited, it reads as zero."""
    if not is_supported_currency(currency):
        raise ValidationFailed(f"currency {currency} is not supported", param="currency")
    found = store.get_balance(merchant_id, buyer_id, currency)
    return found or Balance(merchant_id=merchant_id, buyer_id=buyer_id, currency=currency)


def issue_coupon(store: InstrumentStore, merchant_id: str, request: CreateCouponRequest) -> Coupon:
    if request.expires_at is not None and parse_rfc3339(request.expires_at) <= now():
        raise ValidationFailed("expires_at: must be in the future", param="expires_at")
    at = now_rfc3339()
    coupon = Coupon(
        id=new_id("cpn"),
        merchant_id=merchant_id,
        buyer_id=request.buyer_id,
        amount=request.amount,
        currency=request.currency,
        status=CouponStatus.AVAILABLE,
        expires_at=request.expires_at,
        created_at=at,
        updated_at=at,
    )
    store.create_coupon(CouponIssue(coupon))
    return coupon


def get_coupon(store: InstrumentStore, merchant_id: str, coupon_id: str) -> Coupon:
    """The merchant's coupon; another merchant's coupon does not exist for them (404)."""
    coupon = store.get_coupon(coupon_id) if has_prefix(coupon_id, "cpn") else None
    if coupon is None or coupon.merchant_id != merchant_id:
        raise NotFound(f"no coupon {coupon_id}", code="coupon_not_found", param="coupon_id")
    return coupon
