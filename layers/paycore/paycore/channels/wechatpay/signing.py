"""WeChat Pay API v3's signatures and notification encryption, on ``cryptography``.

Why this is written here rather than taken from a library: WeChat Pay publishes no Python SDK,
and the community one, ``wechatpayv3`` (a test oracle in this repository), does not serve a
payment backend: it sends with ``requests`` (not in our Lambda layer), verifies a signature
over the body decoded to text instead of its raw bytes, never checks the timestamp (a recorded
notification can be replayed forever), answers an unknown ``Wechatpay-Serial`` by fetching
platform certificates over the network in the middle of a verification, and reports a failed
verification as ``None``. What remains is message assembly around
two primitives that ``cryptography`` provides, RSA PKCS#1 v1.5 with SHA-256 and AES-256-GCM;
nothing cryptographic is implemented here.

- Every request carries ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",
  signature="..",timestamp="..",serial_no=".."``: the merchant's API key signs
  ``METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n``, URL being the path and query exactly as sent
  and BODY the exact bytes sent (empty for a GET).
- Every answer and notification from WeChat Pay is signed over ``TIMESTAMP\\nNONCE\\nBODY\\n``
  (the raw body bytes, never re-serialised JSON) in ``Wechatpay-Timestamp``, ``-Nonce``,
  ``-Signature``, ``-Serial`` (in public-key mode the WeChat Pay public key id,
  ``PUB_KEY_ID_...``) and ``-Signature-Type``. ``check_signature`` accepts it only with this
  account's key id and key, and only within ``NOTIFICATION_TOLERANCE_SECONDS`` of our clock.
- A notification's ``resource`` is AEAD_AES_256_GCM: key the account's APIv3 key (32 bytes),
  the resource's nonce and ``associated_data``, base64 of ciphertext and tag.

Any failure is ``SignatureProblem`` (a ``ValueError``), which the client turns into
``ChannelUnavailable`` (an answer we cannot trust proves nothing) and the adapter into
``CallbackRejected``.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_der_private_key, load_der_public_key

from paycore.channels.base import NOTIFICATION_TOLERANCE_SECONDS

SCHEME = "WECHATPAY2-SHA256-RSA2048"
AEAD_ALGORITHM = "AEAD_AES_256_GCM"
TIMESTAMP_HEADER = "Wechatpay-Timestamp"
NONCE_HEADER = "Wechatpay-Nonce"
SIGNATURE_HEADER = "Wechatpay-Signature"
SERIAL_HEADER = "Wechatpay-Serial"
SIGNATURE_TYPE_HEADER = "Wechatpay-Signature-Type"
APIV3_KEY_BYTES = 32
MIN_RSA_BITS = 2048

_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,40})-----(.*?)-----END \1-----", re.DOTALL)
_PRIVATE_LABELS = frozenset({"PRIVATE KEY", "RSA PRIVATE KEY"})
_PUBLIC_LABELS = frozenset({"PUBLIC KEY", "RSA PUBLIC KEY"})
_MAX_KEY_TEXT = 16 * 1024
_MAX_SIGNATURE_TEXT = 1024  # base64 of an RSA-4096 signature is 684 characters
_MAX_NONCE_TEXT = 64


class SignatureProblem(ValueError):
    """An answer or notification that does not verify, or a resource that does not decrypt."""


# -- keys --------------------------------------------------------------------------------------


def _der(text: str, labels: frozenset[str], what: str) -> bytes:
    """The DER bytes of a key given as PEM (any line breaks, or none: a one-line key), as PEM
    whose line breaks were pasted as the two characters ``\\n``, or as bare base64."""
    if not isinstance(text, str) or len(text) > _MAX_KEY_TEXT:
        raise ValueError(f"the {what} is not PEM text")
    text = text.replace("\\r", "").replace("\\n", "\n").strip()
    framed = _PEM.fullmatch(text)
    if framed is not None:
        if framed.group(1) not in labels:
            raise ValueError(f"the {what} is a PEM {framed.group(1)!r}")
        text = framed.group(2)
    elif "-----" in text:
        raise ValueError(f"the {what} is not one PEM block")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the {what} is not base64") from None


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    """The merchant's API private key (``apiclient_key.pem``: PKCS#8, or PKCS#1); ValueError
    (which never quotes the key) when it is not an unencrypted RSA key of at least 2048 bits."""
    der = _der(text, _PRIVATE_LABELS, "merchant private key")
    try:
        key = load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("the merchant private key does not load") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < MIN_RSA_BITS:
        raise ValueError(f"the merchant private key is not an RSA key of {MIN_RSA_BITS}+ bits")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """The WeChat Pay public key (SubjectPublicKeyInfo, or PKCS#1); ValueError when it is not an
    RSA key of at least 2048 bits."""
    der = _der(text, _PUBLIC_LABELS, "WeChat Pay public key")
    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("the WeChat Pay public key does not load") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS:
        raise ValueError(f"the WeChat Pay public key is not an RSA key of {MIN_RSA_BITS}+ bits")
    return key


# -- the merchant's requests -------------------------------------------------------------------


def new_nonce() -> str:
    """A request nonce: 32 random upper-case hex digits."""
    return secrets.token_hex(16).upper()


def request_message(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What the merchant signs: ``METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n`` (URL = path and
    query exactly as sent)."""
    return f"{method}\n{target}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    """RSA-SHA256 (PKCS#1 v1.5) of ``message``, base64."""
    signature = private_key.sign(message, padding.PKCS1v15(), SHA256())
    return base64.b64encode(signature).decode("ascii")


def authorization(
    *,
    mchid: str,
    serial_no: str,
    private_key: rsa.RSAPrivateKey,
    method: str,
    target: str,
    body: bytes,
    timestamp: str,
    nonce: str,
) -> str:
    """The ``Authorization`` header of one request."""
    signature = sign(private_key, request_message(method, target, timestamp, nonce, body))
    return (
        f'{SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


# -- what WeChat Pay signs ---------------------------------------------------------------------


def answer_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What WeChat Pay signs on an answer or a notification: ``TIMESTAMP\\nNONCE\\nBODY\\n``."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def check_signature(
    headers: Mapping[str, str],
    body: bytes,
    *,
    public_key: rsa.RSAPublicKey,
    public_key_id: str,
    now: float,
) -> None:
    """``SignatureProblem`` unless WeChat Pay signed exactly ``body`` with this account's public
    key (named by ``Wechatpay-Serial``) at a time within ``NOTIFICATION_TOLERANCE_SECONDS`` of
    ``now`` (unix seconds). ``headers`` names are lower case."""
    timestamp = headers.get(TIMESTAMP_HEADER.lower(), "")
    nonce = headers.get(NONCE_HEADER.lower(), "")
    signature = headers.get(SIGNATURE_HEADER.lower(), "")
    serial = headers.get(SERIAL_HEADER.lower(), "")
    signature_type = headers.get(SIGNATURE_TYPE_HEADER.lower())
    if not (timestamp and nonce and signature and serial):
        raise SignatureProblem("not signed by WeChat Pay (signature headers missing)")
    if signature_type is not None and signature_type != SCHEME:
        raise SignatureProblem(f"{SIGNATURE_TYPE_HEADER} is not {SCHEME}")
    if serial != public_key_id:
        raise SignatureProblem(f"{SERIAL_HEADER} is not this account's WeChat Pay public key id")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise SignatureProblem(f"{TIMESTAMP_HEADER} is not unix seconds")
    if abs(now - int(timestamp)) > NOTIFICATION_TOLERANCE_SECONDS:
        raise SignatureProblem(
            f"signed more than {NOTIFICATION_TOLERANCE_SECONDS} s away from our clock (stale)"
        )
    if len(nonce) > _MAX_NONCE_TEXT or len(signature) > _MAX_SIGNATURE_TEXT:
        raise SignatureProblem("the signature headers are too long")
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureProblem(f"{SIGNATURE_HEADER} is not base64") from None
    try:
        public_key.verify(raw, answer_message(timestamp, nonce, body), padding.PKCS1v15(), SHA256())
    except InvalidSignature:
        raise SignatureProblem("the signature does not match the body") from None


def decrypt_resource(
    apiv3_key: bytes, *, nonce: str, ciphertext: str, associated_data: str
) -> bytes:
    """The plaintext of a notification's AEAD_AES_256_GCM ``resource``."""
    if len(apiv3_key) != APIV3_KEY_BYTES:
        raise SignatureProblem("the APIv3 key is not 32 bytes")
    if not nonce or len(nonce) > _MAX_NONCE_TEXT:
        raise SignatureProblem("the resource nonce is missing or too long")
    try:
        sealed = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureProblem("the resource ciphertext is not base64") from None
    try:
        return AESGCM(apiv3_key).decrypt(
            nonce.encode("utf-8"), sealed, associated_data.encode("utf-8")
        )
    except (InvalidTag, ValueError):
        raise SignatureProblem(
            "the resource does not decrypt with this account's APIv3 key"
        ) from None
