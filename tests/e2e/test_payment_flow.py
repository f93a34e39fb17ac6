"""One real payment end to end: merchant -> API -> state machine -> sandbox channel over HTTP
-> buyer -> signed notification -> callback -> settlement -> signed webhook."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import requests

from local_runtime.runtime import LocalRuntime
from paycore.channels.sandbox.signing import sign_notification
from tests.e2e.conftest import CALLBACK_WAIT_SECONDS, Merchant, buyer

SANDBOX = [{"type": "channel", "channel": "sandbox"}]


def _history_states(runtime: LocalRuntime, payment_id: str) -> list[str]:
    sfn = runtime.client("stepfunctions")
    machine = runtime.outputs()["PaymentStateMachineArn"]
    arn = machine.replace(":stateMachine:", ":execution:") + ":" + payment_id
    execution = runtime.wait_for_execution(arn, timeout=30)
    assert execution["status"] == "SUCCEEDED", execution
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return [
        e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
    ]


def test_successful_payment(runtime: LocalRuntime, onboard: Callable[..., Merchant]) -> None:
    shop = onboard()
    order = shop.create_order("PAY-OK-1")
    answer = shop.pay(order["id"], headers={"Idempotency-Key": "pay-ok-1"})
    assert answer.status_code == 202, answer.text
    payment = answer.json()
    assert payment["status"] == "processing"
    assert payment["next_action"]["type"] == "redirect"
    page = requests.get(payment["next_action"]["url"], timeout=10)
    assert page.status_code == 200 and "19.99" in page.text
    assert shop.order(order["id"])["status"] == "paying"

    buyer(payment["next_action"]["url"], "pay")

    settled = shop.wait_for_payment(payment["id"])
    assert settled["status"] == "succeeded"
    assert settled["next_action"] is None
    paid = shop.order(order["id"])
    assert paid["status"] == "paid" and paid["amount_paid"] == 1999
    assert shop.receiver.wait_for(lambda r: r.accepted("order.paid"))
    delivered = shop.receiver.accepted("order.paid")
    assert len(delivered) == 1
    assert delivered[0]["data"]["object"]["id"] == order["id"]
    assert delivered[0]["data"]["object"]["status"] == "paid"
    assert [e["type"] for e in shop.events()] == ["order.paid"]
    # The happy path is two states: CreateChannelOrder, then Settle.
    assert _history_states(runtime, payment["id"]) == ["CreateChannelOrder", "Settle"]


def test_declined_payment_leaves_the_order_payable(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    order = shop.create_order("PAY-DECLINE-1")
    first = shop.pay(order["id"]).json()
    buyer(first["next_action"]["url"], "decline")
    failed = shop.wait_for_payment(first["id"])
    assert failed["status"] == "failed"
    assert failed["failure_code"] == "buyer_declined"
    assert shop.order(order["id"])["status"] == "created"
    assert shop.receiver.wait_for(lambda r: r.accepted("payment.failed"))
    assert shop.receiver.accepted("payment.failed")[0]["data"]["object"]["id"] == first["id"]

    second = shop.pay(order["id"]).json()
    assert second["id"] != first["id"]
    buyer(second["next_action"]["url"], "pay")
    assert shop.wait_for_payment(second["id"])["status"] == "succeeded"
    assert shop.order(order["id"])["status"] == "paid"


def test_forged_and_unsigned_callbacks_are_refused_and_change_nothing(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    order = shop.create_order("PAY-FORGED-1")
    payment = shop.pay(order["id"]).json()
    body = json.dumps(
        {
            "notify_id": "ntf_forged",
            "notify_type": "trade.status_changed",
            "out_trade_no": payment["id"],
            "channel_order_id": "x",
            "status": "SUCCESS",
            "amount": 1999,
            "currency": "CNY",
            "transaction_id": "txn_forged",
            "paid_at": "2026-11-25T10:00:00Z",
            "failure_code": None,
            "failure_message": None,
            "sent_at": "2026-11-25T10:00:00Z",
        }
    )
    stamp = str(int(time.time()))
    forged = {
        "Sandbox-Timestamp": stamp,
        "Sandbox-Signature": sign_notification("guess", stamp, body.encode()),
    }
    replayed_stamp = str(int(time.time()) - 3600)
    # Locally every sandbox account shares the sandbox's secret: signed with it, the
    # notification is genuine for the other account, which does not hold this payment.
    genuine = {
        "Sandbox-Timestamp": stamp,
        "Sandbox-Signature": sign_notification(
            runtime.profile.sandbox_secret, stamp, body.encode()
        ),
    }
    account = payment["channel_account"]
    other = "sandbox-backup" if account == "sandbox-primary" else "sandbox-primary"
    cases = {
        "forged": (account, forged),
        "unsigned": (account, {}),
        "replayed": (account, {"Sandbox-Timestamp": replayed_stamp, "Sandbox-Signature": "0" * 64}),
        "other account": (other, genuine),
    }
    for name, (route_account, headers) in cases.items():
        answer = requests.post(
            f"{runtime.api_url}/callbacks/sandbox/{route_account}",
            data=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=10,
        )
        assert answer.status_code == 401, name
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.json()["code"] == "callback_rejected"
    time.sleep(0.5)
    assert shop.payment(payment["id"])["status"] == "processing"
    assert shop.order(order["id"])["status"] == "paying"
    # The real buyer still completes the payment afterwards.
    buyer(payment["next_action"]["url"], "pay")
    assert shop.wait_for_payment(payment["id"])["status"] == "succeeded"


def test_a_genuine_notification_sent_twice_byte_for_byte_is_refused_the_second_time(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    order = shop.create_order("PAY-REPLAY-1")
    payment = shop.pay(order["id"]).json()
    buyer(payment["next_action"]["url"], "pay")
    assert shop.wait_for_payment(payment["id"])["status"] == "succeeded"
    # A genuine message (the account's secret, fresh) saying what the payment already is:
    # taken once (acknowledged, nothing to change), then the same bytes again are a replay.
    body = json.dumps(
        {
            "notify_id": "ntf_replayed",
            "notify_type": "trade.status_changed",
            "out_trade_no": payment["id"],
            "channel_order_id": "x",
            "status": "SUCCESS",
            "amount": 1999,
            "currency": "CNY",
            "transaction_id": "txn_replayed",
            "paid_at": "2026-11-25T10:00:00Z",
            "failure_code": None,
            "failure_message": None,
            "sent_at": "2026-11-25T10:00:00Z",
        }
    ).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "Sandbox-Timestamp": stamp,
        "Sandbox-Signature": sign_notification(runtime.profile.sandbox_secret, stamp, body),
    }
    url = f"{runtime.api_url}/callbacks/sandbox/{payment['channel_account']}"

    first = requests.post(url, data=body, headers=headers, timeout=10)
    again = requests.post(url, data=body, headers=headers, timeout=10)

    assert first.status_code == 200, first.text
    assert again.status_code == 401
    assert again.json()["code"] == "callback_rejected"
    assert "replay" in again.json()["detail"]
    assert shop.payment(payment["id"])["status"] == "succeeded"
    assert shop.order(order["id"])["status"] == "paid"
    assert shop.receiver.wait_for(lambda r: len(r.events("order.paid")) == 1)


def test_a_late_callback_is_covered_by_querying_the_channel(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    order = shop.create_order("PAY-LATE-1")
    payment = shop.pay(order["id"]).json()
    # The buyer takes longer than the callback wait: the machine starts querying.
    time.sleep(CALLBACK_WAIT_SECONDS + 1.5)
    assert shop.payment(payment["id"])["status"] == "processing"
    buyer(payment["next_action"]["url"], "pay")
    assert shop.wait_for_payment(payment["id"])["status"] == "succeeded"
    states = _history_states(runtime, payment["id"])
    assert states[0] == "CreateChannelOrder" and states[-1] == "Settle"
    assert "QueryChannel" in states
    assert shop.receiver.wait_for(lambda r: len(r.events("order.paid")) == 1)


def test_idempotent_payment_replay_starts_one_payment(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    order = shop.create_order("PAY-IDEM-1")
    key = {"Idempotency-Key": "pay-idem-1"}
    first, again = shop.pay(order["id"], headers=key), shop.pay(order["id"], headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    reused = shop.request(
        "POST",
        f"/v1/orders/{order['id']}/payments",
        headers=key,
        json={"instruments": SANDBOX, "return_url": "https://shop.test/done"},
    )
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    # Without the key, a second attempt cannot pay the order twice.
    twin = shop.pay(order["id"])
    assert twin.status_code == 409 and twin.json()["code"] == "order_not_payable"
    buyer(first.json()["next_action"]["url"], "pay")
    assert shop.wait_for_payment(first.json()["id"])["status"] == "succeeded"
    assert shop.receiver.wait_for(lambda r: len(r.events("order.paid")) == 1)
    assert len([e for e in shop.events() if e["type"] == "order.paid"]) == 1


def test_closed_order_cannot_be_paid(onboard: Callable[..., Merchant]) -> None:
    shop = onboard()
    order = shop.create_order("CLOSE-1")
    closed = shop.request("POST", f"/v1/orders/{order['id']}/close")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    refused = shop.pay(order["id"])
    assert refused.status_code == 409 and refused.json()["code"] == "order_not_payable"
    assert shop.receiver.wait_for(lambda r: r.accepted("order.closed"))
