"""Money is an integer count of a currency's minor unit plus an ISO 4217 code. Never a float.

Each channel writes amounts its own way; this module holds the one conversion per format, so
no adapter does arithmetic on money of its own:

- major units as decimal text (Alipay ``total_amount``, its statement files, WeChat Pay's bill
  files): ``to_major_units`` / ``from_major_units``, e.g. 1999 CNY <-> ``"19.99"`` and 1500 JPY
  <-> ``"1500"``. Reading is strict: a sign, an exponent, a space, a thousands separator, a
  leading zero or more decimals than the currency has are refused, never rounded.
- minor units as integers (WeChat Pay ``total`` in fen, Stripe ``amount``):
  ``to_minor_units`` / ``from_minor_units``. For every currency we accept, Stripe's unit is the
  ISO 4217 minor unit: its zero-decimal currencies include JPY and KRW (our exponent-0
  currencies), and none of our exponent-2 currencies is on its zero- or three-decimal lists
  (https://docs.stripe.com/currencies#zero-decimal), so the integer passes unchanged.
"""

from __future__ import annotations

import re
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

# Digits without a sign, exponent or leading zero, then optionally a point and 1+ digits.
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)(?:\.([0-9]+))?", re.ASCII)
_MAX_TEXT = 32  # far more than MAX_AMOUNT needs; bounds the work on hostile input


class AmountFormatError(ValueError):
    """An amount a channel wrote (or we would write) that is not exactly a valid amount."""


if set(get_args(CurrencyCode)) != set(CURRENCY_EXPONENTS):  # pragma: no cover - a typo guard
    raise RuntimeError("CurrencyCode must list exactly the keys of CURRENCY_EXPONENTS")


def is_supported_currency(code: str) -> bool:
    return code in CURRENCY_EXPONENTS


def format_amount(amount: int, currency: str) -> str:
    """Human form for logs and the sandbox page, e.g. ``12.34 CNY``; never used for maths."""
    return f"{to_major_units(amount, currency)} {currency}"


def to_major_units(amount: int, currency: str) -> str:
    """``amount`` minor units as decimal text in major units: 1999 CNY -> ``"19.99"``,
    5 USD -> ``"0.05"``, 1500 JPY -> ``"1500"``. Every decimal of the currency is written."""
    exponent = _exponent(currency)
    _check_amount(amount)
    if exponent == 0:
        return str(amount)
    major, minor = divmod(amount, 10**exponent)
    return f"{major}.{minor:0{exponent}d}"


def from_major_units(text: str, currency: str) -> int:
    """Decimal text in major units as minor units: ``"19.99"`` CNY -> 1999, ``"19.9"`` -> 1990,
    ``"1500"`` JPY -> 1500. Anything that is not exactly such a number
    (``"-1"``, ``"+1"``, ``"1e3"``, ``" 1"``, ``"1,000"``, ``"01"``, ``"1."``, ``".5"``,
    ``"19.999"`` CNY, ``"1500.0"`` JPY, ``"NaN"``) or exceeds ``MAX_AMOUNT`` raises
    ``AmountFormatError`` (a ``ValueError``)."""
    exponent = _exponent(currency)
    if not isinstance(text, str):
        raise AmountFormatError(f"a {currency} amount must be text, not {type(text).__name__}")
    match = _DECIMAL.fullmatch(text) if len(text) <= _MAX_TEXT else None
    if match is None:
        raise AmountFormatError(f"{text!r} is not a plain decimal amount")
    whole, fraction = match.group(1), match.group(2) or ""
    if match.group(2) is not None and len(fraction) > exponent:
        raise AmountFormatError(f"{text!r} has more decimals than {currency} ({exponent})")
    amount: int = int(whole) * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
    _check_amount(amount)
    return amount


def to_minor_units(amount: int, currency: str) -> int:
    """``amount`` as the integer a minor-unit channel expects (WeChat Pay fen, Stripe): the
    same number, checked (see the module docstring for why no scaling is needed)."""
    _exponent(currency)
    _check_amount(amount)
    return amount


def from_minor_units(value: object, currency: str) -> int:
    """An integer amount a minor-unit channel wrote, checked strictly: ``AmountFormatError`` for a
    float, a bool, text, a negative number or more than ``MAX_AMOUNT``."""
    _exponent(currency)
    if not isinstance(value, int) or isinstance(value, bool):
        raise AmountFormatError(f"a {currency} minor-unit amount must be an integer, not {value!r}")
    _check_amount(value)
    return value


def _exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise AmountFormatError(f"currency {currency!r} is not supported") from None


def _check_amount(amount: int) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise AmountFormatError(f"an amount must be an integer of minor units, not {amount!r}")
    if not 0 <= amount <= MAX_AMOUNT:
        raise AmountFormatError(f"amount {amount} is outside 0..{MAX_AMOUNT}")
