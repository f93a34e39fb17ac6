"""Notifications are verified before anything is read: size, this account's WeChat Pay key and key
id over the raw bytes, freshness, then the resource's AEAD tag with this account's APIv3 key;
only then is the resource read, on its own state. Every failure is CallbackRejected.

WeChat Pay's side is built here without a server (``wechatpay_fakes``); the notifications the
simulator really sends are parsed in tests/functional/test_wechatpay_adapter.py."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local_runtime.simulators.wechatpay.signing import encrypt_resource, signature_headers
from paycore.channels.base import (
    MAX_NOTIFICATION_BYTES,
    ChannelPaymentState,
    ChannelPaymentStatus,
    ChannelRefundState,
    ChannelRefundStatus,
)
from paycore.errors import CallbackRejected
from tests.unit.wechatpay_fakes import (
    REFUND_SUCCESS,
    gateway,
    merchants,
    notification,
    refund,
    transaction,
)


def test_a_payment_notification_is_read_from_its_decrypted_resource() -> None:
    merchant = merchants()[0]
    body, headers = notification(merchant, transaction(merchant))

    state = gateway(merchant).parse_notification(body, headers)

    assert isinstance(state, ChannelPaymentState)
    assert state.status is ChannelPaymentStatus.SUCCEEDED
    assert (state.out_trade_no, state.amount, state.currency) == ("pay_unit0000000001", 1999, "CNY")
    assert state.channel_transaction_id == "4200000001202401010000000001"
    assert state.notification_id == json.loads(body)["id"]


def test_a_refund_notification_is_read_from_refund_status() -> None:
    merchant = merchants()[0]
    body, headers = notification(merchant, refund(merchant), REFUND_SUCCESS)

    state = gateway(merchant).parse_notification(body, headers)

    assert isinstance(state, ChannelRefundState)
    assert state.status is ChannelRefundStatus.SUCCEEDED
    assert (state.out_refund_no, state.out_trade_no) == ("rfd_unit0000000001", "pay_unit0000000001")
    assert (state.amount, state.currency) == (500, "CNY")
    assert state.notification_id == json.loads(body)["id"]


def test_header_names_are_matched_whatever_their_case() -> None:
    merchant = merchants()[0]
    body, headers = notification(merchant, transaction(merchant))
    upper = {name.upper(): value for name, value in headers.items()}

    assert (
        gateway(merchant).parse_notification(body, upper).status is ChannelPaymentStatus.SUCCEEDED
    )


def test_the_state_decides_not_the_event_type() -> None:
    """A stale TRANSACTION.SUCCESS-labelled resource that says NOTPAY reads as pending."""
    merchant = merchants()[0]
    unpaid = transaction(merchant, trade_state="NOTPAY", trade_state_desc="订单未支付")
    del unpaid["transaction_id"]
    body, headers = notification(merchant, unpaid)

    state = gateway(merchant).parse_notification(body, headers)

    assert state.status is ChannelPaymentStatus.PENDING


def _rejected(body: bytes, headers: dict[str, str], account: int = 0) -> str:
    with pytest.raises(CallbackRejected) as refused:
        gateway(merchants()[account]).parse_notification(body, headers)
    return str(refused.value)


def test_an_unsigned_notification_is_rejected() -> None:
    merchant = merchants()[0]
    body, headers = notification(merchant, transaction(merchant))
    for name in (
        "Wechatpay-Signature",
        "Wechatpay-Timestamp",
        "Wechatpay-Nonce",
        "Wechatpay-Serial",
    ):
        assert "missing" in _rejected(body, {k: v for k, v in headers.items() if k != name})
    assert "missing" in _rejected(body, {})


def test_another_accounts_notification_is_rejected() -> None:
    other = merchants()[1]
    body, headers = notification(other, transaction(other))

    assert "key id" in _rejected(body, headers)


def test_a_notification_forged_under_this_accounts_key_id_is_rejected() -> None:
    merchant, other = merchants()
    body, headers = notification(other, transaction(merchant))
    headers["Wechatpay-Serial"] = merchant.public_key_id

    assert "does not match" in _rejected(body, headers)


@pytest.mark.parametrize("minutes", [-6, 6])
def test_a_stale_or_future_notification_is_rejected(minutes: int) -> None:
    merchant = merchants()[0]
    at = datetime.now(UTC) + timedelta(minutes=minutes)
    body, headers = notification(merchant, transaction(merchant), at=at)

    assert "stale" in _rejected(body, headers)


def test_a_tampered_notification_is_rejected() -> None:
    merchant = merchants()[0]
    body, headers = notification(merchant, transaction(merchant))
    envelope = json.loads(body)
    for tampered in (
        body.replace(b'"TRANSACTION.SUCCESS"', b'"TRANSACTION.REFUND"'),
        json.dumps(envelope).encode(),  # the same JSON, re-serialised: not the signed bytes
        body + b" ",
    ):
        assert "does not match" in _rejected(tampered, headers)


def test_an_oversized_notification_is_rejected_before_anything_else() -> None:
    assert "at most" in _rejected(b" " * (MAX_NOTIFICATION_BYTES + 1), {})


def _signed_envelope(envelope: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """An envelope signed by this account's WeChat Pay key (so only its content is at fault)."""
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    return body, signature_headers(merchants()[0], body, datetime.now(UTC))


def _envelope(
    resource: dict[str, Any] | bytes,
    *,
    event_type: str = "TRANSACTION.SUCCESS",
    original_type: str = "transaction",
    apiv3_key: str | None = None,
    associated_data: str | None = None,
) -> dict[str, Any]:
    merchant = merchants()[0]
    plain = resource if isinstance(resource, bytes) else json.dumps(resource).encode()
    sealed = encrypt_resource(
        apiv3_key or merchant.apiv3_key,
        plain,
        original_type=original_type,
        associated_data=original_type,
    )
    if associated_data is not None:
        sealed["associated_data"] = associated_data
    return {
        "id": "a5e2b0f6-0000-4000-8000-000000000001",
        "create_time": "2030-01-01T10:00:00+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "支付成功",
        "resource": sealed,
    }


def test_a_signed_envelope_is_accepted_when_its_content_is_right() -> None:
    merchant = merchants()[0]
    body, headers = _signed_envelope(_envelope(transaction(merchant)))
    assert (
        gateway(merchant).parse_notification(body, headers).status is ChannelPaymentStatus.SUCCEEDED
    )


@pytest.mark.parametrize(
    "case",
    [
        "another-apiv3-key",
        "another-associated-data",
        "flipped-ciphertext",
        "event-and-resource-disagree",
        "unknown-event",
        "resource-not-json",
        "another-mchid",
        "another-appid",
        "not-encrypted",
        "not-json",
    ],
)
def test_a_signed_notification_whose_content_is_wrong_is_rejected(case: str) -> None:
    merchant, other = merchants()
    resource = transaction(merchant)
    envelope: dict[str, Any]
    match case:
        case "another-apiv3-key":
            envelope = _envelope(resource, apiv3_key=other.apiv3_key)
        case "another-associated-data":
            envelope = _envelope(resource, associated_data="refund")
        case "flipped-ciphertext":
            envelope = _envelope(resource)
            sealed = bytearray(base64.b64decode(envelope["resource"]["ciphertext"]))
            sealed[0] ^= 1
            envelope["resource"]["ciphertext"] = base64.b64encode(bytes(sealed)).decode()
        case "event-and-resource-disagree":
            envelope = _envelope(refund(merchant), event_type="REFUND.SUCCESS")
            envelope["resource"]["original_type"] = "transaction"
        case "unknown-event":
            envelope = _envelope(resource, event_type="MCHTRANSFER.BILL.FINISHED")
        case "resource-not-json":
            envelope = _envelope(b"SUCCESS")
        case "another-mchid":
            envelope = _envelope(transaction(merchant, mchid=other.mchid))
        case "another-appid":
            envelope = _envelope(transaction(merchant, appid=other.appid))
        case "not-encrypted":
            envelope = _envelope(resource)
            envelope["resource_type"] = "plain"
        case "not-json":
            body = b"trade_state=SUCCESS"
            headers = signature_headers(merchant, body, datetime.now(UTC))
            assert "malformed" in _rejected(body, headers)
            return
    body, headers = _signed_envelope(envelope)

    assert "malformed" in _rejected(body, headers)
