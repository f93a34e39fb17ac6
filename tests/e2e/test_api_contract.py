"""The merchant contract over HTTP: auth, isolation, errors, idempotency, lists."""

from __future__ import annotations

from collections.abc import Callable

import requests

from local_runtime.runtime import LocalRuntime
from tests.e2e.conftest import Merchant, buyer

PROBLEM = "application/problem+json"


def test_health_and_openapi(runtime: LocalRuntime) -> None:
    assert requests.get(runtime.api_url + "/health", timeout=10).json() == {"status": "ok"}
    spec = requests.get(runtime.api_url + "/openapi.json", timeout=10).json()
    assert "/v1/orders/{order_id}/payments" in spec["paths"]


def test_missing_or_bad_key_is_401(runtime: LocalRuntime) -> None:
    for headers in ({}, {"Authorization": "Bearer sk_live_nope"}, {"Authorization": "Basic x"}):
        answer = requests.get(runtime.api_url + "/v1/orders", headers=headers, timeout=10)
        assert answer.status_code == 401
        assert answer.headers["Content-Type"] == PROBLEM
        assert answer.json()["code"] == "unauthenticated"


def test_merchant_key_cannot_onboard(onboard: Callable[..., Merchant]) -> None:
    shop = onboard()
    answer = shop.request("POST", "/v1/merchants", json={"name": "Evil"})
    assert answer.status_code == 401 and answer.headers["Content-Type"] == PROBLEM
    # Refused by API Gateway (the authorizer's policy), before any body is read.
    answer = shop.request("POST", "/v1/merchants", json=["not", "a", "merchant"])
    assert answer.status_code == 401 and answer.json()["code"] == "unauthenticated"


def test_merchant_key_cannot_run_settlements_or_read_the_books(
    onboard: Callable[..., Merchant],
) -> None:
    """The platform's money routes are the admin's: API Gateway refuses a merchant key with its
    own answer (the authorizer's policy), so no handler runs, even for a body it would take."""
    shop = onboard()
    for method, path, body in (
        ("POST", "/v1/settlements/run", {"date": "2026-12-07"}),
        ("GET", "/v1/ledger/trial_balance?currency=CNY", None),
    ):
        answer = shop.request(method, path, json=body)
        assert answer.status_code == 401, (path, answer.text)
        assert answer.headers["Content-Type"] == PROBLEM
        assert answer.json()["code"] == "unauthenticated"
        assert answer.json()["detail"] == "Missing or invalid API key.", path  # the gateway's


def test_the_admin_token_is_no_merchant_key(runtime: LocalRuntime) -> None:
    admin = {"Authorization": f"Bearer {runtime.admin_token}"}
    answer = requests.get(runtime.api_url + "/v1/orders", headers=admin, timeout=10)
    assert answer.status_code == 401 and answer.json()["code"] == "unauthenticated"


def test_unknown_route_is_404_problem(runtime: LocalRuntime) -> None:
    answer = requests.get(runtime.api_url + "/v1/nothing-here", timeout=10)
    assert answer.status_code == 404 and answer.headers["Content-Type"] == PROBLEM


def test_another_merchants_objects_are_404(onboard: Callable[..., Merchant]) -> None:
    owner, stranger = onboard("Owner"), onboard("Stranger")
    order = owner.create_order("ISO-1")
    payment = owner.pay(order["id"]).json()
    for method, path in (
        ("GET", f"/v1/orders/{order['id']}"),
        ("POST", f"/v1/orders/{order['id']}/close"),
        ("GET", f"/v1/payments/{payment['id']}"),
    ):
        answer = stranger.request(method, path)
        assert answer.status_code == 404, path
        assert answer.headers["Content-Type"] == PROBLEM
    answer = stranger.pay(order["id"])
    assert answer.status_code == 404
    assert owner.order(order["id"])["status"] == "paying"
    listed = stranger.request("GET", "/v1/orders").json()
    assert listed["data"] == []
    buyer(payment["next_action"]["url"], "decline")  # leave nothing in flight
    assert owner.wait_for_payment(payment["id"])["status"] == "failed"


def test_duplicate_merchant_order_no_is_409(onboard: Callable[..., Merchant]) -> None:
    shop = onboard()
    shop.create_order("DUP-1")
    again = shop.request(
        "POST",
        "/v1/orders",
        json={"merchant_order_no": "DUP-1", "amount": 5, "currency": "USD", "subject": "x"},
    )
    assert again.status_code == 409
    assert again.headers["Content-Type"] == PROBLEM
    assert again.json()["code"] == "duplicate_merchant_order_no"


def test_idempotent_order_replay_and_key_reuse(onboard: Callable[..., Merchant]) -> None:
    shop = onboard()
    body = {"merchant_order_no": "IDEM-1", "amount": 500, "currency": "JPY", "subject": "x"}
    key = {"Idempotency-Key": "order-idem-1"}
    first = shop.request("POST", "/v1/orders", json=body, headers=key)
    again = shop.request("POST", "/v1/orders", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    reused = shop.request("POST", "/v1/orders", json={**body, "amount": 501}, headers=key)
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"
    listed = shop.request("GET", "/v1/orders", params={"merchant_order_no": "IDEM-1"}).json()
    assert len(listed["data"]) == 1


def test_malformed_json_is_400_and_invalid_fields_422(onboard: Callable[..., Merchant]) -> None:
    shop = onboard()
    broken = shop.request(
        "POST", "/v1/orders", data='{"amount": ', headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.headers["Content-Type"] == PROBLEM
    assert broken.json()["code"] == "malformed_json"
    invalid = shop.request(
        "POST",
        "/v1/orders",
        json={"merchant_order_no": "V-1", "amount": -5, "currency": "CNY", "subject": "x"},
    )
    assert invalid.status_code == 422
    problem = invalid.json()
    assert problem["code"] == "validation_failed" and problem["param"] == "amount"
    assert {"type", "title", "status", "detail"} <= set(problem)
    assert shop.request("GET", "/v1/orders").json()["data"] == []


def test_lists_page_newest_first(onboard: Callable[..., Merchant]) -> None:
    shop = onboard()
    ids = [shop.create_order(f"LIST-{n}")["id"] for n in range(3)]
    page = shop.request("GET", "/v1/orders", params={"limit": 2}).json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [o["id"] for o in page["data"]] == ids[::-1][:2]
    rest = shop.request("GET", "/v1/orders", params={"starting_after": ids[1]}).json()
    assert [o["id"] for o in rest["data"]] == [ids[0]]


BAD_BODIES = [
    b"[]",
    b"null",
    b'"text"',
    b"{}",
    b"\xff\xfe not utf-8",
    b"{" * 1000,
    b'{"merchant_order_no": "A", "amount": true, "currency": "CNY", "subject": "x"}',
    b'{"merchant_order_no": "A", "amount": 1e400, "currency": "CNY", "subject": "x"}',
    b'{"merchant_order_no": "A", "amount": 99999999999999999999999, "currency": "CNY", "subject": "x"}',
    b'{"merchant_order_no": "A", "amount": 1, "currency": "cny", "subject": "x"}',
    b'{"merchant_order_no": "A", "amount": 1, "currency": "CNY", "subject": "x", "metadata": {"k": 1}}',
    b'{"instruments": [{"type": "balance", "amount": 5}]}',
    b'{"instruments": []}',
]


def test_bad_input_is_a_4xx_problem_never_a_5xx(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    order = shop.create_order("FUZZ-1")
    routes = ["/v1/orders", f"/v1/orders/{order['id']}/payments", f"/v1/orders/{order['id']}/close"]
    for route in routes:
        for body in BAD_BODIES:
            if route.endswith("/close") and body in (b"{}", b"null"):
                continue  # closing takes no parameters: an empty object or null is fine
            answer = shop.request(
                "POST", route, data=body, headers={"Content-Type": "application/json"}
            )
            assert 400 <= answer.status_code < 500, (route, body, answer.text)
            assert answer.headers["Content-Type"] == PROBLEM, (route, body)
        answer = shop.request(
            "POST", route, data=b"amount=5", headers={"Content-Type": "text/plain"}
        )
        assert answer.status_code in (404, 409, 415, 422), (route, answer.text)
        assert answer.headers["Content-Type"] == PROBLEM
    for path in (
        "/v1/orders/%00",
        "/v1/orders/ord_" + "x" * 300,
        "/v1/orders?limit=abc",
        "/v1/orders?limit=1000",
        "/v1/orders?starting_after=ord_unknown",
        "/v1/events/evt_%ff",
    ):
        answer = shop.request("GET", path)
        assert 400 <= answer.status_code < 500, (path, answer.text)
        assert answer.headers["Content-Type"] == PROBLEM
    assert shop.order(order["id"])["status"] == "created"
    assert [o["id"] for o in shop.request("GET", "/v1/orders").json()["data"]] == [order["id"]]
