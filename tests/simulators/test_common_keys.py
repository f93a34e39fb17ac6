"""Keys and signatures for the simulators: RSA-2048, PEM in the formats the channels' SDKs
read, RSA-SHA256 (PKCS#1 v1.5) signatures checked against an independent implementation
(pycryptodomex, which python-alipay-sdk signs with), and random identifiers."""

from __future__ import annotations

import base64
import re
import string

import pytest
from Cryptodome.Hash import SHA256
from Cryptodome.PublicKey import RSA
from Cryptodome.Signature import pkcs1_15
from cryptography.hazmat.primitives.asymmetric import rsa

from local_runtime.simulators.common.keys import (
    generate_rsa_key,
    load_private_key,
    load_public_key,
    private_key_pem_pkcs1,
    private_key_pem_pkcs8,
    public_key_pem,
    random_alphanumeric,
    random_digits,
    random_serial_number,
    random_token,
    sign_sha256_rsa,
    verify_sha256_rsa,
)

MESSAGE = 'app_id=2021000000000001&biz_content={"subject":"绿茶"}&charset=utf-8'.encode()


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return generate_rsa_key()


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return generate_rsa_key()


def test_a_generated_key_is_rsa_2048_with_exponent_65537(key: rsa.RSAPrivateKey) -> None:
    assert key.key_size == 2048
    assert key.public_key().public_numbers().e == 65537


def test_every_key_is_new(key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey) -> None:
    assert public_key_pem(key) != public_key_pem(other_key)


def test_the_pem_formats_read_back_as_the_same_key(key: rsa.RSAPrivateKey) -> None:
    pkcs1, pkcs8, public = (
        private_key_pem_pkcs1(key),
        private_key_pem_pkcs8(key),
        public_key_pem(key),
    )

    assert pkcs1.startswith("-----BEGIN RSA PRIVATE KEY-----\n")
    assert pkcs1.rstrip().endswith("-----END RSA PRIVATE KEY-----")
    assert pkcs8.startswith("-----BEGIN PRIVATE KEY-----\n")
    assert public.startswith("-----BEGIN PUBLIC KEY-----\n")
    numbers = key.private_numbers()
    assert load_private_key(pkcs1).private_numbers() == numbers
    assert load_private_key(pkcs8.encode()).private_numbers() == numbers
    assert load_public_key(public).public_numbers() == key.public_key().public_numbers()
    assert public_key_pem(key.public_key()) == public


def test_the_pems_are_read_by_pycryptodome_too(key: rsa.RSAPrivateKey) -> None:
    for pem in (private_key_pem_pkcs1(key), private_key_pem_pkcs8(key)):
        imported = RSA.import_key(pem)
        assert imported.has_private()
        assert imported.n == key.private_numbers().public_numbers.n
    assert RSA.import_key(public_key_pem(key)).n == key.public_key().public_numbers().n


def test_a_signature_is_verified_by_an_independent_implementation(key: rsa.RSAPrivateKey) -> None:
    signature = sign_sha256_rsa(key, MESSAGE)

    verifier = pkcs1_15.new(RSA.import_key(public_key_pem(key)))
    verifier.verify(SHA256.new(MESSAGE), base64.b64decode(signature))  # raises if wrong
    assert len(base64.b64decode(signature)) == 256


def test_a_signature_made_elsewhere_is_verified(key: rsa.RSAPrivateKey) -> None:
    signer = pkcs1_15.new(RSA.import_key(private_key_pem_pkcs1(key)))
    signature = base64.b64encode(signer.sign(SHA256.new(MESSAGE))).decode()

    assert verify_sha256_rsa(key.public_key(), MESSAGE, signature)
    assert sign_sha256_rsa(key, MESSAGE) == signature  # PKCS#1 v1.5 is deterministic


def test_a_wrong_signature_is_refused(key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey) -> None:
    signature = sign_sha256_rsa(key, MESSAGE)

    assert not verify_sha256_rsa(key.public_key(), MESSAGE + b"&x=1", signature)
    assert not verify_sha256_rsa(other_key.public_key(), MESSAGE, signature)
    assert not verify_sha256_rsa(key.public_key(), MESSAGE, "not base64!")
    assert not verify_sha256_rsa(key.public_key(), MESSAGE, "")
    assert not verify_sha256_rsa(key.public_key(), MESSAGE, base64.b64encode(b"short").decode())


def test_loading_something_else_is_refused() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - cryptography's message varies
        load_private_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError):  # noqa: PT011
        load_public_key("not a key")


def test_random_serial_numbers_look_like_wechat_pays() -> None:
    serials = {random_serial_number() for _ in range(50)}

    assert len(serials) == 50
    assert all(re.fullmatch(r"[0-9A-F]{40}", serial) for serial in serials)
    assert re.fullmatch(r"[0-9A-F]{7}", random_serial_number(7))


def test_random_digits() -> None:
    app_id = random_digits(16, first="2021")
    mchid = random_digits(10)

    assert re.fullmatch(r"2021\d{12}", app_id)
    assert re.fullmatch(r"[1-9]\d{9}", mchid)
    assert random_digits(4, first="1234") == "1234"
    assert len({random_digits(12) for _ in range(50)}) == 50
    with pytest.raises(ValueError, match="longer"):
        random_digits(2, first="123")


def test_random_tokens_and_keys() -> None:
    secret_key = random_token("sk_test_")
    apiv3_key = random_alphanumeric(32)

    assert re.fullmatch(r"sk_test_[A-Za-z0-9]{32}", secret_key)
    assert len(apiv3_key) == 32 and set(apiv3_key) <= set(string.ascii_letters + string.digits)
    assert len(apiv3_key.encode("ascii")) == 32
    assert random_alphanumeric(32) != apiv3_key
    assert len(random_token("whsec_", 40)) == len("whsec_") + 40
