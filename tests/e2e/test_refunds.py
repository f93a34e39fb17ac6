"""Refunds end to end: merchant -> API -> refund state machine -> sandbox channel over HTTP
-> (answer or signed notification) -> settlement -> signed webhook; the order's amounts, the
buyer's balance and the channel's own books agree afterwards."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from local_runtime.runtime import LocalRuntime
from tests.e2e.conftest import CALLBACK_WAIT_SECONDS, Merchant, buyer, eventually


def _paid_order(shop: Merchant, no: str, amount: int = 1999, **behaviour: Any) -> dict[str, Any]:
    """An order the buyer paid at the sandbox (misbehaving at refunds as ``behaviour`` says)."""
    order = shop.create_order(no, amount=amount)
    answer = shop.pay(order["id"], behaviour=behaviour or None)
    assert answer.status_code == 202, answer.text
    payment = answer.json()
    buyer(payment["next_action"]["url"], "pay")
    assert shop.wait_for_payment(payment["id"])["status"] == "succeeded"
    return order


def _refund(shop: Merchant, order_id: str, amount: int, **kwargs: Any) -> requests.Response:
    body: dict[str, Any] = {"amount": amount}
    if "reason" in kwargs:
        body["reason"] = kwargs.pop("reason")
    return shop.request("POST", f"/v1/orders/{order_id}/refunds", json=body, **kwargs)


def _wait_for_refund(shop: Merchant, refund_id: str, timeout: float = 30.0) -> dict[str, Any]:
    return eventually(  # type: ignore[no-any-return]
        lambda: (
            (r := shop.request("GET", f"/v1/refunds/{refund_id}").json())["status"] != "processing"
            and r
        ),
        timeout=timeout,
    )


def _states(runtime: LocalRuntime, refund_id: str) -> list[str]:
    """The states the refund's execution went through (it must have succeeded)."""
    machine = runtime.outputs()["RefundStateMachineArn"]
    arn = machine.replace(":stateMachine:", ":execution:") + ":" + refund_id
    execution = runtime.wait_for_execution(arn, timeout=30)
    assert execution["status"] == "SUCCEEDED", execution
    history = runtime.client("stepfunctions").get_execution_history(
        executionArn=arn, maxResults=1000
    )["events"]
    return [
        e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e
    ]


def _channel_refunds(runtime: LocalRuntime, payment_id: str) -> list[dict[str, Any]]:
    answer = requests.get(
        f"{runtime.sandbox_url}/__sandbox/refunds", params={"out_trade_no": payment_id}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["refunds"]  # type: ignore[no-any-return]


def test_partial_refunds_up_to_the_amount_paid(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    order = _paid_order(shop, "RFD-OK-1")
    key = {"Idempotency-Key": "refund-ok-1"}

    first = _refund(shop, order["id"], 500, reason="one cup broke", headers=key)

    assert first.status_code == 202, first.text
    created = first.json()
    assert created["object"] == "refund" and created["id"].startswith("rfd_")
    assert created["order_id"] == order["id"] and created["amount"] == 500
    assert created["status"] in {"processing", "succeeded"}
    assert created["reason"] == "one cup broke"
    replay = _refund(shop, order["id"], 500, reason="one cup broke", headers=key)
    assert (replay.status_code, replay.json()) == (202, created)
    done = _wait_for_refund(shop, created["id"])
    assert done["status"] == "succeeded" and done["failure_code"] is None
    partly = shop.order(order["id"])
    assert (partly["status"], partly["amount_refunded"]) == ("partially_refunded", 500)
    # The channel answered at once: the happy path is two states.
    assert _states(runtime, created["id"]) == ["RequestChannelRefund", "SettleRefund"]

    second = _refund(shop, order["id"], 1499)
    assert second.status_code == 202, second.text
    assert _wait_for_refund(shop, second.json()["id"])["status"] == "succeeded"
    refunded = shop.order(order["id"])
    assert (refunded["status"], refunded["amount_refunded"]) == ("refunded", 1999)

    over = _refund(shop, order["id"], 1)
    assert over.status_code == 409
    assert over.headers["Content-Type"] == "application/problem+json"
    assert over.json()["code"] == "refund_exceeds_paid"

    # Signed webhooks (the receiver verifies each with standardwebhooks), one per refund.
    assert shop.receiver.wait_for(lambda r: len(r.events("refund.succeeded")) == 2)
    delivered = {e["data"]["object"]["id"]: e for e in shop.receiver.accepted("refund.succeeded")}
    assert set(delivered) == {created["id"], second.json()["id"]}
    assert delivered[created["id"]]["data"]["object"]["status"] == "succeeded"
    assert delivered[created["id"]]["data"]["object"]["amount"] == 500
    # The channel's books agree: two successful refunds adding up to the payment.
    payment_id = done["payment_id"]
    at_channel = _channel_refunds(runtime, payment_id)
    assert sorted(r["status"] for r in at_channel) == ["SUCCESS", "SUCCESS"]
    assert sum(r["amount"] for r in at_channel) == 1999


def test_racing_refunds_never_refund_more_than_was_paid(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    order = _paid_order(shop, "RFD-RACE-1")
    start = threading.Barrier(6)
    answers: list[requests.Response] = []
    guard = threading.Lock()

    def race() -> None:
        start.wait()
        answer = _refund(shop, order["id"], 500)
        with guard:
            answers.append(answer)

    threads = [threading.Thread(target=race) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [202, 202, 202, 409, 409, 409], [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"refund_exceeds_paid"}
    for answer in answers:
        if answer.status_code == 202:
            assert _wait_for_refund(shop, answer.json()["id"])["status"] == "succeeded"
    settled = shop.order(order["id"])
    assert (settled["status"], settled["amount_refunded"]) == ("partially_refunded", 1500)


def test_a_refused_refund_fails_and_leaves_the_order_as_it_was(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    order = _paid_order(shop, "RFD-FAIL-1", refund_fail=True)

    answer = _refund(shop, order["id"], 700)

    assert answer.status_code == 202, answer.text
    failed = _wait_for_refund(shop, answer.json()["id"])
    assert failed["status"] == "failed" and failed["failure_code"]
    unchanged = shop.order(order["id"])
    assert (unchanged["status"], unchanged["amount_refunded"]) == ("paid", 0)
    assert shop.receiver.wait_for(lambda r: r.accepted("refund.failed"))
    [event] = shop.receiver.accepted("refund.failed")
    assert event["data"]["object"]["id"] == failed["id"]
    assert event["data"]["object"]["status"] == "failed"
    assert not shop.receiver.accepted("refund.succeeded")
    # The failed refund holds nothing back: the whole amount can be asked for again.
    again = _refund(shop, order["id"], 1999)
    assert again.status_code == 202, again.text
    assert _wait_for_refund(shop, again.json()["id"])["status"] == "failed"


def test_a_refund_notified_a_little_later_resumes_the_waiting_refund(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    order = _paid_order(shop, "RFD-NOTIFY-1", refund_delay_seconds=1.5)
    answer = _refund(shop, order["id"], 300)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "processing"

    done = _wait_for_refund(shop, answer.json()["id"])

    assert done["status"] == "succeeded"
    # Resumed by the channel's notification before the wait ran out: no status query.
    assert _states(runtime, done["id"]) == ["RequestChannelRefund", "SettleRefund"]
    assert shop.order(order["id"])["amount_refunded"] == 300


def test_a_refund_the_channel_finishes_late_is_found_by_querying(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    order = _paid_order(shop, "RFD-SLOW-1", refund_delay_seconds=CALLBACK_WAIT_SECONDS + 2)
    answer = _refund(shop, order["id"], 300)
    assert answer.status_code == 202, answer.text
    refund_id = answer.json()["id"]
    time.sleep(CALLBACK_WAIT_SECONDS + 0.5)
    assert shop.request("GET", f"/v1/refunds/{refund_id}").json()["status"] == "processing"
    assert shop.order(order["id"])["amount_refunded"] == 0

    done = _wait_for_refund(shop, refund_id)

    assert done["status"] == "succeeded"
    states = _states(runtime, refund_id)
    assert states[0] == "RequestChannelRefund" and states[-1] == "SettleRefund"
    assert "QueryRefund" in states
    assert shop.order(order["id"])["amount_refunded"] == 300
    assert shop.receiver.wait_for(lambda r: len(r.events("refund.succeeded")) == 1)


def test_a_refund_the_channel_answers_with_5xx_is_asked_again_and_refunded_once(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    order = _paid_order(shop, "RFD-5XX-1", refund_error={"times": 1})

    answer = _refund(shop, order["id"], 400)

    assert answer.status_code == 202, answer.text
    done = _wait_for_refund(shop, answer.json()["id"])
    assert done["status"] == "succeeded"
    # The 503 refunded nothing; the retry with the same out_refund_no refunded once.
    channel = _channel_refunds(runtime, done["payment_id"])
    assert [(r["out_refund_no"], r["amount"], r["status"]) for r in channel] == [
        (done["id"], 400, "SUCCESS")
    ]
    assert shop.order(order["id"])["amount_refunded"] == 400


def test_a_combined_payment_is_refunded_to_the_channel_first_then_the_balance(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    shop.credit("buyer-r", 1000)
    order = shop.create_order("RFD-MIX-1", amount=2000, buyer_id="buyer-r")
    answer = shop.pay(
        order["id"],
        [{"type": "balance", "amount": 700}, {"type": "channel", "channel": "sandbox"}],
    )
    assert answer.status_code == 202, answer.text
    buyer(answer.json()["next_action"]["url"], "pay")
    payment = shop.wait_for_payment(answer.json()["id"])
    assert payment["status"] == "succeeded"
    assert shop.balance("buyer-r")["available"] == 300

    refund = _refund(shop, order["id"], 1500)

    assert refund.status_code == 202, refund.text
    assert refund.json()["allocations"] == [
        {"type": "channel", "amount": 1300},
        {"type": "balance", "amount": 200},
    ]
    assert _wait_for_refund(shop, refund.json()["id"])["status"] == "succeeded"
    assert shop.balance("buyer-r")["available"] == 500
    # The rest is balance only: no channel, done at once.
    rest = _refund(shop, order["id"], 500)
    assert rest.status_code == 202, rest.text
    assert rest.json()["status"] == "succeeded"
    assert rest.json()["allocations"] == [{"type": "balance", "amount": 500}]
    assert shop.balance("buyer-r")["available"] == 1000
    assert shop.order(order["id"])["status"] == "refunded"
    assert [r["amount"] for r in _channel_refunds(runtime, payment["id"])] == [1300]


def test_refunds_are_refused_where_they_make_no_sense(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop, other = onboard(), onboard("Other Shop")
    unpaid = shop.create_order("RFD-UNPAID-1")
    refused = _refund(shop, unpaid["id"], 100)
    assert refused.status_code == 409 and refused.json()["code"] == "order_not_refundable"
    for bad in ({"amount": 0}, {"amount": "100"}, {"amount": 1, "currency": "CNY"}, {}):
        answer = shop.request("POST", f"/v1/orders/{unpaid['id']}/refunds", json=bad)
        assert answer.status_code == 422, (bad, answer.text)
    order = _paid_order(shop, "RFD-OWNER-1")
    made = _refund(shop, order["id"], 100).json()
    assert _refund(other, order["id"], 100).status_code == 404
    for who, refund_id in ((other, made["id"]), (shop, "rfd_nothing")):
        answer = who.request("GET", f"/v1/refunds/{refund_id}")
        assert answer.status_code == 404 and answer.json()["code"] == "refund_not_found"
