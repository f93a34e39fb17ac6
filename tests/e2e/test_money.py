"""Money end to end over HTTP through the local runtime: fees and the fee a refund returns,
merchant balances, guaranteed trade (confirmed by the merchant, and by the auto-confirm
sweep), settlement (by the platform's run and by the schedule), the trial balance."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from local_runtime.runtime import LocalRuntime
from tests.e2e.conftest import Merchant, buyer, eventually, new_merchant
from tests.webhook_receiver import WebhookReceiver

SETTLEMENT_SCHEDULE = "SettlementFunctionDaily"  # the ScheduleV2 event of SettlementFunction


def _paid(shop: Merchant, no: str, amount: int = 1999, **order: Any) -> dict[str, Any]:
    """An order the buyer paid at the sandbox; the succeeded payment."""
    created = shop.create_order(no, amount=amount, **order)
    answer = shop.pay(created["id"])
    assert answer.status_code == 202, answer.text
    buyer(answer.json()["next_action"]["url"], "pay")
    payment = shop.wait_for_payment(answer.json()["id"])
    assert payment["status"] == "succeeded", payment
    return payment


def _refunded(shop: Merchant, order_id: str, amount: int) -> dict[str, Any]:
    answer = shop.request("POST", f"/v1/orders/{order_id}/refunds", json={"amount": amount})
    assert answer.status_code == 202, answer.text
    refund_id = answer.json()["id"]
    return eventually(  # type: ignore[no-any-return]
        lambda: (
            (r := shop.request("GET", f"/v1/refunds/{refund_id}").json())["status"] == "succeeded"
            and r
        ),
        timeout=30,
    )


def _balance(shop: Merchant, currency: str = "CNY") -> dict[str, int]:
    answer = shop.request("GET", "/v1/balance")
    assert answer.status_code == 200, answer.text
    lines = {line.pop("currency"): line for line in answer.json()["data"]}
    return lines.get(currency, {"escrow": 0, "pending": 0, "available": 0})


def _admin(runtime: LocalRuntime, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {runtime.admin_token}"}
    return requests.request(method, runtime.api_url + path, headers=headers, timeout=30, **kwargs)


def _all_delivered(*shops: Merchant) -> None:
    """Every event of each shop reached its receiver (none is left to retry into the
    dead-letter queue once the receiver stops with the test)."""
    for shop in shops:
        stored = {event["id"] for event in shop.events()}
        assert shop.receiver.wait_for(
            lambda r, stored=stored: stored <= {e["id"] for e in r.accepted()}, timeout=30
        ), stored


def _today() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()


@pytest.fixture(scope="module", autouse=True)
def auto_confirming(runtime: LocalRuntime) -> Iterator[tuple[Merchant, dict[str, Any]]]:
    """A guaranteed order paid as the module starts, with the shortest auto-confirm delay
    (60 s): the last test finds it confirmed by the sweep."""
    receiver = WebhookReceiver().start()
    shop = new_merchant(runtime, receiver, "Auto Confirm Shop")
    payment = _paid(shop, "AUTO-1", trade_type="guaranteed", auto_confirm_in=60)
    yield shop, payment
    _all_delivered(shop)
    receiver.stop()


def test_fees_are_charged_and_returned_in_proportion_and_the_books_balance(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard("Fee Shop", fee_rate_bps=250)
    payment = _paid(shop, "FEE-1")
    assert (payment["fee"], payment["net"]) == (50, 1949)  # 2.50% of 19.99, half up

    refund = _refunded(shop, payment["order_id"], 700)

    assert refund["fee_refunded"] == 18  # floor((50*700*2 + 1999) / 3998)
    assert _balance(shop) == {"escrow": 0, "pending": 1949 - 700 + 18, "available": 0}
    answer = _admin(runtime, "GET", "/v1/ledger/trial_balance", params={"currency": "CNY"})
    assert answer.status_code == 200, answer.text
    books = answer.json()
    assert books["total_debits"] == books["total_credits"] > 0
    lines = {line["account"]: line for line in books["accounts"]}
    assert lines[f"merchant:{shop.id}:pending:CNY"] == {
        "account": f"merchant:{shop.id}:pending:CNY",
        "debits": 682,
        "credits": 1949,
    }
    assert "platform:fees:CNY" in lines
    merchant_key = {"Authorization": f"Bearer {shop.api_key}"}
    refused = requests.get(
        runtime.api_url + "/v1/ledger/trial_balance",
        params={"currency": "CNY"},
        headers=merchant_key,
        timeout=10,
    )
    assert refused.status_code == 401
    _all_delivered(shop)


def test_a_guaranteed_order_holds_its_money_in_escrow_until_the_merchant_confirms(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard("Escrow Shop")
    payment = _paid(shop, "ESC-1", trade_type="guaranteed")
    order_id = payment["order_id"]
    order = shop.order(order_id)
    assert order["trade_type"] == "guaranteed" and order["auto_confirm_at"]
    assert _balance(shop) == {"escrow": 1987, "pending": 0, "available": 0}
    _refunded(shop, order_id, 500)  # before confirmation: out of escrow (3 of the fee back)
    assert _balance(shop) == {"escrow": 1490, "pending": 0, "available": 0}

    confirmed = shop.request("POST", f"/v1/orders/{order_id}/confirm")

    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["confirmed_at"] and confirmed.json()["status"] == "partially_refunded"
    assert _balance(shop) == {"escrow": 0, "pending": 1490, "available": 0}
    assert shop.receiver.wait_for(lambda r: r.accepted("order.confirmed"))
    [event] = shop.receiver.accepted("order.confirmed")
    assert event["data"]["object"]["id"] == order_id
    again = shop.request("POST", f"/v1/orders/{order_id}/confirm")
    assert again.status_code == 409 and again.json()["code"] == "order_not_confirmable"
    _all_delivered(shop)


def test_settlement_by_the_platform_and_by_the_schedule(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    by_run = onboard("Settled Shop", settlement_delay_days=0)
    by_schedule = onboard("Scheduled Shop", settlement_delay_days=0)
    waiting = onboard("Waiting Shop")  # settlement_delay_days 1: nothing is due today
    _paid(by_run, "SET-1")
    _paid(waiting, "SET-W")
    today = _today()

    ran = _admin(runtime, "POST", "/v1/settlements/run", json={"date": today})

    assert ran.status_code == 200, ran.text
    assert ran.json()["payments_count"] >= 1  # others' due payments too
    figures = by_run.request("GET", "/v1/settlements", params={"date": today, "currency": "CNY"})
    assert figures.status_code == 200, figures.text
    assert figures.json() == {
        "object": "settlement",
        "date": today,
        "currency": "CNY",
        "payments_count": 1,
        "gross": 1999,
        "fees": 12,
        "refunds_count": 0,
        "refunds": 0,
        "fee_refunded": 0,
        "net": 1987,
    }
    assert _balance(by_run) == {"escrow": 0, "pending": 0, "available": 1987}
    assert _balance(waiting) == {"escrow": 0, "pending": 1987, "available": 0}

    _paid(by_schedule, "SET-2", amount=1000)
    fired = runtime.trigger_schedule(SETTLEMENT_SCHEDULE)

    assert not fired.errored, fired.payload
    assert fired.payload["date"] == today and fired.payload["payments_count"] >= 1
    assert _balance(by_schedule) == {"escrow": 0, "pending": 0, "available": 994}
    assert _balance(waiting) == {"escrow": 0, "pending": 1987, "available": 0}
    scheduled = by_schedule.request(
        "GET", "/v1/settlements", params={"date": today, "currency": "CNY"}
    ).json()
    assert (scheduled["payments_count"], scheduled["net"]) == (1, 994)
    _all_delivered(by_run, by_schedule, waiting)


def test_an_unconfirmed_guaranteed_order_confirms_itself_at_its_deadline(
    runtime: LocalRuntime, auto_confirming: tuple[Merchant, dict[str, Any]]
) -> None:
    shop, payment = auto_confirming
    order_id = payment["order_id"]
    # Paid at the start of the module with auto_confirm_in = 60: the sweep (every minute,
    # every 2 s here) confirms it once the deadline has passed.
    confirmed = eventually(
        lambda: (order := shop.order(order_id))["confirmed_at"] and order, timeout=90, pause=1
    )
    assert confirmed["confirmed_at"] >= confirmed["auto_confirm_at"]
    assert _balance(shop) == {"escrow": 0, "pending": 1987, "available": 0}
    assert shop.receiver.wait_for(lambda r: r.accepted("order.confirmed"))
