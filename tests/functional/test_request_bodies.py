"""Every POST route reads its body the same way: a JSON object or a clear 4xx that changes
nothing (layers/paycore/paycore/api/request_body.py). The routes come from template.yaml, so
a new route is covered the day it is added."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import boto3
import pytest

from tests.functional.conftest import MotoStack
from tests.functional.test_api import ADMIN, Api
from tests.support import FakeContext, load_template, rest_event

PROBLEM = "application/problem+json"


def _post_routes() -> list[str]:
    events = load_template()["Resources"]["ApiFunction"]["Properties"]["Events"]
    return sorted(
        event["Properties"]["Path"]
        for event in events.values()
        if event["Type"] == "Api" and event["Properties"]["Method"].upper() == "POST"
    )


POST_ROUTES = _post_routes()


@pytest.fixture
def api(moto_stack: MotoStack) -> Api:
    return Api()


def _items(stack: MotoStack) -> int:
    return int(boto3.client("dynamodb").scan(TableName=stack.trade_table)["Count"])


def _post(
    api: Api,
    who: dict[str, str],
    resource: str,
    raw: bytes,
    content_type: str | None,
    *,
    base64_encoded: bool = False,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST ``raw`` to ``resource`` (its path parameters name objects that do not exist)."""
    params = {name: f"{name[:3]}_unknown" for name in re.findall(r"\{(\w+)\}", resource)}
    path = resource
    for name, value in params.items():
        path = path.replace(f"{{{name}}}", value)
    event = rest_event(
        "POST", path, resource=resource, path_parameters=params or None, authorizer=who
    )
    headers = {} if content_type is None else {"Content-Type": content_type}
    event["headers"] = headers
    event["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
    if base64_encoded:
        event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    else:
        event["body"] = raw.decode("utf-8")
    answer = api.module.lambda_handler(event, FakeContext())
    answer_headers = dict(answer.get("headers") or {})
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        answer_headers.setdefault(name, values[0])
    return answer["statusCode"], json.loads(answer["body"]), answer_headers


def _caller(api: Api, resource: str) -> dict[str, str]:
    return ADMIN if resource == "/v1/merchants" else api.merchant()


def test_every_post_route_is_covered() -> None:
    assert "/v1/orders" in POST_ROUTES and "/v1/merchants" in POST_ROUTES
    assert len(POST_ROUTES) >= 8, POST_ROUTES


@pytest.mark.parametrize("resource", POST_ROUTES)
def test_a_json_array_is_refused_on_every_route(
    api: Api, moto_stack: MotoStack, resource: str
) -> None:
    who = _caller(api, resource)
    before = _items(moto_stack)
    status, body, headers = _post(api, who, resource, b"[{}, {}]", "application/json")
    assert status == 422, body
    assert body["code"] == "validation_failed"
    assert "must be a JSON object" in body["detail"]
    assert headers["Content-Type"] == PROBLEM
    assert _items(moto_stack) == before


def _order(no: str) -> dict[str, Any]:
    return {"merchant_order_no": no, "amount": 1999, "currency": "CNY", "subject": "Tea"}


@pytest.mark.parametrize(
    ("resource", "valid"),
    [
        ("/v1/orders", _order("A-1")),
        ("/v1/merchants", {"name": "Tea Shop", "webhook_url": None}),
        ("/v1/coupons", {"buyer_id": "b1", "amount": 100, "currency": "CNY"}),
    ],
)
def test_an_array_of_valid_objects_creates_nothing(
    api: Api, moto_stack: MotoStack, resource: str, valid: dict[str, Any]
) -> None:
    """The bug this pins: ``[A, B]`` was read as ``A`` (201) and ``B`` silently dropped."""
    who = _caller(api, resource)
    second = {**valid, "merchant_order_no": "A-2"} if "merchant_order_no" in valid else valid
    before = _items(moto_stack)
    status, body, _ = _post(
        api, who, resource, json.dumps([valid, second]).encode(), "application/json"
    )
    assert status == 422, body
    assert _items(moto_stack) == before


NOT_JSON_TYPES = [
    "multipart/form-data",
    "multipart/form-data; boundary=xyz",
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/jsonp",
    "application/json; charset=latin-1",
    "application/merge-patch+json",
]


@pytest.mark.parametrize("resource", POST_ROUTES)
def test_any_content_type_but_json_is_415(api: Api, moto_stack: MotoStack, resource: str) -> None:
    who = _caller(api, resource)
    before = _items(moto_stack)
    for content_type in NOT_JSON_TYPES:
        status, body, headers = _post(api, who, resource, b"name=x&amount=1", content_type)
        assert status == 415, (content_type, body)
        assert body["code"] == "unsupported_media_type"
        assert headers["Content-Type"] == PROBLEM
    assert _items(moto_stack) == before


UNREADABLE = {
    "deep nesting": b'{"a": ' * 5000 + b"1" + b"}" * 5000,
    "deep array": b'{"a": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    "a 5,000-digit integer": b'{"amount": ' + b"9" * 5000 + b"}",
    "a 33-digit integer": b'{"amount": ' + b"1" * 33 + b"}",
    "NaN": b'{"amount": NaN}',
    "Infinity": b'{"amount": -Infinity}',
    "an overflowing float": b'{"amount": 1e999}',
    "a duplicate key": b'{"amount": 1, "amount": 100000}',
    "not JSON": b'{"amount": 1',
    "not UTF-8": b'{"subject": "\xff\xfe"}',
}


@pytest.mark.parametrize("resource", POST_ROUTES)
def test_unreadable_json_is_400_malformed_json(
    api: Api, moto_stack: MotoStack, resource: str
) -> None:
    who = _caller(api, resource)
    before = _items(moto_stack)
    for case, raw in UNREADABLE.items():
        # API Gateway hands the function bytes that are not UTF-8 base64-encoded.
        binary = case == "not UTF-8"
        status, body, _ = _post(api, who, resource, raw, "application/json", base64_encoded=binary)
        assert status == 400, (case, body)
        assert body["code"] == "malformed_json", case
    assert _items(moto_stack) == before


@pytest.mark.parametrize("resource", POST_ROUTES)
def test_a_body_over_64_kib_is_413(api: Api, moto_stack: MotoStack, resource: str) -> None:
    who = _caller(api, resource)
    before = _items(moto_stack)
    raw = b'{"subject": "' + b"x" * (64 * 1024) + b'"}'
    status, body, _ = _post(api, who, resource, raw, "application/json")
    assert status == 413, body
    assert body["code"] == "payload_too_large"
    assert _items(moto_stack) == before


def test_json_with_a_charset_and_no_content_type_are_read(api: Api) -> None:
    who = api.merchant()
    for no, content_type in (("C-1", "application/json; charset=utf-8"), ("C-2", None)):
        status, body, _ = _post(
            api, who, "/v1/orders", json.dumps(_order(no)).encode(), content_type
        )
        assert status == 201, body
        assert body["merchant_order_no"] == no
