"""The one conversion per channel amount format, for every currency paycore accepts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paycore.money import (
    CURRENCY_EXPONENTS,
    MAX_AMOUNT,
    AmountFormatError,
    from_major_units,
    from_minor_units,
    to_major_units,
    to_minor_units,
)

CURRENCIES = sorted(CURRENCY_EXPONENTS)
TWO_DECIMALS = [c for c in CURRENCIES if CURRENCY_EXPONENTS[c] == 2]
NO_DECIMALS = [c for c in CURRENCIES if CURRENCY_EXPONENTS[c] == 0]

# (minor units, major-unit text) per exponent, as Alipay writes total_amount.
EXAMPLES = {
    2: [
        (1999, "19.99"),
        (5, "0.05"),
        (10, "0.10"),
        (100, "1.00"),
        (0, "0.00"),
        (123456, "1234.56"),
    ],
    0: [(1500, "1500"), (1, "1"), (0, "0"), (1999, "1999")],
}


def test_the_supported_currencies_are_the_ones_the_examples_cover() -> None:
    assert set(CURRENCY_EXPONENTS.values()) == set(EXAMPLES)
    assert {"CNY", "USD", "EUR", "JPY"} <= set(CURRENCIES)


@pytest.mark.parametrize("currency", CURRENCIES)
def test_major_units_are_written_with_every_decimal_of_the_currency(currency: str) -> None:
    for minor, text in EXAMPLES[CURRENCY_EXPONENTS[currency]]:
        assert to_major_units(minor, currency) == text
        assert from_major_units(text, currency) == minor


@pytest.mark.parametrize("currency", TWO_DECIMALS)
def test_fewer_decimals_are_read_exactly(currency: str) -> None:
    assert from_major_units("19.9", currency) == 1990
    assert from_major_units("19", currency) == 1900
    assert from_major_units("0.5", currency) == 50


@pytest.mark.parametrize("currency", TWO_DECIMALS)
@pytest.mark.parametrize(
    "text",
    [
        "19.999",  # more decimals than the currency has: never rounded
        "19.990",
        "-19.99",
        "+19.99",
        "1e3",
        "1E3",
        "19.99e0",
        " 19.99",
        "19.99 ",
        "1,999.00",
        "019.99",
        "19.",
        ".99",
        "",
        "NaN",
        "inf",
        "0x10",
        "\uff11\uff19.\uff19\uff19",  # full-width digits
        "19_99",
        "19.9\n",
    ],
)
def test_anything_but_a_plain_decimal_is_refused(currency: str, text: str) -> None:
    with pytest.raises(AmountFormatError):
        from_major_units(text, currency)


@pytest.mark.parametrize("currency", NO_DECIMALS)
@pytest.mark.parametrize("text", ["1500.0", "1500.00", "15.5", "-1500", "1.5e3"])
def test_a_currency_without_minor_unit_takes_no_decimals(currency: str, text: str) -> None:
    with pytest.raises(AmountFormatError):
        from_major_units(text, currency)


@pytest.mark.parametrize("currency", CURRENCIES)
def test_a_float_is_never_taken_for_an_amount(currency: str) -> None:
    with pytest.raises(AmountFormatError):
        from_major_units(19.99, currency)  # type: ignore[arg-type]
    with pytest.raises(AmountFormatError):
        to_major_units(19.99, currency)  # type: ignore[arg-type]
    with pytest.raises(AmountFormatError):
        from_minor_units(1999.0, currency)
    with pytest.raises(AmountFormatError):
        to_minor_units(True, currency)


@pytest.mark.parametrize("currency", CURRENCIES)
def test_minor_units_pass_unchanged_and_checked(currency: str) -> None:
    assert to_minor_units(1999, currency) == 1999
    assert from_minor_units(1999, currency) == 1999
    assert from_minor_units(0, currency) == 0
    for bad in (-1, MAX_AMOUNT + 1, "1999", None, True):
        with pytest.raises(AmountFormatError):
            from_minor_units(bad, currency)


@pytest.mark.parametrize("currency", CURRENCIES)
def test_amounts_past_the_maximum_are_refused(currency: str) -> None:
    assert from_major_units(to_major_units(MAX_AMOUNT, currency), currency) == MAX_AMOUNT
    with pytest.raises(AmountFormatError):
        to_major_units(MAX_AMOUNT + 1, currency)
    with pytest.raises(AmountFormatError):
        from_major_units("9" * 20, currency)
    with pytest.raises(AmountFormatError):
        from_major_units("9" * 5000, currency)  # past Python's int() digit limit


@pytest.mark.parametrize("convert", [to_major_units, to_minor_units])
def test_an_unsupported_currency_is_refused(convert: object) -> None:
    assert callable(convert)
    with pytest.raises(AmountFormatError, match="XXX"):
        convert(100, "XXX")
    with pytest.raises(AmountFormatError, match="cny"):
        from_major_units("1.00", "cny")


@given(
    currency=st.sampled_from(CURRENCIES),
    amount=st.integers(min_value=0, max_value=MAX_AMOUNT),
)
def test_every_amount_survives_the_round_trip(currency: str, amount: int) -> None:
    text = to_major_units(amount, currency)
    assert from_major_units(text, currency) == amount
    assert from_minor_units(to_minor_units(amount, currency), currency) == amount
    # The text has exactly the currency's decimals.
    decimals = len(text.partition(".")[2])
    assert decimals == CURRENCY_EXPONENTS[currency]
