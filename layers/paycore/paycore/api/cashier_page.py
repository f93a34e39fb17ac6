"""The hosted cashier's HTML: the buyer's page of one order, in Chinese (zh-CN) or English.

Server-rendered, self-contained and strict: the styles and the one script are inline under a
per-response CSP nonce, the QR code is an SVG drawn here (``segno``, imported only when a page
shows one), and nothing is fetched from anywhere but this API (``connect-src 'self'``). The
page keeps its link out of every Referer it could send (``Referrer-Policy: no-referrer``: the
link is the credential), cannot be framed, and is never cached. Every value that comes from the
merchant (name, subject) or a channel is escaped.

The script does three things: it posts the buyer's choice as JSON (a form never could: the
route reads JSON only, see routes/cashier.py on CSRF), follows the answer (a redirect to the
channel, or the page again to show a QR code or an outcome), and, while a payment is in
flight, polls the status route until it ends, then returns the buyer to the merchant's
``return_url`` or shows the outcome.
"""

# Chinese text is written with Chinese (full-width) punctuation, which ruff takes for a typo.
# ruff: noqa: RUF001

from __future__ import annotations

import json
import secrets
from html import escape
from typing import Any, Literal

from paycore.money import CURRENCY_EXPONENTS, to_major_units
from paycore.services.cashier import CashierState, CashierView

Language = Literal["zh-CN", "en"]
LANGUAGES: tuple[Language, ...] = ("zh-CN", "en")

_SYMBOLS = {
    "CNY": "¥",
    "JPY": "¥",
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "HKD": "HK$",
    "SGD": "S$",
    "AUD": "A$",
    "CAD": "CA$",
    "CHF": "CHF ",
    "KRW": "₩",
}

_CHANNEL_NAMES: dict[str, dict[Language, str]] = {
    "sandbox": {"en": "Sandbox", "zh-CN": "沙箱"},
    "alipay": {"en": "Alipay", "zh-CN": "支付宝"},
    "wechatpay": {"en": "WeChat Pay", "zh-CN": "微信支付"},
    "stripe": {"en": "card (Stripe)", "zh-CN": "银行卡（Stripe）"},
}

# The app a buyer scans a channel's QR code with.
_APP_NAMES: dict[str, dict[Language, str]] = {
    "wechatpay": {"en": "WeChat", "zh-CN": "微信"},
    "alipay": {"en": "Alipay", "zh-CN": "支付宝"},
}

_TEXT: dict[str, dict[Language, str]] = {
    "title": {"en": "Pay {merchant}", "zh-CN": "向{merchant}付款"},
    "amount_due": {"en": "Amount due", "zh-CN": "应付金额"},
    "choose": {"en": "Choose how to pay", "zh-CN": "选择支付方式"},
    "pay_with": {"en": "Pay with {channel}", "zh-CN": "使用{channel}支付"},
    "use_balance": {
        "en": "Use my balance ({available} available)",
        "zh-CN": "使用余额（可用 {available}）",
    },
    "coupons": {"en": "Coupon", "zh-CN": "优惠券"},
    "no_coupon": {"en": "No coupon", "zh-CN": "不使用优惠券"},
    "coupon": {"en": "{amount} coupon", "zh-CN": "{amount} 优惠券"},
    "coupon_until": {
        "en": "{amount} coupon, until {date}",
        "zh-CN": "{amount} 优惠券，{date} 前有效",
    },
    "rest": {"en": "To pay with a channel: {amount}", "zh-CN": "还需通过支付渠道支付：{amount}"},
    "pay_internal": {"en": "Pay with balance and coupon", "zh-CN": "使用余额和优惠券支付"},
    "no_channel": {
        "en": "No way to pay is available for this order right now.",
        "zh-CN": "此订单暂时没有可用的支付方式。",
    },
    "failed": {
        "en": "Your last payment did not go through: {reason} You can pay again.",
        "zh-CN": "上次支付未成功：{reason}您可以重新支付。",
    },
    "continue": {"en": "Continue to {channel}", "zh-CN": "前往{channel}继续支付"},
    "scan": {
        "en": "Scan this code with {channel} to pay.",
        "zh-CN": "请使用{channel}扫描二维码完成支付。",
    },
    "qr_title": {"en": "Payment QR code", "zh-CN": "支付二维码"},
    "waiting": {"en": "Waiting for your payment…", "zh-CN": "正在等待支付结果…"},
    "preparing": {"en": "Preparing your payment…", "zh-CN": "正在准备支付…"},
    "paid": {"en": "Paid. Thank you!", "zh-CN": "支付成功，谢谢！"},
    "refunded": {"en": "This order was paid and refunded.", "zh-CN": "此订单已支付并已退款。"},
    "returning": {"en": "Taking you back to {merchant}…", "zh-CN": "正在返回{merchant}…"},
    "back": {"en": "Back to {merchant}", "zh-CN": "返回{merchant}"},
    "closed": {
        "en": "This order is closed and can no longer be paid.",
        "zh-CN": "此订单已关闭，无法再支付。",
    },
    "expired": {
        "en": "This order has expired and can no longer be paid.",
        "zh-CN": "此订单已过期，无法再支付。",
    },
    "noscript": {
        "en": "This page needs JavaScript to take your payment.",
        "zh-CN": "此页面需要启用 JavaScript 才能完成支付。",
    },
    "other_language": {"en": "中文", "zh-CN": "English"},
    "not_found_title": {"en": "Payment link not found", "zh-CN": "支付链接无效"},
    "not_found": {
        "en": "This payment link is not valid. Ask the merchant for a new one.",
        "zh-CN": "此支付链接无效，请向商户索取新的链接。",
    },
    "unavailable_title": {"en": "Please try again", "zh-CN": "请稍后再试"},
    "unavailable": {
        "en": "The cashier cannot answer right now. Please reload this page in a moment.",
        "zh-CN": "收银台暂时无法响应，请稍后刷新此页面。",
    },
    "bad_request_title": {"en": "Bad request", "zh-CN": "请求无效"},
    "bad_request": {"en": "This request cannot be answered.", "zh-CN": "无法处理此请求。"},
    # What the script says when a choice is refused (by problem ``code``) or cannot be sent.
    "error.insufficient_balance": {
        "en": "Your balance is no longer enough. Please choose again.",
        "zh-CN": "余额已不足，请重新选择。",
    },
    "error.coupon_unavailable": {
        "en": "This coupon can no longer be used. Please choose again.",
        "zh-CN": "此优惠券已无法使用，请重新选择。",
    },
    "error.unsupported_channel": {
        "en": "This way to pay is not available. Please choose another.",
        "zh-CN": "此支付方式不可用，请选择其他方式。",
    },
    "error.no_channel_account": {
        "en": "This way to pay is not available. Please choose another.",
        "zh-CN": "此支付方式不可用，请选择其他方式。",
    },
    "error.instrument_amounts_mismatch": {
        "en": "Please choose a way to pay the rest.",
        "zh-CN": "请选择支付剩余金额的方式。",
    },
    "error.default": {
        "en": "The payment could not be started. Please try again.",
        "zh-CN": "无法发起支付，请重试。",
    },
    "error.network": {
        "en": "The cashier cannot be reached. Check your connection and try again.",
        "zh-CN": "无法连接收银台，请检查网络后重试。",
    },
}

# Why a payment failed (its failure_code), told to the buyer.
_FAILURES: dict[str, dict[Language, str]] = {
    "buyer_declined": {"en": "you declined it.", "zh-CN": "您取消了付款。"},
    "payment_declined": {"en": "it was declined.", "zh-CN": "付款被拒绝。"},
    "channel_order_closed": {"en": "it was closed.", "zh-CN": "支付单已关闭。"},
    "channel_unavailable": {
        "en": "the payment service was unavailable.",
        "zh-CN": "支付服务暂时不可用。",
    },
    "workflow_unavailable": {"en": "it could not be started.", "zh-CN": "支付未能发起。"},
}
_FAILED_DEFAULT: dict[Language, str] = {"en": "it failed.", "zh-CN": "支付失败。"}

_STYLE = (
    "body{font-family:system-ui,-apple-system,'PingFang SC','Noto Sans CJK SC',"
    "'WenQuanYi Micro Hei',sans-serif;max-width:30rem;margin:2rem auto;padding:0 1rem;"
    "color:#1d1d1f;background:#f6f7f9}"
    "main{background:#fff;border-radius:12px;padding:1.5rem;box-shadow:0 1px 4px #0002}"
    "header p{margin:.2rem 0;color:#555}"
    "#merchant{font-weight:600;color:#1d1d1f}"
    "#amount{font-size:2.2rem;font-weight:700;margin:.6rem 0 1rem}"
    "#amount small{font-size:1rem;color:#666;font-weight:400}"
    "fieldset{border:1px solid #ddd;border-radius:8px;margin:0 0 1rem;padding:.6rem .8rem}"
    "label{display:block;margin:.3rem 0;cursor:pointer}"
    "button,.button{display:block;width:100%;box-sizing:border-box;font-size:1.05rem;"
    "padding:.75rem;margin:.5rem 0;border:0;border-radius:8px;background:#1565c0;color:#fff;"
    "text-align:center;text-decoration:none;cursor:pointer}"
    "button:disabled{background:#9bb}"
    ".notice{background:#fdecea;color:#8a1c1c;padding:.6rem .8rem;border-radius:8px}"
    ".ok{color:#1b7f3b;font-size:1.3rem;font-weight:600}"
    "#qr{text-align:center}#qr svg{background:#fff;padding:8px}"
    ".code{word-break:break-all;font-size:.75rem;color:#888}"
    "nav{text-align:right;font-size:.85rem}"
    "[hidden]{display:none!important}"
)

# The page's script (see the module docstring). ``cfg`` is the page's JSON data block.
_SCRIPT = """(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("cashier-data").textContent);
  var base = location.pathname.replace(/\\/+$/, "");
  var errorBox = document.getElementById("error");

  function page(back) {
    var query = [];
    if (cfg.lang) { query.push("lang=" + encodeURIComponent(cfg.lang)); }
    if (back) { query.push("back=1"); }
    return base + (query.length ? "?" + query.join("&") : "");
  }
  function money(minor) {
    var e = cfg.money.exponent, digits = String(minor);
    while (digits.length <= e) { digits = "0" + digits; }
    var whole = e ? digits.slice(0, -e) : digits;
    var grouped = whole.replace(/\\B(?=(\\d{3})+(?!\\d))/g, ",");
    return cfg.money.symbol + grouped + (e ? "." + digits.slice(-e) : "");
  }
  function say(message) {
    if (errorBox) { errorBox.textContent = message || ""; errorBox.hidden = !message; }
  }
  function toMerchant() { location.assign(cfg.return_url); }
  function follow(answer) {
    var p = answer.payment;
    if (answer.state === "paying" && p && p.next_action && p.next_action.type === "redirect") {
      location.assign(p.next_action.url);
    } else if (answer.state === "paid" && cfg.return_url) {
      toMerchant();
    } else {
      location.replace(page(false));
    }
  }

  var form = document.getElementById("choose");
  if (form) {
    var balance = document.getElementById("use-balance");
    var rest = document.getElementById("rest");
    var buttons = form.querySelectorAll("button");
    var coupon = function () {
      var picked = form.querySelector("input[name=coupon]:checked");
      return picked && picked.value ? picked : null;
    };
    var update = function () {
      var left = cfg.amount, picked = coupon();
      if (picked) { left -= Math.min(Number(picked.getAttribute("data-amount")), left); }
      if (balance && balance.checked) { left -= Math.min(cfg.balance, left); }
      if (rest) { rest.textContent = cfg.messages.rest.replace("{amount}", money(left)); }
      buttons.forEach(function (button) {
        var internal = button.value === "";
        button.hidden = internal ? left > 0 : left === 0;
      });
    };
    var enable = function (on) { buttons.forEach(function (b) { b.disabled = !on; }); };
    form.addEventListener("change", update);
    update();
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = event.submitter, picked = coupon();
      var body = {
        channel: button && button.value ? button.value : null,
        use_balance: Boolean(balance && balance.checked),
        coupon_id: picked ? picked.value : null
      };
      if (cfg.lang) { body.lang = cfg.lang; }
      enable(false);
      say("");
      fetch(base + "/payments", {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify(body),
        credentials: "omit",
        cache: "no-store"
      }).then(function (answer) {
        return answer.json().then(function (json) { return {ok: answer.ok, body: json}; });
      }).then(function (result) {
        if (result.ok) { follow(result.body); return; }
        var code = result.body && result.body.code;
        if (code === "order_not_payable" || code === "order_expired") {
          location.replace(page(false));
          return;
        }
        say(cfg.messages["error." + code] || cfg.messages["error.default"]);
        enable(true);
      }).catch(function () {
        say(cfg.messages["error.network"]);
        enable(true);
      });
    });
  }

  function poll() {
    fetch(base + "/status", {credentials: "omit", cache: "no-store"}).then(function (answer) {
      return answer.ok ? answer.json() : null;
    }).then(function (now) {
      if (!now) { later(); return; }
      var p = now.payment;
      if (now.state === "paid" && cfg.return_url) { toMerchant(); return; }
      if (now.state !== "paying" || !p || p.id !== cfg.payment_id ||
          (p.next_action && !cfg.has_action)) {
        location.replace(page(false));
        return;
      }
      later();
    }).catch(later);
  }
  function later() { setTimeout(poll, 1000); }

  if (cfg.state === "paying") { later(); }
  if (cfg.state === "paid" && cfg.back && cfg.return_url) { setTimeout(toMerchant, 1500); }
})();
"""


def negotiate(accept_language: str | None, override: str | None) -> tuple[Language, bool]:
    """The page's language and whether ``lang`` chose it: ``lang`` when it names one we
    speak (``zh``/``zh-CN``/``en``, any case), else the buyer's most preferred language of
    ``Accept-Language`` that we speak (any ``zh`` is Chinese), else English."""
    chosen = _language(override or "")
    if chosen is not None:
        return chosen, True
    ranked: list[tuple[float, int, Language]] = []
    for position, part in enumerate((accept_language or "")[:1024].split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().lower().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        language = _language(tag)
        if language is not None and weight > 0:
            ranked.append((-weight, position, language))
    return (min(ranked)[2] if ranked else "en"), False


def _language(tag: str) -> Language | None:
    primary = tag.strip().lower().split("-")[0]
    if primary == "zh":
        return "zh-CN"
    if primary == "en":
        return "en"
    return None


def text(key: str, language: Language, **values: str) -> str:
    return _TEXT[key][language].format(**values)


def money(amount: int, currency: str) -> str:
    """``¥19.99`` (CNY), ``¥1,500`` (JPY, no minor unit), ``$1,234.50`` (USD)."""
    whole, _, fraction = to_major_units(amount, currency).partition(".")
    grouped = f"{int(whole):,}"
    return f"{_SYMBOLS.get(currency, currency + ' ')}{grouped}{'.' + fraction if fraction else ''}"


def channel_name(channel: str, language: Language) -> str:
    return _CHANNEL_NAMES.get(channel, {}).get(language, channel)


def _pay_with(name: str, language: Language) -> str:
    """``Pay with Alipay``, ``使用支付宝支付``; ``使用微信支付``, not ``使用微信支付支付``."""
    if language == "zh-CN" and name.endswith("支付"):
        return f"使用{name}"
    return text("pay_with", language, channel=name)


def _app_name(channel: str, language: Language) -> str:
    return _APP_NAMES.get(channel, {}).get(language) or channel_name(channel, language)


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def headers(nonce: str, language: Language) -> dict[str, str]:
    """Security headers of every cashier page (the error pages too)."""
    return {
        "Content-Language": language,
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
            "frame-ancestors 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
    }


def page(view: CashierView, language: Language, *, chosen: bool, back: bool, nonce: str) -> str:
    """The cashier page of ``view``; ``chosen``: the language came from ``lang`` (kept in the
    page's own links); ``back``: the buyer just came back from the channel."""
    order = view.order
    merchant = escape(view.merchant_name)
    payment = view.payment
    body = [
        f'<nav><a id="language" href="?lang={_other(language)}" hreflang="{_other(language)}">'
        f"{text('other_language', language)}</a></nav>",
        "<header>",
        f'<p id="merchant">{merchant}</p>',
        f'<p id="subject">{escape(order.subject)}</p>',
        f'<p id="amount" data-amount="{order.amount}" data-currency="{order.currency}" '
        f'aria-label="{text("amount_due", language)}">'
        f"{escape(money(order.amount, order.currency))} <small>{order.currency}</small></p>",
        "</header>",
        f'<section id="state" data-state="{view.state.value}">',
        *_state(view, language, back),
        "</section>",
    ]
    data = {
        "state": view.state.value,
        "payment_id": payment.id if payment else None,
        "has_action": bool(payment and payment.next_action),
        "return_url": order.return_url,
        "back": back,
        "lang": language if chosen else None,
        "amount": order.amount,
        "balance": view.balance.available if view.balance else 0,
        "money": {
            "symbol": _SYMBOLS.get(order.currency, order.currency + " "),
            "exponent": CURRENCY_EXPONENTS[order.currency],
        },
        "messages": {
            key: value[language]
            for key, value in _TEXT.items()
            if key.startswith("error.") or key == "rest"
        },
    }
    return _document(
        text("title", language, merchant=view.merchant_name),
        language,
        nonce,
        "".join(body),
        data,
    )


def error_page(status: int, language: Language, nonce: str) -> str:
    """A small page for a link that leads nowhere (404) or an answer we cannot give now."""
    kind = {404: "not_found", 503: "unavailable"}.get(status, "bad_request")
    if status >= 500 and status != 503:
        kind = "unavailable"
    title = text(f"{kind}_title", language)
    content = (
        f'<h1>{escape(title)}</h1><p id="message" data-status="{status}">{text(kind, language)}</p>'
    )
    return _document(title, language, nonce, content, None)


def _state(view: CashierView, language: Language, back: bool) -> list[str]:
    order, payment = view.order, view.payment
    merchant = view.merchant_name
    if view.state is CashierState.PAID:
        refunded = order.amount_refunded > 0 and order.amount_refunded >= order.amount_paid
        outcome = text("refunded" if refunded else "paid", language)
        parts = [f'<p class="ok" id="outcome">{outcome}</p>']
        if back and order.return_url:
            parts.append(f"<p>{escape(text('returning', language, merchant=merchant))}</p>")
        if order.return_url:
            parts.append(
                f'<a class="button" id="return" href="{escape(order.return_url)}" rel="noreferrer">'
                f"{escape(text('back', language, merchant=merchant))}</a>"
            )
        return parts
    if view.state is CashierState.CLOSED:
        key = "closed" if order.status.value == "closed" else "expired"
        return [f'<p class="notice" id="outcome">{text(key, language)}</p>']
    if view.state is CashierState.PAYING and payment is not None:
        return _in_flight(payment.next_action, payment.channel or "", language)
    return _choices(view, language)


def _in_flight(action: dict[str, str] | None, channel: str, language: Language) -> list[str]:
    name = channel_name(channel, language)
    parts: list[str] = []
    if action is not None and action.get("type") == "redirect":
        parts.append(
            f'<a class="button" id="continue" href="{escape(action["url"])}" rel="noreferrer">'
            f"{escape(text('continue', language, channel=name))}</a>"
        )
    elif action is not None and action.get("type") == "qr_code":
        code_url = action["code_url"]
        parts += [
            f'<div id="qr" data-code-url="{escape(code_url)}">{_qr_svg(code_url, language)}</div>',
            f"<p>{escape(text('scan', language, channel=_app_name(channel, language)))}</p>",
            f'<p class="code">{escape(code_url)}</p>',
        ]
    else:
        parts.append(f"<p>{text('preparing', language)}</p>")
    parts.append(f'<p id="waiting" role="status">{text("waiting", language)}</p>')
    return parts


def _choices(view: CashierView, language: Language) -> list[str]:
    order, payment = view.order, view.payment
    parts: list[str] = []
    if payment is not None and payment.status.value == "failed":
        code = payment.failure_code or ""
        reason = _FAILURES.get(code, _FAILED_DEFAULT)[language]
        parts.append(
            f'<p class="notice" id="failure" data-failure-code="{escape(code)}">'
            f"{escape(text('failed', language, reason=reason))}</p>"
        )
    if not view.channels and view.balance is None and not view.coupons:
        parts.append(f'<p class="notice" id="no-channel">{text("no_channel", language)}</p>')
        return parts
    parts.append(f'<form id="choose"><h2>{text("choose", language)}</h2>')
    if view.balance is not None:
        available = escape(money(view.balance.available, order.currency))
        parts.append(
            '<fieldset><label><input type="checkbox" id="use-balance" name="use_balance"> '
            f"{text('use_balance', language, available=available)}</label></fieldset>"
        )
    if view.coupons:
        parts.append(
            f'<fieldset id="coupons"><legend>{text("coupons", language)}</legend>'
            '<label><input type="radio" name="coupon" value="" checked> '
            f"{text('no_coupon', language)}</label>"
        )
        for coupon in view.coupons:
            amount = escape(money(coupon.amount, coupon.currency))
            label = (
                text("coupon_until", language, amount=amount, date=coupon.expires_at[:10])
                if coupon.expires_at
                else text("coupon", language, amount=amount)
            )
            parts.append(
                f'<label><input type="radio" name="coupon" value="{escape(coupon.id)}" '
                f'data-amount="{coupon.amount}"> {label}</label>'
            )
        parts.append("</fieldset>")
    if view.balance is not None or view.coupons:
        whole = escape(money(order.amount, order.currency))
        parts.append(f'<p id="rest">{text("rest", language, amount=whole)}</p>')
    for offer in view.channels:
        name = channel_name(offer.channel, language)
        parts.append(
            f'<button type="submit" name="channel" value="{escape(offer.channel)}" '
            f'data-next-action="{offer.next_action_type.value}">'
            f"{escape(_pay_with(name, language))}</button>"
        )
    if view.balance is not None or view.coupons:
        parts.append(
            '<button type="submit" name="channel" value="" id="pay-internal" hidden>'
            f"{text('pay_internal', language)}</button>"
        )
    parts.append('<p class="notice" id="error" role="alert" hidden></p></form>')
    parts.append(f'<noscript><p class="notice">{text("noscript", language)}</p></noscript>')
    return parts


def _qr_svg(code_url: str, language: Language) -> str:
    import segno  # noqa: PLC0415 - only a page that shows a QR code pays for it

    return str(
        segno.make(code_url, error="m").svg_inline(
            scale=5, svgid="qr-code", title=text("qr_title", language)
        )
    )


def _other(language: Language) -> Language:
    return "en" if language == "zh-CN" else "zh-CN"


def _document(
    title: str, language: Language, nonce: str, content: str, data: dict[str, Any] | None
) -> str:
    script = ""
    if data is not None:
        # JSON in a script element: "<" is escaped so no value can close the element.
        blob = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
        script = (
            f'<script type="application/json" id="cashier-data">{blob}</script>'
            f'<script nonce="{nonce}">{_SCRIPT}</script>'
        )
    return (
        "<!doctype html>\n"
        f'<html lang="{language}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f'<title>{escape(title)}</title><style nonce="{nonce}">{_STYLE}</style></head>'
        f'<body><main id="cashier">{content}</main>{script}</body></html>\n'
    )
