"""The Alipay simulator's gateway against python-alipay-sdk, over real HTTP: the SDK's signed
requests are accepted and its verification accepts the answers; forged, tampered and stale
requests are refused with Alipay's codes; page.pay, the cashier and the trade methods."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from alipay import AliPay
from alipay.exceptions import AliPayException, AliPayValidationError

from local_runtime.simulators.alipay import AlipaySimulator
from local_runtime.simulators.alipay.protocol import SHANGHAI
from local_runtime.simulators.common.keys import generate_rsa_key, private_key_pem_pkcs8
from tests.simulators.alipay_support import (
    ShiftedClock,
    beijing_local_time,
    choose,
    entry_of,
    form_fields,
    local_time_zone,
    open_cashier,
    page_pay_url,
    paid_trade,
    sdk_for,
    sdk_verifies,
)

ACCOUNT_FIELDS = {
    "account",
    "channel",
    "simulator",
    "app_id",
    "app_private_key",
    "alipay_public_key",
    "gateway_url",
}


@pytest.fixture(scope="module", autouse=True)
def _sdk_in_beijing() -> Iterator[None]:
    with beijing_local_time():
        yield


@pytest.fixture(scope="module")
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture(scope="module")
def simulator(clock: ShiftedClock) -> Iterator[AlipaySimulator]:
    sim = AlipaySimulator(
        "127.0.0.1", 0, accounts=["alipay-a", "alipay-b"], notify_schedule=(0,), clock=clock
    )
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def sdk(simulator: AlipaySimulator) -> AliPay:
    return sdk_for(entry_of(simulator, "alipay-a"))


@pytest.fixture
def number() -> str:
    """An out_trade_no of the test's own."""
    return f"pay_{secrets.token_hex(8)}"


# -- accounts ------------------------------------------------------------------------------


def test_sim_accounts_lists_each_app_with_the_credentials_a_merchant_needs(
    simulator: AlipaySimulator,
) -> None:
    answer = requests.get(f"{simulator.url}/_sim/accounts", timeout=5)

    assert answer.status_code == 200
    body = answer.json()
    assert body["object"] == "list"
    assert body["data"] == simulator.accounts()
    assert [entry["account"] for entry in body["data"]] == ["alipay-a", "alipay-b"]
    for entry in body["data"]:
        assert set(entry) == ACCOUNT_FIELDS
        assert entry["channel"] == "alipay"
        assert entry["simulator"] is True
        assert entry["app_id"].startswith("2021") and len(entry["app_id"]) == 16
        assert entry["app_private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
        assert entry["alipay_public_key"].startswith("-----BEGIN PUBLIC KEY-----")
        assert entry["gateway_url"] == f"{simulator.url}/gateway.do"
    a, b = body["data"]
    assert a["app_id"] != b["app_id"]
    assert a["alipay_public_key"] != b["alipay_public_key"]


def test_each_simulator_makes_fresh_keys(simulator: AlipaySimulator) -> None:
    another = AlipaySimulator("127.0.0.1", 0, accounts=["alipay-a"])
    another.start()
    try:
        one, [two] = entry_of(simulator, "alipay-a"), another.accounts()
        assert one["app_id"] != two["app_id"]
        assert one["app_private_key"] != two["app_private_key"]
        assert one["alipay_public_key"] != two["alipay_public_key"]
    finally:
        another.stop()
        another.stop()  # idempotent


# -- the happy path, SDK in hand -------------------------------------------------------------


def test_page_pay_pay_query_refund_refund_query_close(sdk: AliPay, number: str) -> None:
    # GIVEN the buyer opens the signed page.pay URL the SDK built
    url = page_pay_url(sdk, number, "19.99", return_url="https://shop.example/back?order=42")
    cashier = open_cashier(url)
    page = requests.get(cashier, timeout=5)
    assert page.status_code == 200
    assert "Green tea" in page.text and "19.99 CNY" in page.text
    waiting = sdk.api_alipay_trade_query(out_trade_no=number)
    assert (waiting["code"], waiting["trade_status"]) == ("10000", "WAIT_BUYER_PAY")
    assert waiting["total_amount"] == "19.99"

    # WHEN the buyer pays with the page's form
    paid = requests.post(cashier, data={"action": "pay"}, allow_redirects=False, timeout=5)

    # THEN the browser returns to return_url with Alipay's signed synchronous parameters
    assert paid.status_code == 303
    back = urlsplit(paid.headers["Location"])
    assert (back.scheme, back.netloc, back.path) == ("https", "shop.example", "/back")
    returned = dict(parse_qsl(back.query))
    assert returned["order"] == "42"
    returned.pop("order")
    assert returned["method"] == "alipay.trade.page.pay.return"
    assert (returned["out_trade_no"], returned["total_amount"]) == (number, "19.99")
    assert sdk_verifies(sdk, returned)
    # AND the query (verified by the SDK) says TRADE_SUCCESS with the trade number
    trade = sdk.api_alipay_trade_query(out_trade_no=number)
    assert trade["code"] == "10000"
    assert trade["trade_status"] == "TRADE_SUCCESS"
    assert trade["trade_no"] == returned["trade_no"]
    assert len(trade["trade_no"]) == 28
    assert (trade["buyer_pay_amount"], trade["receipt_amount"]) == ("19.99", "19.99")
    paid_at = datetime.strptime(trade["send_pay_date"], "%Y-%m-%d %H:%M:%S")
    assert abs(paid_at - datetime.now(SHANGHAI).replace(tzinfo=None)) < timedelta(minutes=1)
    assert sdk.api_alipay_trade_query(trade_no=trade["trade_no"])["out_trade_no"] == number

    # WHEN part of it is refunded, twice with the same out_request_no
    first = sdk.api_alipay_trade_refund("5.00", out_trade_no=number, out_request_no="rfd_1")
    again = sdk.api_alipay_trade_refund("5.00", out_trade_no=number, out_request_no="rfd_1")

    # THEN money moved once: fund_change Y, then N; refund_fee is the total refunded
    assert (first["code"], first["fund_change"], first["refund_fee"]) == ("10000", "Y", "5.00")
    assert (again["code"], again["fund_change"], again["refund_fee"]) == ("10000", "N", "5.00")
    status = sdk.api_alipay_trade_fastpay_refund_query("rfd_1", out_trade_no=number)
    assert status["code"] == "10000"
    assert status["refund_status"] == "REFUND_SUCCESS"
    assert (status["refund_amount"], status["total_amount"]) == ("5.00", "19.99")
    assert status["out_request_no"] == "rfd_1"

    # AND a paid trade cannot be closed
    closing = sdk.api_alipay_trade_close(out_trade_no=number)
    assert (closing["code"], closing["sub_code"]) == ("40004", "ACQ.TRADE_STATUS_ERROR")

    # WHEN the rest is refunded the trade is TRADE_CLOSED (still showing when it was paid)
    rest = sdk.api_alipay_trade_refund("14.99", out_trade_no=number, out_request_no="rfd_2")
    assert (rest["fund_change"], rest["refund_fee"]) == ("Y", "19.99")
    closed = sdk.api_alipay_trade_query(out_trade_no=number)
    assert closed["trade_status"] == "TRADE_CLOSED"
    assert closed["send_pay_date"] == trade["send_pay_date"]


def test_closing_an_unpaid_trade_stops_the_buyer_from_paying(sdk: AliPay, number: str) -> None:
    cashier = open_cashier(page_pay_url(sdk, number))

    closing = sdk.api_alipay_trade_close(out_trade_no=number)
    closing_again = sdk.api_alipay_trade_close(out_trade_no=number)

    assert (closing["code"], closing["out_trade_no"]) == ("10000", number)
    assert closing_again["code"] == "10000"
    assert sdk.api_alipay_trade_query(out_trade_no=number)["trade_status"] == "TRADE_CLOSED"
    refused = requests.post(cashier, json={"action": "pay"}, timeout=5)
    assert refused.status_code == 409
    assert refused.json()["code"] == "TRADE_CLOSED"


def test_page_pay_also_accepts_the_parameters_as_a_posted_form(sdk: AliPay, number: str) -> None:
    url = page_pay_url(sdk, number, "3.00")
    gateway, query = url.split("?", 1)

    answer = requests.post(gateway, data=dict(parse_qsl(query)), allow_redirects=False, timeout=5)

    assert answer.status_code == 302
    assert "/cashier/" in answer.headers["Location"]
    assert sdk.api_alipay_trade_query(out_trade_no=number)["total_amount"] == "3.00"


def test_opening_the_same_page_pay_url_again_finds_the_same_trade(sdk: AliPay, number: str) -> None:
    url = page_pay_url(sdk, number, "8.88")

    assert open_cashier(url) == open_cashier(url)


def test_a_trade_expires_after_timeout_express(
    sdk: AliPay, clock: ShiftedClock, number: str
) -> None:
    cashier = open_cashier(page_pay_url(sdk, number, timeout_express="1m"))
    try:
        clock.offset = timedelta(minutes=2)
        assert sdk.api_alipay_trade_query(out_trade_no=number)["trade_status"] == "TRADE_CLOSED"
        refused = requests.post(cashier, json={"action": "pay"}, timeout=5)
        assert refused.status_code == 409
    finally:
        clock.offset = timedelta()


def test_a_trade_expires_at_time_expire_in_beijing_time(
    sdk: AliPay, clock: ShiftedClock, number: str
) -> None:
    soon = (datetime.now(SHANGHAI) + timedelta(minutes=3)).strftime("%Y-%m-%d %H:%M:%S")
    open_cashier(page_pay_url(sdk, number, time_expire=soon))
    assert sdk.api_alipay_trade_query(out_trade_no=number)["trade_status"] == "WAIT_BUYER_PAY"
    try:
        clock.offset = timedelta(minutes=4)
        assert sdk.api_alipay_trade_query(out_trade_no=number)["trade_status"] == "TRADE_CLOSED"
    finally:
        clock.offset = timedelta()


# -- business errors (signed, returned by the SDK) ----------------------------------------------


def test_an_unknown_trade_is_acq_trade_not_exist(sdk: AliPay) -> None:
    for answer in (
        sdk.api_alipay_trade_query(out_trade_no="pay_never_created"),
        sdk.api_alipay_trade_close(out_trade_no="pay_never_created"),
        sdk.api_alipay_trade_refund("1.00", out_trade_no="pay_never_created"),
        sdk.api_alipay_trade_fastpay_refund_query("r", out_trade_no="pay_never_created"),
        sdk.api_alipay_trade_query(trade_no="2026010122001000000000000000"),
    ):
        assert (answer["code"], answer["msg"]) == ("40004", "Business Failed")
        assert (answer["sub_code"], answer["sub_msg"]) == ("ACQ.TRADE_NOT_EXIST", "交易不存在")


def test_trades_belong_to_their_own_app(simulator: AlipaySimulator, sdk: AliPay) -> None:
    paid_trade(sdk, "pay_only_in_a")
    other = sdk_for(entry_of(simulator, "alipay-b"))

    answer = other.api_alipay_trade_query(out_trade_no="pay_only_in_a")

    assert answer["sub_code"] == "ACQ.TRADE_NOT_EXIST"


def test_refunds_are_bounded_and_keyed_by_out_request_no(sdk: AliPay, number: str) -> None:
    paid_trade(sdk, number, "10.00")
    sdk.api_alipay_trade_refund("4.00", out_trade_no=number, out_request_no="r_a")

    too_much = sdk.api_alipay_trade_refund("6.01", out_trade_no=number, out_request_no="r_b")
    discordant = sdk.api_alipay_trade_refund("4.50", out_trade_no=number, out_request_no="r_a")
    unknown = sdk.api_alipay_trade_fastpay_refund_query("r_never", out_trade_no=number)
    rest = sdk.api_alipay_trade_refund("6.00", out_trade_no=number, out_request_no="r_b")

    assert (too_much["code"], too_much["sub_code"]) == ("40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
    assert discordant["sub_code"] == "ACQ.DISCORDANT_REPEAT_REQUEST"
    assert unknown["code"] == "10000"
    assert "refund_status" not in unknown and "refund_amount" not in unknown
    assert (rest["code"], rest["refund_fee"]) == ("10000", "10.00")


def test_out_request_no_belongs_to_its_trade(sdk: AliPay, number: str) -> None:
    other = f"{number}_2"
    paid_trade(sdk, number, "5.00")
    paid_trade(sdk, other, "6.00")

    first = sdk.api_alipay_trade_refund("5.00", out_trade_no=number, out_request_no="1")
    second = sdk.api_alipay_trade_refund("6.00", out_trade_no=other, out_request_no="1")

    assert (first["fund_change"], second["fund_change"]) == ("Y", "Y")
    seen = sdk.api_alipay_trade_fastpay_refund_query("1", out_trade_no=other)
    assert seen["refund_amount"] == "6.00"


def test_without_out_request_no_the_refund_is_keyed_by_out_trade_no(
    sdk: AliPay, number: str
) -> None:
    paid_trade(sdk, number, "5.00")

    refund = sdk.api_alipay_trade_refund("5.00", out_trade_no=number)
    again = sdk.api_alipay_trade_refund("5.00", out_trade_no=number)

    assert (refund["fund_change"], again["fund_change"]) == ("Y", "N")
    seen = sdk.api_alipay_trade_fastpay_refund_query(number, out_trade_no=number)
    assert seen["refund_status"] == "REFUND_SUCCESS"


def test_an_unpaid_trade_cannot_be_refunded(sdk: AliPay, number: str) -> None:
    open_cashier(page_pay_url(sdk, number))

    answer = sdk.api_alipay_trade_refund("1.00", out_trade_no=number)

    assert (answer["code"], answer["sub_code"]) == ("40004", "ACQ.TRADE_STATUS_ERROR")


@pytest.mark.parametrize(
    ("biz", "fragment"),
    [
        ({"out_trade_no": "pay_x", "refund_amount": "0.001"}, "refund_amount"),
        ({"out_trade_no": "pay_x", "refund_amount": "-1"}, "refund_amount"),
        ({"out_trade_no": "pay_x"}, "refund_amount"),
        ({"refund_amount": "1.00"}, "out_trade_no"),
    ],
)
def test_malformed_business_parameters_are_acq_invalid_parameter(
    sdk: AliPay, biz: dict[str, Any], fragment: str
) -> None:
    answer = sdk.server_api("alipay.trade.refund", biz)

    assert (answer["code"], answer["sub_code"]) == ("40004", "ACQ.INVALID_PARAMETER")
    assert fragment in answer["sub_msg"]


# -- forged, tampered, stale ------------------------------------------------------------------


def test_a_request_signed_with_another_key_is_isv_invalid_signature(
    simulator: AlipaySimulator,
) -> None:
    entry = entry_of(simulator, "alipay-a")
    forger = sdk_for(entry, app_private_key=private_key_pem_pkcs8(generate_rsa_key()))

    answer = forger.api_alipay_trade_query(out_trade_no="pay_anything")

    assert (answer["code"], answer["msg"]) == ("40002", "Invalid Arguments")
    assert answer["sub_code"] == "isv.invalid-signature"


def test_another_apps_key_does_not_sign_for_this_app(simulator: AlipaySimulator) -> None:
    a, b = entry_of(simulator, "alipay-a"), entry_of(simulator, "alipay-b")
    impostor = sdk_for(a, app_private_key=b["app_private_key"])

    answer = impostor.api_alipay_trade_query(out_trade_no="pay_anything")

    assert answer["sub_code"] == "isv.invalid-signature"


def test_a_tampered_page_pay_url_is_refused(sdk: AliPay, number: str) -> None:
    url = page_pay_url(sdk, number, "100.00")
    tampered = url.replace("100.00", "1.00")
    assert tampered != url

    answer = requests.get(tampered, allow_redirects=False, timeout=5)

    assert answer.status_code == 200  # Alipay shows the buyer an error page
    assert "isv.invalid-signature" in answer.text
    assert sdk.api_alipay_trade_query(out_trade_no=number)["sub_code"] == "ACQ.TRADE_NOT_EXIST"


def test_a_stale_or_future_timestamp_is_isv_invalid_timestamp(sdk: AliPay) -> None:
    now = datetime.now(SHANGHAI)
    for moment in (now - timedelta(minutes=20), now + timedelta(minutes=20)):
        stamp = moment.strftime("%Y-%m-%d %H:%M:%S")
        answer = sdk.server_api("alipay.trade.query", {"out_trade_no": "p"}, timestamp=stamp)
        assert (answer["code"], answer["sub_code"]) == ("40002", "isv.invalid-timestamp")
    fresh = now.strftime("%Y-%m-%d %H:%M:%S")
    answer = sdk.server_api("alipay.trade.query", {"out_trade_no": "p"}, timestamp=fresh)
    assert answer["sub_code"] == "ACQ.TRADE_NOT_EXIST"  # accepted, then not found


def test_a_timestamp_in_utc_instead_of_beijing_time_is_refused(sdk: AliPay) -> None:
    # The SDK writes datetime.now(): on a machine set to UTC that is 8 hours off.
    with local_time_zone("UTC"):
        answer = sdk.api_alipay_trade_query(out_trade_no="pay_anything")

    assert answer["sub_code"] == "isv.invalid-timestamp"


def test_a_malformed_timestamp_is_refused(sdk: AliPay) -> None:
    answer = sdk.server_api("alipay.trade.query", {"out_trade_no": "p"}, timestamp="1767225600")

    assert answer["sub_code"] == "isv.invalid-timestamp"


def test_answers_are_signed_with_the_apps_alipay_key(simulator: AlipaySimulator) -> None:
    a, b = entry_of(simulator, "alipay-a"), entry_of(simulator, "alipay-b")
    wrong_key = sdk_for(a, alipay_public_key=b["alipay_public_key"])

    with pytest.raises(AliPayValidationError):
        wrong_key.api_alipay_trade_query(out_trade_no="pay_anything")


def test_an_unknown_app_id_gets_an_unsigned_error_the_sdk_raises(
    simulator: AlipaySimulator,
) -> None:
    entry = dict(entry_of(simulator, "alipay-a"), app_id="2021000000000000")
    stranger = sdk_for(entry)

    with pytest.raises(AliPayException) as raised:
        stranger.api_alipay_trade_query(out_trade_no="pay_anything")

    assert "isv.invalid-app-id" in str(raised.value)
    assert "40002" in str(raised.value)


def test_missing_common_parameters_are_40001(simulator: AlipaySimulator, sdk: AliPay) -> None:
    gateway = entry_of(simulator, "alipay-a")["gateway_url"]
    signed = dict(parse_qsl(sdk.client_api("alipay.trade.query", {"out_trade_no": "p"})))
    for name, sub_code in (
        ("sign", "isv.missing-signature"),
        ("timestamp", "isv.missing-timestamp"),
        ("method", "isv.missing-method"),
        ("app_id", "isv.missing-app-id"),
    ):
        params = {key: value for key, value in signed.items() if key != name}
        body = requests.get(gateway, params=params, timeout=5).text
        assert '"code":"40001"' in body
        assert f'"sub_code":"{sub_code}"' in body


def test_an_unknown_method_is_isv_invalid_method(sdk: AliPay) -> None:
    with pytest.raises(AliPayException) as raised:
        sdk.server_api("alipay.trade.no.such.thing", {"out_trade_no": "p"})

    assert "isv.invalid-method" in str(raised.value)


def test_a_repeated_parameter_is_refused(simulator: AlipaySimulator, sdk: AliPay) -> None:
    gateway = entry_of(simulator, "alipay-a")["gateway_url"]
    query = sdk.client_api("alipay.trade.query", {"out_trade_no": "p"})

    body = requests.get(f"{gateway}?{query}&method=alipay.trade.close", timeout=5).text

    assert '"sub_code":"isv.invalid-parameter"' in body


# -- page.pay refusals (HTML for the buyer) ----------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "extra", "expected"),
    [
        ("19.999", {}, "total_amount"),
        ("0", {}, "total_amount"),
        ("100000000.01", {}, "total_amount"),
        ("1.00", {"product_code": "QUICK_WAP_WAY"}, "product_code"),
        ("1.00", {"timeout_express": "16d"}, "timeout_express"),
        ("1.00", {"time_expire": "2026/01/01 10:00"}, "time_expire"),
    ],
)
def test_page_pay_with_a_wrong_parameter_shows_alipays_error_page(
    sdk: AliPay, number: str, amount: str, extra: dict[str, Any], expected: str
) -> None:
    answer = requests.get(page_pay_url(sdk, number, amount, **extra), timeout=5)

    assert answer.status_code == 200
    assert "ACQ.INVALID_PARAMETER" in answer.text and expected in answer.text
    assert sdk.api_alipay_trade_query(out_trade_no=number)["sub_code"] == "ACQ.TRADE_NOT_EXIST"


def test_an_invalid_simulate_switch_is_a_parameter_error_naming_it(
    sdk: AliPay, number: str
) -> None:
    url = page_pay_url(sdk, number, simulate={"create_error": {"status": 418}})

    answer = requests.get(url, timeout=5)

    assert "ACQ.INVALID_PARAMETER" in answer.text
    assert "simulate.create_error.status" in answer.text
    unknown = requests.get(page_pay_url(sdk, number, simulate={"explode": True}), timeout=5)
    assert "simulate.explode" in unknown.text


def test_reusing_an_out_trade_no_with_another_amount_is_context_inconsistent(
    sdk: AliPay, number: str
) -> None:
    open_cashier(page_pay_url(sdk, number, "5.00"))

    answer = requests.get(page_pay_url(sdk, number, "6.00"), timeout=5)

    assert "ACQ.CONTEXT_INCONSISTENT" in answer.text
    assert sdk.api_alipay_trade_query(out_trade_no=number)["total_amount"] == "5.00"


def test_a_declined_trade_is_closed_for_alipay(sdk: AliPay, number: str) -> None:
    cashier = open_cashier(page_pay_url(sdk, number))

    assert choose(cashier, "decline")["status"] == "DECLINED"

    answer = sdk.api_alipay_trade_query(out_trade_no=number)
    assert answer["trade_status"] == "TRADE_CLOSED"
    assert "trade_no" not in answer and "send_pay_date" not in answer


def test_the_return_after_a_decline_carries_no_signed_parameters(sdk: AliPay, number: str) -> None:
    cashier = open_cashier(page_pay_url(sdk, number, return_url="https://shop.example/back"))

    answer = requests.post(cashier, data={"action": "decline"}, allow_redirects=False, timeout=5)

    assert answer.status_code == 303
    assert answer.headers["Location"] == "https://shop.example/back"


def test_return_parameters_tampered_with_fail_the_sdks_verification(
    sdk: AliPay, number: str
) -> None:
    cashier = open_cashier(page_pay_url(sdk, number, return_url="https://shop.example/r"))
    paid = requests.post(cashier, data={"action": "pay"}, allow_redirects=False, timeout=5)
    returned = form_fields(urlsplit(paid.headers["Location"]).query.encode())
    assert sdk_verifies(sdk, returned)

    returned["total_amount"] = "0.01"

    assert not sdk_verifies(sdk, returned)
