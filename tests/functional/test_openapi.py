"""GET /openapi.json describes the API the code serves (paycore/api/openapi.py), and GET /docs
shows it with no request to anywhere."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from openapi_spec_validator import validate

from paycore.api.idempotency import HEADER
from paycore.api.request_body import MAX_BODY_BYTES
from paycore.money import CURRENCY_EXPONENTS
from paycore.services import events
from tests.support import FakeContext, load_function, load_template, rest_event

# Pages for people, not for clients (the hosted cashier's page is tested in test_cashier.py).
UNDOCUMENTED = {"/openapi.json", "/docs", "/cashier/{token}"}


@pytest.fixture(scope="module")
def api() -> Any:
    return load_function("api")


@pytest.fixture(scope="module")
def spec(api: Any) -> dict[str, Any]:
    answer = api.lambda_handler(rest_event("GET", "/openapi.json"), FakeContext())
    assert answer["statusCode"] == 200
    return dict(json.loads(answer["body"]))


def _template_routes() -> set[tuple[str, str]]:
    routes = set()
    for name in ("ApiFunction", "ChannelCallbackFunction"):
        for event in load_template()["Resources"][name]["Properties"]["Events"].values():
            if event["Type"] == "Api":
                props = event["Properties"]
                routes.add((props["Method"].lower(), props["Path"]))
    return routes


def test_the_description_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_every_served_route_is_described_and_nothing_else(spec: dict[str, Any]) -> None:
    described = {
        (method, path) for path, operations in spec["paths"].items() for method in operations
    }
    served = {(m, p) for m, p in _template_routes() if p not in UNDOCUMENTED}
    assert described == served


# The platform's routes: onboarding, the books and settlement runs.
ADMIN_PATHS = {"/v1/merchants", "/v1/ledger/trial_balance", "/v1/settlements/run"}


def test_each_route_says_who_may_call_it(spec: dict[str, Any]) -> None:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            expected: list[dict[str, list[str]]]
            if path in ("/health",) or path.startswith(("/callbacks/", "/cashier/")):
                expected = []  # the cashier's: its link's token is the credential
            elif path in ADMIN_PATHS:
                expected = [{"adminToken": []}]
            else:
                expected = [{"merchantKey": []}]
            assert operation["security"] == expected, (method, path)
            if expected:
                assert "401" in operation["responses"], (method, path)


def test_the_authorizer_keeps_merchant_keys_off_every_admin_route(spec: dict[str, Any]) -> None:
    """The routes described as the admin's are exactly those the authorizer's policy denies a
    merchant key (paycore.auth.ADMIN_ROUTES): a new admin route cannot be left open to
    merchants by forgetting the policy."""
    from paycore.auth import ADMIN_ROUTES

    described = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if operation["security"] == [{"adminToken": []}]
    }
    assert described == set(ADMIN_ROUTES)


def test_every_post_takes_an_idempotency_key_and_says_when_it_replays(
    spec: dict[str, Any],
) -> None:
    for path, operations in spec["paths"].items():
        post = operations.get("post")
        if post is None or path.startswith("/callbacks/"):
            continue
        names = [p["name"] for p in post.get("parameters", []) if p["in"] == "header"]
        assert HEADER in names, path
        success = [status for status in post["responses"] if status.startswith("2")]
        assert len(success) == 1, path
        assert "Idempotent-Replayed" in post["responses"][success[0]]["headers"], path
        for status in ("400", "409", "413", "415", "422"):
            assert status in post["responses"], (path, status)
        codes = _codes(post["responses"]["413"])
        assert codes == ["payload_too_large"], path
        assert _codes(post["responses"]["400"]) == ["malformed_json", "bad_request"], path
        assert str(MAX_BODY_BYTES) in post["responses"]["413"]["description"]


def _codes(response: dict[str, Any]) -> list[str]:
    schema = response["content"]["application/problem+json"]["schema"]
    return list(schema["allOf"][1]["properties"]["code"]["enum"])


def test_errors_are_problem_json_with_their_codes(spec: dict[str, Any]) -> None:
    assert {"type", "title", "status", "detail", "code"} <= set(
        spec["components"]["schemas"]["Problem"]["required"]
    )
    order = spec["paths"]["/v1/orders/{order_id}"]["get"]["responses"]
    assert _codes(order["404"]) == ["order_not_found", "route_not_found"]
    assert _codes(order["400"]) == ["bad_request"]  # API Gateway's own refusals
    payment = spec["paths"]["/v1/orders/{order_id}/payments"]["post"]["responses"]
    assert "insufficient_balance" in _codes(payment["409"])
    assert "instrument_amounts_mismatch" in _codes(payment["422"])
    create_order = spec["paths"]["/v1/orders"]["post"]["responses"]
    assert "duplicate_merchant_order_no" in _codes(create_order["409"])
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert "application/problem+json" in response["content"], (method, path)
                    assert _codes(response), (method, path, status)


def test_success_answers_are_the_resource_models(spec: dict[str, Any]) -> None:
    def model(path: str, method: str, status: str) -> str:
        content = spec["paths"][path][method]["responses"][status]["content"]
        return str(content["application/json"]["schema"]["$ref"]).rsplit("/", 1)[-1]

    assert model("/v1/orders", "post", "201") == "Order"
    assert model("/v1/orders", "get", "200") == "OrderList"
    assert model("/v1/orders/{order_id}/payments", "post", "202") == "Payment"
    assert model("/v1/orders/{order_id}/refunds", "post", "202") == "Refund"
    assert model("/v1/merchants", "post", "201") == "Merchant"
    assert model("/v1/coupons", "post", "201") == "Coupon"
    assert model("/v1/buyers/{buyer_id}/balance", "get", "200") == "BuyerBalance"
    assert model("/v1/events/{event_id}", "get", "200") == "EventWithDeliveries"
    assert model("/v1/webhook_endpoints", "post", "201") == "WebhookEndpoint"
    assert model("/v1/webhook_endpoints", "get", "200") == "WebhookEndpointList"
    assert model("/v1/webhook_endpoints/{webhook_endpoint_id}", "delete", "200") == (
        "DeletedWebhookEndpoint"
    )
    assert model("/v1/api_keys/roll", "post", "201") == "RolledApiKey"
    schemas = spec["components"]["schemas"]
    # The webhook payload is the event alone; only the API's answer lists the deliveries.
    assert "deliveries" not in schemas["Event"]["properties"]
    assert "deliveries" in schemas["EventWithDeliveries"]["required"]
    assert schemas["Order"]["additionalProperties"] is False
    assert schemas["Order"]["examples"], "the resources carry examples"
    assert set(schemas["Order"]["properties"]["currency"]["enum"]) == set(CURRENCY_EXPONENTS)
    assert set(schemas["CreateOrderRequest"]["properties"]["currency"]["enum"]) == set(
        CURRENCY_EXPONENTS
    )


def test_every_event_type_is_a_described_webhook(spec: dict[str, Any]) -> None:
    types = {
        value
        for name, value in vars(events).items()
        if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z]+\.[a-z_]+", value)
    }
    assert types, "the event types are constants of paycore.services.events"
    assert set(spec["webhooks"]) == types
    for hook in spec["webhooks"].values():
        headers = {p["name"] for p in hook["post"]["parameters"]}
        assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}


def test_the_docs_page_is_self_contained(api: Any, spec: dict[str, Any]) -> None:
    answer = api.lambda_handler(rest_event("GET", "/docs"), FakeContext())
    assert answer["statusCode"] == 200
    page = answer["body"]
    assert "SwaggerUIBundle(" in page
    assert "validatorUrl: null" in page
    # No script, style, image or font is fetched from anywhere: everything is inline.
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)
    assert '"/v1/orders/{order_id}/payments"' in page  # the description is embedded
