"""Every misbehaviour switch of the WeChat Pay simulator, carried in ``attach`` as WeChat Pay
hands it back, with the sandbox's semantics; and notifications retried until WeChat Pay's
acknowledgement (HTTP 200 or 204). The merchant is the SDK ``wechatpayv3``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from local_runtime.simulators.wechatpay import WechatPaySimulator
from tests.simulators.receiver import NotificationReceiver
from tests.simulators.wechatpay_merchant import (
    create,
    error,
    eventually,
    merchant,
    new_number,
    ok,
    pay_now,
    receiver,
    scan,
    start_simulator,
    trade_view,
)

__all__ = ["receiver"]  # a fixture

ACCOUNT = "wx-switches"
QUIET = 0.3  # how long a notification that should not come is waited for


@pytest.fixture(scope="module")
def simulator() -> Iterator[WechatPaySimulator]:
    running = start_simulator([ACCOUNT])
    yield running
    running.stop()


@pytest.fixture(scope="module")
def entry(simulator: WechatPaySimulator) -> dict[str, Any]:
    return simulator.accounts()[0]


def switches(**values: Any) -> str:
    text = json.dumps(values, separators=(",", ":"))
    assert len(text) <= 128
    return text


def full_refund(pay: Any, number: str, total: int, **fields: Any) -> tuple[int, Any]:
    return pay.refund(  # type: ignore[no-any-return]
        out_refund_no=fields.pop("out_refund_no", None) or new_number("rfd"),
        amount={"refund": total, "total": total, "currency": "CNY"},
        out_trade_no=number,
        **fields,
    )


def test_decline(
    simulator: WechatPaySimulator, entry: dict[str, Any], receiver: NotificationReceiver
) -> None:
    pay = merchant(entry, notify_url=receiver.url)
    number = new_number()
    code_url = create(pay, number, attach=switches(decline=True))
    answer = scan(simulator.url, code_url, "pay")
    assert answer.json()["status"] == "DECLINED"
    assert scan(simulator.url, code_url, "pay").status_code == 200  # pressing Pay again: no-op
    declined = ok(pay.query(out_trade_no=number))
    assert declined["trade_state"] == "PAYERROR"
    assert "transaction_id" not in declined
    time.sleep(QUIET)
    assert receiver.received() == []  # WeChat Pay notifies successful payments only
    assert trade_view(simulator.url, ACCOUNT, number)["notifications"] == []
    error(full_refund(pay, number, 1999), 400, "INVALID_REQUEST")
    assert pay.close(number) == (204, b"")
    assert ok(pay.query(out_trade_no=number))["trade_state"] == "CLOSED"


def test_notify_delay_seconds(
    simulator: WechatPaySimulator, entry: dict[str, Any], receiver: NotificationReceiver
) -> None:
    pay = merchant(entry, notify_url=receiver.url)
    code_url = create(pay, new_number(), attach=switches(notify_delay_seconds=0.4))
    paid_at = time.monotonic()
    pay_now(simulator.url, code_url)
    (arrived,) = receiver.wait_for(1)
    assert arrived.at - paid_at >= 0.4
    assert pay.callback(arrived.headers, arrived.body) is not None


def test_notify_drop(
    simulator: WechatPaySimulator, entry: dict[str, Any], receiver: NotificationReceiver
) -> None:
    pay = merchant(entry, notify_url=receiver.url)
    number = new_number()
    pay_now(simulator.url, create(pay, number, attach=switches(notify_drop=True)))
    time.sleep(QUIET)
    assert receiver.received() == []
    (dropped,) = trade_view(simulator.url, ACCOUNT, number)["notifications"]
    assert (dropped["label"], dropped["state"], dropped["attempts"]) == (
        "TRANSACTION.SUCCESS",
        "DROPPED",
        [],
    )
    assert ok(pay.query(out_trade_no=number))["trade_state"] == "SUCCESS"


def test_notify_duplicate(
    simulator: WechatPaySimulator, entry: dict[str, Any], receiver: NotificationReceiver
) -> None:
    pay = merchant(entry, notify_url=receiver.url)
    pay_now(simulator.url, create(pay, new_number(), attach=switches(notify_duplicate=3)))
    copies = receiver.wait_for(3)
    time.sleep(QUIET)
    assert len(receiver.received()) == 3
    decrypted = [pay.callback(copy.headers, copy.body) for copy in copies]
    assert all(found is not None for found in decrypted)
    assert len({found["id"] for found in decrypted if found}) == 1  # one notification id
    assert len({copy.headers["Wechatpay-Nonce"] for copy in copies}) == 3  # signed apart


def test_notify_reorder(
    simulator: WechatPaySimulator, entry: dict[str, Any], receiver: NotificationReceiver
) -> None:
    pay = merchant(entry, notify_url=receiver.url)
    number = new_number()
    pay_now(simulator.url, create(pay, number, 1000, attach=switches(notify_reorder=True)))
    final, stale = receiver.wait_for(2)
    assert stale.at - final.at >= 0.45
    final_notification = pay.callback(final.headers, final.body)
    stale_notification = pay.callback(stale.headers, stale.body)
    assert final_notification is not None and stale_notification is not None
    assert final_notification["resource"]["trade_state"] == "SUCCESS"
    assert stale_notification["event_type"] == "TRANSACTION.NOTPAY"
    assert stale_notification["resource"]["trade_state"] == "NOTPAY"
    assert "transaction_id" not in stale_notification["resource"]
    assert stale_notification["id"] != final_notification["id"]

    ok(full_refund(pay, number, 1000, notify_url=receiver.url))
    refund_final, refund_stale = receiver.wait_for(4)[2:]
    refunded = pay.callback(refund_final.headers, refund_final.body)
    in_progress = pay.callback(refund_stale.headers, refund_stale.body)
    assert refunded is not None and in_progress is not None
    assert (refunded["event_type"], refunded["resource"]["refund_status"]) == (
        "REFUND.SUCCESS",
        "SUCCESS",
    )
    assert (in_progress["event_type"], in_progress["resource"]["refund_status"]) == (
        "REFUND.PROCESSING",
        "PROCESSING",
    )


def test_query_only(
    simulator: WechatPaySimulator, entry: dict[str, Any], receiver: NotificationReceiver
) -> None:
    pay = merchant(entry, notify_url=receiver.url)
    number = new_number()
    pay_now(simulator.url, create(pay, number, 1000, attach=switches(query_only=True)))
    refund = ok(full_refund(pay, number, 1000, notify_url=receiver.url))
    time.sleep(QUIET)
    assert receiver.received() == []
    view = trade_view(simulator.url, ACCOUNT, number)
    assert view["notifications"] == [] and view["refunds"][0]["notifications"] == []
    assert ok(pay.query(out_trade_no=number))["trade_state"] == "REFUND"
    assert ok(pay.query_refund(refund["out_refund_no"]))["status"] == "SUCCESS"


def test_create_error(entry: dict[str, Any]) -> None:
    pay = merchant(entry, notify_url="http://127.0.0.1:9/notify")
    number = new_number()
    attach = switches(create_error={"times": 1, "status": 502})
    failed = pay.pay(description="x", out_trade_no=number, amount={"total": 1}, attach=attach)
    error(failed, 502, "SYSTEM_ERROR")
    error(pay.query(out_trade_no=number), 404, "ORDER_NOT_EXIST")
    create(pay, number, 1, attach=attach)  # call 2: beyond "times"


def test_create_error_after_create(entry: dict[str, Any]) -> None:
    pay = merchant(entry, notify_url="http://127.0.0.1:9/notify")
    number = new_number()
    attach = switches(create_error={"times": 2, "after_create": True})
    for _ in range(2):
        failed = pay.pay(description="x", out_trade_no=number, amount={"total": 1}, attach=attach)
        error(failed, 503, "SYSTEM_ERROR")
        assert ok(pay.query(out_trade_no=number))["trade_state"] == "NOTPAY"
    code_url = create(pay, number, 1, attach=attach)
    assert create(pay, number, 1) == code_url


def test_create_timeout(entry: dict[str, Any]) -> None:
    impatient = merchant(entry, notify_url="http://127.0.0.1:9/notify", timeout=0.25)
    number = new_number()
    attach = switches(create_timeout={"seconds": 0.8})
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        impatient.pay(description="x", out_trade_no=number, amount={"total": 1}, attach=attach)
    assert time.monotonic() - started < 0.7
    pay = merchant(entry, notify_url="http://127.0.0.1:9/notify")
    assert ok(pay.query(out_trade_no=number))["trade_state"] == "NOTPAY"  # it was created
    started = time.monotonic()
    create(pay, number, 1, attach=attach)  # call 2 is not stalled
    assert time.monotonic() - started < 0.5


def test_close_ignored(
    simulator: WechatPaySimulator, entry: dict[str, Any], receiver: NotificationReceiver
) -> None:
    pay = merchant(entry, notify_url=receiver.url)
    number = new_number()
    code_url = create(pay, number, attach=switches(close_ignored=True))
    assert pay.close(number) == (204, b"")
    assert ok(pay.query(out_trade_no=number))["trade_state"] == "NOTPAY"
    pay_now(simulator.url, code_url)  # the late payment the merchant must refund
    assert ok(pay.query(out_trade_no=number))["trade_state"] == "SUCCESS"
    (arrived,) = receiver.wait_for(1)
    assert pay.callback(arrived.headers, arrived.body) is not None


def test_refund_fail(
    simulator: WechatPaySimulator, entry: dict[str, Any], receiver: NotificationReceiver
) -> None:
    pay = merchant(entry, notify_url=receiver.url)
    number = new_number()
    pay_now(simulator.url, create(pay, number, 1000, attach=switches(refund_fail=True)))
    receiver.wait_for(1)
    closed = ok(full_refund(pay, number, 1000, notify_url=receiver.url))
    assert closed["status"] == "CLOSED" and "success_time" not in closed
    assert ok(pay.query_refund(closed["out_refund_no"]))["status"] == "CLOSED"
    assert ok(pay.query(out_trade_no=number))["trade_state"] == "SUCCESS"  # nothing refunded
    (_, arrived) = receiver.wait_for(2)
    notification = pay.callback(arrived.headers, arrived.body)
    assert notification is not None
    assert notification["event_type"] == "REFUND.CLOSED"
    assert notification["resource"]["refund_status"] == "CLOSED"
    again = ok(full_refund(pay, number, 1000))  # the amount is free again
    assert again["status"] == "CLOSED"


def test_refund_delay_seconds(
    simulator: WechatPaySimulator, entry: dict[str, Any], receiver: NotificationReceiver
) -> None:
    pay = merchant(entry, notify_url=receiver.url)
    number = new_number()
    pay_now(simulator.url, create(pay, number, 1000, attach=switches(refund_delay_seconds=0.6)))
    receiver.wait_for(1)
    processing = ok(full_refund(pay, number, 1000, notify_url=receiver.url))
    assert processing["status"] == "PROCESSING" and "success_time" not in processing
    assert ok(pay.query(out_trade_no=number))["trade_state"] == "REFUND"
    error(full_refund(pay, number, 1), 400, "INVALID_REQUEST")  # the amount is reserved
    time.sleep(0.1)
    assert ok(pay.query_refund(processing["out_refund_no"]))["status"] == "PROCESSING"
    assert len(receiver.received()) == 1
    eventually(lambda: ok(pay.query_refund(processing["out_refund_no"]))["status"] == "SUCCESS")
    (_, arrived) = receiver.wait_for(2)
    notification = pay.callback(arrived.headers, arrived.body)
    assert notification is not None and notification["event_type"] == "REFUND.SUCCESS"


def test_refund_error(simulator: WechatPaySimulator, entry: dict[str, Any]) -> None:
    pay = merchant(entry, notify_url="http://127.0.0.1:9/notify")
    number = new_number()
    pay_now(simulator.url, create(pay, number, 1000, attach=switches(refund_error={"times": 1})))
    refund_no = new_number("rfd")
    error(full_refund(pay, number, 1000, out_refund_no=refund_no), 503, "SYSTEM_ERROR")
    error(pay.query_refund(refund_no), 404, "RESOURCE_NOT_EXISTS")
    assert ok(full_refund(pay, number, 1000, out_refund_no=refund_no))["status"] == "SUCCESS"


# -- retries --------------------------------------------------------------------------------


def test_notifications_are_retried_until_200_or_204(
    simulator: WechatPaySimulator, entry: dict[str, Any]
) -> None:
    endpoint = NotificationReceiver([(500, '{"code":"FAIL"}'), (202, ""), (200, "anything")])
    try:
        pay = merchant(entry, notify_url=endpoint.url)
        number = new_number()
        pay_now(simulator.url, create(pay, number))
        attempts = endpoint.wait_for(3)
        assert len({attempt.body for attempt in attempts}) == 1  # the same notification
        assert len({attempt.headers["Wechatpay-Signature"] for attempt in attempts}) == 3
        assert all(pay.callback(a.headers, a.body) is not None for a in attempts)
        (_only_one,) = eventually(
            lambda: trade_view(simulator.url, ACCOUNT, number)["notifications"]
        )
        eventually(
            lambda: (
                trade_view(simulator.url, ACCOUNT, number)["notifications"][0]["state"]
                == "DELIVERED"
            )
        )
        acknowledged = [
            attempt["acknowledged"]
            for attempt in trade_view(simulator.url, ACCOUNT, number)["notifications"][0][
                "attempts"
            ]
        ]
        assert acknowledged == [False, False, True]
    finally:
        endpoint.close()


def test_notifications_give_up_after_the_schedule(
    simulator: WechatPaySimulator, entry: dict[str, Any]
) -> None:
    endpoint = NotificationReceiver([(500, "")])
    try:
        pay = merchant(entry, notify_url=endpoint.url)
        number = new_number()
        pay_now(simulator.url, create(pay, number))
        endpoint.wait_for(3)  # FAST_SCHEDULE has three attempts
        eventually(
            lambda: (
                trade_view(simulator.url, ACCOUNT, number)["notifications"][0]["state"]
                == "EXHAUSTED"
            )
        )
        time.sleep(QUIET)
        assert len(endpoint.received()) == 3
    finally:
        endpoint.close()
