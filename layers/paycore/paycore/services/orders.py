"""Orders (the trade): create, read, list. Closing is in ``paycore.services.closing``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paycore.clock import in_seconds, now_rfc3339
from paycore.dal.trade_store import TradeStore
from paycore.domain import cashier
from paycore.domain.models import DEFAULT_AUTO_CONFIRM_IN, Order, TradeType
from paycore.domain.status import OrderStatus
from paycore.errors import NotFound
from paycore.ids import has_prefix, new_id

if TYPE_CHECKING:  # the API's request model; the workers that read orders never load it
    from paycore.api.models import CreateOrderRequest


def create_order(
    store: TradeStore, merchant_id: str, request: CreateOrderRequest, public_base_url: str
) -> Order:
    """A new order with its own cashier link under ``public_base_url`` (the API's)."""
    at = now_rfc3339()
    token = cashier.new_token()
    order = Order(
        id=new_id("ord"),
        merchant_id=merchant_id,
        merchant_order_no=request.merchant_order_no,
        amount=request.amount,
        currency=request.currency,
        subject=request.subject,
        status=OrderStatus.CREATED,
        expires_at=in_seconds(request.expires_in),
        created_at=at,
        updated_at=at,
        metadata=dict(request.metadata),
        buyer_id=request.buyer_id,
        trade_type=TradeType(request.trade_type),
        auto_confirm_in=(
            request.auto_confirm_in or DEFAULT_AUTO_CONFIRM_IN
            if request.trade_type == TradeType.GUARANTEED.value
            else None
        ),
        cashier_url=cashier.cashier_url(public_base_url, token),
        return_url=request.return_url,
    )
    store.create_order(order, token)
    return order


def get_order(store: TradeStore, merchant_id: str, order_id: str) -> Order:
    """The merchant's order; another merchant's order does not exist for them (404)."""
    order = store.get_order(order_id) if has_prefix(order_id, "ord") else None
    if order is None or order.merchant_id != merchant_id:
        raise NotFound(f"no order {order_id}", code="order_not_found", param="order_id")
    return order


def list_orders(
    store: TradeStore,
    merchant_id: str,
    *,
    limit: int,
    starting_after: str | None,
    merchant_order_no: str | None,
) -> tuple[list[Order], bool]:
    if merchant_order_no is not None:
        order_id = store.order_id_for_merchant_order_no(merchant_id, merchant_order_no)
        return ([get_order(store, merchant_id, order_id)] if order_id else []), False
    if starting_after is not None:
        try:
            get_order(store, merchant_id, starting_after)
        except NotFound as unknown:  # the cursor names nothing this merchant has
            raise NotFound(unknown.detail, code=unknown.code, param="starting_after") from None
    return store.list_orders(merchant_id, limit, starting_after)
