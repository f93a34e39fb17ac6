"""Alipay's RSA2 signatures: SHA256withRSA, PKCS#1 v1.5, base64, with ``cryptography``.

``cryptography`` does the RSA. Hand-written here is only what no library we can ship does:

- the signing content: every parameter but the excluded ones with a non-empty value, sorted by
  name, written ``name=value`` (values not URL-encoded) and joined by ``&``. A request excludes
  only ``sign`` (``sign_type`` IS signed); a notification or a buyer's return excludes ``sign``
  and ``sign_type``;
- cutting the signed text out of an answer: Alipay signs the exact JSON text of
  ``"<method with underscores>_response"`` as it appears in the body, so the object must be
  located in the raw text, not re-serialised (``json.JSONDecoder.raw_decode`` finds its end,
  braces inside strings included, where the SDKs count braces);
- loading the keys merchants paste: PEM (PKCS#1 or PKCS#8; SubjectPublicKeyInfo or PKCS#1
  public keys), a PEM whose line breaks were lost or escaped, or the bare one-line base64 that
  Alipay's key tool hands out.

The channel's own SDKs do the first two, but neither fits a Lambda layer: python-alipay-sdk
brings pycryptodomex and pyOpenSSL and opens its own HTTP connections with local-time
timestamps; alipay-sdk-python is a 183 MB package. They stay test-only oracles.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection, Mapping

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SIGN_TYPE = "RSA2"
REQUEST_EXCLUDED = frozenset({"sign"})
NOTIFICATION_EXCLUDED = frozenset({"sign", "sign_type"})
MIN_KEY_BITS = 2048  # RSA2 keys are 2048 bits (Alipay's key tool makes nothing smaller)

_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_MAX_SIGNATURE_CHARS = 2048  # base64 of a 4096-bit signature is 684 characters


# -- keys ------------------------------------------------------------------------------------


def _der(text: str, what: str) -> bytes:
    """The DER bytes of a key given as PEM or as bare base64 (line breaks, spaces and escaped
    ``\\n`` tolerated). The message never quotes the key."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"the {what} is empty")
    text = text.replace("\\r", "").replace("\\n", "\n")
    found = _PEM.search(text)
    body = found.group(2) if found else text
    if found is None and "-----" in text:
        raise ValueError(f"the {what} has a PEM header without its matching footer")
    compact = "".join(body.split())
    if not _BASE64.fullmatch(compact):
        raise ValueError(f"the {what} is neither PEM nor base64 (an encrypted key is refused)")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the {what} is not valid base64") from None


def _check_size(key: rsa.RSAPrivateKey | rsa.RSAPublicKey, what: str) -> None:
    if key.key_size < MIN_KEY_BITS:
        raise ValueError(f"the {what} has {key.key_size} bits; RSA2 needs {MIN_KEY_BITS}")


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """The app's RSA private key (PKCS#1 or PKCS#8, PEM or bare base64)."""
    der = _der(text, "private key")
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("the private key is not an unencrypted PKCS#1 or PKCS#8 key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the private key is not an RSA key")
    _check_size(key, "private key")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """Alipay's RSA public key (SubjectPublicKeyInfo or PKCS#1, PEM or bare base64)."""
    der = _der(text, "public key")
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("the public key is not an RSA public key (certificates are not)") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the public key is not an RSA key")
    _check_size(key, "public key")
    return key


# -- signatures ------------------------------------------------------------------------------


def signing_content(params: Mapping[str, str], excluded: Collection[str]) -> str:
    """``name=value&...`` over the non-empty parameters not in ``excluded``, sorted by name."""
    return "&".join(
        f"{name}={value}"
        for name, value in sorted(params.items())
        if name not in excluded and value != ""
    )


def sign(key: rsa.RSAPrivateKey, content: str) -> str:
    """RSA2 of ``content`` (UTF-8), base64 on one line."""
    signature = key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify(key: rsa.RSAPublicKey, content: str, signature: str) -> bool:
    """Whether ``signature`` (base64) is the RSA2 signature of ``content`` by ``key``'s
    private half."""
    if not signature or len(signature) > _MAX_SIGNATURE_CHARS:
        return False
    try:
        raw = base64.b64decode("".join(signature.split()), validate=True)
        key.verify(raw, content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def sign_request(key: rsa.RSAPrivateKey, params: Mapping[str, str]) -> str:
    """The ``sign`` of a gateway request: over every parameter but ``sign``."""
    return sign(key, signing_content(params, REQUEST_EXCLUDED))


def verify_notification(key: rsa.RSAPublicKey, fields: Mapping[str, str]) -> bool:
    """Whether a notification's (or a return's) ``sign`` is Alipay's, over every field but
    ``sign`` and ``sign_type``."""
    return verify(key, signing_content(fields, NOTIFICATION_EXCLUDED), fields.get("sign", ""))


# -- answers ---------------------------------------------------------------------------------


def signed_answer(text: str, name: str) -> tuple[str, dict[str, object], str | None] | None:
    """The answer object of ``{"<name>": {...}, "sign": "..."}`` (or of Alipay's
    ``error_response``): its exact text as signed, the object, and the signature (None when
    unsigned). None when the body is not such an answer."""
    try:
        outer = json.loads(text)
    except ValueError:
        return None
    if not isinstance(outer, dict):
        return None
    key = name if name in outer else "error_response"
    inner, signature = outer.get(key), outer.get("sign")
    found = re.search(rf'"{re.escape(key)}"\s*:\s*', text)
    if (
        not isinstance(inner, dict)
        or not (signature is None or isinstance(signature, str))
        or found is None
    ):
        return None
    try:
        cut, end = json.JSONDecoder().raw_decode(text, found.end())
    except ValueError:
        return None
    if cut != inner:  # the first occurrence was not the answer's own key
        return None
    return text[found.end() : end], inner, signature
