"""The channel instrument's ``simulate`` switches through the API function, against moto: they
reach a local simulator only, never a real channel account."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from paycore.dal.trade_store import TradeStore
from tests.functional.conftest import (
    NOWHERE,
    MotoStack,
    configure_sandbox_accounts,
    put_account_secret,
)
from tests.functional.test_api import Api


@pytest.fixture
def api(moto_stack: MotoStack) -> Api:
    return Api()


def pay(api: Api, who: dict[str, str], channel: dict[str, Any], no: str = "S-1") -> Any:
    order = api.order(who, no)
    return api.on_order(
        "POST", order["id"], "/payments", body={"instruments": [channel]}, authorizer=who
    )


def test_simulate_is_carried_in_the_payment_for_a_simulator_account(api: Api) -> None:
    who = api.merchant()
    switches = {"decline": True, "create_error": {"times": 2}}

    status, payment, _ = pay(
        api, who, {"type": "channel", "channel": "sandbox", "simulate": switches}
    )

    assert status == 202, payment
    [channel] = payment["instruments"]
    assert channel["simulate"] == {
        "decline": True,
        "create_error": {"times": 2, "status": 503, "after_create": False},
    }
    stored = TradeStore().get_payment(payment["id"])
    assert stored is not None and stored.simulate == channel["simulate"]


def test_sandbox_behaviour_stays_accepted_for_the_sandbox_as_simulate(api: Api) -> None:
    who = api.merchant()

    status, payment, _ = pay(
        api,
        who,
        {"type": "channel", "channel": "sandbox", "sandbox_behaviour": {"notify_drop": True}},
    )

    assert status == 202, payment
    assert payment["instruments"][0]["simulate"] == {"notify_drop": True}
    assert "sandbox_behaviour" not in payment["instruments"][0]


def test_a_payment_without_switches_carries_none(api: Api) -> None:
    status, payment, _ = pay(api, api.merchant(), {"type": "channel", "channel": "sandbox"})

    assert status == 202
    assert "simulate" not in payment["instruments"][0]
    stored = TradeStore().get_payment(payment["id"])
    assert stored is not None and stored.simulate is None


def test_simulate_on_a_real_account_is_refused_and_nothing_is_written(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure_sandbox_accounts(monkeypatch, NOWHERE, "sandbox-sim", "sandbox-real")
    put_account_secret(
        "sandbox-real",
        {"base_url": f"{NOWHERE}/accounts/real", "secret": "s", "simulator": False},
    )
    who = api.merchant()
    order = api.order(who, "S-REAL")

    status, body, _ = api.on_order(
        "POST",
        order["id"],
        "/payments",
        body={"instruments": [{"type": "channel", "channel": "sandbox", "simulate": {}}]},
        authorizer=who,
    )

    assert status == 422
    assert (body["code"], body["param"]) == ("simulate_not_allowed", "instruments")
    _, after, _ = api.on_order("GET", order["id"], authorizer=who)
    assert after["status"] == "created"


def test_without_simulate_a_real_account_takes_the_payment(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure_sandbox_accounts(monkeypatch, NOWHERE, "sandbox-real", simulator=False)

    status, payment, _ = pay(api, api.merchant(), {"type": "channel", "channel": "sandbox"})

    assert status == 202, payment


@pytest.mark.parametrize(
    ("channel", "param"),
    [
        ({"channel": "sandbox", "simulate": {"explode": True}}, "simulate"),
        ({"channel": "sandbox", "simulate": {"decline": "yes"}}, "simulate"),
        ({"channel": "sandbox", "simulate": {"notify_duplicate": 9}}, "simulate"),
        ({"channel": "sandbox", "simulate": {"statement": "drop"}}, "simulate"),
        ({"channel": "sandbox", "simulate": []}, "simulate"),
        ({"channel": "alipay", "sandbox_behaviour": {"decline": True}}, "instruments"),
        ({"channel": "sandbox", "simulate": {}, "sandbox_behaviour": {}}, "instruments"),
    ],
)
def test_switches_are_validated_like_the_simulators_do(
    api: Api, channel: dict[str, Any], param: str
) -> None:
    status, body, _ = pay(api, api.merchant(), {"type": "channel", **channel})

    assert status == 422, body
    assert body["code"] == "validation_failed"
    assert param in body["param"]


# -- GET /v1/channels ----------------------------------------------------------------------------


def list_channels(api: Api, who: dict[str, str], **query: str) -> tuple[int, dict[str, Any]]:
    status, body, _ = api.call("GET", "/v1/channels", query=query, authorizer=who)
    return status, body


def test_the_channels_routing_offers_are_listed_with_their_next_action(api: Api) -> None:
    status, body = list_channels(api, api.merchant(), currency="CNY", amount="1999")

    assert status == 200
    assert body == {
        "object": "list",
        "data": [{"object": "channel", "channel": "sandbox", "next_action_type": "redirect"}],
        "has_more": False,
    }


def test_a_channel_is_listed_only_where_an_account_accepts_the_payment(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "CHANNEL_ACCOUNTS",
        '[{"id": "sandbox-primary", "channel": "sandbox", "currencies": ["JPY"],'
        ' "max_amount": 10000}, {"id": "alipay-main", "channel": "alipay"}]',
    )
    put_account_secret("alipay-main", {})  # declared, not configured
    who = api.merchant()

    def listed(currency: str, amount: int) -> list[str]:
        status, body = list_channels(api, who, currency=currency, amount=str(amount))
        assert status == 200, body
        return [item["channel"] for item in body["data"]]

    assert listed("JPY", 10000) == ["sandbox"]
    assert listed("JPY", 10001) == []
    assert listed("CNY", 100) == []


def test_without_any_configured_account_the_list_is_empty(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_account_secret("sandbox-primary", {})

    status, body = list_channels(api, api.merchant(), currency="CNY", amount="1999")

    assert (status, body["data"], body["has_more"]) == (200, [], False)


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"currency": "CNY"}, "amount"),
        ({"amount": "100"}, "currency"),
        ({"currency": "XXX", "amount": "100"}, "currency"),
        ({"currency": "cny", "amount": "100"}, "currency"),
        ({"currency": "CNY", "amount": "0"}, "amount"),
        ({"currency": "CNY", "amount": "1.5"}, "amount"),
        ({"currency": "CNY", "amount": str(10**13)}, "amount"),
    ],
)
def test_bad_queries_are_422_naming_the_parameter(
    api: Api, query: dict[str, str], param: str
) -> None:
    status, body = list_channels(api, api.merchant(), **query)

    assert status == 422, body
    assert body["param"] == param


def test_the_list_is_for_merchants(api: Api) -> None:
    status, _ = list_channels(api, {"role": "admin"}, currency="CNY", amount="100")

    assert status == 401


# -- a stack without any configured channel says so ------------------------------------------


def test_a_cold_api_container_warns_once_when_no_channel_is_configured(
    moto_stack: MotoStack, caplog: pytest.LogCaptureFixture
) -> None:
    put_account_secret("sandbox-primary", {})
    api = Api()  # a cold container

    with caplog.at_level(logging.WARNING):
        who = api.merchant()
        list_channels(api, who, currency="CNY", amount="100")

    warnings = [r for r in caplog.records if "no payment channel is configured" in r.message]
    assert [(r.name, r.levelname) for r in warnings] == [("api", "WARNING")]
    assert "paycore-test/channel-accounts/<account id>" in warnings[0].message


def test_a_container_with_a_configured_channel_does_not_warn(
    moto_stack: MotoStack, caplog: pytest.LogCaptureFixture
) -> None:
    api = Api()

    with caplog.at_level(logging.WARNING):
        api.merchant()

    assert "no payment channel is configured" not in caplog.text


def test_an_invalid_account_list_is_said_at_start_up_without_failing_the_request(
    moto_stack: MotoStack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CHANNEL_ACCOUNTS", '[{"id": "a b", "channel": "sandbox"}]')
    api = Api()

    with caplog.at_level(logging.WARNING):
        api.merchant()  # the request itself still works

    assert "CHANNEL_ACCOUNTS is invalid" in caplog.text
