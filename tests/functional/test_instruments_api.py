"""The balance and coupon routes through the API function (functions/api/app.py) on moto."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest

from paycore.clock import now, rfc3339
from tests.functional.conftest import MotoStack
from tests.support import FakeContext, load_function, rest_event

ADMIN = {"role": "admin", "merchant_id": ""}
Answer = tuple[int, dict[str, Any], dict[str, str]]


class Api:
    def __init__(self) -> None:
        self.module = load_function("api")

    def call(self, method: str, path: str, **kwargs: Any) -> Answer:
        answer = self.module.lambda_handler(rest_event(method, path, **kwargs), FakeContext())
        body = json.loads(answer["body"]) if answer.get("body") else {}
        headers = dict(answer.get("headers") or {})
        for name, values in (answer.get("multiValueHeaders") or {}).items():
            headers.setdefault(name, values[0])
        return answer["statusCode"], body, headers

    def merchant(self, name: str = "Shop") -> dict[str, str]:
        status, body, _ = self.call("POST", "/v1/merchants", body={"name": name}, authorizer=ADMIN)
        assert status == 201, body
        return {"role": "merchant", "merchant_id": body["id"]}

    def credit(self, who: dict[str, str], buyer: str, body: Any, **kwargs: Any) -> Answer:
        return self.call(
            "POST",
            f"/v1/buyers/{buyer}/balance/credits",
            resource="/v1/buyers/{buyer_id}/balance/credits",
            path_parameters={"buyer_id": buyer},
            body=body,
            authorizer=who,
            **kwargs,
        )

    def balance(self, who: dict[str, str], buyer: str, query: dict[str, str] | None) -> Answer:
        return self.call(
            "GET",
            f"/v1/buyers/{buyer}/balance",
            resource="/v1/buyers/{buyer_id}/balance",
            path_parameters={"buyer_id": buyer},
            query=query,
            authorizer=who,
        )

    def coupon(self, who: dict[str, str], coupon_id: str) -> Answer:
        return self.call(
            "GET",
            f"/v1/coupons/{coupon_id}",
            resource="/v1/coupons/{coupon_id}",
            path_parameters={"coupon_id": coupon_id},
            authorizer=who,
        )


@pytest.fixture
def api(moto_stack: MotoStack) -> Api:
    return Api()


def in_future(**delta: float) -> str:
    return rfc3339(now() + timedelta(**delta))


# -- balance --------------------------------------------------------------------------------


def test_credit_then_read_the_balance(api: Api) -> None:
    who = api.merchant()
    status, body, headers = api.credit(who, "buyer-1", {"amount": 1000, "currency": "CNY"})
    assert status == 201, body
    assert headers["Content-Type"] == "application/json"
    assert body == {
        "object": "balance",
        "buyer_id": "buyer-1",
        "currency": "CNY",
        "available": 1000,
        "frozen": 0,
    }
    status, body, _ = api.credit(who, "buyer-1", {"amount": 1, "currency": "CNY"})
    assert status == 201 and body["available"] == 1001
    status, body, _ = api.balance(who, "buyer-1", {"currency": "CNY"})
    assert status == 200
    assert body == {
        "object": "balance",
        "buyer_id": "buyer-1",
        "currency": "CNY",
        "available": 1001,
        "frozen": 0,
    }


def test_balances_are_per_merchant_buyer_and_currency(api: Api) -> None:
    owner, other = api.merchant("Owner"), api.merchant("Other")
    api.credit(owner, "buyer-1", {"amount": 500, "currency": "CNY"})
    for who, buyer, currency in (
        (other, "buyer-1", "CNY"),
        (owner, "buyer-2", "CNY"),
        (owner, "buyer-1", "USD"),
    ):
        status, body, _ = api.balance(who, buyer, {"currency": currency})
        assert status == 200
        assert (body["buyer_id"], body["currency"]) == (buyer, currency)
        assert (body["available"], body["frozen"]) == (0, 0)


def test_credit_is_idempotent(api: Api, moto_stack: MotoStack) -> None:
    who = api.merchant()
    key = {"Idempotency-Key": "topup-1"}
    payload = {"amount": 250, "currency": "EUR"}
    first = api.credit(who, "buyer-1", payload, headers=key)
    again = api.credit(who, "buyer-1", payload, headers=key)
    assert first[0] == again[0] == 201
    assert first[1] == again[1]
    assert api.balance(who, "buyer-1", {"currency": "EUR"})[1]["available"] == 250
    status, body, _ = api.credit(who, "buyer-1", {**payload, "amount": 251}, headers=key)
    assert status == 422 and body["code"] == "idempotency_key_reused"
    # The same key for another buyer is another request (the path differs).
    status, body, _ = api.credit(who, "buyer-2", payload, headers=key)
    assert status == 422 and body["code"] == "idempotency_key_reused"
    assert api.balance(who, "buyer-1", {"currency": "EUR"})[1]["available"] == 250


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"amount": 0, "currency": "CNY"}, "amount"),
        ({"amount": -1, "currency": "CNY"}, "amount"),
        ({"amount": 1.5, "currency": "CNY"}, "amount"),
        ({"amount": "100", "currency": "CNY"}, "amount"),
        ({"amount": 10**13, "currency": "CNY"}, "amount"),
        ({"amount": 1, "currency": "XXX"}, "currency"),
        ({"amount": 1, "currency": "cny"}, "currency"),
        ({"amount": 1}, "currency"),
        ({"amount": 1, "currency": "CNY", "buyer_id": "x"}, "buyer_id"),
    ],
)
def test_invalid_credits_are_422_and_change_nothing(
    api: Api, moto_stack: MotoStack, payload: dict[str, Any], param: str
) -> None:
    who = api.merchant()
    status, body, headers = api.credit(who, "buyer-1", payload)
    assert status == 422, body
    assert (body["code"], body["param"]) == ("validation_failed", param)
    assert headers["Content-Type"] == "application/problem+json"
    items = boto3.client("dynamodb").scan(TableName=moto_stack.trade_table)["Items"]
    assert not [item for item in items if item["sk"]["S"] == "BALANCE"]


@pytest.mark.parametrize("buyer", ["bad!", "x" * 65, "a%20b"])
def test_bad_buyer_ids_are_422(api: Api, buyer: str) -> None:
    who = api.merchant()
    status, body, _ = api.credit(who, buyer, {"amount": 1, "currency": "CNY"})
    assert status == 422, body
    assert (body["code"], body["param"]) == ("validation_failed", "buyer_id")
    status, body, _ = api.balance(who, buyer, {"currency": "CNY"})
    assert status == 422, body
    assert (body["code"], body["param"]) == ("validation_failed", "buyer_id")


@pytest.mark.parametrize(
    ("query", "param"),
    [
        (None, "currency"),
        ({"currency": "XXX"}, "currency"),
        ({"currency": "cny"}, "currency"),
        ({"x": "1"}, "x"),  # a parameter the route does not take is refused, not ignored
    ],
)
def test_balance_needs_a_supported_currency(
    api: Api, query: dict[str, str] | None, param: str
) -> None:
    who = api.merchant()
    status, body, _ = api.balance(who, "buyer-1", query)
    assert status == 422, body
    assert (body["code"], body["param"]) == ("validation_failed", param)


def test_balance_routes_need_a_merchant_key(api: Api) -> None:
    status, body, _ = api.credit(ADMIN, "buyer-1", {"amount": 1, "currency": "CNY"})
    assert status == 401 and body["code"] == "unauthenticated"
    status, body, _ = api.balance(ADMIN, "buyer-1", {"currency": "CNY"})
    assert status == 401 and body["code"] == "unauthenticated"


# -- coupons --------------------------------------------------------------------------------


def test_issue_and_read_a_coupon(api: Api) -> None:
    who = api.merchant()
    expires = in_future(days=30)
    status, coupon, _ = api.call(
        "POST",
        "/v1/coupons",
        body={"buyer_id": "buyer-1", "amount": 500, "currency": "CNY", "expires_at": expires},
        authorizer=who,
    )
    assert status == 201, coupon
    assert coupon["id"].startswith("cpn_")
    assert {key: coupon[key] for key in coupon if key not in ("id", "created_at")} == {
        "object": "coupon",
        "buyer_id": "buyer-1",
        "amount": 500,
        "currency": "CNY",
        "status": "available",
        "expires_at": expires,
    }
    status, fetched, _ = api.coupon(who, coupon["id"])
    assert status == 200
    assert fetched == coupon


def test_coupon_expiry_is_returned_in_utc_and_optional(api: Api) -> None:
    who = api.merchant()
    status, coupon, _ = api.call(
        "POST",
        "/v1/coupons",
        body={
            "buyer_id": "b",
            "amount": 1,
            "currency": "JPY",
            "expires_at": "2999-01-01T08:00:00+08:00",
        },
        authorizer=who,
    )
    assert status == 201 and coupon["expires_at"] == "2999-01-01T00:00:00.000Z"
    status, coupon, _ = api.call(
        "POST",
        "/v1/coupons",
        body={"buyer_id": "b", "amount": 1, "currency": "JPY"},
        authorizer=who,
    )
    assert status == 201 and coupon["expires_at"] is None


def test_an_expired_coupon_reads_as_expired(api: Api, moto_stack: MotoStack) -> None:
    who = api.merchant()
    status, coupon, _ = api.call(
        "POST",
        "/v1/coupons",
        body={"buyer_id": "b", "amount": 1, "currency": "CNY", "expires_at": in_future(hours=1)},
        authorizer=who,
    )
    assert status == 201
    # Let time pass: move the stored expiry into the past.
    boto3.client("dynamodb").update_item(
        TableName=moto_stack.trade_table,
        Key={"pk": {"S": f"COUPON#{coupon['id']}"}, "sk": {"S": "COUPON"}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"S": "2020-01-01T00:00:00.000Z"}},
    )
    status, fetched, _ = api.coupon(who, coupon["id"])
    assert status == 200 and fetched["status"] == "expired"


def test_another_merchants_coupon_is_404(api: Api) -> None:
    owner, stranger = api.merchant("Owner"), api.merchant("Stranger")
    status, coupon, _ = api.call(
        "POST",
        "/v1/coupons",
        body={"buyer_id": "b", "amount": 100, "currency": "USD"},
        authorizer=owner,
    )
    assert status == 201
    for coupon_id in (coupon["id"], "cpn_doesnotexist", "ord_notacoupon"):
        status, body, headers = api.coupon(
            stranger if coupon_id == coupon["id"] else owner, coupon_id
        )
        assert status == 404, coupon_id
        assert (body["code"], body["param"]) == ("coupon_not_found", "coupon_id")
        assert headers["Content-Type"] == "application/problem+json"


def test_issue_coupon_is_idempotent(api: Api, moto_stack: MotoStack) -> None:
    who = api.merchant()
    key = {"Idempotency-Key": "coupon-1"}
    payload = {"buyer_id": "b", "amount": 100, "currency": "USD"}
    first = api.call("POST", "/v1/coupons", body=payload, headers=key, authorizer=who)
    again = api.call("POST", "/v1/coupons", body=payload, headers=key, authorizer=who)
    assert first[0] == again[0] == 201
    assert first[1] == again[1]
    items = boto3.client("dynamodb").scan(TableName=moto_stack.trade_table)["Items"]
    assert len([item for item in items if item["sk"]["S"] == "COUPON"]) == 1
    status, body, _ = api.call(
        "POST", "/v1/coupons", body={**payload, "amount": 101}, headers=key, authorizer=who
    )
    assert status == 422 and body["code"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"buyer_id": "bad id", "amount": 1, "currency": "CNY"}, "buyer_id"),
        ({"buyer_id": "x" * 65, "amount": 1, "currency": "CNY"}, "buyer_id"),
        ({"amount": 1, "currency": "CNY"}, "buyer_id"),
        ({"buyer_id": "b", "amount": 0, "currency": "CNY"}, "amount"),
        ({"buyer_id": "b", "amount": "5", "currency": "CNY"}, "amount"),
        ({"buyer_id": "b", "amount": 1, "currency": "ABC"}, "currency"),
        (
            {"buyer_id": "b", "amount": 1, "currency": "CNY", "expires_at": "2999-01-01"},
            "expires_at",
        ),
        (
            {"buyer_id": "b", "amount": 1, "currency": "CNY", "expires_at": "2999-01-01T00:00:00"},
            "expires_at",
        ),
        ({"buyer_id": "b", "amount": 1, "currency": "CNY", "expires_at": 1893456000}, "expires_at"),
        (
            {"buyer_id": "b", "amount": 1, "currency": "CNY", "expires_at": "2020-01-01T00:00:00Z"},
            "expires_at",
        ),
        ({"buyer_id": "b", "amount": 1, "currency": "CNY", "status": "used"}, "status"),
    ],
)
def test_invalid_coupons_are_422_and_change_nothing(
    api: Api, moto_stack: MotoStack, payload: dict[str, Any], param: str
) -> None:
    who = api.merchant()
    status, body, headers = api.call("POST", "/v1/coupons", body=payload, authorizer=who)
    assert status == 422, body
    assert (body["code"], body["param"]) == ("validation_failed", param)
    assert headers["Content-Type"] == "application/problem+json"
    items = boto3.client("dynamodb").scan(TableName=moto_stack.trade_table)["Items"]
    assert not [item for item in items if item["sk"]["S"] == "COUPON"]


def test_openapi_describes_the_instrument_routes(api: Api) -> None:
    status, spec, _ = api.call("GET", "/openapi.json")
    assert status == 200
    paths = spec["paths"]
    assert "post" in paths["/v1/buyers/{buyer_id}/balance/credits"]
    assert "get" in paths["/v1/buyers/{buyer_id}/balance"]
    assert "post" in paths["/v1/coupons"]
    assert "get" in paths["/v1/coupons/{coupon_id}"]
