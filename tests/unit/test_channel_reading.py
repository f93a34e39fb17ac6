"""The body checks every channel's transformers share (paycore.channels.reading)."""

from __future__ import annotations

from types import ModuleType

import pytest

from paycore.channels import reading
from paycore.channels.alipay import transformers as alipay
from paycore.channels.reading import Unreadable, json_object, optional_text, text
from paycore.channels.sandbox import transformers as sandbox
from paycore.channels.stripe import transformers as stripe
from paycore.channels.wechatpay import transformers as wechatpay


@pytest.mark.parametrize("module", [sandbox, wechatpay, stripe, alipay])
def test_each_channel_raises_the_unreadable_its_adapter_catches(module: ModuleType) -> None:
    assert module.Unreadable is reading.Unreadable


def test_json_object_reads_an_object() -> None:
    assert json_object(b'{"a": 1}') == {"a": 1}


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"{", "not JSON"), (b"\xff\xfe", "not JSON"), (b"[1]", "not a JSON object")],
)
def test_json_object_refuses_anything_else(raw: bytes, message: str) -> None:
    with pytest.raises(Unreadable, match=f"^{message}$"):
        json_object(raw)


def test_text_is_a_non_empty_string() -> None:
    assert text({"k": "v"}, "k") == "v"


@pytest.mark.parametrize("body", [{}, {"k": None}, {"k": ""}, {"k": 3}])
def test_text_refuses_anything_else(body: dict[str, object]) -> None:
    with pytest.raises(Unreadable, match=r"^k must be a non-empty string$"):
        text(body, "k")


@pytest.mark.parametrize(
    ("body", "read", "kept"),
    [
        ({}, None, None),
        ({"k": None}, None, None),
        ({"k": ""}, None, ""),  # the sandbox keeps its empty string
        ({"k": "v"}, "v", "v"),
    ],
)
def test_optional_text(body: dict[str, object], read: str | None, kept: str | None) -> None:
    assert optional_text(body, "k") == read
    assert optional_text(body, "k", empty_is_none=False) == kept


@pytest.mark.parametrize("value", [0, False, ["v"], {"v": 1}])
@pytest.mark.parametrize("empty_is_none", [True, False])
def test_optional_text_refuses_a_non_string(value: object, empty_is_none: bool) -> None:
    with pytest.raises(Unreadable, match=r"^k must be a string or null$"):
        optional_text({"k": value}, "k", empty_is_none=empty_is_none)
