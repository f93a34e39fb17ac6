"""Alipay's RSA2 signing: the signing content, sign/verify, cutting the signed answer out of a
body, and loading the keys merchants paste (PEM PKCS#1/PKCS#8, one-line, bare base64)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256

from paycore.channels.alipay.signing import (
    load_private_key,
    load_public_key,
    sign,
    sign_request,
    signed_answer,
    signing_content,
    verify,
    verify_notification,
)

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(data: bytes) -> str:
    return data.decode("ascii")


def private_pem(key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat) -> str:
    return pem(key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))


def private_der_b64(key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat) -> str:
    der = key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())
    return base64.b64encode(der).decode()


def public_pem(key: rsa.RSAPrivateKey, fmt: serialization.PublicFormat) -> str:
    return pem(key.public_key().public_bytes(serialization.Encoding.PEM, fmt))


def body_of(text: str) -> str:
    """The base64 lines of a PEM (what one-line pastes are made of)."""
    return "".join(line for line in text.splitlines() if not line.startswith("-----"))


PKCS1 = serialization.PrivateFormat.TraditionalOpenSSL
PKCS8 = serialization.PrivateFormat.PKCS8
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
RSA_PUBLIC = serialization.PublicFormat.PKCS1


def same_private(loaded: rsa.RSAPrivateKey) -> bool:
    signature = loaded.sign(b"x", padding.PKCS1v15(), SHA256())
    KEY.public_key().verify(signature, b"x", padding.PKCS1v15(), SHA256())
    return True


# -- the signing content ---------------------------------------------------------------------


def test_the_content_is_sorted_unencoded_and_skips_empty_values_and_the_excluded() -> None:
    params = {
        "timestamp": "2026-12-06 09:30:00",
        "app_id": "2021000000000001",
        "biz_content": '{"subject":"绿茶 & tea","total_amount":"19.99"}',
        "sign": "xxx",
        "sign_type": "RSA2",
        "return_url": "",
    }

    assert signing_content(params, {"sign"}) == (
        'app_id=2021000000000001&biz_content={"subject":"绿茶 & tea","total_amount":"19.99"}'
        "&sign_type=RSA2&timestamp=2026-12-06 09:30:00"
    )
    assert "sign_type" not in signing_content(params, {"sign", "sign_type"})


def test_a_request_signs_sign_type_and_a_notification_does_not() -> None:
    params = {"a": "1", "sign_type": "RSA2"}
    request_signature = sign_request(KEY, params)

    assert verify(KEY.public_key(), "a=1&sign_type=RSA2", request_signature)
    fields = {"a": "1", "sign_type": "RSA2", "sign": sign(KEY, "a=1")}
    assert verify_notification(KEY.public_key(), fields)
    assert not verify_notification(KEY.public_key(), {**fields, "a": "2"})
    assert not verify_notification(OTHER.public_key(), fields)


def test_rsa2_is_deterministic_sha256_pkcs1_v15_in_base64() -> None:
    signature = sign(KEY, "content")

    assert signature == sign(KEY, "content")
    raw = base64.b64decode(signature)
    KEY.public_key().verify(raw, b"content", padding.PKCS1v15(), SHA256())
    assert len(raw) == 256


@pytest.mark.parametrize(
    "signature", ["", "not base64!", "A" * 5000, base64.b64encode(b"x").decode()]
)
def test_garbage_signatures_do_not_verify(signature: str) -> None:
    assert not verify(KEY.public_key(), "content", signature)


# -- answers ------------------------------------------------------------------------------------


def test_the_signed_text_is_cut_exactly_braces_in_strings_included() -> None:
    inner = '{"code":"10000","msg":"Success","subject":"a } tricky { one","n":{"x":[1,2]}}'
    body = f'{{"alipay_trade_query_response":{inner},"sign":"SIG"}}'

    found = signed_answer(body, "alipay_trade_query_response")

    assert found is not None
    text, content, signature = found
    assert text == inner
    assert content == json.loads(inner)
    assert signature == "SIG"


def test_an_error_response_is_found_unsigned_and_nonsense_is_not_an_answer() -> None:
    body = '{"error_response":{"code":"40002","msg":"Invalid Arguments"}}'

    assert signed_answer(body, "alipay_trade_query_response") == (
        '{"code":"40002","msg":"Invalid Arguments"}',
        {"code": "40002", "msg": "Invalid Arguments"},
        None,
    )
    assert signed_answer("<html>", "x_response") is None
    assert signed_answer("[1]", "x_response") is None
    assert signed_answer('{"x_response": "text"}', "x_response") is None
    assert signed_answer('{"x_response": {}, "sign": 5}', "x_response") is None


def test_the_name_inside_a_string_does_not_mislead_and_a_nested_twin_is_refused() -> None:
    quoted = '{"note":"\\"x_response\\":{}","x_response":{"code":"40004"}}'
    nested = '{"other":{"x_response":{"code":"10000"}},"x_response":{"code":"40004"}}'

    found = signed_answer(quoted, "x_response")
    assert found is not None and found[0] == '{"code":"40004"}'
    assert signed_answer(nested, "x_response") is None  # refused, never the wrong text


# -- keys -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        private_pem(KEY, PKCS1),
        private_pem(KEY, PKCS8),
        private_pem(KEY, PKCS8).replace("\n", "\r\n"),
        private_pem(KEY, PKCS1).replace("\n", "\\n"),  # escaped in an environment variable
        private_pem(KEY, PKCS8).replace("\n", ""),  # the line breaks lost
        body_of(private_pem(KEY, PKCS8)),  # Alipay's key tool: one line, no header
        private_der_b64(KEY, PKCS1),
        "  " + private_der_b64(KEY, PKCS8) + "\n",
    ],
    ids=["pkcs1", "pkcs8", "crlf", "escaped", "one-line-pem", "bare-pkcs8", "bare-pkcs1", "spaces"],
)
def test_private_keys_load_in_every_form_merchants_paste(text: str) -> None:
    assert same_private(load_private_key(text))


@pytest.mark.parametrize(
    "text",
    [
        public_pem(KEY, SPKI),
        public_pem(KEY, RSA_PUBLIC),
        body_of(public_pem(KEY, SPKI)),
        public_pem(KEY, SPKI).replace("\n", ""),
    ],
    ids=["spki", "pkcs1", "bare", "one-line-pem"],
)
def test_public_keys_load_in_every_form_merchants_paste(text: str) -> None:
    loaded = load_public_key(text)
    assert verify(loaded, "x", sign(KEY, "x"))


def _encrypted() -> str:
    return pem(
        KEY.private_bytes(
            serialization.Encoding.PEM,
            PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )


def _small_key() -> str:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return private_pem(small, PKCS8)


def _small_public_key() -> str:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return public_pem(small, SPKI)


def _ec_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return pem(key.private_bytes(serialization.Encoding.PEM, PKCS8, serialization.NoEncryption()))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "not a key at all",
        body_of(private_pem(KEY, PKCS8))[:-40],
        _encrypted(),
        _small_key(),
        _ec_key(),
        public_pem(KEY, SPKI),
        "-----BEGIN PRIVATE KEY-----\nMIIB",
    ],
    ids=["empty", "blank", "words", "truncated", "encrypted", "1024", "ec", "public", "no-footer"],
)
def test_a_private_key_that_does_not_load_is_a_value_error_quoting_nothing(text: str) -> None:
    with pytest.raises(ValueError, match="key") as refused:
        load_private_key(text)

    message = str(refused.value)
    body = "".join(text.split())
    assert not any(body[i : i + 16] in message for i in range(0, max(len(body) - 16, 0), 8))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "zzz",
        private_pem(KEY, PKCS1),
        body_of(_small_public_key()),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
    ],
    ids=["empty", "words", "private", "small", "certificate"],
)
def test_a_public_key_that_does_not_load_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="key"):
        load_public_key(text)
