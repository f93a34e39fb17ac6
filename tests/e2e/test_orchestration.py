"""Payment orchestration end to end, through the local runtime over HTTP: combined payments,
routing and failover across channel accounts, unknown outcomes, misbehaving callbacks, close
racing a payment, expiry and late payments. The sandbox misbehaves through the per-payment
``simulate`` switches of the channel instrument."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from local_runtime.runtime import LocalRuntime
from tests.e2e.conftest import CALLBACK_WAIT_SECONDS, Merchant, buyer, eventually


def _channel_orders(runtime: LocalRuntime, out_trade_no: str) -> list[dict[str, Any]]:
    """Every channel order the sandbox holds for one payment, in any account."""
    answer = requests.get(f"{runtime.sandbox_url}/__sandbox/orders", timeout=10)
    assert answer.status_code == 200, answer.text
    return [o for o in answer.json()["orders"] if o["out_trade_no"] == out_trade_no]


def _events_of(shop: Merchant, event_type: str) -> list[dict[str, Any]]:
    return [event for event in shop.events() if event["type"] == event_type]


def _sandbox(amount: int | None = None, **behaviour: Any) -> dict[str, Any]:
    channel: dict[str, Any] = {"type": "channel", "channel": "sandbox"}
    if behaviour:
        channel["simulate"] = behaviour
    return channel


# -- combined payments -------------------------------------------------------------------


def test_coupon_balance_and_channel_pay_together(onboard: Callable[..., Merchant]) -> None:
    shop = onboard()
    shop.credit("buyer-1", 1000)
    coupon = shop.coupon("buyer-1", 300)
    order = shop.create_order("MIX-OK-1", amount=2000, buyer_id="buyer-1")

    answer = shop.pay(
        order["id"],
        [
            {"type": "coupon", "coupon_id": coupon["id"]},
            {"type": "balance", "amount": 700},
            _sandbox(),
        ],
    )

    assert answer.status_code == 202, answer.text
    payment = answer.json()
    assert payment["instruments"] == [
        {"type": "coupon", "coupon_id": coupon["id"], "amount": 300},
        {"type": "balance", "amount": 700},
        {"type": "channel", "channel": "sandbox", "amount": 1000},
    ]
    # Reserved first: the balance is frozen and the coupon locked while the buyer pays.
    assert shop.balance("buyer-1") == {
        "object": "balance",
        "buyer_id": "buyer-1",
        "currency": "CNY",
        "available": 300,
        "frozen": 700,
    }
    assert shop.get_coupon(coupon["id"])["status"] == "locked"
    page = requests.get(payment["next_action"]["url"], timeout=10)
    assert "10.00" in page.text  # the channel is asked for the rest only

    buyer(payment["next_action"]["url"], "pay")

    assert shop.wait_for_payment(payment["id"])["status"] == "succeeded"
    assert shop.order(order["id"])["status"] == "paid"
    assert shop.order(order["id"])["amount_paid"] == 2000
    balance = shop.balance("buyer-1")
    assert (balance["available"], balance["frozen"]) == (300, 0)
    assert shop.get_coupon(coupon["id"])["status"] == "used"


def test_a_declined_channel_releases_every_reservation(
    onboard: Callable[..., Merchant],
) -> None:
    shop = onboard()
    shop.credit("buyer-2", 500)
    coupon = shop.coupon("buyer-2", 200)
    order = shop.create_order("MIX-DECLINE-1", amount=1500, buyer_id="buyer-2")

    payment = shop.pay(
        order["id"],
        [
            {"type": "balance", "amount": 500},
            {"type": "coupon", "coupon_id": coupon["id"]},
            _sandbox(decline=True),
        ],
    ).json()
    assert shop.balance("buyer-2")["frozen"] == 500
    buyer(payment["next_action"]["url"], "pay")  # the decline switch turns it into a decline

    failed = shop.wait_for_payment(payment["id"])
    assert failed["status"] == "failed" and failed["failure_code"] == "buyer_declined"
    balance = shop.balance("buyer-2")
    assert (balance["available"], balance["frozen"]) == (500, 0)
    assert shop.get_coupon(coupon["id"])["status"] == "available"
    assert shop.order(order["id"])["status"] == "created"
    assert shop.receiver.wait_for(lambda r: len(r.events("payment.failed")) == 1)


def test_internal_instruments_alone_complete_at_once(onboard: Callable[..., Merchant]) -> None:
    shop = onboard()
    shop.credit("buyer-3", 900)
    coupon = shop.coupon("buyer-3", 100)
    order = shop.create_order("MIX-INTERNAL-1", amount=1000, buyer_id="buyer-3")

    answer = shop.pay(
        order["id"],
        [{"type": "coupon", "coupon_id": coupon["id"]}, {"type": "balance", "amount": 900}],
    )

    assert answer.status_code == 202, answer.text
    payment = answer.json()
    assert payment["status"] == "succeeded" and payment["next_action"] is None
    assert shop.order(order["id"])["status"] == "paid"
    balance = shop.balance("buyer-3")
    assert (balance["available"], balance["frozen"]) == (0, 0)
    assert shop.get_coupon(coupon["id"])["status"] == "used"
    assert shop.receiver.wait_for(lambda r: len(r.events("order.paid")) == 1)


def test_concurrent_payments_never_overdraw_a_balance(onboard: Callable[..., Merchant]) -> None:
    shop = onboard()
    shop.credit("buyer-4", 1000)
    orders = [shop.create_order(f"MIX-RACE-{n}", amount=700, buyer_id="buyer-4") for n in range(4)]
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def pay(order_id: str) -> None:
        answer = shop.pay(order_id, [{"type": "balance", "amount": 700}])
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=pay, args=(order["id"],)) for order in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [202, 409, 409, 409], [a.text for a in answers]
    refused = [a.json() for a in answers if a.status_code == 409]
    assert {problem["code"] for problem in refused} == {"insufficient_balance"}
    balance = shop.balance("buyer-4")
    assert (balance["available"], balance["frozen"]) == (300, 0)
    # The refused orders are untouched and still payable.
    assert sorted(shop.order(o["id"])["status"] for o in orders) == [
        "created",
        "created",
        "created",
        "paid",
    ]


def test_twin_payments_of_one_order_one_wins_and_the_others_hear_the_order_is_taken(
    onboard: Callable[..., Merchant],
) -> None:
    """Four payments of the same order at once, each wanting the whole balance: one starts;
    the others are told the order is being paid (order_not_payable), not that the money is
    short, whichever check they lost."""
    shop = onboard()
    shop.credit("buyer-twin", 700)
    order = shop.create_order("MIX-TWIN-1", amount=700, buyer_id="buyer-twin")
    start = threading.Barrier(4)
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def pay() -> None:
        start.wait()
        answer = shop.pay(order["id"], [{"type": "balance", "amount": 700}])
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=pay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(a.status_code for a in answers) == [202, 409, 409, 409], [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"order_not_payable"}
    assert shop.order(order["id"])["status"] == "paid"


def test_instruments_that_do_not_add_up_are_refused(onboard: Callable[..., Merchant]) -> None:
    shop = onboard()
    shop.credit("buyer-5", 5000)
    order = shop.create_order("MIX-BAD-1", amount=1000, buyer_id="buyer-5")
    no_buyer = shop.create_order("MIX-BAD-2", amount=1000)
    cases = [
        (order["id"], [{"type": "balance", "amount": 400}], "instrument_amounts_mismatch"),
        (order["id"], [{"type": "balance", "amount": 1200}], "instrument_amounts_mismatch"),
        (
            order["id"],
            [{"type": "balance", "amount": 1000}, _sandbox()],
            "instrument_amounts_mismatch",
        ),
        (no_buyer["id"], [{"type": "balance", "amount": 1000}], "buyer_required"),
        (order["id"], [{"type": "coupon", "coupon_id": "cpn_nope"}, _sandbox()], None),
    ]
    for order_id, instruments, code in cases:
        answer = shop.pay(order_id, instruments)
        assert 400 <= answer.status_code < 500, (instruments, answer.text)
        assert answer.headers["Content-Type"] == "application/problem+json"
        if code:
            assert answer.json()["code"] == code, answer.text
    assert shop.order(order["id"])["status"] == "created"
    assert shop.balance("buyer-5")["available"] == 5000


# -- routing, failover and unknown outcomes ----------------------------------------------


def test_a_failing_account_fails_over_to_the_next(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    order = shop.create_order("ROUTE-FAILOVER-1")

    payment = shop.pay(order["id"], behaviour={"create_error": {"times": 1}}).json()
    payment = eventually(lambda: (p := shop.payment(payment["id"]))["next_action"] and p)

    assert payment["channel_account"] == "sandbox-backup"
    assert [(a["account"], a["result"]) for a in payment["channel_attempts"]] == [
        ("sandbox-primary", "not_created"),
        ("sandbox-backup", "created"),
    ]
    orders = _channel_orders(runtime, payment["id"])
    assert [o["account"] for o in orders] == ["sandbox-backup"]
    buyer(payment["next_action"]["url"], "pay")
    assert shop.wait_for_payment(payment["id"])["status"] == "succeeded"


@pytest.mark.parametrize(
    ("no", "behaviour"),
    [
        ("UNKNOWN-5XX-1", {"create_error": {"times": 1, "after_create": True}}),
        ("UNKNOWN-TIMEOUT-1", {"create_timeout": {"times": 1, "seconds": 3}}),
    ],
)
def test_an_unknown_create_outcome_is_queried_and_never_charged_twice(
    runtime: LocalRuntime, onboard: Callable[..., Merchant], no: str, behaviour: dict[str, Any]
) -> None:
    shop = onboard()
    order = shop.create_order(no)

    payment = shop.pay(order["id"], behaviour=behaviour).json()
    payment = eventually(lambda: (p := shop.payment(payment["id"]))["next_action"] and p)

    # The order the lost answer created is found by a query and used: no failover, no twin.
    assert payment["channel_account"] == "sandbox-primary"
    assert [a["result"] for a in payment["channel_attempts"]] == ["created_answer_lost"]
    assert len(_channel_orders(runtime, payment["id"])) == 1
    buyer(payment["next_action"]["url"], "pay")
    assert shop.wait_for_payment(payment["id"])["status"] == "succeeded"
    assert len(_channel_orders(runtime, payment["id"])) == 1


# -- callbacks that misbehave ------------------------------------------------------------


def test_success_reported_only_through_the_status_query(
    onboard: Callable[..., Merchant],
) -> None:
    shop = onboard()
    order = shop.create_order("QUERY-ONLY-1")
    payment = shop.pay(order["id"], behaviour={"query_only": True}).json()

    buyer(payment["next_action"]["url"], "pay")

    time.sleep(1)
    assert shop.payment(payment["id"])["status"] == "processing"  # no callback came
    settled = shop.wait_for_payment(payment["id"], timeout=CALLBACK_WAIT_SECONDS + 15)
    assert settled["status"] == "succeeded"
    assert shop.receiver.wait_for(lambda r: len(r.events("order.paid")) == 1)


@pytest.mark.parametrize(
    ("no", "behaviour"),
    [
        ("NOTIFY-DUP-1", {"notify_duplicate": 4}),
        ("NOTIFY-REORDER-1", {"notify_reorder": True, "notify_duplicate": 2}),
        ("NOTIFY-DELAY-1", {"notify_delay_seconds": CALLBACK_WAIT_SECONDS + 2}),
        ("NOTIFY-DROP-1", {"notify_drop": True}),
    ],
)
def test_misbehaving_notifications_settle_exactly_once(
    onboard: Callable[..., Merchant], no: str, behaviour: dict[str, Any]
) -> None:
    shop = onboard()
    order = shop.create_order(no)
    payment = shop.pay(order["id"], behaviour=behaviour).json()

    buyer(payment["next_action"]["url"], "pay")

    settled = shop.wait_for_payment(payment["id"], timeout=CALLBACK_WAIT_SECONDS + 15)
    assert settled["status"] == "succeeded"
    time.sleep(CALLBACK_WAIT_SECONDS / 2)  # let late copies arrive
    assert shop.order(order["id"])["status"] == "paid"
    assert len(_events_of(shop, "order.paid")) == 1
    assert _events_of(shop, "payment.failed") == []
    assert shop.receiver.wait_for(lambda r: len(r.events("order.paid")) == 1)


# -- close, expiry and late payments -----------------------------------------------------


def test_closing_an_order_being_paid_closes_its_channel_order_first(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    shop.credit("buyer-6", 100)
    order = shop.create_order("CLOSE-PAYING-1", buyer_id="buyer-6")
    payment = shop.pay(order["id"], [{"type": "balance", "amount": 100}, _sandbox()]).json()

    closed = shop.request("POST", f"/v1/orders/{order['id']}/close")

    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    failed = shop.wait_for_payment(payment["id"])
    assert failed["status"] == "failed" and failed["failure_code"] == "order_closed"
    assert [o["status"] for o in _channel_orders(runtime, payment["id"])] == ["CLOSED"]
    late = requests.post(payment["next_action"]["url"], json={"action": "pay"}, timeout=10)
    assert late.status_code == 409  # nothing can be charged any more
    assert shop.balance("buyer-6")["available"] == 100
    assert shop.receiver.wait_for(
        lambda r: len(r.events("order.closed")) == 1 and len(r.events("payment.failed")) == 1
    )


def test_closing_an_order_the_buyer_already_paid_is_refused(
    onboard: Callable[..., Merchant],
) -> None:
    shop = onboard()
    order = shop.create_order("CLOSE-PAID-1")
    payment = shop.pay(order["id"], behaviour={"notify_delay_seconds": 30}).json()
    buyer(payment["next_action"]["url"], "pay")  # paid, but the notification is late

    refused = shop.request("POST", f"/v1/orders/{order['id']}/close")

    assert refused.status_code == 409 and refused.json()["code"] == "order_not_closable"
    assert shop.payment(payment["id"])["status"] == "succeeded"
    assert shop.order(order["id"])["status"] == "paid"
    assert _events_of(shop, "order.closed") == []


def test_a_payment_after_close_is_refunded_automatically(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    order = shop.create_order("LATE-PAY-1")
    # The channel answers the close but the buyer's payment still goes through (a close
    # that reaches the channel after the buyer pressed Pay).
    payment = shop.pay(order["id"], behaviour={"close_ignored": True}).json()
    closed = shop.request("POST", f"/v1/orders/{order['id']}/close")
    assert closed.status_code == 200, closed.text

    buyer(payment["next_action"]["url"], "pay")

    assert shop.receiver.wait_for(lambda r: len(r.events("refund.succeeded")) == 1)
    refund = shop.receiver.accepted("refund.succeeded")[0]["data"]["object"]
    assert refund["payment_id"] == payment["id"]
    assert refund["kind"] == "late_payment" and refund["amount"] == 1999
    assert shop.payment(payment["id"])["status"] == "failed"
    assert shop.order(order["id"])["status"] == "closed"
    sandbox_order = _channel_orders(runtime, payment["id"])[0]
    assert [r["status"] for r in sandbox_order["refunds"]] == ["SUCCESS"]


def test_unpaid_orders_close_themselves_when_they_expire(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    """An idle order, and an order being paid on each channel: past expires_at the sweep
    closes them, and each channel's order is closed too (waited for once, for all)."""
    from tests.e2e.test_channel_journeys import CHANNELS, channel_orders

    shop = onboard()
    idle = shop.create_order("EXPIRE-IDLE-1", expires_in=60)
    paying = {}
    for channel in CHANNELS:
        order = shop.create_order(f"EXPIRE-PAYING-{channel}", expires_in=60)
        answer = shop.pay(order["id"], [{"type": "channel", "channel": channel}])
        assert answer.status_code == 202, answer.text
        paying[channel] = (order, answer.json())

    eventually(lambda: shop.order(idle["id"])["status"] == "closed", timeout=90)

    for channel, (order, payment) in paying.items():
        assert eventually(lambda o=order: shop.order(o["id"])["status"] == "closed", timeout=30)
        failed = shop.wait_for_payment(payment["id"])
        assert failed["failure_code"] == "order_expired", (channel, failed)
        held = channel_orders(runtime, channel, payment["id"])
        assert len(held) == 1 and held[0]["status"] == "CLOSED", (channel, held)
    closed_events = {e["data"]["object"]["id"] for e in _events_of(shop, "order.closed")}
    assert closed_events == {idle["id"], *(order["id"] for order, _ in paying.values())}
