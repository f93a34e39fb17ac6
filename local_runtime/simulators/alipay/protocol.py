"""Alipay's wire format (open platform, RSA2): what is signed, how times and amounts are
written, the response envelope and the error codes.

- Every request to ``/gateway.do`` carries the common parameters (``app_id``, ``method``,
  ``charset``, ``sign_type``, ``timestamp``, ``version``, ``biz_content`` and sometimes
  ``notify_url``/``return_url``) and ``sign``: RSA2 (SHA256withRSA, PKCS#1 v1.5, base64) by the
  app's private key over every parameter but ``sign`` with a non-empty value, sorted by name,
  written ``name=value`` (values not URL-encoded) and joined by ``&``. ``sign_type`` IS signed.
- An answer is ``{"<method with underscores>_response": {...}, "sign": "..."}``; ``sign`` is
  Alipay's RSA2 over the exact JSON text of the inner object as it appears in the body.
- A notification (and the buyer's return to ``return_url``) is signed the same way over every
  field but ``sign`` and ``sign_type``.
- Times are Beijing time without a zone, ``yyyy-MM-dd HH:mm:ss``; amounts are yuan strings
  with two decimals (``"19.99"``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric import rsa

from local_runtime.simulators.common.keys import sign_sha256_rsa, verify_sha256_rsa

SHANGHAI = ZoneInfo("Asia/Shanghai")
SIGN_TYPE = "RSA2"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_TOTAL_AMOUNT = 100_000_000_00  # 100,000,000.00 yuan, in fen
REQUEST_EXCLUDED = frozenset({"sign"})
NOTIFY_EXCLUDED = frozenset({"sign", "sign_type"})

_YUAN = re.compile(r"^\d{1,12}(\.\d{1,2})?$")


# -- signatures ---------------------------------------------------------------------------


def signing_content(params: Mapping[str, str], excluded: Collection[str]) -> str:
    """``k=v&...`` over the non-empty parameters not in ``excluded``, sorted by name."""
    return "&".join(
        f"{name}={value}"
        for name, value in sorted(params.items())
        if name not in excluded and value != ""
    )


def sign_params(
    key: rsa.RSAPrivateKey, params: Mapping[str, str], excluded: Collection[str] = NOTIFY_EXCLUDED
) -> str:
    """Alipay's RSA2 signature of ``params`` (a notification or a return by default)."""
    return sign_sha256_rsa(key, signing_content(params, excluded).encode("utf-8"))


def verify_request(key: rsa.RSAPublicKey, params: Mapping[str, str]) -> bool:
    """Whether ``params["sign"]`` is the app's RSA2 signature of the request's parameters."""
    signature = params.get("sign", "")
    content = signing_content(params, REQUEST_EXCLUDED).encode("utf-8")
    return bool(signature) and verify_sha256_rsa(key, content, signature)


# -- times and amounts --------------------------------------------------------------------


def beijing(moment: datetime) -> str:
    """``2026-12-06 09:30:00``: an aware moment as Alipay writes it."""
    return moment.astimezone(SHANGHAI).strftime(TIMESTAMP_FORMAT)


def beijing_millis(moment: datetime) -> str:
    """``2026-12-06 09:30:00.123``: the form of ``gmt_refund`` in a notification."""
    local = moment.astimezone(SHANGHAI)
    return f"{local.strftime(TIMESTAMP_FORMAT)}.{local.microsecond // 1000:03d}"


def parse_beijing(text: str) -> datetime:
    """An Alipay time (Beijing, ``yyyy-MM-dd HH:mm:ss``) as an aware UTC datetime."""
    local = datetime.strptime(text, TIMESTAMP_FORMAT)
    return local.replace(tzinfo=SHANGHAI).astimezone(UTC)


def yuan(fen: int) -> str:
    """``1999`` -> ``"19.99"``; ``-5`` -> ``"-0.05"``."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def parse_yuan(value: object) -> int:
    """A positive yuan amount (a string such as ``"19.99"`` or a JSON number) in fen;
    ValueError unless it has at most two decimals and lies in 0.01..100000000."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError("must be an amount in yuan, e.g. 19.99")
    text = value if isinstance(value, str) else str(value)
    if not _YUAN.match(text):
        raise ValueError("must be an amount in yuan with at most two decimals, e.g. 19.99")
    try:
        fen = int(Decimal(text) * 100)
    except InvalidOperation:
        raise ValueError("must be an amount in yuan, e.g. 19.99") from None
    if not 0 < fen <= MAX_TOTAL_AMOUNT:
        raise ValueError("must be between 0.01 and 100000000")
    return fen


# -- refund numbers ---------------------------------------------------------------------


def refund_key(out_trade_no: str, out_request_no: str) -> str:
    """The trade book's key of a refund: Alipay scopes ``out_request_no`` to its trade (two
    trades may each have a refund ``1``), the book keys refunds per account."""
    return f"{out_trade_no}:{out_request_no}"


def out_request_no(refund_key_text: str) -> str:
    """The merchant's ``out_request_no`` back from a ``refund_key``."""
    return refund_key_text.partition(":")[2]


# -- answers ------------------------------------------------------------------------------

SUCCESS = {"code": "10000", "msg": "Success"}


@dataclass(frozen=True)
class AlipayError(Exception):
    """An Alipay error answer: ``code``/``msg`` from the gateway, ``sub_code``/``sub_msg``
    the detail (``40004`` / ``ACQ.TRADE_NOT_EXIST``)."""

    code: str
    msg: str
    sub_code: str
    sub_msg: str

    def content(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "msg": self.msg,
            "sub_code": self.sub_code,
            "sub_msg": self.sub_msg,
        }


def missing(sub_code: str, sub_msg: str) -> AlipayError:
    """40001: a required common parameter is missing."""
    return AlipayError("40001", "Missing Required Arguments", sub_code, sub_msg)


def invalid(sub_code: str, sub_msg: str) -> AlipayError:
    """40002: a common parameter is wrong (signature, app id, timestamp, ...)."""
    return AlipayError("40002", "Invalid Arguments", sub_code, sub_msg)


def business(sub_code: str, sub_msg: str) -> AlipayError:
    """40004: the call was understood and refused by the business (``ACQ.*``)."""
    return AlipayError("40004", "Business Failed", sub_code, sub_msg)


def system_error() -> AlipayError:
    """20000: Alipay could not answer; the same call may be repeated."""
    return AlipayError("20000", "Service Currently Unavailable", "ACQ.SYSTEM_ERROR", "系统错误")


def invalid_parameter(message: str) -> AlipayError:
    """40004 ACQ.INVALID_PARAMETER: a business parameter is missing or wrong."""
    return business("ACQ.INVALID_PARAMETER", f"参数无效: {message}")


def response_name(method: str | None) -> str:
    """``alipay.trade.query`` -> ``alipay_trade_query_response``; ``error_response`` when the
    method is not one Alipay knows."""
    return f"{method.replace('.', '_')}_response" if method else "error_response"


def envelope(name: str, content: Mapping[str, Any], key: rsa.RSAPrivateKey | None) -> bytes:
    """The answer body: ``{"<name>": content, "sign": ...}``, signed over the exact inner JSON
    text; unsigned when no app is known (an unknown ``app_id`` has no key).

    SDKs find the signed text by counting braces from the first ``{`` after ``<name>``
    without looking at strings, so no value may contain a brace (they would mis-cut it)."""
    inner = json.dumps(_brace_free(content), ensure_ascii=False, separators=(",", ":"))
    if key is None:
        return f'{{"{name}":{inner}}}'.encode()
    signature = sign_sha256_rsa(key, inner.encode("utf-8"))
    return f'{{"{name}":{inner},"sign":"{signature}"}}'.encode()


def _brace_free(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("{", "(").replace("}", ")")
    if isinstance(value, Mapping):
        return {key: _brace_free(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_brace_free(item) for item in value]
    return value
