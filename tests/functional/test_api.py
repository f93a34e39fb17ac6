"""The API function (functions/api/app.py) against moto, driven with REST proxy events."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient

from paycore.dal.trade_store import TradeStore
from tests.functional.conftest import MotoStack
from tests.support import FakeContext, load_function, rest_event

ADMIN = {"role": "admin", "merchant_id": ""}


class Api:
    def __init__(self) -> None:
        self.module = load_function("api")

    def call(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        answer = self.module.lambda_handler(rest_event(method, path, **kwargs), FakeContext())
        body = json.loads(answer["body"]) if answer.get("body") else {}
        headers = dict(answer.get("headers") or {})
        for name, values in (answer.get("multiValueHeaders") or {}).items():
            headers.setdefault(name, values[0])
        return answer["statusCode"], body, headers

    def on_order(
        self, method: str, order_id: str, suffix: str = "", **kwargs: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Call /v1/orders/{order_id}<suffix> as API Gateway routes it."""
        return self.call(
            method,
            f"/v1/orders/{order_id}{suffix}",
            resource=f"/v1/orders/{{order_id}}{suffix}",
            path_parameters={"order_id": order_id},
            **kwargs,
        )

    def merchant(self, name: str = "Shop") -> dict[str, str]:
        status, body, _ = self.call(
            "POST", "/v1/merchants", body={"name": name, "webhook_url": None}, authorizer=ADMIN
        )
        assert status == 201, body
        return {"role": "merchant", "merchant_id": body["id"]}

    def order(self, who: dict[str, str], no: str = "A-1", **extra: Any) -> dict[str, Any]:
        payload = {"merchant_order_no": no, "amount": 1999, "currency": "CNY", "subject": "Tea"}
        status, body, _ = self.call("POST", "/v1/orders", body={**payload, **extra}, authorizer=who)
        assert status == 201, body
        return body


@pytest.fixture
def api(moto_stack: MotoStack) -> Api:
    return Api()


def test_onboarding_returns_key_and_webhook_secret_once(api: Api) -> None:
    status, body, _ = api.call(
        "POST",
        "/v1/merchants",
        body={"name": "Shop", "webhook_url": "https://shop.test/hook"},
        authorizer=ADMIN,
    )
    assert status == 201
    assert body["id"].startswith("mch_")
    assert body["api_key"].startswith("sk_live_")
    assert body["webhook_secret"].startswith("whsec_")
    assert body["object"] == "merchant"


def test_merchant_key_cannot_onboard_merchants(api: Api) -> None:
    who = api.merchant()
    status, body, headers = api.call("POST", "/v1/merchants", body={"name": "X"}, authorizer=who)
    assert status == 401
    assert body["code"] == "unauthenticated"
    assert headers["Content-Type"] == "application/problem+json"


def test_create_and_get_order(api: Api) -> None:
    who = api.merchant()
    order = api.order(who, metadata={"cart": "42"}, buyer_id="buyer-1")
    assert order["status"] == "created"
    assert order["amount"] == 1999 and order["currency"] == "CNY"
    assert order["amount_paid"] == 0 and order["amount_refunded"] == 0
    assert order["metadata"] == {"cart": "42"}
    status, fetched, _ = api.on_order(
        "GET",
        order["id"],
        authorizer=who,
    )
    assert status == 200
    assert fetched == order


def test_duplicate_merchant_order_no_is_409(api: Api) -> None:
    who = api.merchant()
    api.order(who, no="DUP-1")
    status, body, _ = api.call(
        "POST",
        "/v1/orders",
        body={"merchant_order_no": "DUP-1", "amount": 5, "currency": "USD", "subject": "x"},
        authorizer=who,
    )
    assert status == 409
    assert body["code"] == "duplicate_merchant_order_no"
    # Another merchant may use the same number.
    other = api.merchant("Other")
    assert api.order(other, no="DUP-1")["merchant_order_no"] == "DUP-1"


def test_idempotent_replay_and_key_reuse(api: Api) -> None:
    who = api.merchant()
    payload = {"merchant_order_no": "IDEM-1", "amount": 100, "currency": "JPY", "subject": "x"}
    key = {"Idempotency-Key": "key-1"}
    first = api.call("POST", "/v1/orders", body=payload, headers=key, authorizer=who)
    again = api.call("POST", "/v1/orders", body=payload, headers=key, authorizer=who)
    assert first[0] == again[0] == 201
    assert first[1] == again[1]
    status, body, _ = api.call(
        "POST", "/v1/orders", body={**payload, "amount": 101}, headers=key, authorizer=who
    )
    assert status == 422
    assert body["code"] == "idempotency_key_reused"
    # The same key from another merchant is theirs alone.
    other = api.merchant("Other")
    status, body, _ = api.call("POST", "/v1/orders", body=payload, headers=key, authorizer=other)
    assert status == 201 and body["id"] != first[1]["id"]


def test_another_merchants_order_is_404(api: Api) -> None:
    owner, stranger = api.merchant("Owner"), api.merchant("Stranger")
    order = api.order(owner)
    for method, suffix, resource in (
        ("GET", "", "/v1/orders/{order_id}"),
        ("POST", "/close", "/v1/orders/{order_id}/close"),
    ):
        status, body, _ = api.call(
            method,
            f"/v1/orders/{order['id']}{suffix}",
            resource=resource,
            path_parameters={"order_id": order["id"]},
            authorizer=stranger,
        )
        assert status == 404
        assert body["code"] == "order_not_found"


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        (
            {"merchant_order_no": "bad no!", "amount": 1, "currency": "CNY", "subject": "x"},
            "merchant_order_no",
        ),
        ({"merchant_order_no": "A", "amount": 0, "currency": "CNY", "subject": "x"}, "amount"),
        ({"merchant_order_no": "A", "amount": 1.5, "currency": "CNY", "subject": "x"}, "amount"),
        ({"merchant_order_no": "A", "amount": "100", "currency": "CNY", "subject": "x"}, "amount"),
        ({"merchant_order_no": "A", "amount": 1, "currency": "XXX", "subject": "x"}, "currency"),
        ({"merchant_order_no": "A", "amount": 1, "currency": "CNY", "subject": ""}, "subject"),
        (
            {
                "merchant_order_no": "A",
                "amount": 1,
                "currency": "CNY",
                "subject": "x",
                "expires_in": 5,
            },
            "expires_in",
        ),
        (
            {"merchant_order_no": "A", "amount": 1, "currency": "CNY", "subject": "x", "extra": 1},
            "extra",
        ),
        ({"amount": 1, "currency": "CNY", "subject": "x"}, "merchant_order_no"),
    ],
)
def test_invalid_order_fields_are_422_and_change_nothing(
    api: Api, moto_stack: MotoStack, payload: dict[str, Any], param: str
) -> None:
    who = api.merchant()
    status, body, headers = api.call("POST", "/v1/orders", body=payload, authorizer=who)
    assert status == 422, body
    assert body["code"] == "validation_failed"
    assert body["param"] == param
    assert headers["Content-Type"] == "application/problem+json"
    orders = boto3.client("dynamodb").scan(TableName=moto_stack.trade_table)["Items"]
    assert not [item for item in orders if item["sk"]["S"] == "ORDER"]


def test_malformed_json_is_400(api: Api) -> None:
    who = api.merchant()
    status, body, _ = api.call("POST", "/v1/orders", raw_body='{"amount": 1', authorizer=who)
    assert status == 400
    assert body["code"] == "malformed_json"
    assert set(body) >= {"type", "title", "status", "detail", "code"}


def test_list_orders_paginates_newest_first(api: Api) -> None:
    who = api.merchant()
    created = [api.order(who, no=f"L-{n}")["id"] for n in range(5)]
    status, page, _ = api.call("GET", "/v1/orders", query={"limit": "2"}, authorizer=who)
    assert status == 200
    assert page["object"] == "list" and page["has_more"] is True
    assert [o["id"] for o in page["data"]] == created[::-1][:2]
    status, rest, _ = api.call(
        "GET",
        "/v1/orders",
        query={"limit": "10", "starting_after": page["data"][-1]["id"]},
        authorizer=who,
    )
    assert [o["id"] for o in rest["data"]] == created[::-1][2:]
    assert rest["has_more"] is False
    status, filtered, _ = api.call(
        "GET", "/v1/orders", query={"merchant_order_no": "L-3"}, authorizer=who
    )
    assert [o["id"] for o in filtered["data"]] == [created[3]]
    status, body, _ = api.call("GET", "/v1/orders", query={"limit": "0"}, authorizer=who)
    assert status == 422 and body["param"] == "limit"


def test_close_order_emits_order_closed_once(api: Api, moto_stack: MotoStack) -> None:
    who = api.merchant()
    order = api.order(who)
    for _ in range(2):
        status, closed, _ = api.on_order(
            "POST",
            order["id"],
            "/close",
            authorizer=who,
        )
        assert status == 200 and closed["status"] == "closed"
    status, listing, _ = api.call("GET", "/v1/events", authorizer=who)
    assert [event["type"] for event in listing["data"]] == ["order.closed"]
    assert listing["data"][0]["data"]["object"]["id"] == order["id"]


def _calls_during(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every AWS call made from now on, as ``service:Operation``, counted at the SDK."""
    made: list[str] = []
    original = BaseClient._make_api_call

    def counted(client: Any, operation: str, params: Any) -> Any:
        made.append(f"{client.meta.service_model.service_name}:{operation}")
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counted)
    return made


@pytest.mark.parametrize("terms_in_context", [True, False])
def test_starting_a_channel_payment_reads_only_the_order(
    api: Api, moto_stack: MotoStack, monkeypatch: pytest.MonkeyPatch, terms_in_context: bool
) -> None:
    """The authorizer passes the merchant's terms on: the API reads the order, writes the
    payment with it in one transaction and starts the execution. An authorizer answer cached
    from before the terms travelled makes it read the merchant, with the same result."""
    status, body, _ = api.call(
        "POST",
        "/v1/merchants",
        body={"name": "Shop", "webhook_url": None, "fee_rate_bps": 45, "settlement_delay_days": 3},
        authorizer=ADMIN,
    )
    assert status == 201, body
    who = {"role": "merchant", "merchant_id": body["id"]}
    if terms_in_context:
        who |= {"fee_rate_bps": "45", "settlement_delay_days": "3"}
    order = api.order(who)
    calls = _calls_during(monkeypatch)
    status, payment, _ = api.on_order(
        "POST",
        order["id"],
        "/payments",
        body={"instruments": [{"type": "channel", "channel": "sandbox"}]},
        authorizer=who,
    )
    assert status == 202, payment
    merchant_read = [] if terms_in_context else ["dynamodb:GetItem"]
    assert sorted(calls) == sorted(
        [
            "dynamodb:GetItem",  # the order
            *merchant_read,
            "dynamodb:TransactWriteItems",  # payment, order, reservations, entry
            "stepfunctions:StartExecution",
        ]
    )
    stored = TradeStore().get_payment(payment["id"])
    assert stored is not None
    assert (stored.fee_rate_bps, stored.settlement_delay_days) == (45, 3)


def test_start_payment_moves_order_to_paying_and_starts_the_execution(
    api: Api, moto_stack: MotoStack
) -> None:
    who = api.merchant()
    order = api.order(who)
    status, payment, _ = api.on_order(
        "POST",
        order["id"],
        "/payments",
        body={"instruments": [{"type": "channel", "channel": "sandbox"}]},
        authorizer=who,
    )
    assert status == 202, payment
    assert payment["status"] == "processing" and payment["amount"] == order["amount"]
    executions = boto3.client("stepfunctions").list_executions(
        stateMachineArn=moto_stack.state_machine_arn
    )["executions"]
    assert [execution["name"] for execution in executions] == [payment["id"]]
    _, fetched, _ = api.on_order(
        "GET",
        order["id"],
        authorizer=who,
    )
    assert fetched["status"] == "paying"
    # A second payment while one is in flight is a conflict; closing must wait until the
    # channel order exists (it is closed first), so it is a try-again conflict.
    status, body, _ = api.on_order(
        "POST",
        order["id"],
        "/payments",
        body={"instruments": [{"type": "channel", "channel": "sandbox"}]},
        authorizer=who,
    )
    assert status == 409 and body["code"] == "order_not_payable"
    status, body, _ = api.on_order(
        "POST",
        order["id"],
        "/close",
        authorizer=who,
    )
    assert status == 409 and body["code"] == "payment_starting"
    assert api.on_order("GET", order["id"], authorizer=who)[1]["status"] == "paying"


def test_unknown_channel_is_422(api: Api) -> None:
    who = api.merchant()
    order = api.order(who)
    status, body, _ = api.on_order(
        "POST",
        order["id"],
        "/payments",
        body={"instruments": [{"type": "channel", "channel": "nope"}]},
        authorizer=who,
    )
    assert status == 422 and body["code"] == "unsupported_channel"


def test_openapi_describes_the_merchant_routes(api: Api) -> None:
    status, spec, _ = api.call("GET", "/openapi.json")
    assert status == 200
    assert spec["openapi"].startswith("3.")
    for path in (
        "/v1/orders",
        "/v1/orders/{order_id}",
        "/v1/orders/{order_id}/payments",
        "/v1/payments/{payment_id}",
        "/v1/events",
    ):
        assert path in spec["paths"], path


def test_a_refusal_is_replayed_for_the_same_key(api: Api) -> None:
    who = api.merchant()
    api.order(who, no="TAKEN-1")
    key = {"Idempotency-Key": "dup-attempt"}
    payload = {"merchant_order_no": "TAKEN-1", "amount": 5, "currency": "USD", "subject": "x"}
    first = api.call("POST", "/v1/orders", body=payload, headers=key, authorizer=who)
    again = api.call("POST", "/v1/orders", body=payload, headers=key, authorizer=who)
    assert first[0] == again[0] == 409
    assert first[1] == again[1]
    assert again[1]["code"] == "duplicate_merchant_order_no"
    assert again[2]["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    "webhook_url",
    [
        " https://shop.test/hook",
        "https://shop.test/my hook",
        "https://shop.test/hook\r\nX-Injected: 1",
        "https://shop.test:99999/hook",
        "https://shop.test:0/hook",
        "https://shop.test/\x00",
        "ftp://shop.test/hook",
    ],
)
def test_an_undeliverable_webhook_url_is_422_and_onboards_nobody(
    api: Api, moto_stack: MotoStack, webhook_url: str
) -> None:
    status, body, _ = api.call(
        "POST",
        "/v1/merchants",
        body={"name": "Shop", "webhook_url": webhook_url},
        authorizer=ADMIN,
    )
    assert status == 422, body
    assert body["param"] == "webhook_url"
    assert boto3.client("dynamodb").scan(TableName=moto_stack.trade_table)["Count"] == 0
