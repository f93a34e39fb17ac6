"""The buyer's pages: the payment page behind ``pay_url`` and the result page after a choice.

Plain HTML with no scripts and no external assets, so it works offline and in any test
client. Every value that comes from the merchant is escaped.
"""

from __future__ import annotations

from html import escape

from local_runtime.sandbox.currencies import format_amount
from local_runtime.sandbox.orders import CloseReason, Order, TradeStatus

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}"
    ".amount{font-size:2rem;font-weight:600;margin:.5rem 0 1.5rem}"
    "button{font-size:1rem;padding:.6rem 1.4rem;margin-right:.5rem;cursor:pointer}"
    ".banner{background:#fff3cd;padding:.4rem .8rem;border-radius:4px;font-size:.85rem}"
)


def _document(title: str, content: str) -> str:
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_STYLE}</style></head><body>"
        '<p class="banner">Sandbox channel: no real money moves.</p>'
        f"{content}</body></html>\n"
    )


def _status_sentence(order: Order) -> str:
    match order.status:
        case TradeStatus.WAIT_BUYER_PAY:
            return "Waiting for your payment."
        case TradeStatus.SUCCESS:
            return "Paid. Thank you."
        case TradeStatus.DECLINED:
            return "You declined this payment."
        case TradeStatus.CLOSED:
            if order.close_reason is CloseReason.EXPIRED:
                return "This order expired and can no longer be paid."
            return "The merchant closed this order; it can no longer be paid."


def payment_page(order: Order) -> str:
    """The checkout page: what is bought, for how much, and the Pay and Decline buttons."""
    buttons = ""
    if order.status is TradeStatus.WAIT_BUYER_PAY:
        buttons = (
            '<form method="post">'
            '<button type="submit" name="action" value="pay">Pay</button>'
            '<button type="submit" name="action" value="decline">Decline</button>'
            "</form>"
        )
    return _document(
        f"Pay {order.subject}",
        f"<h1>{escape(order.subject)}</h1>"
        f'<p class="amount" id="amount">{escape(format_amount(order.amount, order.currency))}</p>'
        f'<p id="status" data-status="{order.status.value}">{_status_sentence(order)}</p>'
        f"{buttons}"
        f"<p><small>Order {escape(order.out_trade_no)}</small></p>",
    )


def result_page(order: Order) -> str:
    """What the buyer sees after choosing when the merchant gave no return_url."""
    return _document(
        "Payment result",
        f"<h1>{escape(order.subject)}</h1>"
        f'<p class="amount">{escape(format_amount(order.amount, order.currency))}</p>'
        f'<p id="status" data-status="{order.status.value}">{_status_sentence(order)}</p>',
    )


def message_page(title: str, message: str) -> str:
    """An error page for the buyer (unknown link, refused choice)."""
    return _document(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")
