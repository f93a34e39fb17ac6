"""The misbehaviour switches that act on the Alipay simulator's answers, carried in page.pay's
``passback_params`` (URL-encoded JSON): create_error, create_timeout, close_ignored,
refund_fail, refund_delay_seconds, refund_error. (The buyer's and the notification switches
are in test_alipay_notify.py, the statement switches in test_alipay_bill.py.)"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
import requests
from alipay import AliPay

from local_runtime.simulators.alipay import AlipaySimulator
from tests.simulators.alipay_support import (
    beijing_local_time,
    choose,
    debug_trade,
    entry_of,
    form_fields,
    open_cashier,
    page_pay_url,
    paid_trade,
    sdk_for,
    sdk_verifies,
)
from tests.simulators.receiver import NotificationReceiver


@pytest.fixture(scope="module", autouse=True)
def _sdk_in_beijing() -> Iterator[None]:
    with beijing_local_time():
        yield


@pytest.fixture(scope="module")
def simulator() -> Iterator[AlipaySimulator]:
    sim = AlipaySimulator("127.0.0.1", 0, accounts=["alipay-s"], notify_schedule=(0.0, 0.1))
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def sdk(simulator: AlipaySimulator) -> AliPay:
    return sdk_for(entry_of(simulator, "alipay-s"))


@pytest.fixture
def number() -> str:
    return f"pay_{secrets.token_hex(8)}"


@pytest.fixture
def receiver() -> Iterator[NotificationReceiver]:
    started = NotificationReceiver([(200, "success")])
    yield started
    started.close()


# -- create ------------------------------------------------------------------------------------


def test_create_error_fails_the_first_page_pay_calls_with_a_system_error(
    sdk: AliPay, number: str
) -> None:
    url = page_pay_url(sdk, number, simulate={"create_error": {"times": 2, "status": 502}})

    first = requests.get(url, allow_redirects=False, timeout=5)
    assert first.status_code == 502
    assert "ACQ.SYSTEM_ERROR" in first.text
    assert sdk.api_alipay_trade_query(out_trade_no=number)["sub_code"] == "ACQ.TRADE_NOT_EXIST"
    second = requests.get(url, allow_redirects=False, timeout=5)
    assert second.status_code == 502

    third = requests.get(url, allow_redirects=False, timeout=5)

    assert third.status_code == 302
    assert sdk.api_alipay_trade_query(out_trade_no=number)["trade_status"] == "WAIT_BUYER_PAY"


def test_create_error_after_create_loses_only_the_answer(sdk: AliPay, number: str) -> None:
    url = page_pay_url(sdk, number, simulate={"create_error": {"after_create": True}})

    answer = requests.get(url, allow_redirects=False, timeout=5)

    assert answer.status_code == 503
    assert sdk.api_alipay_trade_query(out_trade_no=number)["trade_status"] == "WAIT_BUYER_PAY"


def test_create_timeout_stalls_page_pay_then_answers(sdk: AliPay, number: str) -> None:
    url = page_pay_url(sdk, number, simulate={"create_timeout": {"seconds": 1.5}})

    with pytest.raises(requests.Timeout):
        requests.get(url, allow_redirects=False, timeout=0.3)
    # the trade exists while the answer is stalled
    assert sdk.api_alipay_trade_query(out_trade_no=number)["trade_status"] == "WAIT_BUYER_PAY"

    started = time.monotonic()
    again = requests.get(url, allow_redirects=False, timeout=5)  # call 2: not stalled
    assert again.status_code == 302
    assert time.monotonic() - started < 1.0


# -- close -------------------------------------------------------------------------------------


def test_close_ignored_answers_success_but_the_buyer_can_still_pay(
    sdk: AliPay, number: str
) -> None:
    cashier = open_cashier(page_pay_url(sdk, number, simulate={"close_ignored": True}))

    closing = sdk.api_alipay_trade_close(out_trade_no=number)

    assert closing["code"] == "10000"
    assert sdk.api_alipay_trade_query(out_trade_no=number)["trade_status"] == "WAIT_BUYER_PAY"
    assert choose(cashier, "pay")["status"] == "SUCCESS"
    assert sdk.api_alipay_trade_query(out_trade_no=number)["trade_status"] == "TRADE_SUCCESS"


# -- refunds -----------------------------------------------------------------------------------


def test_refund_fail_refuses_every_refund_and_nothing_is_refunded(
    sdk: AliPay, number: str, receiver: NotificationReceiver
) -> None:
    paid_trade(sdk, number, "10.00", notify_url=receiver.url, simulate={"refund_fail": True})
    receiver.wait_for(1)

    answer = sdk.api_alipay_trade_refund("4.00", out_trade_no=number, out_request_no="r1")
    again = sdk.api_alipay_trade_refund("4.00", out_trade_no=number, out_request_no="r1")

    assert (answer["code"], answer["sub_code"]) == ("40004", "ACQ.SELLER_BALANCE_NOT_ENOUGH")
    assert again["sub_code"] == "ACQ.SELLER_BALANCE_NOT_ENOUGH"
    status = sdk.api_alipay_trade_fastpay_refund_query("r1", out_trade_no=number)
    assert status["code"] == "10000" and "refund_status" not in status
    assert sdk.api_alipay_trade_query(out_trade_no=number)["trade_status"] == "TRADE_SUCCESS"
    time.sleep(0.15)
    assert len(receiver.received()) == 1  # the payment only: a failed refund is not notified


def test_refund_delay_answers_without_fund_change_then_succeeds_and_notifies(
    sdk: AliPay, number: str, receiver: NotificationReceiver
) -> None:
    paid_trade(
        sdk, number, "10.00", notify_url=receiver.url, simulate={"refund_delay_seconds": 1.0}
    )
    receiver.wait_for(1)

    answer = sdk.api_alipay_trade_refund("4.00", out_trade_no=number, out_request_no="r1")

    assert (answer["code"], answer["fund_change"], answer["refund_fee"]) == ("10000", "N", "0.00")
    processing = sdk.api_alipay_trade_fastpay_refund_query("r1", out_trade_no=number)
    assert processing["refund_amount"] == "4.00" and "refund_status" not in processing
    notified = form_fields(receiver.wait_for(2, timeout=3)[1].body)
    assert sdk_verifies(sdk, notified)
    assert (notified["out_biz_no"], notified["refund_fee"]) == ("r1", "4.00")
    done = sdk.server_api(
        "alipay.trade.fastpay.refund.query",
        {"out_trade_no": number, "out_request_no": "r1", "query_options": ["gmt_refund_pay"]},
    )
    assert done["refund_status"] == "REFUND_SUCCESS"
    assert done["gmt_refund_pay"] == notified["gmt_refund"][:19]


def test_refund_delay_with_refund_fail_ends_without_success_or_notification(
    simulator: AlipaySimulator, sdk: AliPay, number: str, receiver: NotificationReceiver
) -> None:
    switches = {"refund_delay_seconds": 0.1, "refund_fail": True}
    paid_trade(sdk, number, "10.00", notify_url=receiver.url, simulate=switches)
    receiver.wait_for(1)

    answer = sdk.api_alipay_trade_refund("4.00", out_trade_no=number, out_request_no="r1")
    assert (answer["code"], answer["fund_change"]) == ("10000", "N")
    deadline = time.monotonic() + 3
    while debug_trade(simulator, number)["refunds"][0]["status"] != "FAILED":
        assert time.monotonic() < deadline
        time.sleep(0.02)

    status = sdk.api_alipay_trade_fastpay_refund_query("r1", out_trade_no=number)
    assert status["code"] == "10000" and "refund_status" not in status
    assert sdk.api_alipay_trade_query(out_trade_no=number)["trade_status"] == "TRADE_SUCCESS"
    time.sleep(0.15)
    assert len(receiver.received()) == 1  # the payment's only


def test_refund_error_answers_system_error_then_the_retry_refunds_once(
    sdk: AliPay, number: str
) -> None:
    paid_trade(sdk, number, "10.00", simulate={"refund_error": {"times": 1}})

    failed = sdk.api_alipay_trade_refund("4.00", out_trade_no=number, out_request_no="r1")
    retried = sdk.api_alipay_trade_refund("4.00", out_trade_no=number, out_request_no="r1")

    assert (failed["code"], failed["msg"]) == ("20000", "Service Currently Unavailable")
    assert failed["sub_code"] == "ACQ.SYSTEM_ERROR"
    assert (retried["code"], retried["fund_change"], retried["refund_fee"]) == (
        "10000",
        "Y",
        "4.00",
    )
