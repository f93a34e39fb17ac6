"""The channel instrument's ``simulate`` switches through the API function, against moto: they
reach a local simulator only, never a real channel account."""

from __future__ import annotations

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
