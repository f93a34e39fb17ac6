"""Refunds against moto: creating them (internal-only, channel, racing), the refund state
machine's steps against a real sandbox channel over HTTP, refund notifications and
late-payment refunds. (The state machine itself runs in the e2e suite.)"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
import requests

from local_runtime import dynamodb_transactions
from local_runtime.sandbox.server import SandboxServer
from paycore.api.models import (
    CreateCouponRequest,
    CreateOrderRequest,
    CreatePaymentRequest,
    CreateRefundRequest,
    CreditBalanceRequest,
)
from paycore.channels.sandbox.signing import sign_notification
from paycore.dal.instruments import InstrumentStore
from paycore.dal.refund_store import RefundStore
from paycore.dal.trade_store import TradeStore
from paycore.domain.instruments import CouponStatus
from paycore.domain.refunds import RefundKind, RefundStatus
from paycore.domain.status import PaymentStatus
from paycore.errors import ChannelUnavailable, Conflict, NotFound
from paycore.services import events, instruments, merchants, orders, payments, refunds
from paycore.services.orchestration import PaymentSteps
from paycore.services.refunds import RefundSteps
from tests.functional.conftest import MotoStack, configure_sandbox_accounts
from tests.support import FakeContext, channel_call_counts, load_function, rest_event

SECRET = "sandbox-secret-for-tests"
BASE_URL = "http://127.0.0.1:9"
BUYER = "buyer-1"


@dataclass
class Paid:
    merchant_id: str
    order_id: str
    payment_id: str


@pytest.fixture
def sandbox(refund_machine: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    # notify_url points nowhere: these tests drive notifications by hand.
    server = SandboxServer("127.0.0.1", 0, secret=SECRET, notify_schedule=(3600,))
    server.start()
    configure_sandbox_accounts(monkeypatch, server.url, "sandbox-primary")
    yield server
    server.stop()


@pytest.fixture
def resumed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """What the steps hand to waiting executions (Step Functions' SendTaskSuccess)."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(token: str, outcome: dict[str, Any]) -> bool:
        calls.append((token, outcome))
        return True

    monkeypatch.setattr("paycore.services.refunds.resume_with_outcome", record)
    return calls


def _order(store: TradeStore, merchant_id: str, amount: int = 1999) -> str:
    request = CreateOrderRequest(
        merchant_order_no=f"A-{time.monotonic_ns()}",
        amount=amount,
        currency="CNY",
        subject="Tea",
        buyer_id=BUYER,
    )
    return orders.create_order(store, merchant_id, request, "https://api.example.test/live").id


def _pay(store: TradeStore, merchant_id: str, order_id: str, *instrument: dict[str, Any]) -> str:
    request = CreatePaymentRequest.model_validate({"instruments": list(instrument)})
    return payments.start_payment(store, merchant_id, order_id, request, BASE_URL).id


def paid_internally(store: TradeStore, coupon: int = 0, amount: int = 1999) -> Paid:
    """An order paid at once with the buyer's balance (and a coupon worth ``coupon``)."""
    merchant_id = merchants.onboard_merchant(store, "Shop", None).merchant.id
    order_id = _order(store, merchant_id, amount)
    wallet = InstrumentStore(store.table)
    used: list[dict[str, Any]] = []
    if coupon:
        issued = instruments.issue_coupon(
            wallet,
            merchant_id,
            CreateCouponRequest(buyer_id=BUYER, amount=coupon, currency="CNY"),
        )
        used.append({"type": "coupon", "coupon_id": issued.id})
    instruments.credit_balance(
        wallet, merchant_id, BUYER, CreditBalanceRequest(amount=amount - coupon, currency="CNY")
    )
    used.append({"type": "balance", "amount": amount - coupon})
    payment_id = _pay(store, merchant_id, order_id, *used)
    payment = store.get_payment(payment_id)
    assert payment is not None and payment.status is PaymentStatus.SUCCEEDED
    assert balance(store, merchant_id) == 0
    return Paid(merchant_id, order_id, payment_id)


def paid_by_channel(store: TradeStore) -> Paid:
    """An order whose sandbox payment we recorded as succeeded (no channel involved; the
    payment is pinned to the account that would have taken it, as the create step does)."""
    merchant_id = merchants.onboard_merchant(store, "Shop", None).merchant.id
    order_id = _order(store, merchant_id)
    payment_id = _pay(store, merchant_id, order_id, {"type": "channel", "channel": "sandbox"})
    started = store.get_payment(payment_id)
    assert started is not None
    store.save_payment(replace(started, channel_account="sandbox-primary"))
    PaymentSteps(store).settle(payment_id, {"status": "succeeded", "source": "query"})
    return Paid(merchant_id, order_id, payment_id)


def paid_at_sandbox(store: TradeStore, behaviour: dict[str, Any] | None = None) -> Paid:
    """An order the buyer really paid at the sandbox channel, then settled."""
    merchant_id = merchants.onboard_merchant(store, "Shop", None).merchant.id
    order_id = _order(store, merchant_id)
    channel: dict[str, Any] = {"type": "channel", "channel": "sandbox"}
    if behaviour:
        channel["sandbox_behaviour"] = behaviour
    payment_id = _pay(store, merchant_id, order_id, channel)
    steps = PaymentSteps(store)
    steps.create_channel_order(payment_id, BASE_URL, "token-pay")
    payment = store.get_payment(payment_id)
    assert payment is not None and payment.next_action is not None
    answer = requests.post(payment.next_action["url"], json={"action": "pay"}, timeout=5)
    assert answer.status_code == 200, answer.text
    assert steps.settle(payment_id, steps.query_channel(payment_id))["status"] == "succeeded"
    return Paid(merchant_id, order_id, payment_id)


def refund(store: TradeStore, paid: Paid, amount: int, reason: str | None = None) -> Any:
    return refunds.create_refund(
        store,
        paid.merchant_id,
        paid.order_id,
        CreateRefundRequest(amount=amount, reason=reason),
        BASE_URL,
    )


def balance(store: TradeStore, merchant_id: str) -> int:
    found = InstrumentStore(store.table).get_balance(merchant_id, BUYER, "CNY")
    return found.available if found is not None else 0


def order_amounts(store: TradeStore, order_id: str) -> tuple[str, int, int]:
    order = store.get_order(order_id)
    assert order is not None
    return order.status.value, order.amount_refunded, order.refund_pending


def queued_event_ids(stack: MotoStack) -> list[str]:
    sqs = boto3.client("sqs")
    found: list[str] = []
    while answer := sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10).get(
        "Messages"
    ):
        found.extend(json.loads(m["Body"])["event_id"] for m in answer)
        for message in answer:
            sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def executions(machine: str) -> list[dict[str, Any]]:
    return boto3.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"]  # type: ignore[no-any-return]


# -- creating refunds ---------------------------------------------------------------------------


def test_an_internal_only_refund_succeeds_at_once_and_credits_the_balance(
    moto_stack: MotoStack, refund_machine: str
) -> None:
    store = TradeStore()
    paid = paid_internally(store)
    queued_event_ids(moto_stack)

    done = refund(store, paid, 500, "too sweet")

    assert done.status is RefundStatus.SUCCEEDED
    assert done.allocations == [{"type": "balance", "amount": 500}]
    assert done.resource()["reason"] == "too sweet"
    assert balance(store, paid.merchant_id) == 500
    assert order_amounts(store, paid.order_id) == ("partially_refunded", 500, 0)
    event_id = events.event_id(done.id, "refund.succeeded")
    stored = store.get_event(event_id)
    assert stored is not None and stored.data_object["status"] == "succeeded"
    assert queued_event_ids(moto_stack) == [event_id]
    assert executions(refund_machine) == []  # no channel part: no state machine
    assert refunds.get_refund(store, paid.merchant_id, done.id) == done


def test_a_coupon_comes_back_only_once_its_whole_part_is_refunded(
    moto_stack: MotoStack, refund_machine: str
) -> None:
    store = TradeStore()
    paid = paid_internally(store, coupon=1000)
    payment = store.get_payment(paid.payment_id)
    assert payment is not None and payment.coupon_id is not None
    wallet = InstrumentStore(store.table)

    def coupon_status() -> CouponStatus:
        coupon = wallet.get_coupon(str(payment.coupon_id))
        assert coupon is not None
        return coupon.status

    assert coupon_status() is CouponStatus.USED
    first = refund(store, paid, 999)  # the balance part
    assert first.allocations == [{"type": "balance", "amount": 999}]
    assert balance(store, paid.merchant_id) == 999
    second = refund(store, paid, 600)
    assert second.allocations == [{"type": "coupon", "coupon_id": payment.coupon_id, "amount": 600}]
    assert coupon_status() is CouponStatus.USED
    third = refund(store, paid, 400)
    assert third.status is RefundStatus.SUCCEEDED
    assert coupon_status() is CouponStatus.AVAILABLE
    assert order_amounts(store, paid.order_id) == ("refunded", 1999, 0)
    with pytest.raises(Conflict) as refused:
        refund(store, paid, 1)
    assert refused.value.code == "refund_exceeds_paid"


def test_a_channel_refund_reserves_its_amount_and_starts_the_state_machine(
    moto_stack: MotoStack, refund_machine: str
) -> None:
    store = TradeStore()
    paid = paid_by_channel(store)

    started = refund(store, paid, 500, "damaged")

    assert started.status is RefundStatus.PROCESSING
    assert started.allocations == [{"type": "channel", "amount": 500}]
    assert started.channel == "sandbox" and started.kind is RefundKind.MERCHANT
    assert order_amounts(store, paid.order_id) == ("paid", 0, 500)
    [execution] = executions(refund_machine)
    assert execution["name"] == started.id
    described = boto3.client("stepfunctions").describe_execution(
        executionArn=execution["executionArn"]
    )
    assert json.loads(described["input"])["refund_id"] == started.id
    # What is in flight counts: 500 + 1500 > 1999.
    with pytest.raises(Conflict) as refused:
        refund(store, paid, 1500)
    assert refused.value.code == "refund_exceeds_paid"
    assert refund(store, paid, 1499).status is RefundStatus.PROCESSING
    assert order_amounts(store, paid.order_id) == ("paid", 0, 1999)


def test_unpaid_orders_and_other_merchants_refunds_are_refused(
    moto_stack: MotoStack, refund_machine: str
) -> None:
    store = TradeStore()
    paid = paid_internally(store)
    unpaid = _order(store, paid.merchant_id)
    with pytest.raises(Conflict) as refused:
        refunds.create_refund(
            store, paid.merchant_id, unpaid, CreateRefundRequest(amount=1), BASE_URL
        )
    assert refused.value.code == "order_not_refundable"
    done = refund(store, paid, 100)
    other = merchants.onboard_merchant(store, "Other", None).merchant.id
    for merchant_id, refund_id in ((other, done.id), (paid.merchant_id, "rfd_unknown")):
        with pytest.raises(NotFound) as missing:
            refunds.get_refund(store, merchant_id, refund_id)
        assert missing.value.code == "refund_not_found"
    with pytest.raises(NotFound):
        refunds.create_refund(store, other, paid.order_id, CreateRefundRequest(amount=1), "")


@pytest.fixture
def atomic_transactions() -> Iterator[None]:
    """moto's transactions, made atomic under concurrency as DynamoDB's are."""
    dynamodb_transactions.install()
    try:
        yield
    finally:
        dynamodb_transactions.uninstall()


def race_refunds(store: TradeStore, paid: Paid, amount: int, racers: int) -> list[Any]:
    """``racers`` refunds of ``amount`` at once; each one's refund or error."""
    start = threading.Barrier(racers)
    results: list[Any] = []
    guard = threading.Lock()

    def run() -> None:
        start.wait()
        try:
            result: Any = refund(store, paid, amount)
        except Exception as error:  # every outcome is asserted below
            result = error
        with guard:
            results.append(result)

    threads = [threading.Thread(target=run) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _split(results: list[Any]) -> tuple[list[Any], list[str]]:
    made = [r for r in results if not isinstance(r, Exception)]
    errors = [getattr(r, "code", repr(r)) for r in results if isinstance(r, Exception)]
    return made, errors


def test_racing_channel_refunds_never_reserve_more_than_was_paid(
    moto_stack: MotoStack, refund_machine: str, atomic_transactions: None
) -> None:
    store = TradeStore()
    paid = paid_by_channel(store)
    made, errors = _split(race_refunds(store, paid, 500, racers=8))
    assert len(made) == 3 and errors == ["refund_exceeds_paid"] * 5
    assert order_amounts(store, paid.order_id) == ("paid", 0, 1500)
    assert len(executions(refund_machine)) == 3


def test_racing_internal_refunds_never_refund_more_than_was_paid(
    moto_stack: MotoStack, refund_machine: str, atomic_transactions: None
) -> None:
    store = TradeStore()
    paid = paid_internally(store)
    made, errors = _split(race_refunds(store, paid, 300, racers=8))
    assert len(made) == 6 and errors == ["refund_exceeds_paid"] * 2
    assert all(r.status is RefundStatus.SUCCEEDED for r in made)
    assert order_amounts(store, paid.order_id) == ("partially_refunded", 1800, 0)
    assert balance(store, paid.merchant_id) == 1800


# -- the refund state machine's steps, against the sandbox channel -------------------------------


def test_a_channel_refund_succeeds_and_settles_once(
    moto_stack: MotoStack, sandbox: SandboxServer, resumed: list[tuple[str, dict[str, Any]]]
) -> None:
    store = TradeStore()
    paid = paid_at_sandbox(store)
    started = refund(store, paid, 500)
    steps = RefundSteps(store)

    steps.request_channel_refund(started.id, BASE_URL, "token-r")

    # The task token is on the refund's item while it waits (the notification reads both).
    assert RefundStore().get_refund_and_token(started.id) == (started, "token-r")
    [(token, outcome)] = resumed
    assert token == "token-r" and outcome["status"] == "succeeded"
    assert outcome["channel_refund_id"]
    queued_event_ids(moto_stack)
    result = steps.settle_refund(started.id, outcome)
    assert result == {
        "refund_id": started.id,
        "status": "succeeded",
        "failure_code": None,
        "newly_settled": True,
    }
    assert order_amounts(store, paid.order_id) == ("partially_refunded", 500, 0)
    settled, token_left = RefundStore().get_refund_and_token(started.id)
    assert settled is not None and settled.channel_refund_id == outcome["channel_refund_id"]
    assert token_left is None  # the settlement's write drops it
    # A retried settlement changes nothing and queues the same event again.
    assert steps.settle_refund(started.id, outcome)["newly_settled"] is False
    event_id = events.event_id(started.id, "refund.succeeded")
    assert queued_event_ids(moto_stack) == [event_id, event_id]
    assert order_amounts(store, paid.order_id) == ("partially_refunded", 500, 0)
    # Asking again (a retried step) finds the same channel refund and settles nothing twice.
    steps.request_channel_refund(started.id, BASE_URL, "token-r2")
    assert resumed[-1] == ("token-r2", {"status": "succeeded", "source": "replay"})


def _started_with(machine: str, refund_id: str) -> dict[str, Any]:
    """The input the refund's execution was started with."""
    [execution] = [e for e in executions(machine) if e["name"] == refund_id]
    described = boto3.client("stepfunctions").describe_execution(
        executionArn=execution["executionArn"]
    )
    return json.loads(described["input"])  # type: ignore[no-any-return]


def test_a_refunds_first_attempts_take_the_refund_and_payment_its_execution_carries(
    moto_stack: MotoStack,
    sandbox: SandboxServer,
    resumed: list[tuple[str, dict[str, Any]]],
    refund_machine: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = TradeStore()
    paid = paid_at_sandbox(store)
    started = refund(store, paid, 500)
    carried = _started_with(refund_machine, started.id)
    # The refund as written, the payment as read: what the steps would otherwise read.
    assert refunds.KnownRefund.carried(carried["refund"], carried["payment"]) == (
        refunds.KnownRefund(started, store.get_payment(paid.payment_id))  # type: ignore[arg-type]
    )
    reads: list[str] = []
    read = TradeStore._get

    def counted(self: TradeStore, pk: str, sk: str, **kwargs: Any) -> Any:
        reads.append(sk)
        return read(self, pk, sk, **kwargs)

    monkeypatch.setattr(TradeStore, "_get", counted)
    writes: list[bool] = []
    finish = RefundStore.finish_refund

    def written(self: RefundStore, settlement: Any) -> bool:
        writes.append(finish(self, settlement))
        return writes[-1]

    monkeypatch.setattr(RefundStore, "finish_refund", written)
    handler = load_function("refund_worker")
    # As the state machine passes them (statemachines/refund.asl.json).
    first = {
        "refund_id": started.id,
        "callback_base_url": carried["callback_base_url"],
        "retry_count": 0,
        "refund": carried["refund"],
        "payment": carried["payment"],
    }

    handler.lambda_handler(
        {**first, "step": "request_channel_refund", "task_token": "token-r"}, FakeContext()
    )

    # Nothing read: the task token is written on the carried refund's version (so it is
    # still processing), the payment's channel ids are carried.
    assert reads == []
    [(_, outcome)] = resumed
    assert outcome["status"] == "succeeded"
    queued_event_ids(moto_stack)
    reads.clear()

    settled = handler.lambda_handler(
        {**first, "step": "settle_refund", "outcome": outcome}, FakeContext()
    )

    assert settled["newly_settled"] is True
    assert reads == ["ORDER"] and writes == [True]  # on the carried refund's version
    assert order_amounts(store, paid.order_id) == ("partially_refunded", 500, 0)
    event_id = events.event_id(started.id, "refund.succeeded")
    assert queued_event_ids(moto_stack) == [event_id]  # the event written, not read back
    # A retry reads. A first attempt handed a refund that is no longer as carried (an
    # execution run again) reads it too: when the order no longer holds its amount, or (the
    # order holds another refund's) when the write on the carried version fails. Every time
    # the refund is found final: nothing is settled twice, the stored event is queued again.
    cases = [
        (1, ["REFUND", "EVENT"], [], 0),
        (0, ["ORDER", "REFUND", "EVENT"], [], 0),
        (0, ["ORDER", "REFUND", "EVENT"], [False], 500),
    ]
    for retry_count, expected_reads, expected_writes, pending in cases:
        if pending:
            refund(store, paid, pending)
        reads.clear()
        writes.clear()
        again = handler.lambda_handler(
            {**first, "retry_count": retry_count, "step": "settle_refund", "outcome": outcome},
            FakeContext(),
        )
        assert again["status"] == "succeeded" and again["newly_settled"] is False
        assert (reads, writes) == (expected_reads, expected_writes)
        assert order_amounts(store, paid.order_id) == ("partially_refunded", 500, pending)
        assert queued_event_ids(moto_stack) == [event_id]
    settled_refund = RefundStore().get_refund(started.id)
    assert settled_refund is not None and settled_refund.version == started.version + 1
    # A request step handed the refund as carried once it is final (an execution run again)
    # finds so when the task token's write fails: it reads the refund and replays.
    reads.clear()
    handler.lambda_handler(
        {**first, "step": "request_channel_refund", "task_token": "token-r2"}, FakeContext()
    )
    assert reads == ["REFUND"]
    assert resumed[-1] == ("token-r2", {"status": "succeeded", "source": "replay"})
    assert RefundStore().get_refund_and_token(started.id)[1] is None


def test_a_refund_failed_before_its_first_request_never_reaches_the_channel(
    moto_stack: MotoStack,
    sandbox: SandboxServer,
    resumed: list[tuple[str, dict[str, Any]]],
    refund_machine: str,
) -> None:
    """The API fails a refund whose execution it could not start; should the execution have
    started after all, its first request (handed the refund as processing) must not ask the
    channel: the conditional write of its task token finds the refund final."""
    store = TradeStore()
    paid = paid_at_sandbox(store)
    started = refund(store, paid, 500)
    carried = _started_with(refund_machine, started.id)
    known = refunds.KnownRefund.carried(carried["refund"], carried["payment"])
    assert known is not None
    unavailable = refunds.RefundOutcome(refunds.FAILED, failure_code="workflow_unavailable")
    refunds._finish(RefundStore.of(store), started.id, unavailable, with_event=False)

    answer = RefundSteps(store).request_channel_refund(started.id, BASE_URL, "token-r", known=known)

    assert answer == {"refund_id": started.id, "status": "failed"}
    assert resumed == [("token-r", {"status": "failed", "source": "replay"})]
    asked = requests.get(
        f"{sandbox.url}/__sandbox/refunds", params={"out_trade_no": paid.payment_id}, timeout=5
    )
    assert asked.status_code == 200 and asked.json()["refunds"] == []
    assert order_amounts(store, paid.order_id) == ("paid", 0, 0)


def test_a_notification_resumes_a_refund_that_kept_its_token_apart(
    moto_stack: MotoStack, sandbox: SandboxServer, resumed: list[tuple[str, dict[str, Any]]]
) -> None:
    """A refund whose request ran before the token moved onto the refund's item."""
    store = TradeStore()
    paid = paid_by_channel(store)
    started = refund(store, paid, 500)
    boto3.client("dynamodb").put_item(
        TableName=RefundStore().table,
        Item={
            "pk": {"S": f"REFUND#{started.id}"},
            "sk": {"S": "TASKTOKEN"},
            "token": {"S": "token-apart"},
        },
    )

    answer = _notify(
        load_function("channel_callback"), _refund_notification(started.id, paid.payment_id)
    )

    assert answer["statusCode"] == 200
    [(token, outcome)] = resumed
    assert token == "token-apart" and outcome["status"] == "succeeded"


def test_only_a_processing_merchant_refund_of_its_succeeded_payment_is_taken_as_carried(
    moto_stack: MotoStack, sandbox: SandboxServer, refund_machine: str
) -> None:
    store = TradeStore()
    paid = paid_at_sandbox(store)
    started = refund(store, paid, 500)
    carried = _started_with(refund_machine, started.id)
    fits = refunds.KnownRefund.carried
    assert fits(carried["refund"], carried["payment"]) is not None
    assert fits(None, None) is None  # a late-payment refund carries neither: read them
    assert fits(carried["refund"], None) is None
    other = {**carried["payment"], "id": "pay_other"}
    assert fits(carried["refund"], other) is None
    assert fits({**carried["refund"], "status": "succeeded"}, carried["payment"]) is None
    assert fits(carried["refund"], {**carried["payment"], "status": "failed"}) is None
    late = {**carried["refund"], "kind": "late_payment"}
    assert fits(late, carried["payment"]) is None
    # A late-payment refund's execution carries neither.
    payment = store.get_payment(paid.payment_id)
    assert payment is not None
    late_refund = refunds.start_late_payment_refund(store, payment, 1999, "CNY", BASE_URL)
    late_input = _started_with(refund_machine, late_refund.id)
    assert (late_input["refund"], late_input["payment"]) == (None, None)


def test_a_refused_refund_fails_and_gives_its_amount_back(
    moto_stack: MotoStack, sandbox: SandboxServer, resumed: list[tuple[str, dict[str, Any]]]
) -> None:
    store = TradeStore()
    paid = paid_at_sandbox(store, {"refund_fail": True})
    started = refund(store, paid, 1999)
    steps = RefundSteps(store)
    steps.request_channel_refund(started.id, BASE_URL, "token-r")
    [(_, outcome)] = resumed
    assert outcome["status"] == "failed" and outcome["failure_code"]

    result = steps.settle_refund(started.id, outcome)

    assert result["status"] == "failed" and result["newly_settled"] is True
    assert order_amounts(store, paid.order_id) == ("paid", 0, 0)
    failed_event = store.get_event(events.event_id(started.id, "refund.failed"))
    assert failed_event is not None and failed_event.data_object["status"] == "failed"
    # The whole amount can be asked for again.
    assert refund(store, paid, 1999).status is RefundStatus.PROCESSING


def test_a_refunds_channel_calls_are_counted_with_their_failures(
    moto_stack: MotoStack,
    sandbox: SandboxServer,
    resumed: list[tuple[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The channel error-rate alarms read these: every call, and the ones without an answer."""
    store = TradeStore()
    paid = paid_at_sandbox(store)
    steps = RefundSteps(store)
    capsys.readouterr()

    steps.request_channel_refund(refund(store, paid, 500).id, BASE_URL, "token-r")

    assert channel_call_counts(capsys.readouterr().out, "sandbox") == {"ChannelCalls": 1}

    configure_sandbox_accounts(monkeypatch, "http://127.0.0.1:9", "sandbox-primary")
    with pytest.raises(ChannelUnavailable):
        steps.request_channel_refund(refund(store, paid, 500).id, BASE_URL, "token-r2")

    assert channel_call_counts(capsys.readouterr().out, "sandbox") == {
        "ChannelCalls": 1,
        "ChannelCallsUnavailable": 1,
    }


def test_a_rejected_request_settles_as_failed(moto_stack: MotoStack, refund_machine: str) -> None:
    store = TradeStore()
    paid = paid_by_channel(store)
    started = refund(store, paid, 700)
    caught = {
        "Error": "ChannelRejected",
        "Cause": json.dumps({"errorMessage": "sandbox refused (REFUND_EXCEEDS_PAID)"}),
    }
    result = RefundSteps(store).settle_refund(started.id, caught)
    assert result["status"] == "failed" and result["failure_code"] == "channel_rejected"
    assert order_amounts(store, paid.order_id) == ("paid", 0, 0)


def test_a_slow_refund_is_found_by_querying(
    moto_stack: MotoStack, sandbox: SandboxServer, resumed: list[tuple[str, dict[str, Any]]]
) -> None:
    store = TradeStore()
    paid = paid_at_sandbox(store, {"refund_delay_seconds": 1})
    started = refund(store, paid, 300)
    steps = RefundSteps(store)
    steps.request_channel_refund(started.id, BASE_URL, "token-r")
    assert resumed == []  # still processing at the channel: wait for its notification
    assert steps.query_refund(started.id, BASE_URL)["status"] == "pending"
    time.sleep(1.3)
    outcome = steps.query_refund(started.id, BASE_URL)
    assert outcome["status"] == "succeeded" and outcome["source"] == "query"
    assert set(outcome) == {
        "status",
        "channel_refund_id",
        "failure_code",
        "failure_message",
        "source",
    }


def test_a_refund_the_channel_never_got_is_asked_for_again(
    moto_stack: MotoStack, sandbox: SandboxServer, resumed: list[tuple[str, dict[str, Any]]]
) -> None:
    store = TradeStore()
    paid = paid_at_sandbox(store, {"refund_error": {"times": 1}})
    started = refund(store, paid, 300)
    steps = RefundSteps(store)
    with pytest.raises(ChannelUnavailable):
        steps.request_channel_refund(started.id, BASE_URL, "token-r")
    # The query finds nothing at the channel and asks again (same out_refund_no).
    outcome = steps.query_refund(started.id, BASE_URL)
    assert outcome["status"] == "succeeded"
    again = steps.query_refund(started.id, BASE_URL)
    assert again["channel_refund_id"] == outcome["channel_refund_id"]


# -- notifications ------------------------------------------------------------------------------


def _refund_notification(refund_id: str, payment_id: str, status: str = "SUCCESS") -> str:
    return json.dumps(
        {
            "notify_id": "ntf_r1",
            "notify_type": "refund.status_changed",
            "out_refund_no": refund_id,
            "out_trade_no": payment_id,
            "refund_id": "sbxr_1",
            "status": status,
            "amount": 500,
            "currency": "CNY",
            "failure_code": None,
            "failure_message": None,
            "sent_at": "2026-11-25T10:00:00Z",
        }
    )


def _notification_event(
    body: str, secret: str = SECRET, account: str = "sandbox-primary"
) -> dict[str, Any]:
    """The callback's event for ``body``, signed now at ``account``'s route."""
    stamp = str(int(time.time()))
    return rest_event(
        "POST",
        f"/callbacks/sandbox/{account}",
        resource="/callbacks/{channel}/{account}",
        path_parameters={"channel": "sandbox", "account": account},
        raw_body=body,
        headers={
            "Sandbox-Timestamp": stamp,
            "Sandbox-Signature": sign_notification(secret, stamp, body.encode()),
        },
    )


def _notify(
    handler: Any, body: str, secret: str = SECRET, account: str = "sandbox-primary"
) -> dict[str, Any]:
    event = _notification_event(body, secret, account)
    return handler.lambda_handler(event, FakeContext())  # type: ignore[no-any-return]


def test_a_refund_notification_resumes_the_waiting_refund(
    moto_stack: MotoStack, sandbox: SandboxServer, resumed: list[tuple[str, dict[str, Any]]]
) -> None:
    store = TradeStore()
    paid = paid_by_channel(store)
    started = refund(store, paid, 500)
    assert RefundStore().wait_for_channel(started, "token-n")
    handler = load_function("channel_callback")

    answer = _notify(handler, _refund_notification(started.id, paid.payment_id))

    assert answer["statusCode"] == 200
    assert json.loads(answer["body"]) == {"code": "SUCCESS"}
    [(token, outcome)] = resumed
    assert token == "token-n"
    assert outcome["status"] == "succeeded" and outcome["channel_refund_id"] == "sbxr_1"
    assert outcome["source"] == "callback"
    # A notification about a refund that is not ours, or of another payment, is refused.
    for body in (
        _refund_notification("rfd_unknown", paid.payment_id),
        _refund_notification(started.id, "pay_other"),
    ):
        refused = _notify(handler, body)
        assert refused["statusCode"] == 401
        assert json.loads(refused["body"])["code"] == "callback_rejected"
    forged = _notify(handler, _refund_notification(started.id, paid.payment_id), "guess")
    assert forged["statusCode"] == 401
    assert len(resumed) == 1


def test_the_same_signed_refund_notification_twice_is_a_replay_and_changes_nothing(
    moto_stack: MotoStack, sandbox: SandboxServer, resumed: list[tuple[str, dict[str, Any]]]
) -> None:
    """One conditional update keeps the message's short fingerprint on the refund and reads
    refund and task token: not a state change (same version), never in the refund's
    resource. Sent again byte for byte: refused, nothing changes. The channel's own
    re-delivery is signed anew, so it is taken again."""
    store = TradeStore()
    paid = paid_by_channel(store)
    started = refund(store, paid, 500)
    assert RefundStore().wait_for_channel(started, "token-n")
    handler = load_function("channel_callback")
    event = _notification_event(_refund_notification(started.id, paid.payment_id))

    first = handler.lambda_handler(event, FakeContext())

    assert first["statusCode"] == 200
    taken, token = RefundStore().get_refund_and_token(started.id)
    assert taken is not None and token == "token-n"  # still waiting
    assert taken.version == started.version
    assert len(taken.notification_fingerprints) == 1
    assert len(taken.notification_fingerprints[0]) == 32
    assert taken == replace(started, notification_fingerprints=taken.notification_fingerprints)
    assert "notification_fingerprints" not in json.dumps(taken.resource())
    # The execution gets the refund as taken (SettleRefund writes it, fingerprint included).
    [(_, outcome)] = resumed
    assert outcome["refund"] == refunds.refund_snapshot(taken)

    replay = handler.lambda_handler(event, FakeContext())

    assert replay["statusCode"] == 401
    assert json.loads(replay["body"])["code"] == "callback_rejected"
    assert "replay" in json.loads(replay["body"])["detail"]
    assert RefundStore().get_refund_and_token(started.id) == (taken, "token-n")
    assert len(resumed) == 1
    redelivered = json.loads(_refund_notification(started.id, paid.payment_id))
    redelivered["sent_at"] = "2026-11-25T10:00:05Z"
    assert _notify(handler, json.dumps(redelivered))["statusCode"] == 200
    assert len(resumed) == 2
    again = RefundStore().get_refund(started.id)
    assert again is not None and len(again.notification_fingerprints) == 2


def test_a_refund_notification_replayed_after_the_refund_settled_is_refused(
    moto_stack: MotoStack,
    sandbox: SandboxServer,
    resumed: list[tuple[str, dict[str, Any]]],
    refund_machine: str,
) -> None:
    """SettleRefund's first attempt writes the whole refund as the notification handed it
    (in the outcome, at the version the execution carries): the fingerprint survives that
    write, so the same message is still a replay once the refund is final."""
    store = TradeStore()
    paid = paid_by_channel(store)
    started = refund(store, paid, 500)
    carried = _started_with(refund_machine, started.id)
    assert RefundStore().wait_for_channel(started, "token-n")
    event = _notification_event(_refund_notification(started.id, paid.payment_id))
    callback = load_function("channel_callback")
    assert callback.lambda_handler(event, FakeContext())["statusCode"] == 200
    taken = RefundStore().get_refund(started.id)
    assert taken is not None and taken.notification_fingerprints
    [(_, outcome)] = resumed

    # As the state machine passes it (statemachines/refund.asl.json), on its first attempt.
    settled_answer = load_function("refund_worker").lambda_handler(
        {
            "step": "settle_refund",
            "refund_id": started.id,
            "outcome": outcome,
            "retry_count": 0,
            "refund": carried["refund"],
            "payment": carried["payment"],
        },
        FakeContext(),
    )

    assert settled_answer["status"] == "succeeded" and settled_answer["newly_settled"]
    settled = RefundStore().get_refund(started.id)
    assert settled is not None and settled.status is RefundStatus.SUCCEEDED
    assert settled.version == started.version + 1
    assert settled.notification_fingerprints == taken.notification_fingerprints
    assert "notification_fingerprints" not in json.dumps(settled.resource())
    replay = callback.lambda_handler(event, FakeContext())

    assert replay["statusCode"] == 401
    assert "replay" in json.loads(replay["body"])["detail"]
    assert RefundStore().get_refund(started.id) == settled
    assert len(resumed) == 1
    # A fresh message about the final refund is acknowledged and resumes nothing.
    redelivered = json.loads(_refund_notification(started.id, paid.payment_id))
    redelivered["sent_at"] = "2026-11-25T10:00:05Z"
    assert _notify(callback, json.dumps(redelivered))["statusCode"] == 200
    assert len(resumed) == 1


def test_a_notification_about_a_refund_this_account_does_not_hold_adds_nothing_to_it(
    moto_stack: MotoStack,
    sandbox: SandboxServer,
    resumed: list[tuple[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Signed with the backup account's own key at the backup's route, about a refund the
    primary holds; or naming another payment than the refund's: refused, and the refund is
    left as it was (no fingerprint remembered on it)."""
    configure_sandbox_accounts(monkeypatch, sandbox.url, "sandbox-primary", "sandbox-backup")
    store = TradeStore()
    paid = paid_by_channel(store)
    started = refund(store, paid, 500)
    assert RefundStore().wait_for_channel(started, "token-n")
    handler = load_function("channel_callback")
    before = RefundStore().get_refund_and_token(started.id)

    for body, account in (
        (_refund_notification(started.id, paid.payment_id), "sandbox-backup"),
        (_refund_notification(started.id, "pay_other"), "sandbox-primary"),
    ):
        refused = _notify(handler, body, account=account)

        assert refused["statusCode"] == 401
        assert "names no refund" in json.loads(refused["body"])["detail"]
        assert RefundStore().get_refund_and_token(started.id) == before
    assert resumed == []


def test_a_refund_held_by_no_account_yet_takes_a_notification_of_its_channel(
    moto_stack: MotoStack,
    sandbox: SandboxServer,
    resumed: list[tuple[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refund recorded before refunds were pinned to an account (no ``channel_account``)
    takes a genuine notification from any account of its channel, as it always did."""
    configure_sandbox_accounts(monkeypatch, sandbox.url, "sandbox-primary", "sandbox-backup")
    store = TradeStore()
    paid = paid_by_channel(store)
    started = refund(store, paid, 500)
    assert RefundStore().wait_for_channel(started, "token-n")
    boto3.client("dynamodb").update_item(
        TableName=RefundStore().table,
        Key={"pk": {"S": f"REFUND#{started.id}"}, "sk": {"S": "REFUND"}},
        UpdateExpression="REMOVE channel_account",
    )
    body = _refund_notification(started.id, paid.payment_id)

    answer = _notify(load_function("channel_callback"), body, account="sandbox-backup")

    assert answer["statusCode"] == 200
    [(token, outcome)] = resumed
    assert token == "token-n" and outcome["status"] == "succeeded"
    taken = RefundStore().get_refund(started.id)
    assert taken is not None and taken.channel_account is None
    assert len(taken.notification_fingerprints) == 1


# -- late payments ------------------------------------------------------------------------------


def test_a_late_payment_refund_is_made_once_and_leaves_the_order_alone(
    moto_stack: MotoStack, sandbox: SandboxServer, resumed: list[tuple[str, dict[str, Any]]]
) -> None:
    store = TradeStore()
    paid = paid_at_sandbox(store)
    payment = store.get_payment(paid.payment_id)
    assert payment is not None
    machine = boto3.client("stepfunctions").list_state_machines()["stateMachines"]
    refund_arn = next(m["stateMachineArn"] for m in machine if m["name"] == "refund")

    first = refunds.start_late_payment_refund(store, payment, 1999, "CNY", BASE_URL)
    again = refunds.start_late_payment_refund(store, payment, 1999, "CNY", BASE_URL)

    assert again.id == first.id and first.id.startswith("rfd_")
    assert first.kind is RefundKind.LATE_PAYMENT
    assert first.allocations == [{"type": "channel", "amount": 1999}]
    assert [e["name"] for e in executions(refund_arn)] == [first.id]
    steps = RefundSteps(store)
    steps.request_channel_refund(first.id, BASE_URL, "token-l")
    [(_, outcome)] = resumed
    assert steps.settle_refund(first.id, outcome)["status"] == "succeeded"
    # The order never counted this money: its amounts are untouched.
    assert order_amounts(store, paid.order_id) == ("paid", 0, 0)
    assert store.get_event(events.event_id(first.id, "refund.succeeded")) is not None
    # Once final, starting it again is a no-op.
    assert refunds.start_late_payment_refund(store, payment, 1999, "CNY", BASE_URL).is_final
    assert len(executions(refund_arn)) == 1
