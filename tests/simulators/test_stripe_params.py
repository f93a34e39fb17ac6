"""Stripe's form encoding as the simulator reads it (the SDK's side is exercised by the other
test_stripe_* modules): nested brackets, indexed and appended arrays, metadata kept as a hash,
and Stripe's parameter errors."""

from __future__ import annotations

import pytest

from local_runtime.simulators.stripe.errors import StripeError
from local_runtime.simulators.stripe.params import Params, decode


def test_nested_brackets_and_indexed_arrays_are_decoded() -> None:
    decoded = decode(
        [
            ("line_items[0][price_data][unit_amount]", "1999"),
            ("line_items[0][quantity]", "1"),
            ("line_items[1][quantity]", "2"),
            ("expand[]", "payment_intent"),
            ("expand[]", "line_items"),
            ("metadata[0]", "kept as a key"),
            ("created[gte]", "10"),
        ]
    )

    assert decoded == {
        "line_items": [
            {"price_data": {"unit_amount": "1999"}, "quantity": "1"},
            {"quantity": "2"},
        ],
        "expand": ["payment_intent", "line_items"],
        "metadata": {"0": "kept as a key"},
        "created": {"gte": "10"},
    }


def test_a_malformed_or_contradictory_key_is_a_parameter_error() -> None:
    with pytest.raises(StripeError) as caught:
        decode([("line_items[0", "x")])
    assert caught.value.http_status == 400 and not caught.value.saved

    with pytest.raises(StripeError):
        decode([("metadata", "x"), ("metadata[a]", "y")])


def test_params_name_the_faulty_parameter_as_stripe_does() -> None:
    params = Params(decode([("line_items[0][quantity]", "2x"), ("colour", "red")]))
    items = params.children("line_items")

    with pytest.raises(StripeError) as bad:
        items[0].integer("quantity")
    assert (bad.value.param, bad.value.code) == (
        "line_items[0][quantity]",
        "parameter_invalid_integer",
    )

    with pytest.raises(StripeError) as unknown:
        params.done()
    assert (unknown.value.param, unknown.value.code) == ("colour", "parameter_unknown")

    with pytest.raises(StripeError) as empty:
        Params({"success_url": ""}).url("success_url")
    assert empty.value.code == "parameter_invalid_empty"


def test_metadata_follows_stripes_limits_and_an_empty_value_unsets() -> None:
    assert Params({"metadata": {"a": "1", "b": ""}}).metadata() == {"a": "1"}

    with pytest.raises(StripeError) as too_long:
        Params({"metadata": {"k" * 41: "v"}}).metadata()
    assert too_long.value.param == f"metadata[{'k' * 41}]"

    with pytest.raises(StripeError):
        Params({"metadata": {str(n): "v" for n in range(51)}}).metadata()
