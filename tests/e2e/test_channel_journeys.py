"""Every journey on every channel: the sandbox and the local simulators of Alipay, WeChat Pay
and Stripe, each reached only over HTTP in its own protocol, through the local runtime.

What differs between channels is what the buyer does (a redirect page, or a QR code scanned
at the WeChat Pay simulator's /scan page) and how a decline is told (the sandbox says
"declined"; Alipay closes the trade; Stripe and WeChat Pay leave it to a query); every money
outcome is the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
import requests

from local_runtime.runtime import LocalRuntime
from paycore.channels.stripe.transformers import WEBHOOK_EVENTS
from tests.e2e.conftest import CALLBACK_WAIT_SECONDS, CHANNEL_TIMEOUT_SECONDS, Merchant
from tests.support import eventually

CHANNELS = ["sandbox", "alipay", "wechatpay", "stripe"]
# How each channel reports a buyer's decline once paycore has learnt it.
DECLINE_CODES = {
    "sandbox": "buyer_declined",
    "alipay": "channel_order_closed",
    "wechatpay": "payment_declined",
    "stripe": "payment_declined",
}
SETTLE_TIMEOUT = CALLBACK_WAIT_SECONDS + 20


def _channel(name: str, **simulate: Any) -> dict[str, Any]:
    instrument: dict[str, Any] = {"type": "channel", "channel": name}
    if simulate:
        instrument["simulate"] = simulate
    return instrument


def buyer_acts(runtime: LocalRuntime, payment: dict[str, Any], action: str) -> None:
    """The buyer's choice where the channel sends them: its payment page for a redirect, or,
    for a QR code, the WeChat Pay simulator's page standing in for the buyer's phone."""
    next_action = payment["next_action"]
    assert next_action is not None, payment
    if next_action["type"] == "redirect":
        url = next_action["url"]
    else:
        code = quote(next_action["code_url"], safe="")
        url = f"{runtime.simulator_urls['wechatpay']}/scan?code_url={code}"
    answer = requests.post(url, json={"action": action}, timeout=10)
    assert answer.status_code == 200, answer.text


def _paying(shop: Merchant, order_id: str, instruments: list[dict[str, Any]]) -> dict[str, Any]:
    answer = shop.pay(order_id, instruments)
    assert answer.status_code == 202, answer.text
    payment: dict[str, Any] = answer.json()
    if payment["status"] == "processing" and payment["next_action"] is None:
        payment = eventually(lambda: (p := shop.payment(payment["id"]))["next_action"] and p)
    return payment


def _refunded(shop: Merchant, order_id: str, amount: int) -> dict[str, Any]:
    """Refund ``amount`` of the order; the refund once it is no longer processing."""
    refund = shop.request("POST", f"/v1/orders/{order_id}/refunds", json={"amount": amount})
    assert refund.status_code == 202, refund.text
    refund_id = refund.json()["id"]
    done: dict[str, Any] = eventually(
        lambda: (
            (r := shop.request("GET", f"/v1/refunds/{refund_id}").json())["status"] != "processing"
            and r
        ),
        timeout=SETTLE_TIMEOUT,
    )
    return done


@pytest.fixture(params=CHANNELS)
def channel(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_pay_then_refund_in_two_parts(
    runtime: LocalRuntime, onboard: Callable[..., Merchant], channel: str
) -> None:
    shop = onboard()
    order = shop.create_order(f"J-PAY-{channel}", amount=2500)
    payment = _paying(shop, order["id"], [_channel(channel)])
    expected = "qr_code" if channel == "wechatpay" else "redirect"
    assert payment["next_action"]["type"] == expected

    clearing = f"channel:{channel}:{payment['channel_account']}:clearing:CNY"
    clearing_before = _trial_balance_line(runtime, clearing)

    buyer_acts(runtime, payment, "pay")

    paid = shop.wait_for_payment(payment["id"])
    assert paid["status"] == "succeeded"
    # The fee on the channel's 2500 at the default 0.60%: 15, half up; the rest is pending.
    assert (paid["fee"], paid["net"]) == (15, 2485)
    assert _merchant_balance(shop) == {"escrow": 0, "pending": 2485, "available": 0}
    assert shop.order(order["id"])["status"] == "paid"
    assert shop.receiver.wait_for(lambda r: len(r.events("order.paid")) == 1)
    fees_returned = []
    for amount in (1000, 1500):
        done = _refunded(shop, order["id"], amount)
        assert done["status"] == "succeeded", done
        fees_returned.append(done["fee_refunded"])
    settled = shop.order(order["id"])
    assert (settled["status"], settled["amount_refunded"]) == ("refunded", 2500)
    assert shop.receiver.wait_for(lambda r: len(r.events("refund.succeeded")) == 2)
    # The cumulative rule: 1000 of 2500 returns 6 of the fee, the rest returns the other 9.
    assert fees_returned == [6, 9]
    assert _merchant_balance(shop) == {"escrow": 0, "pending": 0, "available": 0}
    # The channel's clearing account took the 2500 in and gave it back (other tests use the
    # same account, so only this payment's movements are compared).
    clearing_after = _trial_balance_line(runtime, clearing)
    assert clearing_after["debits"] - clearing_before["debits"] >= 2500
    assert clearing_after["credits"] - clearing_before["credits"] >= 2500


def _merchant_balance(shop: Merchant) -> dict[str, int]:
    answer = shop.request("GET", "/v1/balance")
    assert answer.status_code == 200, answer.text
    lines = {line.pop("currency"): line for line in answer.json()["data"]}
    return lines.get("CNY", {"escrow": 0, "pending": 0, "available": 0})


def _trial_balance_line(runtime: LocalRuntime, account: str) -> dict[str, int]:
    """One account's totals in the platform's trial balance (zeros before its first entry);
    the trial balance's totals are always equal."""
    answer = requests.get(
        runtime.api_url + "/v1/ledger/trial_balance",
        params={"currency": "CNY"},
        headers={"Authorization": f"Bearer {runtime.admin_token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    books = answer.json()
    assert books["total_debits"] == books["total_credits"]
    lines = {line["account"]: line for line in books["accounts"]}
    return lines.get(account, {"account": account, "debits": 0, "credits": 0})


def test_a_declined_payment_fails_and_the_order_is_paid_again(
    runtime: LocalRuntime, onboard: Callable[..., Merchant], channel: str
) -> None:
    shop = onboard()
    order = shop.create_order(f"J-DECLINE-{channel}")
    first = _paying(shop, order["id"], [_channel(channel)])

    buyer_acts(runtime, first, "decline")

    failed = shop.wait_for_payment(first["id"], timeout=SETTLE_TIMEOUT)
    assert (failed["status"], failed["failure_code"]) == ("failed", DECLINE_CODES[channel])
    assert shop.order(order["id"])["status"] == "created"
    second = _paying(shop, order["id"], [_channel(channel)])
    buyer_acts(runtime, second, "pay")
    assert shop.wait_for_payment(second["id"])["status"] == "succeeded"
    assert shop.receiver.wait_for(lambda r: len(r.events("payment.failed")) == 1)


def test_coupon_balance_and_channel_pay_together(
    runtime: LocalRuntime, onboard: Callable[..., Merchant], channel: str
) -> None:
    shop = onboard()
    buyer_id = f"buyer-{channel}"
    shop.credit(buyer_id, 700)
    coupon = shop.coupon(buyer_id, 300)
    order = shop.create_order(f"J-COMBINED-{channel}", amount=2000, buyer_id=buyer_id)
    payment = _paying(
        shop,
        order["id"],
        [
            {"type": "coupon", "coupon_id": coupon["id"]},
            {"type": "balance", "amount": 700},
            _channel(channel),
        ],
    )
    channel_part = next(i for i in payment["instruments"] if i["type"] == "channel")
    assert channel_part["amount"] == 1000

    buyer_acts(runtime, payment, "pay")

    assert shop.wait_for_payment(payment["id"])["status"] == "succeeded"
    balance = shop.balance(buyer_id)
    assert (balance["available"], balance["frozen"]) == (0, 0)
    assert shop.get_coupon(coupon["id"])["status"] == "used"


def test_a_dropped_notification_is_settled_by_querying_the_channel(
    runtime: LocalRuntime, onboard: Callable[..., Merchant], channel: str
) -> None:
    shop = onboard()
    order = shop.create_order(f"J-DROP-{channel}")
    payment = _paying(shop, order["id"], [_channel(channel, notify_drop=True)])

    buyer_acts(runtime, payment, "pay")

    assert shop.wait_for_payment(payment["id"], timeout=SETTLE_TIMEOUT)["status"] == "succeeded"
    assert shop.receiver.wait_for(lambda r: len(r.events("order.paid")) == 1)


def test_a_lost_create_answer_is_found_and_used_never_doubled(
    runtime: LocalRuntime, onboard: Callable[..., Merchant], channel: str
) -> None:
    """The channel creates the order but its answer comes after paycore gave up waiting: the
    same account is asked, the order it holds is used (and its next action learnt), and the
    buyer pays it once."""
    shop = onboard()
    order = shop.create_order(f"J-LOST-{channel}")
    stall = {"times": 1, "seconds": CHANNEL_TIMEOUT_SECONDS + 1}
    payment = _paying(shop, order["id"], [_channel(channel, create_timeout=stall)])

    first_account = "sandbox-primary" if channel == "sandbox" else f"{channel}-main"
    assert payment["channel_account"] == first_account
    assert all(a["result"] != "not_created" for a in payment["channel_attempts"])
    buyer_acts(runtime, payment, "pay")
    assert shop.wait_for_payment(payment["id"])["status"] == "succeeded"
    assert len(channel_orders(runtime, channel, payment["id"])) == 1


def channel_orders(runtime: LocalRuntime, channel: str, payment_id: str) -> list[dict[str, Any]]:
    """The orders the channel holds for our payment (its debug view): the sandbox's and the
    Alipay and WeChat Pay simulators' by out_trade_no, Stripe's sessions by
    client_reference_id."""
    if channel == "sandbox":
        url = f"{runtime.sandbox_url}/__sandbox/orders"
        orders = requests.get(url, timeout=10).json()["orders"]
        return [o for o in orders if o["out_trade_no"] == payment_id]
    trades = requests.get(f"{runtime.simulator_urls[channel]}/_sim/trades", timeout=10).json()
    if channel == "stripe":
        return [t for t in trades["data"] if t["extra"].get("client_reference_id") == payment_id]
    return [t for t in trades["data"] if t["out_trade_no"] == payment_id]


def test_closing_while_the_buyer_has_not_paid_fails_the_payment(
    runtime: LocalRuntime, onboard: Callable[..., Merchant], channel: str
) -> None:
    shop = onboard()
    order = shop.create_order(f"J-CLOSE-{channel}")
    payment = _paying(shop, order["id"], [_channel(channel)])

    closed = shop.request("POST", f"/v1/orders/{order['id']}/close")

    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    failed = shop.payment(payment["id"])
    assert (failed["status"], failed["failure_code"]) == ("failed", "order_closed")
    assert shop.receiver.wait_for(lambda r: len(r.events("order.closed")) == 1)


def test_a_payment_after_the_close_is_given_back(
    runtime: LocalRuntime, onboard: Callable[..., Merchant], channel: str
) -> None:
    """The channel answers the close but the buyer still pays (close_ignored): the money is
    refunded by itself, once."""
    shop = onboard()
    order = shop.create_order(f"J-LATE-{channel}")
    payment = _paying(shop, order["id"], [_channel(channel, close_ignored=True)])
    assert shop.request("POST", f"/v1/orders/{order['id']}/close").status_code == 200

    buyer_acts(runtime, payment, "pay")

    assert shop.receiver.wait_for(
        lambda r: len(r.events("refund.succeeded")) == 1, timeout=SETTLE_TIMEOUT
    )
    (refund,) = [e["data"]["object"] for e in shop.receiver.accepted("refund.succeeded")]
    assert (refund["kind"], refund["amount"], refund["payment_id"]) == (
        "late_payment",
        1999,
        payment["id"],
    )
    assert shop.order(order["id"])["status"] == "closed"


def test_stripe_posts_paycore_only_the_events_it_subscribes_to(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    """The local runtime registers each Stripe account's endpoint with WEBHOOK_EVENTS, as
    docs/channels.md tells operators: a card payment is one callback
    (checkout.session.completed), a refund final at once none (Stripe's answer says it), a
    delayed refund one (refund.updated). Counted in the simulator's delivery log."""
    shop = onboard()
    payments = {}
    for name, simulate in (("now", {}), ("later", {"refund_delay_seconds": 1.0})):
        order = shop.create_order(f"J-EVENTS-{name}", amount=2500)
        payment = _paying(shop, order["id"], [_channel("stripe", **simulate)])
        buyer_acts(runtime, payment, "pay")
        assert shop.wait_for_payment(payment["id"])["status"] == "succeeded"
        done = _refunded(shop, order["id"], 1000)
        assert done["status"] == "succeeded", done
        payments[name] = payment["id"]

    def delivered() -> dict[str, list[tuple[str, str]]] | None:
        found = {}
        for name, payment_id in payments.items():
            (trade,) = channel_orders(runtime, "stripe", payment_id)
            (refund,) = trade["refunds"]
            for what, log in (("payment", trade["webhooks"]), ("refund", refund["webhooks"])):
                found[f"{name} {what}"] = [(d["label"].split()[0], d["state"]) for d in log]
        settled = all(state != "PENDING" for log in found.values() for _, state in log)
        return found if settled else None

    completed = [("checkout.session.completed", "DELIVERED")]
    assert eventually(delivered) == {
        "now payment": completed,
        "now refund": [],
        "later payment": completed,
        "later refund": [("refund.updated", "DELIVERED")],
    }
    view = requests.get(f"{runtime.simulator_urls['stripe']}/_sim/trades", timeout=10).json()
    assert list(view["enabled_events"].values()) == [list(WEBHOOK_EVENTS)] * len(
        view["enabled_events"]
    )
