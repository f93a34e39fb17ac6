"""WECHATPAY2-SHA256-RSA2048 both ways, AEAD_AES_256_GCM and key loading, with the community SDK
``wechatpayv3`` as the oracle of the signature and decryption formulas."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpayv3 import utils as sdk

from local_runtime.simulators.common.keys import (
    generate_rsa_key,
    private_key_pem_pkcs1,
    private_key_pem_pkcs8,
    public_key_pem,
)
from local_runtime.simulators.wechatpay.signing import signature_headers
from paycore.channels.wechatpay.signing import (
    SignatureProblem,
    authorization,
    check_signature,
    decrypt_resource,
    load_private_key,
    load_public_key,
    request_message,
    sign,
)
from tests.unit.wechatpay_fakes import merchants

APIV3_KEY = b"0123456789abcdefghijABCDEFGHIJ01"


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


# -- the merchant's requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("GET", "/v3/pay/transactions/out-trade-no/pay_1?mchid=1900000109", b""),
        ("POST", "/v3/pay/transactions/native", '{"description":"绿茶","amount":1}'.encode()),
        ("POST", "/v3/pay/transactions/out-trade-no/pay_1/close", b'{"mchid":"1900000109"}'),
    ],
)
def test_our_authorization_is_the_sdks_for_the_same_request(
    monkeypatch: pytest.MonkeyPatch, method: str, target: str, body: bytes
) -> None:
    key = merchants()[0].merchant_key
    monkeypatch.setattr(sdk.time, "time", lambda: 1_700_000_000.4)
    theirs = sdk.build_authorization(
        target, method, "1900000109", "SERIAL01", key, data=body.decode(), nonce_str="NONCE42"
    )

    ours = authorization(
        mchid="1900000109",
        serial_no="SERIAL01",
        private_key=key,
        method=method,
        target=target,
        body=body,
        timestamp="1700000000",
        nonce="NONCE42",
    )

    assert ours == theirs  # RSA PKCS#1 v1.5 is deterministic: same message, same signature


def test_the_signed_message_is_method_url_timestamp_nonce_body_each_on_a_line() -> None:
    assert request_message("GET", "/v3/x?a=1", "1", "N", b"") == b"GET\n/v3/x?a=1\n1\nN\n\n"
    assert request_message("POST", "/v3/y", "2", "M", b"{}") == b"POST\n/v3/y\n2\nM\n{}\n"


# -- what WeChat Pay signs -------------------------------------------------------------------------


def _signed(body: bytes, at: float | None = None) -> dict[str, str]:
    merchant = merchants()[0]
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return _lower(signature_headers(merchant, body, moment))


def _check(headers: dict[str, str], body: bytes, now: float | None = None) -> None:
    merchant = merchants()[0]
    check_signature(
        headers,
        body,
        public_key=merchant.platform_key.public_key(),
        public_key_id=merchant.public_key_id,
        now=time.time() if now is None else now,
    )


def test_an_answer_signed_by_wechatpay_verifies_and_the_sdk_agrees() -> None:
    body = '{"code_url":"weixin://wxpay/bizpayurl?pr=abc","说明":"绿茶"}'.encode()
    headers = _signed(body)

    _check(headers, body)
    assert sdk.rsa_verify(
        headers["wechatpay-timestamp"],
        headers["wechatpay-nonce"],
        body.decode(),
        headers["wechatpay-signature"],
        merchants()[0].platform_key.public_key(),
    )


def test_the_empty_body_of_a_204_is_signed_too() -> None:
    _check(_signed(b""), b"")


@pytest.mark.parametrize(
    "change",
    [
        "drop-signature",
        "drop-timestamp",
        "drop-nonce",
        "drop-serial",
        "other-serial",
        "other-type",
        "not-base64",
        "other-nonce",
        "other-timestamp",
        "tampered-body",
        "non-digit-timestamp",
    ],
)
def test_anything_but_this_exact_signature_is_refused_and_the_sdk_agrees(change: str) -> None:
    body = b'{"trade_state":"SUCCESS"}'
    headers = _signed(body)
    signed_body = body
    match change:
        case "drop-signature" | "drop-timestamp" | "drop-nonce" | "drop-serial":
            del headers[f"wechatpay-{change.removeprefix('drop-')}"]
        case "other-serial":
            headers["wechatpay-serial"] = merchants()[1].public_key_id
        case "other-type":
            headers["wechatpay-signature-type"] = "WECHATPAY2-SM2-WITH-SM3"
        case "not-base64":
            headers["wechatpay-signature"] = "not base64!"
        case "other-nonce":
            headers["wechatpay-nonce"] += "X"
        case "other-timestamp":
            headers["wechatpay-timestamp"] = str(int(headers["wechatpay-timestamp"]) - 1)
        case "tampered-body":
            signed_body = body.replace(b"SUCCESS", b"SUCCES ")
        case "non-digit-timestamp":
            headers["wechatpay-timestamp"] = "+" + headers["wechatpay-timestamp"]

    with pytest.raises(SignatureProblem):
        _check(headers, signed_body)
    if change in ("other-nonce", "other-timestamp", "tampered-body"):
        assert not sdk.rsa_verify(
            headers["wechatpay-timestamp"],
            headers["wechatpay-nonce"],
            signed_body.decode(),
            headers["wechatpay-signature"],
            merchants()[0].platform_key.public_key(),
        )


def test_a_signature_by_another_key_is_refused_even_under_this_accounts_key_id() -> None:
    body = b"{}"
    other = merchants()[1]
    headers = _lower(signature_headers(other, body, datetime.now(UTC)))
    headers["wechatpay-serial"] = merchants()[0].public_key_id

    with pytest.raises(SignatureProblem, match="does not match"):
        _check(headers, body)


@pytest.mark.parametrize(
    ("skew", "accepted"), [(-300, True), (300, True), (-301, False), (301, False)]
)
def test_a_signature_is_fresh_within_five_minutes_either_way(skew: int, accepted: bool) -> None:
    signed_at = 1_800_000_000
    headers = _signed(b"{}", at=signed_at)

    if accepted:
        _check(headers, b"{}", now=signed_at + skew)
    else:
        with pytest.raises(SignatureProblem, match="stale"):
            _check(headers, b"{}", now=signed_at + skew)
        # The SDK has no clock: it would accept this stale signature.
        assert sdk.rsa_verify(
            headers["wechatpay-timestamp"],
            headers["wechatpay-nonce"],
            "{}",
            headers["wechatpay-signature"],
            merchants()[0].platform_key.public_key(),
        )


def test_our_signature_helper_is_rsa_sha256_pkcs1_v15_as_the_sdk_signs() -> None:
    key = merchants()[0].merchant_key
    assert sign(key, b"a\nb\n") == sdk.rsa_sign(key, "a\nb\n")


# -- the notification resource -----------------------------------------------------------------


def _seal(plain: bytes, nonce: str = "abcdefghijkl", aad: str = "transaction") -> str:
    sealed = AESGCM(APIV3_KEY).encrypt(nonce.encode(), plain, aad.encode())
    return base64.b64encode(sealed).decode()


def test_a_resource_decrypts_with_the_apiv3_key_as_the_sdk_decrypts_it() -> None:
    plain = '{"trade_state":"SUCCESS","说明":"绿茶"}'.encode()
    ciphertext = _seal(plain)

    ours = decrypt_resource(
        APIV3_KEY, nonce="abcdefghijkl", ciphertext=ciphertext, associated_data="transaction"
    )

    assert ours == plain
    assert sdk.aes_decrypt("abcdefghijkl", ciphertext, "transaction", APIV3_KEY.decode()) == (
        plain.decode()
    )


@pytest.mark.parametrize(
    ("key", "nonce", "ciphertext", "aad"),
    [
        (b"X" * 32, "abcdefghijkl", None, "transaction"),  # another APIv3 key
        (APIV3_KEY, "abcdefghijkX", None, "transaction"),  # another nonce
        (APIV3_KEY, "abcdefghijkl", None, "refund"),  # another associated_data
        (APIV3_KEY, "abcdefghijkl", "not base64!", "transaction"),
        (APIV3_KEY, "abcdefghijkl", "AAAA", "transaction"),  # shorter than a tag
        (APIV3_KEY, "", None, "transaction"),
        (APIV3_KEY[:16], "abcdefghijkl", None, "transaction"),  # not 32 bytes
    ],
)
def test_a_resource_that_does_not_decrypt_is_refused(
    key: bytes, nonce: str, ciphertext: str | None, aad: str
) -> None:
    sealed = ciphertext if ciphertext is not None else _seal(b'{"a":1}')
    with pytest.raises(SignatureProblem):
        decrypt_resource(key, nonce=nonce, ciphertext=sealed, associated_data=aad)


def test_a_flipped_ciphertext_bit_is_refused() -> None:
    sealed = bytearray(base64.b64decode(_seal(b'{"trade_state":"NOTPAY"}')))
    sealed[3] ^= 1
    with pytest.raises(SignatureProblem):
        decrypt_resource(
            APIV3_KEY,
            nonce="abcdefghijkl",
            ciphertext=base64.b64encode(bytes(sealed)).decode(),
            associated_data="transaction",
        )


# -- keys ----------------------------------------------------------------------------------------


def _one_line(pem: str) -> str:
    lines = pem.strip().splitlines()
    return lines[0] + "".join(lines[1:-1]) + lines[-1]


def _body_only(pem: str) -> str:
    return "".join(pem.strip().splitlines()[1:-1])


@pytest.mark.parametrize(
    "shape",
    [
        "pkcs8",
        "pkcs1",
        "pkcs8-one-line",
        "pkcs1-one-line",
        "escaped-newlines",
        "bare-base64",
        "crlf",
    ],
)
def test_the_merchant_key_loads_in_the_shapes_merchants_paste(shape: str) -> None:
    key = merchants()[0].merchant_key
    pkcs8, pkcs1 = private_key_pem_pkcs8(key), private_key_pem_pkcs1(key)
    text = {
        "pkcs8": pkcs8,
        "pkcs1": pkcs1,
        "pkcs8-one-line": _one_line(pkcs8),
        "pkcs1-one-line": _one_line(pkcs1),
        "escaped-newlines": pkcs8.replace("\n", "\\n"),
        "bare-base64": _body_only(pkcs8),
        "crlf": pkcs8.replace("\n", "\r\n"),
    }[shape]

    loaded = load_private_key(text)

    assert loaded.private_numbers() == key.private_numbers()


@pytest.mark.parametrize("shape", ["spki", "pkcs1", "one-line", "bare-base64"])
def test_the_wechatpay_public_key_loads_in_its_shapes(shape: str) -> None:
    public = merchants()[0].platform_key.public_key()
    spki = public_key_pem(public)
    pkcs1 = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    ).decode()
    text = {
        "spki": spki,
        "pkcs1": pkcs1,
        "one-line": _one_line(spki),
        "bare-base64": _body_only(spki),
    }[shape]

    assert load_public_key(text).public_numbers() == public.public_numbers()


def test_keys_that_do_not_load_are_a_value_error_that_quotes_no_key() -> None:
    merchant = merchants()[0]
    private_pem = private_key_pem_pkcs8(merchant.merchant_key)
    public_pem = public_key_pem(merchant.platform_key)
    small = private_key_pem_pkcs8(generate_rsa_key(1024))
    encrypted = merchant.merchant_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"password"),
    ).decode()
    ec_key = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    body = _body_only(private_pem)
    lines = private_pem.splitlines()
    corrupted = "\n".join([*lines[:5], lines[5][::-1], *lines[6:]])  # same length, other bytes
    refused_private = [
        "",
        "not a key",
        public_pem,
        small,
        encrypted,
        ec_key,
        corrupted,
        private_pem + private_pem,
    ]
    refused_public = ["", "not a key", private_pem, public_pem[:200]]

    for text in refused_private:
        with pytest.raises(ValueError, match="merchant private key") as caught:
            load_private_key(text)
        assert body[:40] not in str(caught.value)
    for text in refused_public:
        with pytest.raises(ValueError, match="WeChat Pay public key"):
            load_public_key(text)
