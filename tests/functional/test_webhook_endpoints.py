"""Merchant self-service through the API function against moto: webhook endpoints, secret
rotation, redelivery per endpoint, the delivery history on GET /v1/events/{id}, and the API
key roll checked by the authorizer function itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from paycore.clock import parse_rfc3339, rfc3339
from paycore.dal.trade_store import TradeStore
from paycore.dal.webhook_endpoint_store import WebhookEndpointStore
from paycore.domain.models import Event
from paycore.ids import new_id
from paycore.services import events
from tests.functional.conftest import MotoStack
from tests.support import FakeContext, load_function, rest_event

ADMIN = {"role": "admin", "merchant_id": ""}
ENDPOINTS = "/v1/webhook_endpoints"
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/live/GET/v1/orders"


class Api:
    def __init__(self) -> None:
        self.module = load_function("api")

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        answer = self.module.lambda_handler(rest_event(method, path, **kwargs), FakeContext())
        return answer["statusCode"], json.loads(answer["body"]) if answer.get("body") else {}

    def on_endpoint(
        self, method: str, endpoint_id: str, suffix: str = "", **kwargs: Any
    ) -> tuple[int, dict[str, Any]]:
        """Call /v1/webhook_endpoints/{id}<suffix> as API Gateway routes it."""
        return self.call(
            method,
            f"{ENDPOINTS}/{endpoint_id}{suffix}",
            resource=f"{ENDPOINTS}/{{webhook_endpoint_id}}{suffix}",
            path_parameters={"webhook_endpoint_id": endpoint_id},
            **kwargs,
        )

    def onboard(self, webhook_url: str | None = None) -> dict[str, Any]:
        status, body = self.call(
            "POST",
            "/v1/merchants",
            body={"name": "Tea Shop", "webhook_url": webhook_url},
            authorizer=ADMIN,
        )
        assert status == 201, body
        return body

    def create(self, who: dict[str, str], **fields: Any) -> dict[str, Any]:
        body = {"url": "https://tea.example/hooks", "enabled_events": ["*"], **fields}
        status, created = self.call("POST", ENDPOINTS, body=body, authorizer=who)
        assert status == 201, created
        return created


def merchant_of(onboarded: dict[str, Any]) -> dict[str, str]:
    """The authorizer's context for this merchant's key."""
    return {"role": "merchant", "merchant_id": onboarded["id"]}


@pytest.fixture
def api(moto_stack: MotoStack) -> Api:
    return Api()


@pytest.fixture
def shop(api: Api) -> dict[str, str]:
    return merchant_of(api.onboard())


# -- endpoints -------------------------------------------------------------------------------


def test_an_endpoint_is_created_with_its_secret_which_is_never_shown_again(
    api: Api, shop: dict[str, str]
) -> None:
    created = api.create(shop, enabled_events=["order.paid", "refund.succeeded"], description="Ops")

    assert created["id"].startswith("we_")
    assert created["secret"].startswith("whsec_")
    assert {k: v for k, v in created.items() if k not in ("id", "created_at", "secret")} == {
        "object": "webhook_endpoint",
        "url": "https://tea.example/hooks",
        "enabled_events": ["order.paid", "refund.succeeded"],
        "description": "Ops",
        "disabled": False,
    }
    status, fetched = api.on_endpoint("GET", created["id"], authorizer=shop)
    assert status == 200
    assert fetched == {k: v for k, v in created.items() if k != "secret"}
    status, listed = api.call("GET", ENDPOINTS, authorizer=shop)
    assert (status, listed["data"], listed["has_more"]) == (200, [fetched], False)


def test_the_onboarding_webhook_url_is_the_first_endpoint_for_every_event(api: Api) -> None:
    onboarded = api.onboard("https://tea.example/onboarded")

    status, listed = api.call("GET", ENDPOINTS, authorizer=merchant_of(onboarded))

    assert status == 200
    [first] = listed["data"]
    assert (first["url"], first["enabled_events"], first["disabled"]) == (
        "https://tea.example/onboarded",
        ["*"],
        False,
    )
    assert "secret" not in first


def test_the_list_pages_newest_first(api: Api, shop: dict[str, str]) -> None:
    made = [api.create(shop, description=str(n))["id"] for n in range(3)]

    _, first = api.call("GET", ENDPOINTS, query={"limit": "2"}, authorizer=shop)
    _, rest = api.call(
        "GET",
        ENDPOINTS,
        query={"limit": "2", "starting_after": first["data"][-1]["id"]},
        authorizer=shop,
    )

    assert [e["id"] for e in first["data"] + rest["data"]] == made[::-1]
    assert (first["has_more"], rest["has_more"]) == (True, False)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"url": "ftp://tea.example/hooks"}, "url"),
        ({"url": "https://tea.example/a b"}, "url"),
        ({"enabled_events": ["order.shipped"]}, "enabled_events"),
        ({"enabled_events": []}, "enabled_events"),
        ({"enabled_events": ["*", "order.paid"]}, "enabled_events"),
        ({"enabled_events": ["order.paid", "order.paid"]}, "enabled_events"),
        ({"description": "x" * 257}, "description"),
        ({"secret": "whsec_mine"}, "secret"),
    ],
)
def test_a_bad_field_is_a_422_naming_it(
    api: Api, shop: dict[str, str], fields: dict[str, Any], param: str
) -> None:
    body = {"url": "https://tea.example/hooks", "enabled_events": ["*"], **fields}

    status, problem = api.call("POST", ENDPOINTS, body=body, authorizer=shop)

    assert (status, problem["code"], problem["param"]) == (422, "validation_failed", param)


def test_an_update_changes_only_what_it_names_and_keeps_the_secret(
    api: Api, shop: dict[str, str]
) -> None:
    created = api.create(shop, description="Ops")
    store = WebhookEndpointStore(TradeStore().table)
    sealed = store.get_endpoint(shop["merchant_id"], created["id"])

    status, updated = api.on_endpoint(
        "POST",
        created["id"],
        body={"url": "https://tea.example/v2", "enabled_events": ["order.closed"]},
        authorizer=shop,
    )
    status_2, disabled = api.on_endpoint(
        "POST", created["id"], body={"disabled": True, "description": None}, authorizer=shop
    )

    assert (status, updated["url"], updated["enabled_events"]) == (
        200,
        "https://tea.example/v2",
        ["order.closed"],
    )
    assert updated["description"] == "Ops"
    assert (status_2, disabled["disabled"], disabled["description"]) == (200, True, None)
    after = store.get_endpoint(shop["merchant_id"], created["id"])
    assert sealed is not None and after is not None
    assert after.secret == sealed.secret
    status, problem = api.on_endpoint("POST", created["id"], body={"url": None}, authorizer=shop)
    assert (status, problem["param"]) == (422, "url")


def test_delete_then_delete_again_is_404_and_nothing_is_left(
    api: Api, shop: dict[str, str]
) -> None:
    created = api.create(shop)

    first = api.on_endpoint("DELETE", created["id"], authorizer=shop)
    second = api.on_endpoint("DELETE", created["id"], authorizer=shop)

    assert first == (200, {"id": created["id"], "object": "webhook_endpoint", "deleted": True})
    assert (second[0], second[1]["code"]) == (404, "webhook_endpoint_not_found")
    assert api.on_endpoint("GET", created["id"], authorizer=shop)[0] == 404
    assert api.call("GET", ENDPOINTS, authorizer=shop)[1]["data"] == []


def test_another_merchants_endpoint_is_404_whatever_the_method(
    api: Api, shop: dict[str, str]
) -> None:
    theirs = api.create(merchant_of(api.onboard()))

    answers = [
        api.on_endpoint("GET", theirs["id"], authorizer=shop),
        api.on_endpoint("POST", theirs["id"], body={"disabled": True}, authorizer=shop),
        api.on_endpoint("POST", theirs["id"], "/rotate_secret", authorizer=shop),
        api.on_endpoint("DELETE", theirs["id"], authorizer=shop),
    ]

    assert [(status, body["code"]) for status, body in answers] == [
        (404, "webhook_endpoint_not_found")
    ] * 4


def test_a_merchant_has_at_most_16_endpoints(api: Api, shop: dict[str, str]) -> None:
    made = [api.create(shop)["id"] for _ in range(16)]
    body = {"url": "https://tea.example/17", "enabled_events": ["*"]}

    status, problem = api.call("POST", ENDPOINTS, body=body, authorizer=shop)
    assert (status, problem["code"]) == (409, "webhook_endpoint_limit_reached")

    assert api.on_endpoint("DELETE", made[0], authorizer=shop)[0] == 200
    assert api.call("POST", ENDPOINTS, body=body, authorizer=shop)[0] == 201


def test_rotate_answers_a_new_secret_once(api: Api, shop: dict[str, str]) -> None:
    created = api.create(shop)
    request = {"body": {"expires_in": 600}, "headers": {"Idempotency-Key": "rotate-1"}}

    status, rotated = api.on_endpoint(
        "POST", created["id"], "/rotate_secret", authorizer=shop, **request
    )
    replay_status, replay = api.on_endpoint(
        "POST", created["id"], "/rotate_secret", authorizer=shop, **request
    )

    assert status == replay_status == 200
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert replay == {**rotated, "secret": None}
    stored = WebhookEndpointStore(TradeStore().table).get_endpoint(
        shop["merchant_id"], created["id"]
    )
    assert stored is not None and stored.previous_secret_expires_at is not None
    expires = parse_rfc3339(stored.previous_secret_expires_at) - datetime.now(UTC)
    assert timedelta(seconds=590) < expires <= timedelta(seconds=600)


@pytest.mark.parametrize("expires_in", [-1, 604801, "60"])
def test_a_grace_period_out_of_range_is_a_422(
    api: Api, shop: dict[str, str], expires_in: Any
) -> None:
    created = api.create(shop)

    status, problem = api.on_endpoint(
        "POST", created["id"], "/rotate_secret", body={"expires_in": expires_in}, authorizer=shop
    )

    assert (status, problem["param"]) == (422, "expires_in")


def test_no_secret_is_ever_stored_or_logged_in_clear(
    api: Api, moto_stack: MotoStack, capsys: pytest.CaptureFixture[str]
) -> None:
    onboarded = api.onboard("https://tea.example/onboarded")
    who = merchant_of(onboarded)
    created = api.create(who)
    _, rotated = api.on_endpoint("POST", created["id"], "/rotate_secret", authorizer=who)
    shown = [onboarded["webhook_secret"], created["secret"], rotated["secret"]]

    dynamodb = boto3.client("dynamodb")
    stored = json.dumps(
        [
            dynamodb.scan(TableName=table)["Items"]
            for table in (moto_stack.trade_table, moto_stack.idempotency_table)
        ],
        default=str,
    )
    logged = capsys.readouterr()
    for secret in shown:
        body = secret.removeprefix("whsec_")
        assert body not in stored
        assert body not in logged.out + logged.err
    endpoint = WebhookEndpointStore(TradeStore().table).get_endpoint(
        who["merchant_id"], created["id"]
    )
    assert endpoint is not None and endpoint.previous_secret is not None  # sealed, not absent


# -- events: deliveries and redelivery ---------------------------------------------------


def _event_of(api: Api, who: dict[str, str], event_type: str = events.ORDER_CLOSED) -> Event:
    """A stored event about a real order of the merchant."""
    order = {
        "merchant_order_no": new_id("ord")[-20:],
        "amount": 100,
        "currency": "CNY",
        "subject": "Tea",
    }
    status, created = api.call("POST", "/v1/orders", body=order, authorizer=who)
    assert status == 201, created
    event = events.event_for(event_type, who["merchant_id"], created["id"], created)
    assert TradeStore().put_event(event)
    return event


def _on_event(api: Api, method: str, event_id: str, suffix: str = "", **kwargs: Any) -> Any:
    return api.call(
        method,
        f"/v1/events/{event_id}{suffix}",
        resource=f"/v1/events/{{event_id}}{suffix}",
        path_parameters={"event_id": event_id},
        **kwargs,
    )


def _queued(moto_stack: MotoStack) -> list[dict[str, Any]]:
    answer = boto3.client("sqs").receive_message(
        QueueUrl=moto_stack.queue_url, MaxNumberOfMessages=10
    )
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def test_an_event_shows_every_delivery_attempt_to_every_endpoint_newest_first(
    api: Api, shop: dict[str, str]
) -> None:
    event = _event_of(api, shop)
    store = WebhookEndpointStore(TradeStore().table)
    store.record_attempt(event.id, "we_a", "2026-12-06T08:00:00.000Z", status_code=500, error=None)
    store.record_attempt(
        event.id, "we_b", "2026-12-06T08:00:01.000Z", status_code=None, error="timeout"
    )
    store.record_attempt(event.id, "we_a", "2026-12-06T08:00:30.000Z", status_code=200, error=None)

    status, shown = _on_event(api, "GET", event.id, authorizer=shop)

    assert status == 200
    assert {k: v for k, v in shown.items() if k != "deliveries"} == event.resource()
    assert shown["deliveries"] == [
        {
            "endpoint_id": "we_a",
            "attempt": 2,
            "status_code": 200,
            "error": None,
            "at": "2026-12-06T08:00:30.000Z",
        },
        {
            "endpoint_id": "we_b",
            "attempt": 1,
            "status_code": None,
            "error": "timeout",
            "at": "2026-12-06T08:00:01.000Z",
        },
        {
            "endpoint_id": "we_a",
            "attempt": 1,
            "status_code": 500,
            "error": None,
            "at": "2026-12-06T08:00:00.000Z",
        },
    ]
    listed = api.call("GET", "/v1/events", authorizer=shop)[1]["data"]
    assert "deliveries" not in listed[0]


def test_redelivery_goes_to_every_endpoint_or_to_the_one_named(
    api: Api, shop: dict[str, str], moto_stack: MotoStack
) -> None:
    endpoint = api.create(shop)
    event = _event_of(api, shop)

    assert _on_event(api, "POST", event.id, "/redeliver", authorizer=shop)[0] == 202
    carried = {"event": event.resource()}
    assert _queued(moto_stack) == [
        {"event_id": event.id, "merchant_id": shop["merchant_id"], **carried}
    ]

    status, _ = _on_event(
        api, "POST", event.id, "/redeliver", body={"endpoint_id": endpoint["id"]}, authorizer=shop
    )
    assert status == 202
    assert _queued(moto_stack) == [
        {
            "event_id": event.id,
            "merchant_id": shop["merchant_id"],
            "endpoint_id": endpoint["id"],
            **carried,
        }
    ]


def test_redelivery_to_an_endpoint_that_would_not_receive_the_event_is_refused(
    api: Api, shop: dict[str, str], moto_stack: MotoStack
) -> None:
    event = _event_of(api, shop)
    refunds_only = api.create(shop, enabled_events=["refund.succeeded"])
    disabled = api.create(shop)
    api.on_endpoint("POST", disabled["id"], body={"disabled": True}, authorizer=shop)
    theirs = api.create(merchant_of(api.onboard()))

    answers = [
        _on_event(api, "POST", event.id, "/redeliver", body={"endpoint_id": e}, authorizer=shop)
        for e in (refunds_only["id"], disabled["id"], theirs["id"])
    ]

    assert [(status, body["code"]) for status, body in answers] == [
        (409, "webhook_endpoint_not_subscribed"),
        (409, "webhook_endpoint_disabled"),
        (404, "webhook_endpoint_not_found"),
    ]
    assert _queued(moto_stack) == []


# -- the API key roll ------------------------------------------------------------------------


@pytest.fixture
def authorizer(moto_stack: MotoStack) -> Any:
    return load_function("authorizer")


def _merchant_id_for(authorizer: Any, api_key: str) -> str | None:
    event = {"type": "TOKEN", "authorizationToken": f"Bearer {api_key}", "methodArn": METHOD_ARN}
    try:
        answer = authorizer.lambda_handler(event, FakeContext())
    except Exception as refused:  # API Gateway answers exactly this message with a 401
        if str(refused) != "Unauthorized":
            raise
        return None
    return str(answer["context"]["merchant_id"])


def _roll(api: Api, onboarded: dict[str, Any], api_key: str, **body: Any) -> Any:
    return api.call(
        "POST",
        "/v1/api_keys/roll",
        body=body or None,
        headers={"Authorization": f"Bearer {api_key}"},
        authorizer=merchant_of(onboarded),
    )


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The authorizer's clock, moved by the test."""
    from paycore import auth

    moments = [datetime.now(UTC)]
    monkeypatch.setattr(auth, "now_rfc3339", lambda: rfc3339(moments[0]))
    return moments


def test_a_rolled_key_works_until_its_expiry_then_is_refused_by_the_authorizer(
    api: Api, authorizer: Any, clock: list[datetime]
) -> None:
    onboarded = api.onboard()
    old_key = onboarded["api_key"]

    status, rolled = _roll(api, onboarded, old_key, expires_in=3600)

    assert status == 201
    assert rolled["api_key"].startswith("sk_live_") and rolled["api_key"] != old_key
    expires_at = parse_rfc3339(rolled["previous_key_expires_at"])
    assert timedelta(seconds=3590) < expires_at - datetime.now(UTC) <= timedelta(seconds=3600)
    assert _merchant_id_for(authorizer, old_key) == onboarded["id"]
    assert _merchant_id_for(authorizer, rolled["api_key"]) == onboarded["id"]

    clock[0] = expires_at - timedelta(milliseconds=1)
    assert _merchant_id_for(authorizer, old_key) == onboarded["id"]
    clock[0] = expires_at
    assert _merchant_id_for(authorizer, old_key) is None
    assert _merchant_id_for(authorizer, rolled["api_key"]) == onboarded["id"]


def test_a_roll_with_no_grace_refuses_the_old_key_at_once_and_rolls_again(
    api: Api, authorizer: Any, moto_stack: MotoStack
) -> None:
    onboarded = api.onboard()

    status, first = _roll(api, onboarded, onboarded["api_key"], expires_in=0)
    assert status == 201
    assert _merchant_id_for(authorizer, onboarded["api_key"]) is None
    status, second = _roll(api, onboarded, first["api_key"], expires_in=0)
    assert status == 201
    assert _merchant_id_for(authorizer, first["api_key"]) is None
    assert _merchant_id_for(authorizer, second["api_key"]) == onboarded["id"]
    items = boto3.client("dynamodb").scan(TableName=moto_stack.trade_table)["Items"]
    for key in (onboarded["api_key"], first["api_key"], second["api_key"]):
        assert key not in json.dumps(items)


def test_a_replayed_roll_answers_the_same_expiry_without_the_key(api: Api) -> None:
    onboarded = api.onboard()
    request = {
        "body": {"expires_in": 60},
        "headers": {"Authorization": f"Bearer {onboarded['api_key']}", "Idempotency-Key": "r-1"},
        "authorizer": merchant_of(onboarded),
    }

    first = api.call("POST", "/v1/api_keys/roll", **request)
    replay = api.call("POST", "/v1/api_keys/roll", **request)

    assert first[0] == replay[0] == 201
    assert replay[1] == {**first[1], "api_key": None}


def test_a_merchant_onboarded_before_keys_were_rolled_rolls_the_key_it_calls_with(
    api: Api, authorizer: Any, moto_stack: MotoStack
) -> None:
    onboarded = api.onboard()
    boto3.client("dynamodb").update_item(  # the merchant item as onboarding wrote it before
        TableName=moto_stack.trade_table,
        Key={"pk": {"S": f"MERCHANT#{onboarded['id']}"}, "sk": {"S": "MERCHANT"}},
        UpdateExpression="REMOVE api_key_hash",
    )

    status, rolled = _roll(api, onboarded, onboarded["api_key"], expires_in=0)

    assert status == 201
    assert _merchant_id_for(authorizer, onboarded["api_key"]) is None
    assert _merchant_id_for(authorizer, rolled["api_key"]) == onboarded["id"]


# -- merchants onboarded before endpoints --------------------------------------------------


def _legacy_merchant(table: str, webhook_url: str | None) -> tuple[str, str]:
    """A merchant item as onboarding wrote it before endpoints: its secret in clear."""
    merchant_id, secret = new_id("mch"), "whsec_" + new_id("evt")[4:].ljust(43, "A") + "="
    item = {
        "pk": {"S": f"MERCHANT#{merchant_id}"},
        "sk": {"S": "MERCHANT"},
        "id": {"S": merchant_id},
        "name": {"S": "Old Shop"},
        "webhook_secret": {"S": secret},
        "created_at": {"S": "2026-01-01T00:00:00.000Z"},
    }
    if webhook_url is not None:
        item["webhook_url"] = {"S": webhook_url}
    boto3.client("dynamodb").put_item(TableName=table, Item=item)
    return merchant_id, secret


def _run_migration(migration: Any) -> tuple[int, int]:
    """Invoke the migration function as its docstring says, until done: (migrated, calls)."""
    migrated, calls, request = 0, 0, {}
    while True:
        answer = migration.lambda_handler(request, FakeContext())
        migrated, calls = migrated + answer["migrated"], calls + 1
        if answer["cursor"] is None:
            return migrated, calls
        request = {"cursor": answer["cursor"]}


def test_the_migration_function_seals_every_clear_onboarding_secret_page_by_page(
    api: Api, moto_stack: MotoStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paycore.services import webhook_endpoints

    # GIVEN three merchants from before endpoints, among newer merchants and their orders
    legacy = [
        _legacy_merchant(moto_stack.trade_table, url)
        for url in ("https://old.example/a", None, "https://old.example/c")
    ]
    newer = merchant_of(api.onboard("https://new.example/hooks"))
    _event_of(api, newer)
    monkeypatch.setattr(webhook_endpoints, "MIGRATION_SCAN_PAGES", 1)
    monkeypatch.setattr(webhook_endpoints, "_SCAN_PAGE", 2)  # so it takes several calls
    migration = load_function("webhook_secret_migration")

    # WHEN an operator invokes it until it says it is done
    migrated, calls = _run_migration(migration)

    # THEN every clear secret is gone, sealed into the first endpoint of those with a URL
    assert (migrated, calls > 1) == (3, True)
    items = json.dumps(
        boto3.client("dynamodb").scan(TableName=moto_stack.trade_table)["Items"], default=str
    )
    for _, secret in legacy:
        assert secret.removeprefix("whsec_") not in items
    store = WebhookEndpointStore(TradeStore().table)
    assert [[e.url for e in store.endpoints_of(mid)] for mid, _ in legacy] == [
        ["https://old.example/a"],
        [],
        ["https://old.example/c"],
    ]
    assert [e.url for e in store.endpoints_of(newer["merchant_id"])] == [
        "https://new.example/hooks"
    ]
    # and a second run finds nothing to do
    assert _run_migration(migration)[0] == 0
    status, listed = api.call("GET", ENDPOINTS, authorizer=merchant_of({"id": legacy[0][0]}))
    assert (status, [e["url"] for e in listed["data"]]) == (200, ["https://old.example/a"])
