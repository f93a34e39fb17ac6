"""The WeChat Pay simulator against the community SDK ``wechatpayv3`` (public-key mode), over
real HTTP: the merchant's calls (Native order, query, close, refund, refund query), the
signatures both ways, WeChat Pay's error envelope and status values, and notifications the
SDK's own ``callback()`` verifies and decrypts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from wechatpayv3.type import RequestType
from wechatpayv3.utils import build_authorization, load_private_key

from local_runtime.sandbox.orders import utc_now
from local_runtime.simulators.wechatpay import WechatPaySimulator
from tests.simulators.receiver import NotificationReceiver
from tests.simulators.wechatpay_merchant import (
    body,
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
)

__all__ = ["receiver"]  # a fixture

SHANGHAI = ZoneInfo("Asia/Shanghai")
ACCOUNT_FIELDS = {
    "account",
    "channel",
    "appid",
    "mchid",
    "merchant_private_key",
    "merchant_serial_no",
    "apiv3_key",
    "wechatpay_public_key",
    "wechatpay_public_key_id",
    "api_base_url",
    "simulator",
}


@pytest.fixture(scope="module")
def simulator() -> Iterator[WechatPaySimulator]:
    running = start_simulator(["wx-main", "wx-backup"])
    yield running
    running.stop()


@pytest.fixture(scope="module")
def accounts(simulator: WechatPaySimulator) -> dict[str, dict[str, Any]]:
    return {entry["account"]: entry for entry in simulator.accounts()}


@pytest.fixture
def main(accounts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return accounts["wx-main"]


def signed_call(
    entry: dict[str, Any], path: str, data: dict[str, Any] | None = None, method: str = "POST"
) -> tuple[int, Any]:
    """Any body, signed by the SDK's own request code (it checks nothing of the body)."""
    pay = merchant(entry)
    return pay._core.request(path, method=RequestType[method], data=data)  # type: ignore[no-any-return]


def native_body(entry: dict[str, Any], **changes: Any) -> dict[str, Any]:
    order = {
        "appid": entry["appid"],
        "mchid": entry["mchid"],
        "description": "Green tea",
        "out_trade_no": new_number(),
        "notify_url": "http://127.0.0.1:9/notify",
        "amount": {"total": 100, "currency": "CNY"},
    }
    order.update(changes)
    return {key: value for key, value in order.items() if value is not None}


# -- credentials ----------------------------------------------------------------------------


def test_accounts_lists_each_merchants_credentials(simulator: WechatPaySimulator) -> None:
    listed = requests.get(f"{simulator.url}/_sim/accounts", timeout=5).json()
    assert listed["object"] == "list"
    assert listed["data"] == simulator.accounts()
    entries = listed["data"]
    assert [entry["account"] for entry in entries] == ["wx-main", "wx-backup"]
    for entry in entries:
        assert set(entry) == ACCOUNT_FIELDS
        assert entry["channel"] == "wechatpay"
        assert entry["simulator"] is True
        assert entry["api_base_url"] == simulator.url
        assert entry["merchant_private_key"].startswith("-----BEGIN PRIVATE KEY-----")
        assert entry["wechatpay_public_key"].startswith("-----BEGIN PUBLIC KEY-----")
        assert entry["wechatpay_public_key_id"].startswith("PUB_KEY_ID_")
        assert len(entry["apiv3_key"]) == 32 and entry["apiv3_key"].isascii()
        assert len(entry["merchant_serial_no"]) == 40
        assert entry["mchid"].isdigit() and entry["appid"].startswith("wx")
    assert entries[0]["mchid"] != entries[1]["mchid"]
    assert entries[0]["merchant_private_key"] != entries[1]["merchant_private_key"]


# -- the journey ----------------------------------------------------------------------------


def test_native_order_paid_notified_refunded(
    simulator: WechatPaySimulator, main: dict[str, Any], receiver: NotificationReceiver
) -> None:
    pay = merchant(main, notify_url=receiver.url)
    number = new_number()
    code_url = create(pay, number, 1999, description="Green tea 绿茶")

    unpaid = ok(pay.query(out_trade_no=number))
    assert unpaid["trade_state"] == "NOTPAY"
    assert unpaid["amount"] == {"total": 1999, "currency": "CNY"}
    assert (unpaid["appid"], unpaid["mchid"], unpaid["out_trade_no"]) == (
        main["appid"],
        main["mchid"],
        number,
    )
    assert "transaction_id" not in unpaid

    page = scan(simulator.url, code_url)
    assert page.status_code == 200
    assert "19.99 CNY" in page.text and "Green tea 绿茶" in page.text
    pay_now(simulator.url, code_url)

    paid = ok(pay.query(out_trade_no=number))
    assert paid["trade_state"] == "SUCCESS"
    assert paid["trade_type"] == "NATIVE"
    assert len(paid["transaction_id"]) == 28 and paid["transaction_id"].isdigit()
    assert paid["amount"] == {
        "total": 1999,
        "currency": "CNY",
        "payer_total": 1999,
        "payer_currency": "CNY",
    }
    assert paid["success_time"].endswith("+08:00")
    assert paid["payer"]["openid"].startswith("o")
    assert ok(pay.query(transaction_id=paid["transaction_id"])) == paid

    (arrived,) = receiver.wait_for(1)
    assert arrived.headers["Wechatpay-Serial"] == main["wechatpay_public_key_id"]
    assert arrived.headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    notification = pay.callback(arrived.headers, arrived.body)
    assert notification is not None, "the SDK refused the notification"
    assert notification["event_type"] == "TRANSACTION.SUCCESS"
    assert notification["resource_type"] == "encrypt-resource"
    assert notification["summary"] == "支付成功"
    assert notification["resource"] == paid

    refund = ok(
        pay.refund(
            out_refund_no=(refund_no := new_number("rfd")),
            amount={"refund": 500, "total": 1999, "currency": "CNY"},
            out_trade_no=number,
            notify_url=receiver.url,
        )
    )
    assert refund["status"] == "SUCCESS"
    assert (refund["out_refund_no"], refund["out_trade_no"]) == (refund_no, number)
    assert refund["transaction_id"] == paid["transaction_id"]
    assert refund["amount"]["refund"] == 500 and refund["amount"]["total"] == 1999
    assert len(refund["refund_id"]) == 29
    assert ok(pay.query_refund(refund_no)) == refund
    assert ok(pay.query(out_trade_no=number))["trade_state"] == "REFUND"

    _, refund_arrived = receiver.wait_for(2)
    refunded = pay.callback(refund_arrived.headers, refund_arrived.body)
    assert refunded is not None
    assert refunded["event_type"] == "REFUND.SUCCESS"
    assert refunded["resource"]["refund_status"] == "SUCCESS"
    assert refunded["resource"]["refund_id"] == refund["refund_id"]
    assert refunded["resource"]["amount"] == {
        "total": 1999,
        "refund": 500,
        "payer_total": 1999,
        "payer_refund": 500,
    }

    # The rest of the money, by transaction_id this time; a third refund finds nothing left.
    rest = ok(
        pay.refund(
            out_refund_no=new_number("rfd"),
            amount={"refund": 1499, "total": 1999, "currency": "CNY"},
            transaction_id=paid["transaction_id"],
        )
    )
    assert rest["status"] == "SUCCESS"
    too_much = pay.refund(
        out_refund_no=new_number("rfd"),
        amount={"refund": 1, "total": 1999, "currency": "CNY"},
        out_trade_no=number,
    )
    error(too_much, 400, "INVALID_REQUEST")


def test_notification_is_signed_over_the_exact_bytes(
    simulator: WechatPaySimulator, main: dict[str, Any], receiver: NotificationReceiver
) -> None:
    pay = merchant(main, notify_url=receiver.url)
    pay_now(simulator.url, create(pay, new_number()))
    (arrived,) = receiver.wait_for(1)
    assert pay.callback(arrived.headers, arrived.body) is not None
    reserialized = json.dumps(json.loads(arrived.body)).encode()
    assert reserialized != arrived.body
    assert pay.callback(arrived.headers, reserialized) is None
    other = merchant(simulator.accounts()[1])
    assert other.callback(arrived.headers, arrived.body) is None  # another key id and key


def test_close_answers_a_signed_204(simulator: WechatPaySimulator, main: dict[str, Any]) -> None:
    pay = merchant(main, notify_url="http://127.0.0.1:9/notify")
    number = new_number()
    code_url = create(pay, number)
    assert pay.close(number) == (204, b"")  # the SDK verified the signature over b""
    assert ok(pay.query(out_trade_no=number))["trade_state"] == "CLOSED"
    assert pay.close(number) == (204, b"")
    refused = scan(simulator.url, code_url, "pay")
    assert refused.status_code == 409
    assert refused.json()["code"] == "TRADE_CLOSED"
    error(
        pay.pay(description="x", out_trade_no=number, amount={"total": 1999}), 400, "ORDER_CLOSED"
    )


def test_create_is_idempotent_per_out_trade_no(
    simulator: WechatPaySimulator, main: dict[str, Any]
) -> None:
    pay = merchant(main, notify_url="http://127.0.0.1:9/notify")
    number = new_number()
    code_url = create(pay, number, 1999)
    assert create(pay, number, 1999) == code_url
    error(
        pay.pay(description="x", out_trade_no=number, amount={"total": 2000}),
        400,
        "INVALID_REQUEST",
    )
    pay_now(simulator.url, code_url)
    error(pay.pay(description="x", out_trade_no=number, amount={"total": 1999}), 400, "ORDERPAID")
    error(pay.close(number), 400, "ORDERPAID")


def test_unknown_orders_and_refunds(main: dict[str, Any]) -> None:
    pay = merchant(main)
    number = new_number()
    error(pay.query(out_trade_no=number), 404, "ORDER_NOT_EXIST")
    error(pay.query(transaction_id="4200000000202601010000000000"), 404, "ORDER_NOT_EXIST")
    error(pay.close(number), 404, "ORDER_NOT_EXIST")
    refund = pay.refund(
        out_refund_no=new_number("rfd"),
        amount={"refund": 1, "total": 1, "currency": "CNY"},
        out_trade_no=number,
    )
    error(refund, 404, "RESOURCE_NOT_EXISTS")
    error(pay.query_refund(new_number("rfd")), 404, "RESOURCE_NOT_EXISTS")


def test_refund_rules(simulator: WechatPaySimulator, main: dict[str, Any]) -> None:
    pay = merchant(main, notify_url="http://127.0.0.1:9/notify")
    number = new_number()
    code_url = create(pay, number, 1000)
    amount = {"refund": 100, "total": 1000, "currency": "CNY"}
    refund_no = new_number("rfd")
    error(
        pay.refund(out_refund_no=refund_no, amount=amount, out_trade_no=number),
        400,
        "INVALID_REQUEST",
    )
    pay_now(simulator.url, code_url)
    wrong_total = {"refund": 100, "total": 999, "currency": "CNY"}
    error(
        pay.refund(out_refund_no=refund_no, amount=wrong_total, out_trade_no=number),
        400,
        "INVALID_REQUEST",
    )
    first = ok(pay.refund(out_refund_no=refund_no, amount=amount, out_trade_no=number))
    assert ok(pay.refund(out_refund_no=refund_no, amount=amount, out_trade_no=number)) == first
    other_amount = {"refund": 200, "total": 1000, "currency": "CNY"}
    error(
        pay.refund(out_refund_no=refund_no, amount=other_amount, out_trade_no=number),
        400,
        "INVALID_REQUEST",
    )
    too_much = {"refund": 901, "total": 1000, "currency": "CNY"}
    error(
        pay.refund(out_refund_no=new_number("rfd"), amount=too_much, out_trade_no=number),
        400,
        "INVALID_REQUEST",
    )
    exact = {"refund": 900, "total": 1000, "currency": "CNY"}
    assert (
        ok(pay.refund(out_refund_no=new_number("rfd"), amount=exact, out_trade_no=number))["status"]
        == "SUCCESS"
    )


def test_accounts_are_separate_merchants(
    simulator: WechatPaySimulator, accounts: dict[str, dict[str, Any]]
) -> None:
    main = merchant(accounts["wx-main"], notify_url="http://127.0.0.1:9/notify")
    backup = merchant(accounts["wx-backup"], notify_url="http://127.0.0.1:9/notify")
    number = new_number()
    create(main, number, 1000)
    error(backup.query(out_trade_no=number), 404, "ORDER_NOT_EXIST")
    create(backup, number, 2500)  # the same number is another trade there
    assert ok(main.query(out_trade_no=number))["amount"]["total"] == 1000
    assert ok(backup.query(out_trade_no=number))["amount"]["total"] == 2500
    # One account's mchid in another's body.
    error(
        signed_call(
            accounts["wx-main"],
            "/v3/pay/transactions/native",
            native_body(accounts["wx-main"], mchid=accounts["wx-backup"]["mchid"]),
        ),
        400,
        "PARAM_ERROR",
    )


def test_an_expired_order_stays_notpay_until_closed(
    simulator: WechatPaySimulator, main: dict[str, Any]
) -> None:
    pay = merchant(main, notify_url="http://127.0.0.1:9/notify")
    number = new_number()
    soon = (datetime.now(SHANGHAI) + timedelta(seconds=1)).isoformat(timespec="seconds")
    code_url = create(pay, number, time_expire=soon)
    eventually(lambda: 'data-status="CLOSED"' in scan(simulator.url, code_url).text, timeout=4)
    assert scan(simulator.url, code_url, "pay").status_code == 409
    assert ok(pay.query(out_trade_no=number))["trade_state"] == "NOTPAY"
    assert pay.close(number) == (204, b"")
    assert ok(pay.query(out_trade_no=number))["trade_state"] == "CLOSED"


def test_scan_page_for_an_unknown_code_url(simulator: WechatPaySimulator) -> None:
    assert scan(simulator.url, "weixin://wxpay/bizpayurl?pr=nothing").status_code == 404
    assert scan(simulator.url, "https://example.com/").status_code == 404
    refused = scan(simulator.url, "weixin://wxpay/bizpayurl?pr=nothing", "pay")
    assert refused.status_code == 404


def test_scan_page_form_choice(simulator: WechatPaySimulator, main: dict[str, Any]) -> None:
    pay = merchant(main, notify_url="http://127.0.0.1:9/notify")
    number = new_number()
    code_url = create(pay, number)
    page = requests.post(
        f"{simulator.url}/scan", params={"code_url": code_url}, data={"action": "pay"}, timeout=5
    )
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert ok(pay.query(out_trade_no=number))["trade_state"] == "SUCCESS"


# -- parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": {"total": "100", "currency": "CNY"}}, "/amount/total"),
        ({"amount": {"total": 0, "currency": "CNY"}}, "/amount/total"),
        ({"amount": {"total": 100, "currency": "USD"}}, "/amount/currency"),
        ({"out_trade_no": "short"}, "/out_trade_no"),
        ({"out_trade_no": "has space 123"}, "/out_trade_no"),
        ({"description": None}, "/description"),
        ({"notify_url": None}, "/notify_url"),
        ({"notify_url": "http://127.0.0.1:9/notify?account=a"}, "/notify_url"),
        ({"notify_url": "/relative"}, "/notify_url"),
        ({"time_expire": "tomorrow"}, "/time_expire"),
        ({"time_expire": "2030-01-01T10:00:00"}, "/time_expire"),
        ({"time_expire": "2020-01-01T10:00:00+08:00"}, "/time_expire"),
        ({"attach": "x" * 129}, "/attach"),
        ({"attach": '{"decline":true,"notify_delay_seconds":1,' + " " * 100 + "}"}, "/attach"),
        ({"attach": "hello"}, "/attach"),
        ({"attach": '{"explode": true}'}, "/attach"),
        ({"attach": '{"create_error": {"status": 404}}'}, "/attach"),
    ],
)
def test_parameter_errors(main: dict[str, Any], changes: dict[str, Any], field: str) -> None:
    order = native_body(main, **changes)
    answer = signed_call(main, "/v3/pay/transactions/native", order)
    found = error(answer, 400, "PARAM_ERROR")
    assert found["detail"]["field"] == field
    assert found["detail"]["location"] == "body"
    if "out_trade_no" not in changes:  # nothing was created
        error(merchant(main).query(out_trade_no=order["out_trade_no"]), 404, "ORDER_NOT_EXIST")


def test_attach_of_exactly_128_characters_is_accepted(main: dict[str, Any]) -> None:
    attach = '{"notify_delay_seconds":1' + " " * (128 - 26) + "}"
    assert len(attach) == 128
    order = native_body(main, attach=attach)
    ok(signed_call(main, "/v3/pay/transactions/native", order))
    assert ok(merchant(main).query(out_trade_no=order["out_trade_no"]))["attach"] == attach


def test_appid_of_another_merchant(main: dict[str, Any]) -> None:
    answer = signed_call(main, "/v3/pay/transactions/native", native_body(main, appid="wx0000"))
    error(answer, 400, "APPID_MCHID_NOT_MATCH")


def test_body_must_be_a_json_object(simulator: WechatPaySimulator, main: dict[str, Any]) -> None:
    key = load_private_key(main["merchant_private_key"])
    path = "/v3/pay/transactions/native"
    for data in ("not json", "[1, 2]", ""):
        authorization = build_authorization(
            path, "POST", main["mchid"], main["merchant_serial_no"], key, data=data
        )
        answer = raw_call(simulator, path, authorization=authorization, data=data)
        assert answer.status_code == 400, answer.text
        assert answer.json()["code"] == "PARAM_ERROR"


def test_query_carries_its_mchid(main: dict[str, Any], accounts: dict[str, dict[str, Any]]) -> None:
    pay = merchant(main, notify_url="http://127.0.0.1:9/notify")
    number = new_number()
    create(pay, number)
    path = f"/v3/pay/transactions/out-trade-no/{number}"
    assert (
        error(signed_call(main, path, method="GET"), 400, "PARAM_ERROR")["detail"]["field"]
        == "mchid"
    )
    other = accounts["wx-backup"]["mchid"]
    error(signed_call(main, f"{path}?mchid={other}", method="GET"), 400, "PARAM_ERROR")
    ok(signed_call(main, f"{path}?mchid={main['mchid']}", method="GET"))


# -- signatures -----------------------------------------------------------------------------


def raw_call(
    simulator: WechatPaySimulator,
    path: str,
    *,
    authorization: str | None,
    data: str | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    sent = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    if authorization is not None:
        sent["Authorization"] = authorization
    if data is None:
        return requests.get(simulator.url + path, headers=sent, timeout=5)
    return requests.post(simulator.url + path, data=data.encode(), headers=sent, timeout=5)


def sign_error(answer: requests.Response) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.json()["code"] == "SIGN_ERROR"


def test_a_request_signed_with_another_key_is_refused(
    main: dict[str, Any], accounts: dict[str, dict[str, Any]]
) -> None:
    forged = dict(main, merchant_private_key=accounts["wx-backup"]["merchant_private_key"])
    order = native_body(main)
    status, text = signed_call(forged, "/v3/pay/transactions/native", order)
    assert status == 401 and json.loads(text)["code"] == "SIGN_ERROR"
    error(merchant(main).query(out_trade_no=order["out_trade_no"]), 404, "ORDER_NOT_EXIST")


def test_a_wrong_serial_no_is_refused(main: dict[str, Any]) -> None:
    forged = dict(main, merchant_serial_no="0" * 40)
    error(merchant(forged).query(out_trade_no=new_number()), 401, "SIGN_ERROR")


def test_an_unknown_mchid_is_refused(main: dict[str, Any]) -> None:
    forged = dict(main, mchid="1999999999")
    error(merchant(forged).query(out_trade_no=new_number()), 401, "SIGN_ERROR")


def test_missing_or_malformed_authorization(
    simulator: WechatPaySimulator, main: dict[str, Any]
) -> None:
    path = f"/v3/pay/transactions/out-trade-no/{new_number()}?mchid={main['mchid']}"
    sign_error(raw_call(simulator, path, authorization=None))
    sign_error(raw_call(simulator, path, authorization="Bearer abc"))
    sign_error(raw_call(simulator, path, authorization='WECHATPAY2-SHA256-RSA2048 mchid="1"'))
    sign_error(raw_call(simulator, path, authorization="WECHATPAY2-SHA256-RSA2048 garbage"))


def test_a_signature_covers_body_path_and_query(
    simulator: WechatPaySimulator, main: dict[str, Any]
) -> None:
    key = load_private_key(main["merchant_private_key"])
    order = native_body(main)
    signed_for = json.dumps(order)
    authorization = build_authorization(
        "/v3/pay/transactions/native",
        "POST",
        main["mchid"],
        main["merchant_serial_no"],
        key,
        data=signed_for,
    )
    tampered = json.dumps(dict(order, amount={"total": 1, "currency": "CNY"}))
    sign_error(
        raw_call(
            simulator, "/v3/pay/transactions/native", authorization=authorization, data=tampered
        )
    )
    answer = raw_call(
        simulator, "/v3/pay/transactions/native", authorization=authorization, data=signed_for
    )
    assert answer.status_code == 200, answer.text

    number = order["out_trade_no"]
    path = f"/v3/pay/transactions/out-trade-no/{number}?mchid={main['mchid']}"
    query = build_authorization(path, "GET", main["mchid"], main["merchant_serial_no"], key)
    assert raw_call(simulator, path, authorization=query).status_code == 200
    other_order = f"/v3/pay/transactions/out-trade-no/{new_number()}?mchid={main['mchid']}"
    sign_error(raw_call(simulator, other_order, authorization=query))
    sign_error(raw_call(simulator, path + "&x=1", authorization=query))


def test_a_wrong_wechatpay_serial_header_is_refused(
    simulator: WechatPaySimulator, main: dict[str, Any]
) -> None:
    key = load_private_key(main["merchant_private_key"])
    path = f"/v3/pay/transactions/out-trade-no/{new_number()}?mchid={main['mchid']}"
    authorization = build_authorization(path, "GET", main["mchid"], main["merchant_serial_no"], key)
    answer = raw_call(
        simulator, path, authorization=authorization, headers={"Wechatpay-Serial": "PUB_KEY_ID_0"}
    )
    assert answer.status_code == 400 and answer.json()["code"] == "PARAM_ERROR"


def test_answers_are_signed_with_the_merchants_wechatpay_key(
    main: dict[str, Any], accounts: dict[str, dict[str, Any]]
) -> None:
    wrong_key = dict(main, wechatpay_public_key=accounts["wx-backup"]["wechatpay_public_key"])
    pay = merchant(wrong_key, notify_url="http://127.0.0.1:9/notify")
    with pytest.raises(Exception, match="failed to verify the signature"):
        pay.pay(description="x", out_trade_no=new_number(), amount={"total": 1})


class ShiftedClock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.offset


def test_stale_and_future_timestamps_are_refused() -> None:
    clock = ShiftedClock()
    simulator = start_simulator(["wx-clock"], clock=clock)
    try:
        entry = simulator.accounts()[0]
        pay = merchant(entry, notify_url="http://127.0.0.1:9/notify")
        number = new_number()
        clock.offset = timedelta(seconds=330)  # the merchant's timestamp is 5.5 minutes old
        error(pay.pay(description="x", out_trade_no=number, amount={"total": 1}), 401, "SIGN_ERROR")
        clock.offset = timedelta(seconds=-330)  # ... or 5.5 minutes ahead
        error(pay.query(out_trade_no=number), 401, "SIGN_ERROR")
        clock.offset = timedelta(seconds=240)  # within 5 minutes: fine
        create(pay, number, 1)
        clock.offset = timedelta(seconds=-240)
        assert ok(pay.query(out_trade_no=number))["trade_state"] == "NOTPAY"
    finally:
        simulator.stop()


def test_unknown_route(simulator: WechatPaySimulator) -> None:
    answer = requests.get(f"{simulator.url}/v3/nothing", timeout=5)
    assert answer.status_code == 404 and body((404, answer.text))["code"] == "NOT_FOUND"
