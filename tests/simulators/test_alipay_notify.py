"""The Alipay simulator's asynchronous notifications at a real local endpoint: form posts the
SDK's own verify() accepts, retried on the schedule until the body ``success``, for payments,
declines and refunds; and the notification switches."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from alipay import AliPay

from local_runtime.simulators.alipay import AlipaySimulator
from local_runtime.simulators.common.keys import generate_rsa_key, public_key_pem
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

SCHEDULE = (0.0, 0.1, 0.1)  # three attempts
OK = (200, "success")
FAIL = (500, "fail")

Receivers = Callable[..., NotificationReceiver]


@pytest.fixture(scope="module", autouse=True)
def _sdk_in_beijing() -> Iterator[None]:
    with beijing_local_time():
        yield


@pytest.fixture(scope="module")
def simulator() -> Iterator[AlipaySimulator]:
    sim = AlipaySimulator("127.0.0.1", 0, accounts=["alipay-n"], notify_schedule=SCHEDULE)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def sdk(simulator: AlipaySimulator) -> AliPay:
    return sdk_for(entry_of(simulator, "alipay-n"))


@pytest.fixture
def number() -> str:
    return f"pay_{secrets.token_hex(8)}"


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    started: list[NotificationReceiver] = []

    def start(*replies: tuple[int, str]) -> NotificationReceiver:
        started.append(NotificationReceiver(list(replies)))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


def settled(simulator: AlipaySimulator, number: str, count: int) -> list[dict[str, Any]]:
    """The trade's notifications once ``count`` exist and none is PENDING."""
    deadline = time.monotonic() + 3
    while True:
        history: list[dict[str, Any]] = debug_trade(simulator, number)["notifications"]
        if len(history) >= count and all(entry["state"] != "PENDING" for entry in history):
            return history
        assert time.monotonic() < deadline, history
        time.sleep(0.02)


# -- payments ---------------------------------------------------------------------------------


def test_a_payment_is_notified_as_a_signed_form_the_sdk_verifies(
    simulator: AlipaySimulator, sdk: AliPay, receivers: Receivers, number: str
) -> None:
    receiver = receivers(OK)
    passback = '{"notify_duplicate":2}'

    paid_trade(
        sdk,
        number,
        "19.99",
        subject="绿茶 Green tea",
        notify_url=receiver.url,
        simulate={"notify_duplicate": 2},
        body="two cups",
    )

    first, second = receiver.wait_for(2)
    assert first.headers["Content-Type"] == "application/x-www-form-urlencoded; charset=utf-8"
    fields = form_fields(first.body)
    assert sdk_verifies(sdk, fields)
    query = sdk.api_alipay_trade_query(out_trade_no=number)
    entry = entry_of(simulator, "alipay-n")
    assert fields["notify_type"] == "trade_status_sync"
    assert fields["trade_status"] == "TRADE_SUCCESS"
    assert (fields["out_trade_no"], fields["trade_no"]) == (number, query["trade_no"])
    assert (fields["app_id"], fields["auth_app_id"]) == (entry["app_id"], entry["app_id"])
    assert (fields["total_amount"], fields["receipt_amount"]) == ("19.99", "19.99")
    assert fields["buyer_pay_amount"] == "19.99"
    assert (fields["subject"], fields["body"]) == ("绿茶 Green tea", "two cups")
    assert fields["gmt_payment"] == query["send_pay_date"]
    assert (fields["charset"], fields["version"], fields["sign_type"]) == ("utf-8", "1.0", "RSA2")
    assert fields["seller_id"].startswith("2088")
    # passback_params comes back as sent: URL-encoded JSON
    assert fields["passback_params"] == "%7B%22notify_duplicate%22%3A2%7D"
    assert requests.utils.unquote(fields["passback_params"]) == passback
    # the second copy is the same notification (same notify_id)
    assert form_fields(second.body)["notify_id"] == fields["notify_id"]


def test_a_forged_or_altered_notification_fails_the_sdks_verification(
    simulator: AlipaySimulator, sdk: AliPay, receivers: Receivers, number: str
) -> None:
    receiver = receivers(OK)
    paid_trade(sdk, number, notify_url=receiver.url)
    [arrived] = receiver.wait_for(1)
    fields = form_fields(arrived.body)
    assert sdk_verifies(sdk, fields)

    altered = dict(fields, total_amount="0.01")
    other_key = public_key_pem(generate_rsa_key())
    wrong_key = sdk_for(entry_of(simulator, "alipay-n"), alipay_public_key=other_key)

    assert not sdk_verifies(sdk, altered)
    assert not sdk_verifies(wrong_key, fields)


def test_a_notification_is_resent_until_the_body_is_success(
    simulator: AlipaySimulator, sdk: AliPay, receivers: Receivers, number: str
) -> None:
    receiver = receivers(FAIL, (200, "received"), OK)

    paid_trade(sdk, number, notify_url=receiver.url)

    arrived = receiver.wait_for(3)
    [entry] = settled(simulator, number, 1)
    assert entry["state"] == "DELIVERED"
    assert [attempt["acknowledged"] for attempt in entry["attempts"]] == [False, False, True]
    fields = [form_fields(request.body) for request in arrived]
    assert len({f["notify_id"] for f in fields}) == 1
    assert all(sdk_verifies(sdk, f) for f in fields)
    time.sleep(0.25)
    assert len(receiver.received()) == 3


def test_after_the_schedule_alipay_gives_up(
    simulator: AlipaySimulator, sdk: AliPay, receivers: Receivers, number: str
) -> None:
    receiver = receivers(FAIL)

    paid_trade(sdk, number, notify_url=receiver.url)

    [entry] = settled(simulator, number, 1)
    assert entry["state"] == "EXHAUSTED"
    assert len(entry["attempts"]) == len(SCHEDULE)
    assert len(receiver.received()) == len(SCHEDULE)


def test_without_a_notify_url_nothing_is_sent(simulator: AlipaySimulator, sdk: AliPay) -> None:
    number = f"pay_{secrets.token_hex(8)}"
    paid_trade(sdk, number)

    assert debug_trade(simulator, number)["notifications"] == []


def test_a_decline_is_notified_as_trade_closed(
    sdk: AliPay, receivers: Receivers, number: str
) -> None:
    receiver = receivers(OK)
    cashier = open_cashier(page_pay_url(sdk, number, "2.00", notify_url=receiver.url))

    choose(cashier, "decline")

    [arrived] = receiver.wait_for(1)
    fields = form_fields(arrived.body)
    assert sdk_verifies(sdk, fields)
    assert fields["trade_status"] == "TRADE_CLOSED"
    assert "gmt_close" in fields
    assert "trade_no" not in fields and "gmt_payment" not in fields


def test_the_decline_switch_makes_pay_end_closed(
    sdk: AliPay, receivers: Receivers, number: str
) -> None:
    receiver = receivers(OK)
    cashier = open_cashier(
        page_pay_url(sdk, number, notify_url=receiver.url, simulate={"decline": True})
    )

    assert choose(cashier, "pay")["status"] == "DECLINED"

    [arrived] = receiver.wait_for(1)
    assert form_fields(arrived.body)["trade_status"] == "TRADE_CLOSED"
    assert sdk.api_alipay_trade_query(out_trade_no=number)["trade_status"] == "TRADE_CLOSED"


# -- refunds ----------------------------------------------------------------------------------


def test_refunds_are_notified_on_the_trades_notify_url(
    sdk: AliPay, receivers: Receivers, number: str
) -> None:
    receiver = receivers(OK)
    paid_trade(sdk, number, "10.00", notify_url=receiver.url)
    receiver.wait_for(1)

    sdk.api_alipay_trade_refund("3.00", out_trade_no=number, out_request_no="r_part")
    partial = form_fields(receiver.wait_for(2)[1].body)
    sdk.api_alipay_trade_refund("7.00", out_trade_no=number, out_request_no="r_rest")
    full = form_fields(receiver.wait_for(3)[2].body)

    assert sdk_verifies(sdk, partial) and sdk_verifies(sdk, full)
    assert (partial["trade_status"], partial["out_biz_no"]) == ("TRADE_SUCCESS", "r_part")
    assert partial["refund_fee"] == "3.00"
    assert len(partial["gmt_refund"]) == len("2026-12-06 10:00:00.000")
    assert (full["trade_status"], full["out_biz_no"], full["refund_fee"]) == (
        "TRADE_CLOSED",
        "r_rest",
        "10.00",
    )
    assert "gmt_close" in full
    assert partial["notify_id"] != full["notify_id"]


# -- notification switches --------------------------------------------------------------------


def test_notify_drop_sends_nothing_and_records_it(
    simulator: AlipaySimulator, sdk: AliPay, receivers: Receivers, number: str
) -> None:
    receiver = receivers(OK)

    paid_trade(sdk, number, notify_url=receiver.url, simulate={"notify_drop": True})

    [entry] = settled(simulator, number, 1)
    assert (entry["state"], entry["attempts"]) == ("DROPPED", [])
    time.sleep(0.15)
    assert receiver.received() == []


def test_query_only_sends_and_records_nothing_but_the_query_tells(
    simulator: AlipaySimulator, sdk: AliPay, receivers: Receivers, number: str
) -> None:
    receiver = receivers(OK)

    paid_trade(sdk, number, notify_url=receiver.url, simulate={"query_only": True})
    sdk.api_alipay_trade_refund("1.00", out_trade_no=number)

    time.sleep(0.15)
    assert receiver.received() == []
    assert debug_trade(simulator, number)["notifications"] == []
    assert sdk.api_alipay_trade_query(out_trade_no=number)["trade_status"] == "TRADE_SUCCESS"


def test_notify_reorder_sends_a_stale_wait_buyer_pay_after_the_success(
    sdk: AliPay, receivers: Receivers, number: str
) -> None:
    receiver = receivers(OK)

    paid_trade(sdk, number, notify_url=receiver.url, simulate={"notify_reorder": True})

    final, stale = (form_fields(r.body) for r in receiver.wait_for(2, timeout=3))
    assert final["trade_status"] == "TRADE_SUCCESS"
    assert stale["trade_status"] == "WAIT_BUYER_PAY"
    assert "trade_no" not in stale
    assert sdk_verifies(sdk, stale)
    assert stale["notify_id"] != final["notify_id"]


def test_notify_delay_seconds_holds_the_first_attempt(
    sdk: AliPay, receivers: Receivers, number: str
) -> None:
    receiver = receivers(OK)
    started = time.monotonic()

    paid_trade(sdk, number, notify_url=receiver.url, simulate={"notify_delay_seconds": 0.4})

    [arrived] = receiver.wait_for(1, timeout=3)
    assert arrived.at - started >= 0.4
