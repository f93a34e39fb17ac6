"""The money routes of the API function against moto: the books (trial balance), and who
may read them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from paycore.dal.trade_store import TradeStore
from paycore.services import settlement
from tests.functional.conftest import MotoStack
from tests.functional.money_support import Shop
from tests.functional.test_api import ADMIN, Api


@pytest.fixture
def api(moto_stack: MotoStack) -> Api:
    return Api()


def test_the_trial_balance_is_for_the_platform_and_balances(api: Api) -> None:
    who = api.merchant()
    status, _, _ = api.call(
        "POST",
        "/v1/buyers/buyer-1/balance/credits",
        resource="/v1/buyers/{buyer_id}/balance/credits",
        path_parameters={"buyer_id": "buyer-1"},
        body={"amount": 700, "currency": "CNY"},
        authorizer=who,
    )
    assert status == 201

    status, body, _ = api.call(
        "GET", "/v1/ledger/trial_balance", query={"currency": "CNY"}, authorizer=ADMIN
    )

    assert status == 200
    merchant = who["merchant_id"]
    assert body == {
        "object": "trial_balance",
        "currency": "CNY",
        "accounts": [
            {"account": f"buyer:{merchant}:buyer-1:available:CNY", "debits": 0, "credits": 700},
            {"account": f"merchant:{merchant}:issued_value:CNY", "debits": 700, "credits": 0},
        ],
        "total_debits": 700,
        "total_credits": 700,
    }
    status, body, _ = api.call(
        "GET", "/v1/ledger/trial_balance", query={"currency": "CNY"}, authorizer=who
    )
    assert status == 401 and body["code"] == "unauthenticated"
    status, body, _ = api.call(
        "GET", "/v1/ledger/trial_balance", query={"currency": "XXX"}, authorizer=ADMIN
    )
    assert status == 422 and body["code"] == "validation_failed"


def test_onboarding_takes_and_shows_the_merchants_terms(api: Api) -> None:
    status, body, _ = api.call(
        "POST", "/v1/merchants", body={"name": "Default terms"}, authorizer=ADMIN
    )
    assert status == 201
    assert (body["fee_rate_bps"], body["settlement_delay_days"]) == (60, 1)
    status, body, _ = api.call(
        "POST",
        "/v1/merchants",
        body={"name": "Own terms", "fee_rate_bps": 0, "settlement_delay_days": 30},
        authorizer=ADMIN,
    )
    assert status == 201
    assert (body["fee_rate_bps"], body["settlement_delay_days"]) == (0, 30)
    for field, value in (
        ("fee_rate_bps", 10_001),
        ("fee_rate_bps", -1),
        ("settlement_delay_days", 31),
        ("fee_rate_bps", 1.5),
    ):
        status, body, _ = api.call(
            "POST", "/v1/merchants", body={"name": "Bad", field: value}, authorizer=ADMIN
        )
        assert status == 422 and body["code"] == "validation_failed", (field, value)
        assert body.get("param") == field, body


def _balance(api: Api, who: dict[str, str]) -> list[dict[str, object]]:
    status, body, _ = api.call("GET", "/v1/balance", authorizer=who)
    assert status == 200, body
    assert body["object"] == "balance"
    return list(body["data"])


def test_the_balance_shows_each_currency_a_merchant_took_money_in(
    api: Api, moto_stack: MotoStack, refund_machine: str
) -> None:
    store = TradeStore()
    shop, other = Shop(store), Shop(store, "Other", fee_rate_bps=0)
    who = {"role": "merchant", "merchant_id": shop.id}
    assert _balance(api, who) == []

    order_id, _ = shop.paid(1999)  # fee 12: 1,987 pending
    shop.paid(1500, "JPY")  # fee 9
    other.paid(700)
    shop.refunded(order_id, 500)  # returns 3 of the fee: 497 from pending
    internal = shop.order(300)
    shop.credit(300)
    shop.pay(internal, {"type": "balance", "amount": 300})  # the merchant's own value

    assert _balance(api, who) == [
        {"currency": "CNY", "escrow": 0, "pending": 1987 - 497, "available": 0},
        {"currency": "JPY", "escrow": 0, "pending": 1491, "available": 0},
    ]
    assert _balance(api, {"role": "merchant", "merchant_id": other.id}) == [
        {"currency": "CNY", "escrow": 0, "pending": 700, "available": 0}
    ]
    status, body, _ = api.call("GET", "/v1/balance", authorizer=ADMIN)
    assert status == 401 and body["code"] == "unauthenticated"


def test_guaranteed_orders_are_created_and_confirmed_over_the_api(
    api: Api, moto_stack: MotoStack, refund_machine: str
) -> None:
    who = api.merchant()
    created = api.order(who, "G-1", trade_type="guaranteed", auto_confirm_in=3600)
    assert (created["trade_type"], created["auto_confirm_in"]) == ("guaranteed", 3600)
    assert created["auto_confirm_at"] is None and created["confirmed_at"] is None
    assert api.order(who, "G-2", trade_type="guaranteed")["auto_confirm_in"] == 864000
    instant = api.order(who, "I-1")
    assert (instant["trade_type"], instant["auto_confirm_in"]) == ("instant", None)
    for extra in (
        {"auto_confirm_in": 3600},  # an instant order confirms nothing
        {"trade_type": "guaranteed", "auto_confirm_in": 59},
        {"trade_type": "guaranteed", "auto_confirm_in": 7_776_001},
        {"trade_type": "escrow"},
    ):
        payload = {"merchant_order_no": "BAD", "amount": 1, "currency": "CNY", "subject": "T"}
        status, body, _ = api.call("POST", "/v1/orders", body={**payload, **extra}, authorizer=who)
        assert status == 422 and body["code"] == "validation_failed", extra

    status, body, _ = api.on_order("POST", created["id"], "/confirm", authorizer=who)
    assert status == 409 and body["code"] == "order_not_confirmable"  # not paid yet
    shop = Shop.existing(TradeStore(), who["merchant_id"])
    shop.settle(shop.pay(created["id"], {"type": "channel", "channel": "sandbox"}))

    status, body, _ = api.on_order("POST", created["id"], "/confirm", authorizer=who)
    assert status == 200 and body["status"] == "paid" and body["confirmed_at"]
    status, again, _ = api.on_order("POST", created["id"], "/confirm", authorizer=who)
    assert status == 409 and again["code"] == "order_not_confirmable"
    other = api.merchant("Other")
    status, body, _ = api.on_order("POST", created["id"], "/confirm", authorizer=other)
    assert status == 404 and body["code"] == "order_not_found"
    status, body, _ = api.call("GET", "/v1/events", authorizer=who, query={"limit": "100"})
    assert [e["type"] for e in body["data"]].count("order.confirmed") == 1


def test_settlements_are_run_by_the_platform_and_read_by_the_merchant(
    api: Api, moto_stack: MotoStack, refund_machine: str
) -> None:
    store = TradeStore()
    shop = Shop(store, settlement_delay_days=0)
    shop.paid(1999)
    who = {"role": "merchant", "merchant_id": shop.id}
    today = settlement.today().isoformat()

    status, body, _ = api.call("POST", "/v1/settlements/run", body={"date": today}, authorizer=who)
    assert status == 401 and body["code"] == "unauthenticated"
    status, body, _ = api.call(
        "POST", "/v1/settlements/run", body={"date": today}, authorizer=ADMIN
    )
    assert status == 200 and body == {
        "object": "settlement_run",
        "date": today,
        "payments_count": 1,
        "settlements_count": 1,
    }
    status, body, _ = api.call(
        "GET", "/v1/settlements", query={"date": today, "currency": "CNY"}, authorizer=who
    )
    assert status == 200
    assert (body["payments_count"], body["gross"], body["fees"], body["net"]) == (1, 1999, 12, 1987)
    status, body, _ = api.call(
        "GET", "/v1/settlements", query={"date": today, "currency": "JPY"}, authorizer=who
    )
    assert status == 200 and body["payments_count"] == 0 and body["net"] == 0
    assert _balance(api, who) == [{"currency": "CNY", "escrow": 0, "pending": 0, "available": 1987}]

    tomorrow = (settlement.today() + timedelta(days=1)).isoformat()
    for date, code in (
        (tomorrow, "settlement_date_in_future"),
        ("2026-02-30", "validation_failed"),
        ("20261206", "validation_failed"),
    ):
        status, body, _ = api.call(
            "POST", "/v1/settlements/run", body={"date": date}, authorizer=ADMIN
        )
        assert status == 422 and body["code"] == code, (date, body)
        assert body.get("param") == "date"
    status, body, _ = api.call(
        "GET", "/v1/settlements", query={"date": "2026-13-01", "currency": "CNY"}, authorizer=who
    )
    assert status == 422 and body["param"] == "date"
