"""The authorizer function and Idempotency-Key edge cases, against moto."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from paycore.api.idempotency import IdempotentCommands
from paycore.dal.trade_store import TradeStore
from paycore.errors import IdempotencyInProgress, ValidationFailed
from paycore.services import merchants
from tests.functional.conftest import ADMIN_TOKEN, MotoStack
from tests.support import FakeContext, load_function, rest_event

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/live/POST/v1/orders"


@pytest.fixture
def authorizer(moto_stack: MotoStack) -> Any:
    return load_function("authorizer")


def _authorize(authorizer: Any, header: str) -> dict[str, Any]:
    event = {"type": "TOKEN", "authorizationToken": header, "methodArn": METHOD_ARN}
    return authorizer.lambda_handler(event, FakeContext())  # type: ignore[no-any-return]


STAGE_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/live"
MERCHANT_ROUTES = [
    "POST/v1/orders",
    "GET/v1/orders/ord_1",
    "POST/v1/orders/ord_1/refunds",
    "GET/v1/balance",
    "GET/v1/settlements",
]
ADMIN_ROUTES = ["POST/v1/merchants", "POST/v1/settlements/run", "GET/v1/ledger/trial_balance"]


def _allows(answer: dict[str, Any], route: str) -> bool:
    # API Gateway's own reading of the policy (explicit Deny wins), as the local runtime has it.
    from local_runtime.apigateway import policy_allows

    return policy_allows(answer["policyDocument"], f"{STAGE_ARN}/{route}")


def test_a_merchant_key_may_call_every_route_but_the_admins(authorizer: Any) -> None:
    """The cached answer holds for the whole stage, so the policy names the routes: a merchant
    key on onboarding is refused by API Gateway itself, before any body is read."""
    onboarded = merchants.onboard_merchant(TradeStore(), "Shop", None)
    answer = _authorize(authorizer, f"Bearer {onboarded.api_key}")
    assert answer["context"] == {"role": "merchant", "merchant_id": onboarded.merchant.id}
    assert all(_allows(answer, route) for route in MERCHANT_ROUTES)
    assert not any(_allows(answer, route) for route in ADMIN_ROUTES)


def test_the_admin_token_may_call_only_the_admins_routes(authorizer: Any) -> None:
    answer = _authorize(authorizer, f"Bearer {ADMIN_TOKEN}")
    assert answer["context"]["role"] == "admin"
    assert all(_allows(answer, route) for route in ADMIN_ROUTES)
    assert not any(_allows(answer, route) for route in MERCHANT_ROUTES)


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Basic abc", "Bearer sk_live_not-a-real-key", "Bearer wrong-admin-token"],
)
def test_anything_else_is_unauthorized(authorizer: Any, header: str) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        _authorize(authorizer, header)


def test_keys_are_stored_only_as_hashes(moto_stack: MotoStack) -> None:
    import boto3

    onboarded = merchants.onboard_merchant(TradeStore(), "Shop", None)
    items = boto3.client("dynamodb").scan(TableName=moto_stack.trade_table)["Items"]
    assert onboarded.api_key not in str(items)


def test_a_twin_still_in_flight_is_409(moto_stack: MotoStack) -> None:
    commands = IdempotentCommands()
    commands.register_context(FakeContext())  # type: ignore[arg-type]
    seen: list[str] = []

    def twin() -> tuple[int, dict[str, Any]]:
        # While the first request runs, its twin arrives with the same key and body.
        with pytest.raises(IdempotencyInProgress) as raised:
            commands.execute(
                scope="mch_1",
                key="k",
                method="POST",
                path="/v1/orders",
                body={"a": 1},
                command=lambda: (201, {}),
            )
        seen.append(raised.value.code)
        return 201, {"id": "ord_1"}

    status, body, replayed = commands.execute(
        scope="mch_1", key="k", method="POST", path="/v1/orders", body={"a": 1}, command=twin
    )
    assert (status, body, replayed) == (201, {"id": "ord_1"}, False)
    assert seen == ["idempotency_in_progress"]


def test_same_key_on_another_route_is_a_reuse(moto_stack: MotoStack) -> None:
    from paycore.errors import IdempotencyKeyReused

    commands = IdempotentCommands()
    commands.register_context(FakeContext())  # type: ignore[arg-type]
    commands.execute(
        scope="mch_1",
        key="k",
        method="POST",
        path="/v1/orders",
        body=None,
        command=lambda: (201, {}),
    )
    with pytest.raises(IdempotencyKeyReused):
        commands.execute(
            scope="mch_1",
            key="k",
            method="POST",
            path="/v1/orders/ord_1/close",
            body=None,
            command=lambda: (200, {}),
        )


def test_overlong_key_is_422(moto_stack: MotoStack) -> None:
    with pytest.raises(ValidationFailed) as raised:
        IdempotentCommands().execute(
            scope="mch_1",
            key="k" * 256,
            method="POST",
            path="/",
            body=None,
            command=lambda: (201, {}),
        )
    assert raised.value.param == "Idempotency-Key"


def test_a_try_again_refusal_is_not_replayed_for_the_same_key(moto_stack: MotoStack) -> None:
    """'Retry shortly' (e.g. closing while the payment is reaching its channel) is not an
    answer to keep: the same key runs the command again, and its result is then kept."""
    from paycore.errors import Conflict, TryAgain

    commands = IdempotentCommands()
    commands.register_context(FakeContext())  # type: ignore[arg-type]
    runs: list[int] = []

    def close(fail_with: Exception | None) -> Any:
        def command() -> tuple[int, dict[str, Any]]:
            runs.append(1)
            if fail_with is not None:
                raise fail_with
            return 200, {"status": "closed"}

        return command

    call = {"scope": "mch_1", "key": "k", "method": "POST", "path": "/c", "body": None}
    with pytest.raises(TryAgain):
        commands.execute(**call, command=close(TryAgain("later", code="payment_starting")))
    assert commands.execute(**call, command=close(None)) == (200, {"status": "closed"}, False)
    replay = commands.execute(**call, command=close(Conflict("no")))
    assert replay == (200, {"status": "closed"}, True)
    assert len(runs) == 2


def test_an_idempotent_onboarding_stores_no_secret_and_its_replay_shows_none(
    moto_stack: MotoStack,
) -> None:
    """The first answer shows the API key and webhook secret; the idempotency record (kept 24
    hours) holds neither, so a replay answers the same merchant with both null."""
    api = load_function("api")
    request = rest_event(
        "POST",
        "/v1/merchants",
        body={"name": "Shop", "webhook_url": "https://shop.test/hook"},
        headers={"Idempotency-Key": "onboard-1"},
        authorizer={"role": "admin", "merchant_id": ""},
    )
    first = api.lambda_handler(request, FakeContext())
    created = json.loads(first["body"])
    assert first["statusCode"] == 201
    assert created["api_key"].startswith("sk_live_")
    assert created["webhook_secret"].startswith("whsec_")
    assert "Idempotent-Replayed" not in (first.get("multiValueHeaders") or {})

    stored = boto3.client("dynamodb").scan(TableName=moto_stack.idempotency_table)["Items"]
    assert len(stored) == 1
    assert created["api_key"] not in str(stored)
    assert created["webhook_secret"] not in str(stored)
    assert created["webhook_secret"].removeprefix("whsec_") not in str(stored)

    second = api.lambda_handler(request, FakeContext())
    replay = json.loads(second["body"])
    assert second["statusCode"] == 201
    assert second["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]
    assert replay == {**created, "api_key": None, "webhook_secret": None}
    # The key shown once works; nothing else can reveal it again.
    items = boto3.client("dynamodb").scan(TableName=moto_stack.trade_table)["Items"]
    assert created["api_key"] not in str(items)
