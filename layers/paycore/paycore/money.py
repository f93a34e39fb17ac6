"""Money is an integer count of a currency's minor unit plus an ISO 4217 code. Never a float."""

from __future__ import annotations

from typing import Literal, get_args

# The ISO 4217 codes paycore accepts (the keys of CURRENCY_EXPONENTS, checked below).
CurrencyCode = Literal["CNY", "USD", "EUR", "GBP", "HKD", "SGD", "AUD", "CAD", "CHF", "JPY", "KRW"]

# ISO 4217 codes we accept, with their minor-unit exponent (JPY has none).
CURRENCY_EXPONENTS: dict[str, int] = {
    "CNY": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "SGD": 2,
    "AUD": 2,
    "CAD": 2,
    "CHF": 2,
    "JPY": 0,
    "KRW": 0,
}

# The largest amount one order may carry, in minor units: far below 2**53 so that every
# JSON client (JavaScript included) reads it exactly.
MAX_AMOUNT = 10**12


if set(get_args(CurrencyCode)) != set(CURRENCY_EXPONENTS):  # pragma: no cover - a typo guard
    raise RuntimeError("CurrencyCode must list exactly the keys of CURRENCY_EXPONENTS")


def is_supported_currency(code: str) -> bool:
    return code in CURRENCY_EXPONENTS


def format_amount(amount: int, currency: str) -> str:
    """Human form for logs and the sandbox page, e.g. ``12.34 CNY``; never used for maths."""
    exponent = CURRENCY_EXPONENTS[currency]
    if exponent == 0:
        return f"{amount} {currency}"
    major, minor = divmod(amount, 10**exponent)
    return f"{major}.{minor:0{exponent}d} {currency}"
