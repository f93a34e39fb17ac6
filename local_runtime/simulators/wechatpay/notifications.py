"""WeChat Pay's notifications (回调通知): a signed JSON envelope around an encrypted resource.

    POST {notify_url}
    Content-Type: application/json
    Wechatpay-Timestamp / -Nonce / -Signature / -Serial / -Signature-Type: as on every answer

    {"id": "<uuid>", "create_time": "2030-01-01T10:00:00+08:00",
     "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS",
     "summary": "支付成功",
     "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                  "ciphertext": "<base64>", "associated_data": "transaction", "nonce": "<12>"}}

The body (and so ``id`` and the ciphertext) is built once per notification: every attempt,
and every ``notify_duplicate`` copy, sends the same bytes with a fresh timestamp, nonce and
signature. The receiver acknowledges with HTTP 200 or 204 (any body); anything else is retried
on the schedule.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from local_runtime.simulators.common.delivery import RequestBuilder
from local_runtime.simulators.wechatpay.merchants import MerchantAccount
from local_runtime.simulators.wechatpay.resources import beijing_time
from local_runtime.simulators.wechatpay.signing import encrypt_resource, signature_headers

# (event_type, summary, original_type); the last two exist only for notify_reorder's stale
# notification: WeChat Pay itself never notifies an unpaid order or a refund in progress.
TRANSACTION_SUCCESS = ("TRANSACTION.SUCCESS", "支付成功", "transaction")
REFUND_EVENTS = {
    "SUCCESS": ("REFUND.SUCCESS", "退款成功", "refund"),
    "CLOSED": ("REFUND.CLOSED", "退款关闭", "refund"),
    "ABNORMAL": ("REFUND.ABNORMAL", "退款异常", "refund"),
}
STALE_TRANSACTION = ("TRANSACTION.NOTPAY", "订单未支付", "transaction")
STALE_REFUND = ("REFUND.PROCESSING", "退款处理中", "refund")

Event = tuple[str, str, str]


def compact_json(value: Any) -> bytes:
    """JSON as WeChat Pay writes it: compact, UTF-8, non-ASCII as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def notification_request(
    merchant: MerchantAccount,
    event: Event,
    resource: Mapping[str, Any],
    clock: Callable[[], datetime],
) -> RequestBuilder:
    """A request builder for the deliverer: the envelope sealed once, signed per attempt."""
    event_type, summary, original_type = event
    envelope = {
        "id": str(uuid.uuid4()),
        "create_time": beijing_time(clock()),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": encrypt_resource(
            merchant.apiv3_key,
            compact_json(dict(resource)),
            original_type=original_type,
            associated_data=original_type,
        ),
    }
    body = compact_json(envelope)

    def build() -> tuple[bytes, Mapping[str, str]]:
        headers = {"Content-Type": "application/json", **signature_headers(merchant, body, clock())}
        return body, headers

    return build


def acknowledged(status: int, body: bytes) -> bool:
    """WeChat Pay's acknowledgement: HTTP 200 or 204, whatever the body."""
    return status in (200, 204)
