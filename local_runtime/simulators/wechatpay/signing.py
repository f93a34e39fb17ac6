"""WeChat Pay v3's signatures, both ways, and the encrypted notification resource.

- The merchant signs every request (``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",
  nonce_str="..",signature="..",timestamp="..",serial_no=".."``): RSA-SHA256 (PKCS#1 v1.5) with
  its API key over ``METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n``, where URL is the path and query
  exactly as sent and BODY the exact body bytes (empty for a GET). ``check_authorization``
  verifies it, refusing a timestamp more than 5 minutes away from the simulator's clock.
- WeChat Pay signs every answer and notification with the same scheme over
  ``TIMESTAMP\\nNONCE\\nBODY\\n``, in the headers ``Wechatpay-Timestamp``, ``-Nonce``,
  ``-Signature``, ``-Serial`` (the public key id) and ``-Signature-Type``:
  ``signature_headers``.
- A notification's ``resource`` is AEAD_AES_256_GCM with the APIv3 key (32 bytes), a
  12-character nonce and ``associated_data``; the ciphertext (tag appended) is base64:
  ``encrypt_resource``.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from local_runtime.simulators.common.keys import (
    random_alphanumeric,
    sign_sha256_rsa,
    verify_sha256_rsa,
)
from local_runtime.simulators.wechatpay.errors import sign_error
from local_runtime.simulators.wechatpay.merchants import MerchantAccount

SCHEME = "WECHATPAY2-SHA256-RSA2048"
MAX_SKEW_SECONDS = 300
AEAD_ALGORITHM = "AEAD_AES_256_GCM"
_NONCE_LENGTH = 32
_RESOURCE_NONCE_LENGTH = 12

_PAIR = re.compile(r'\s*([A-Za-z_]+)="([^"]*)"\s*(?:,|$)')
_FIELDS = ("mchid", "nonce_str", "signature", "timestamp", "serial_no")


@dataclass(frozen=True)
class Authorization:
    """The parts of a merchant's ``Authorization`` header."""

    mchid: str
    nonce_str: str
    signature: str
    timestamp: str
    serial_no: str


def parse_authorization(header: str | None) -> Authorization:
    """The header's parts (``401 SIGN_ERROR`` when missing or malformed)."""
    if not header:
        raise sign_error("Http头缺少Authorization (the request is not signed)")
    scheme, _, rest = header.strip().partition(" ")
    if scheme != SCHEME:
        raise sign_error(f"Authorization 的认证类型必须是 {SCHEME}")
    parts: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _PAIR.match(rest, position)
        if match is None:
            raise sign_error('Authorization 格式错误 (expected key="value" pairs)')
        parts[match.group(1)] = match.group(2)
        position = match.end()
    missing = [name for name in _FIELDS if not parts.get(name)]
    if missing:
        raise sign_error(f"Authorization 缺少 {', '.join(missing)}")
    return Authorization(**{name: parts[name] for name in _FIELDS})


def request_message(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """What the merchant signs: ``METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n``."""
    return f"{method}\n{target}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def answer_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What WeChat Pay signs in an answer or notification: ``TIMESTAMP\\nNONCE\\nBODY\\n``."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def check_authorization(
    authorization: Authorization,
    merchant: MerchantAccount,
    *,
    method: str,
    target: str,
    body: bytes,
    now: datetime,
) -> None:
    """``401 SIGN_ERROR`` unless ``merchant`` signed this very request within 5 minutes of
    ``now`` with the key registered under ``serial_no``."""
    if authorization.serial_no.upper() != merchant.merchant_serial_no:
        raise sign_error("商户API证书序列号 serial_no 与商户号不匹配 (unknown serial_no)")
    try:
        timestamp = int(authorization.timestamp)
    except ValueError:
        raise sign_error("timestamp 必须是以秒为单位的 Unix 时间戳") from None
    if abs(now.timestamp() - timestamp) > MAX_SKEW_SECONDS:
        raise sign_error(
            "请求的时间戳与微信支付服务器时间相差超过5分钟 (stale or future timestamp)"
        )
    message = request_message(
        method, target, authorization.timestamp, authorization.nonce_str, body
    )
    if not verify_sha256_rsa(merchant.merchant_public_key, message, authorization.signature):
        raise sign_error("签名错误, 请检查签名参数和方法是否都符合签名算法要求")


def signature_headers(merchant: MerchantAccount, body: bytes, now: datetime) -> dict[str, str]:
    """WeChat Pay's signature headers over ``body``, fresh timestamp and nonce."""
    timestamp = str(int(now.timestamp()))
    nonce = random_alphanumeric(_NONCE_LENGTH).upper()
    signature = sign_sha256_rsa(merchant.platform_key, answer_message(timestamp, nonce, body))
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": signature,
        "Wechatpay-Serial": merchant.public_key_id,
        "Wechatpay-Signature-Type": SCHEME,
    }


def encrypt_resource(
    apiv3_key: str, plaintext: bytes, *, original_type: str, associated_data: str
) -> dict[str, Any]:
    """A notification's ``resource``: ``plaintext`` sealed with the APIv3 key."""
    nonce = random_alphanumeric(_RESOURCE_NONCE_LENGTH)
    sealed = AESGCM(apiv3_key.encode("ascii")).encrypt(
        nonce.encode("ascii"), plaintext, associated_data.encode("utf-8")
    )
    return {
        "original_type": original_type,
        "algorithm": AEAD_ALGORITHM,
        "ciphertext": base64.b64encode(sealed).decode("ascii"),
        "associated_data": associated_data,
        "nonce": nonce,
    }
