"""Conformance with WeChat Pay's community SDK ``wechatpayv3`` (public-key mode), the test-only
oracle: on the same simulator and merchant account, what our adapter does the SDK reads, and
what the SDK does our adapter reads; the notifications the simulator sends decrypt to the same
resource for both, and both refuse the same forgeries (except a stale one, which only we refuse:
the SDK checks no timestamp)."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from wechatpayv3 import WeChatPay

from local_runtime.simulators.wechatpay import WechatPaySimulator
from paycore import clock
from paycore.channels.base import ChannelPaymentStatus, ChannelRefundStatus
from paycore.errors import CallbackRejected
from tests.functional.wechatpay_support import (
    beijing_today,
    gateway,
    new_id,
    order,
    pay,
    receivers,
    refund,
    start_simulator,
)
from tests.simulators.receiver import NotificationReceiver, Received
from tests.simulators.wechatpay_merchant import merchant

__all__ = ["receivers"]  # a fixture

ACCOUNT, OTHER = "wx-sdk", "wx-sdk-other"
Receivers = Callable[..., NotificationReceiver]


@pytest.fixture(scope="module")
def simulator() -> Iterator[WechatPaySimulator]:
    running = start_simulator(ACCOUNT, OTHER)
    yield running
    running.stop()


def _sdk(
    simulator: WechatPaySimulator, account: str = ACCOUNT, notify_url: str | None = None
) -> WeChatPay:
    (entry,) = [e for e in simulator.accounts() if e["account"] == account]
    return merchant(entry, notify_url=notify_url)


def _json(answer: tuple[int, Any], status: int = 200) -> dict[str, Any]:
    assert answer[0] == status, answer
    loaded: dict[str, Any] = json.loads(answer[1])
    return loaded


def test_the_sdk_reads_what_our_adapter_creates_pays_and_refunds(
    simulator: WechatPaySimulator, receivers: Receivers
) -> None:
    receiver = receivers()
    sdk = _sdk(simulator)
    wechat = gateway(simulator, ACCOUNT)
    created = wechat.create_order(order(receiver.url, amount=1234))

    unpaid = _json(sdk.query(out_trade_no=created.out_trade_no))
    pay(simulator, str(created.next_action.code_url))
    paid = _json(sdk.query(out_trade_no=created.out_trade_no))
    made = wechat.refund(refund(created.out_trade_no, 234, receiver.url))
    refunded = _json(sdk.query_refund(made.out_refund_no))

    assert (unpaid["trade_state"], unpaid["amount"]["total"]) == ("NOTPAY", 1234)
    assert (paid["trade_state"], paid["amount"]["total"]) == ("SUCCESS", 1234)
    assert paid["transaction_id"] == wechat.query_order(created.out_trade_no).channel_transaction_id
    assert (refunded["status"], refunded["amount"]["refund"], refunded["refund_id"]) == (
        "SUCCESS",
        234,
        made.channel_refund_id,
    )


def test_our_adapter_reads_what_the_sdk_creates_pays_refunds_and_closes(
    simulator: WechatPaySimulator, receivers: Receivers
) -> None:
    receiver = receivers()
    sdk = _sdk(simulator, notify_url=receiver.url)
    wechat = gateway(simulator, ACCOUNT)
    number, other = new_id(), new_id()
    code_url = _json(sdk.pay(description="绿茶", out_trade_no=number, amount={"total": 808}))[
        "code_url"
    ]
    _json(sdk.pay(description="红茶", out_trade_no=other, amount={"total": 99}))

    pending = wechat.query_order(number)
    pay(simulator, code_url)
    paid = wechat.query_order(number)
    refund_no = new_id("rfd")
    _json(
        sdk.refund(
            out_refund_no=refund_no,
            amount={"refund": 8, "total": 808, "currency": "CNY"},
            out_trade_no=number,
        )
    )
    assert sdk.close(other) == (204, b"")

    assert (pending.status, pending.amount) == (ChannelPaymentStatus.PENDING, 808)
    assert (paid.status, paid.amount) == (ChannelPaymentStatus.SUCCEEDED, 808)
    refunded = wechat.query_refund(number, refund_no)
    assert (refunded.status, refunded.amount) == (ChannelRefundStatus.SUCCEEDED, 8)
    assert wechat.query_order(other).status is ChannelPaymentStatus.CLOSED


def _notifications(simulator: WechatPaySimulator, receiver: NotificationReceiver) -> list[Received]:
    """A payment and a refund notification of ACCOUNT, as the simulator sent them."""
    wechat = gateway(simulator, ACCOUNT)
    created = wechat.create_order(order(receiver.url))
    pay(simulator, str(created.next_action.code_url))
    receiver.wait_for(1)
    wechat.refund(refund(created.out_trade_no, 99, receiver.url))
    return receiver.wait_for(2)


def test_the_sdk_and_our_adapter_decrypt_the_same_notifications_alike(
    simulator: WechatPaySimulator, receivers: Receivers
) -> None:
    sdk = _sdk(simulator)
    wechat = gateway(simulator, ACCOUNT)

    for note in _notifications(simulator, receivers()):
        theirs = sdk.callback(note.headers, note.body)
        ours = wechat.parse_notification(note.body, note.headers)

        assert theirs is not None
        resource = theirs["resource"]
        assert ours.notification_id == theirs["id"]
        assert ours.out_trade_no == resource["out_trade_no"]
        if theirs["event_type"] == "TRANSACTION.SUCCESS":
            assert resource["trade_state"] == "SUCCESS"
            assert ours.status is ChannelPaymentStatus.SUCCEEDED
            assert (ours.amount, ours.currency) == (
                resource["amount"]["total"],
                resource["amount"]["currency"],
            )
            assert ours.channel_transaction_id == resource["transaction_id"]  # type: ignore[union-attr]
        else:
            assert theirs["event_type"] == "REFUND.SUCCESS"
            assert resource["refund_status"] == "SUCCESS"
            assert ours.status is ChannelRefundStatus.SUCCEEDED
            assert ours.amount == resource["amount"]["refund"]
            assert ours.out_refund_no == resource["out_refund_no"]  # type: ignore[union-attr]


def test_the_sdk_and_our_adapter_refuse_the_same_forgeries_and_only_we_refuse_a_stale_one(
    simulator: WechatPaySimulator, receivers: Receivers, monkeypatch: pytest.MonkeyPatch
) -> None:
    note = _notifications(simulator, receivers())[0]
    sdk, other_sdk = _sdk(simulator), _sdk(simulator, OTHER)
    wechat, other = gateway(simulator, ACCOUNT), gateway(simulator, OTHER)
    tampered = note.body.replace(b'"summary":"', b'"summary":"!')
    unsigned = {k: v for k, v in note.headers.items() if k != "Wechatpay-Signature"}
    forged_signature = {
        **note.headers,
        "Wechatpay-Signature": note.headers["Wechatpay-Signature"][::-1],
    }

    assert sdk.callback(note.headers, tampered) is None
    with pytest.raises(CallbackRejected):
        wechat.parse_notification(tampered, note.headers)
    assert sdk.callback(forged_signature, note.body) is None
    with pytest.raises(CallbackRejected):
        wechat.parse_notification(note.body, forged_signature)
    assert sdk.callback(unsigned, note.body) is None
    with pytest.raises(CallbackRejected):
        wechat.parse_notification(note.body, unsigned)
    # Another account: the SDK, seeing a key id that is not its own, fetches platform
    # certificates (the simulator serves none) and refuses; we refuse on the key id.
    assert other_sdk.callback(note.headers, note.body) is None
    with pytest.raises(CallbackRejected):
        other.parse_notification(note.body, note.headers)

    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(minutes=10))
    assert sdk.callback(note.headers, note.body) is not None  # the SDK has no clock
    with pytest.raises(CallbackRejected, match="stale"):
        wechat.parse_notification(note.body, note.headers)


def test_the_sdk_downloads_the_same_bill_our_adapter_reads(
    simulator: WechatPaySimulator, receivers: Receivers
) -> None:
    receiver = receivers()
    wechat = gateway(simulator, ACCOUNT)
    created = wechat.create_order(order(receiver.url, amount=555))
    pay(simulator, str(created.next_action.code_url))
    day = beijing_today()
    sdk = _sdk(simulator)

    link = _json(sdk.trade_bill(bill_date=day.isoformat()))
    status, gzipped = sdk.download_bill(link["download_url"])
    statement = wechat.fetch_statement(day)

    assert status == 200
    theirs = gzip.decompress(gzipped)
    assert hashlib.sha1(theirs).hexdigest() == link["hash_value"]
    assert statement.content == theirs
    assert created.out_trade_no in {line.reference for line in statement.lines}
