"""What one channel payment costs in AWS calls, counted at the SDK by the local runtime (the
figure ``make bench`` prints): a regression that reads again what a step already knows, or
splits a write in two, fails here.

Counted per payment, for the functions the payment runs through: create the order, pay it
(the API), create the channel order and settle (the payment worker), the channel's signed
notification (the callback), the webhook to the merchant's one endpoint (the notifier). The
pollers' calls are left out: they are AWS's own in a deployment (Lambda's SQS event source).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from local_runtime.runtime import LocalRuntime
from tests.e2e.conftest import Merchant, buyer

PAYMENTS = 3
FLOW = ("ApiFunction", "PaymentWorkerFunction", "ChannelCallbackFunction", "NotifierFunction")

# Per payment, by caller and operation: what each step cannot do without.
EXPECTED = {
    "PaymentWorkerFunction": {
        # CreateChannelOrder: the attempt, the account and the task token, one conditional
        # write on the version the execution's input carries (nothing read).
        "dynamodb:PutItem": 1,
        # Settle: payment, order, event and journal entry in one transaction on the versions
        # carried (the payment from the callback, the order from the input); then the event
        # it wrote is handed to the notifier by an asynchronous invoke (not read back, and
        # not queued: no message to send, receive and delete).
        "dynamodb:TransactWriteItems": 1,
        "lambda:Invoke": 1,
    },
    "ChannelCallbackFunction": {
        # The replay guard and the read in one conditional update: the message's fingerprint
        # added to the payment (the same signed message is refused twice), which answers the
        # payment and its task token.
        "dynamodb:UpdateItem": 1,
        "stepfunctions:SendTaskSuccess": 1,
    },
    "NotifierFunction": {
        # The event comes in the invoke's payload; the merchant and its endpoints in one Query. One
        # endpoint receives it: delivered right there (no second message), then the attempt
        # recorded in the event's delivery history.
        "dynamodb:Query": 1,
        "dynamodb:UpdateItem": 1,
    },
}
# The API: the order's and the payment's transactions, the execution; it reads the order
# once, and the payment while it waits for the channel's next action.
API_WRITES = {"dynamodb:TransactWriteItems": 2, "stepfunctions:StartExecution": 1}
API_MAX_READS = 3  # the order, then at most two polls for the next action on average


def _quiet(runtime: LocalRuntime, flow: tuple[str, ...] = FLOW) -> None:
    """Wait until earlier tests' late work (notifications, retries) has stopped reaching the
    ``flow``'s functions, then count from zero."""
    deadline = time.monotonic() + 15
    while True:
        runtime.reset_sdk_calls()
        time.sleep(1.0)
        busy = [caller for caller in runtime.sdk_call_snapshot() if caller in flow]
        if not busy:
            runtime.reset_sdk_calls()
            return
        assert time.monotonic() < deadline, f"the runtime never went quiet: {busy}"


def _pay(shop: Merchant, no: str) -> str:
    order = shop.create_order(no)
    answer = shop.pay(order["id"])
    assert answer.status_code == 202, answer.text
    payment = answer.json()
    buyer(payment["next_action"]["url"], "pay")
    # Settled when its webhook arrives (reading the payment would count the test's reads).
    assert shop.receiver.wait_for(
        lambda r: any(e["data"]["object"]["id"] == order["id"] for e in r.accepted("order.paid"))
    )
    return str(payment["id"])


def _count(runtime: LocalRuntime, calls: Counter[tuple[str, str]]) -> None:
    """Add the calls made since the last count to ``calls``, and count from zero again."""
    snapshot = runtime.sdk_call_snapshot()
    runtime.reset_sdk_calls()
    for caller, operations in snapshot.items():
        for operation, count in operations.items():
            calls[caller, operation] += count


def test_a_channel_payment_makes_few_aws_calls(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    _pay(shop, "CALLS-WARM")  # the first request of the key runs the authorizer
    _quiet(runtime)
    calls: Counter[tuple[str, str]] = Counter()
    for n in range(PAYMENTS):
        _pay(shop, f"CALLS-{n}")
        time.sleep(0.5)  # the callback's answer may land after the webhook
        _count(runtime, calls)
    for caller, expected in EXPECTED.items():
        made = {op: n / PAYMENTS for (who, op), n in calls.items() if who == caller}
        assert made == expected, caller
    api = {op: n / PAYMENTS for (who, op), n in calls.items() if who == "ApiFunction"}
    reads = api.pop("dynamodb:GetItem", 0)
    assert api == API_WRITES
    assert 1 <= reads <= API_MAX_READS, f"the API read {reads} items per payment"
    # The state machine's happy path stays two Lambda steps (two state transitions).
    assert calls["@stepfunctions", "lambda:Invoke"] == 2 * PAYMENTS


# -- a channel refund ---------------------------------------------------------------------------

REFUNDS = 3
REFUND_FLOW = ("ApiFunction", "RefundWorkerFunction", "ChannelCallbackFunction")

# Per refund of a sandbox payment (the sandbox answers the request at once), by operation.
REFUND_EXPECTED = {
    # RequestChannelRefund: the task token written on the refund's item on the version the
    # execution's input carries (so it is still processing; nothing read: the payment's
    # channel ids are carried too), the channel's answer handed to the execution.
    # SettleRefund: the order read, then the refund (on the carried version), the order, the
    # event and the journal entry in one transaction, and the event it wrote handed to the
    # notifier by an asynchronous invoke (not read back, not queued).
    "dynamodb:UpdateItem": 1,
    "dynamodb:GetItem": 1,
    "dynamodb:TransactWriteItems": 1,
    "stepfunctions:SendTaskSuccess": 1,
    "lambda:Invoke": 1,
}
# The API: the refund and its reservation in one transaction, the execution; it reads the
# order and the payment.
REFUND_API_WRITES = {"dynamodb:TransactWriteItems": 1, "stepfunctions:StartExecution": 1}
REFUND_API_MAX_READS = 2
# The channel's notification: the replay guard and the read in one conditional update (the
# message's fingerprint added to the refund, which answers the refund and its task token);
# nothing read, nothing put in the idempotency table. When it beats the request's own answer
# it also resumes the execution (SendTaskSuccess, at most once per refund).
REFUND_CALLBACK_EXPECTED = {"dynamodb:UpdateItem": 1}
REFUND_CALLBACK_MAX_RESUMES = 1


def _refund(shop: Merchant, order_id: str, amount: int) -> str:
    answer = shop.request("POST", f"/v1/orders/{order_id}/refunds", json={"amount": amount})
    assert answer.status_code == 202, answer.text
    refund_id = str(answer.json()["id"])
    # Settled when its webhook arrives (reading the refund would count the test's reads).
    assert shop.receiver.wait_for(
        lambda r: any(
            e["data"]["object"]["id"] == refund_id for e in r.accepted("refund.succeeded")
        )
    )
    return refund_id


def test_a_channel_refund_makes_few_aws_calls(
    runtime: LocalRuntime, onboard: Callable[..., Merchant]
) -> None:
    shop = onboard()
    order = shop.create_order("CALLS-RFD", amount=1999)
    answer = shop.pay(order["id"])
    assert answer.status_code == 202, answer.text
    buyer(answer.json()["next_action"]["url"], "pay")
    assert shop.receiver.wait_for(
        lambda r: any(e["data"]["object"]["id"] == order["id"] for e in r.accepted("order.paid"))
    )
    _refund(shop, order["id"], 100)  # the first refund of the order, like any other but warm
    _quiet(runtime, REFUND_FLOW)
    calls: Counter[tuple[str, str]] = Counter()
    for _ in range(REFUNDS):
        _refund(shop, order["id"], 100)
        time.sleep(0.5)  # the channel's notification may land after the webhook
        _count(runtime, calls)
    worker = {op: n / REFUNDS for (who, op), n in calls.items() if who == "RefundWorkerFunction"}
    assert worker == REFUND_EXPECTED
    api = {op: n / REFUNDS for (who, op), n in calls.items() if who == "ApiFunction"}
    reads = api.pop("dynamodb:GetItem", 0)
    assert api == REFUND_API_WRITES
    assert 1 <= reads <= REFUND_API_MAX_READS, f"the API read {reads} items per refund"
    callback = {
        op: n / REFUNDS for (who, op), n in calls.items() if who == "ChannelCallbackFunction"
    }
    resumes = callback.pop("stepfunctions:SendTaskSuccess", 0)
    assert callback == REFUND_CALLBACK_EXPECTED
    assert resumes <= REFUND_CALLBACK_MAX_RESUMES, f"the callback resumed {resumes} times"
    # The happy path stays two Lambda steps: RequestChannelRefund, SettleRefund.
    assert calls["@stepfunctions", "lambda:Invoke"] == 2 * REFUNDS
