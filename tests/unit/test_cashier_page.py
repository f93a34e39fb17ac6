"""The cashier page's language choice and its amounts (paycore.api.cashier_page)."""

from __future__ import annotations

import pytest

from paycore.api.cashier_page import _pay_with, channel_name, money, negotiate


@pytest.mark.parametrize(
    ("accept_language", "override", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", None, ("zh-CN", False)),
        ("zh", None, ("zh-CN", False)),
        ("zh-TW", None, ("zh-CN", False)),  # the only Chinese we write
        ("en-US,en;q=0.9", None, ("en", False)),
        ("en;q=0.5, zh-CN;q=0.9", None, ("zh-CN", False)),  # by weight, not by position
        ("fr-FR, de;q=0.8, zh;q=0.1", None, ("zh-CN", False)),  # the best one we speak
        ("zh;q=0, en;q=0.1", None, ("en", False)),  # q=0: not acceptable
        ("fr-FR", None, ("en", False)),
        (None, None, ("en", False)),
        ("zh;q=abc, en", None, ("en", False)),  # an unreadable weight counts as 0
        ("en", "zh-CN", ("zh-CN", True)),
        ("zh-CN", "EN", ("en", True)),
        ("zh-CN", "fr", ("zh-CN", False)),  # a language we do not speak is ignored
    ],
)
def test_the_language_is_lang_else_the_buyers_best_that_we_speak(
    accept_language: str | None, override: str | None, expected: tuple[str, bool]
) -> None:
    assert negotiate(accept_language, override) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "written"),
    [
        (1999, "CNY", "¥19.99"),
        (5, "CNY", "¥0.05"),
        (1500, "JPY", "¥1,500"),
        (123456789, "USD", "$1,234,567.89"),
        (1000, "EUR", "€10.00"),
        (70000, "KRW", "₩70,000"),
        (999, "CHF", "CHF 9.99"),
    ],
)
def test_amounts_are_written_in_the_currencys_units(
    amount: int, currency: str, written: str
) -> None:
    assert money(amount, currency) == written


@pytest.mark.parametrize(
    ("channel", "language", "label"),
    [
        ("alipay", "zh-CN", "使用支付宝支付"),
        ("wechatpay", "zh-CN", "使用微信支付"),
        ("wechatpay", "en", "Pay with WeChat Pay"),
        ("paypal", "en", "Pay with paypal"),  # a channel without a name of its own
    ],
)
def test_the_pay_buttons_read_well_in_each_language(
    channel: str, language: str, label: str
) -> None:
    assert _pay_with(channel_name(channel, language), language) == label  # type: ignore[arg-type]
