"""The buyer's side of a simulator: the payment page and the buyer's choice.

A channel app routes its own buyer URL (Alipay's cashier, WeChat Pay's ``/scan?code_url=``,
Stripe's checkout page) to these helpers, keyed by the trade's ``pay_token``:

- ``buyer_page(book, pay_token, channel=...)`` for ``GET``: the merchant's subject, the amount
  in the currency's units (``19.99 CNY``, ``1,500 JPY``) and Pay / Decline buttons (a form
  posting ``action``); once the trade is final the page says so, without buttons.
- ``buyer_choice(request, book, pay_token, channel=..., ...)`` for ``POST`` with
  ``{"action": "pay" | "decline"}`` as JSON (answered ``200 {"status", "out_trade_no"}`` or a
  JSON error ``{"code", "message"}``) or as a form (answered ``303`` to the return URL when the
  channel gives one, else a result page; an error is an HTML page with its HTTP status).
  Repeating the choice already made is harmless; ``on_change(trade)`` runs only when the
  trade's status changed, and is where the channel notifies (unless ``query_only``).

Plain HTML, no scripts, no external assets; every merchant value is escaped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from html import escape

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from local_runtime.sandbox.app import html_response, json_response
from local_runtime.sandbox.currencies import format_amount
from local_runtime.simulators.common.trades import (
    BuyerAction,
    CloseReason,
    Trade,
    TradeBook,
    TradeError,
    TradeStatus,
)

__all__ = [
    "buyer_choice",
    "buyer_page",
    "html_response",
    "json_response",
    "message_page",
    "payment_page",
    "result_page",
]

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}"
    ".amount{font-size:2rem;font-weight:600;margin:.5rem 0 1.5rem}"
    "button{font-size:1rem;padding:.6rem 1.4rem;margin-right:.5rem;cursor:pointer}"
    ".banner{background:#fff3cd;padding:.4rem .8rem;border-radius:4px;font-size:.85rem}"
)


def _document(channel: str, title: str, content: str) -> str:
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_STYLE}</style></head><body>"
        f'<p class="banner">{escape(channel)} simulator: no real money moves.</p>'
        f"{content}</body></html>\n"
    )


def _status_sentence(trade: Trade) -> str:
    match trade.status:
        case TradeStatus.WAIT_BUYER_PAY:
            return "Waiting for your payment."
        case TradeStatus.SUCCESS:
            return "Paid. Thank you."
        case TradeStatus.DECLINED:
            return "You declined this payment."
        case TradeStatus.CLOSED:
            if trade.close_reason is CloseReason.EXPIRED:
                return "This payment expired and can no longer be paid."
            return "The merchant closed this payment; it can no longer be paid."


def _summary(trade: Trade) -> str:
    return (
        f"<h1>{escape(trade.subject)}</h1>"
        f'<p class="amount" id="amount">{escape(format_amount(trade.amount, trade.currency))}</p>'
        f'<p id="status" data-status="{trade.status.value}">{_status_sentence(trade)}</p>'
    )


def payment_page(trade: Trade, *, channel: str, action_url: str | None = None) -> str:
    """What is bought, for how much, and (while it waits) the Pay and Decline buttons. The
    form posts to ``action_url``, or to the page's own URL when None."""
    buttons = ""
    if trade.status is TradeStatus.WAIT_BUYER_PAY:
        action = f' action="{escape(action_url)}"' if action_url is not None else ""
        buttons = (
            f'<form method="post"{action}>'
            '<button type="submit" name="action" value="pay">Pay</button>'
            '<button type="submit" name="action" value="decline">Decline</button>'
            "</form>"
        )
    return _document(
        channel,
        f"Pay {trade.subject}",
        f"{_summary(trade)}{buttons}<p><small>Order {escape(trade.out_trade_no)}</small></p>",
    )


def result_page(trade: Trade, *, channel: str) -> str:
    """What the buyer sees after choosing when there is no return URL."""
    return _document(channel, "Payment result", _summary(trade))


def message_page(title: str, message: str, *, channel: str) -> str:
    """An error page for the buyer (unknown link, refused choice)."""
    return _document(channel, title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")


def buyer_page(
    book: TradeBook, pay_token: str, *, channel: str, action_url: str | None = None
) -> Response:
    """``GET`` of the buyer's page: the payment page, or 404 for an unknown token."""
    try:
        trade = book.get_by_token(pay_token)
    except TradeError as exc:
        page = message_page("Payment link not found", exc.message, channel=channel)
        return html_response(page, exc.http_status)
    return html_response(payment_page(trade, channel=channel, action_url=action_url))


def buyer_choice(
    request: Request,
    book: TradeBook,
    pay_token: str,
    *,
    channel: str,
    return_url: Callable[[Trade], str | None] | None = None,
    on_change: Callable[[Trade], None] | None = None,
) -> Response:
    """``POST`` of the buyer's choice: JSON in, JSON out; a form in, a 303 or a page out.

    ``return_url(trade)`` (after the choice) says where a form post is sent back to, if
    anywhere; ``on_change(trade)`` runs when the choice changed the trade's status.
    """
    wants_json = request.mimetype == "application/json"
    try:
        trade, changed = book.act(pay_token, _buyer_action(request, wants_json))
    except (TradeError, _InvalidAction) as exc:
        return _refusal(exc, wants_json, channel)
    if changed and on_change is not None:
        on_change(trade)
    if wants_json:
        return json_response({"status": trade.status.value, "out_trade_no": trade.out_trade_no})
    target = return_url(trade) if return_url is not None else None
    if target:
        return redirect(target, 303)
    return html_response(result_page(trade, channel=channel))


class _InvalidAction(ValueError):
    pass


def _refusal(exc: TradeError | _InvalidAction, wants_json: bool, channel: str) -> Response:
    """The answer to a choice that was refused: JSON for JSON, else an HTML page."""
    if isinstance(exc, TradeError):
        status = exc.http_status
        body = {"code": exc.code.value, "message": exc.message}
        if exc.trade is not None:
            body["status"] = exc.trade.status.value
    else:
        status = 400
        body = {"code": "INVALID_PARAMETER", "message": str(exc), "param": "action"}
    if wants_json:
        return json_response(body, status)
    return html_response(
        message_page("Payment not possible", body["message"], channel=channel), status
    )


def _buyer_action(request: Request, wants_json: bool) -> BuyerAction:
    value: object = None
    if not wants_json:
        value = request.form.get("action")
    else:
        try:
            payload = json.loads(request.get_data(cache=True))
        except (ValueError, UnicodeDecodeError):
            payload = None
        if isinstance(payload, dict):
            value = payload.get("action")
    if value not in (BuyerAction.PAY.value, BuyerAction.DECLINE.value):
        raise _InvalidAction("action must be 'pay' or 'decline'")
    return BuyerAction(value)
