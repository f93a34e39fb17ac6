"""Credentials a simulator makes at start-up (fresh per instance) and RSA signatures.

- RSA-2048 keys (``generate_rsa_key``) and their PEM text: the private key as PKCS#1
  (``-----BEGIN RSA PRIVATE KEY-----``, what Alipay's tools print) or PKCS#8
  (``-----BEGIN PRIVATE KEY-----``, WeChat Pay's ``apiclient_key.pem``), the public key as
  SubjectPublicKeyInfo (``-----BEGIN PUBLIC KEY-----``); and the way back (``load_*``).
- ``sign_sha256_rsa`` / ``verify_sha256_rsa``: RSA-SHA256 with PKCS#1 v1.5 padding, signature in
  standard base64: Alipay's RSA2 and WeChat Pay v3's SHA256-RSA2048.
- Random identifiers: ``random_serial_number`` (a certificate serial as WeChat Pay shows it:
  40 upper-case hex digits), ``random_digits`` (Alipay ``app_id``, WeChat Pay ``mchid``),
  ``random_token`` (``sk_test_...``, ``whsec_...``), ``random_alphanumeric`` (an APIv3 key).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import string

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

RSA_KEY_BITS = 2048
_PUBLIC_EXPONENT = 65537
_ALPHANUMERIC = string.ascii_letters + string.digits


def generate_rsa_key(bits: int = RSA_KEY_BITS) -> rsa.RSAPrivateKey:
    """A new RSA private key (public exponent 65537)."""
    return rsa.generate_private_key(public_exponent=_PUBLIC_EXPONENT, key_size=bits)


def private_key_pem_pkcs1(key: rsa.RSAPrivateKey) -> str:
    """``-----BEGIN RSA PRIVATE KEY-----`` (PKCS#1), unencrypted."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")


def private_key_pem_pkcs8(key: rsa.RSAPrivateKey) -> str:
    """``-----BEGIN PRIVATE KEY-----`` (PKCS#8), unencrypted."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def public_key_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    """``-----BEGIN PUBLIC KEY-----`` (SubjectPublicKeyInfo) of a key or key pair."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_private_key(pem: str | bytes) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM, PKCS#1 or PKCS#8 (ValueError otherwise)."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """An RSA public key from SubjectPublicKeyInfo or PKCS#1 PEM (ValueError otherwise)."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def sign_sha256_rsa(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """Base64 of the RSA-SHA256 (PKCS#1 v1.5) signature of ``message``."""
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify_sha256_rsa(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is ``key``'s RSA-SHA256 (PKCS#1 v1.5) signature of
    ``message``; False for anything malformed."""
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def random_serial_number(hex_digits: int = 40) -> str:
    """A certificate serial number as upper-case hex, e.g. WeChat Pay's merchant_serial_no."""
    return secrets.token_hex((hex_digits + 1) // 2).upper()[:hex_digits]


def random_digits(length: int, *, first: str = "") -> str:
    """``length`` decimal digits starting with ``first`` (``random_digits(16, first="2021")``
    for an Alipay app_id); the rest random, the first random one never 0 when ``first`` is
    empty."""
    if len(first) > length:
        raise ValueError("first is longer than length")
    rest = length - len(first)
    if rest == 0:
        return first
    lead = "" if first else str(secrets.randbelow(9) + 1)
    digits = "".join(str(secrets.randbelow(10)) for _ in range(rest - len(lead)))
    return f"{first}{lead}{digits}"


def random_token(prefix: str = "", length: int = 32) -> str:
    """``prefix`` plus ``length`` random letters and digits, e.g. ``random_token("sk_test_")``."""
    return prefix + random_alphanumeric(length)


def random_alphanumeric(length: int) -> str:
    """``length`` random ASCII letters and digits (a WeChat Pay APIv3 key is 32 of them)."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))
