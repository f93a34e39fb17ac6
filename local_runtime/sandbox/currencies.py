"""The currencies the sandbox accepts and how a buyer sees an amount.

Amounts are integers in the currency's minor unit (ISO 4217 exponent): 1234 CNY is 12.34 yuan,
1234 JPY is 1,234 yen because the yen has no minor unit.
"""

from __future__ import annotations

CURRENCY_EXPONENTS: dict[str, int] = {
    "AUD": 2,
    "CAD": 2,
    "CHF": 2,
    "CNY": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "JPY": 0,
    "KRW": 0,
    "SGD": 2,
    "USD": 2,
}

# Well below 2**53 so that every JSON reader, JavaScript included, reads amounts exactly.
MAX_AMOUNT = 10**12


def format_amount(amount: int, currency: str) -> str:
    """The amount as a buyer reads it, e.g. ``1,234.56 CNY`` or ``1,500 JPY``."""
    exponent = CURRENCY_EXPONENTS[currency]
    if exponent == 0:
        return f"{amount:,} {currency}"
    major, minor = divmod(amount, 10**exponent)
    return f"{major:,}.{minor:0{exponent}d} {currency}"
