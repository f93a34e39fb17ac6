"""The state machine's steps and the callback handler, run directly against moto and a real
sandbox channel over HTTP (the state machine itself runs in the e2e suite)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
import requests

from local_runtime.sandbox.server import SandboxServer
from paycore.api.models import CreateOrderRequest, CreatePaymentRequest, CreditBalanceRequest
from paycore.channels.base import MAX_NOTIFICATION_BYTES, MAX_NOTIFICATION_HEADER_BYTES
from paycore.channels.sandbox.signing import sign_notification
from paycore.dal.instruments import InstrumentStore
from paycore.dal.trade_store import TradeStore, order_snapshot
from paycore.domain.status import OrderStatus, PaymentStatus
from paycore.errors import ChannelUnavailable, ConcurrentUpdate
from paycore.services import instruments, merchants, orders, payments
from paycore.services.orchestration import Known, PaymentSteps, _parse_outcome
from tests.functional.alipay_support import AlipayWorld
from tests.functional.alipay_support import buyer as alipay_buyer
from tests.functional.conftest import MotoStack, configure_sandbox_accounts, put_account_secret
from tests.support import FakeContext, channel_call_counts, load_function, rest_event

SECRET = "sandbox-secret-for-tests"


@pytest.fixture
def sandbox(moto_stack: MotoStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    # notify_url points nowhere: these tests drive notifications by hand.
    server = SandboxServer("127.0.0.1", 0, secret=SECRET, notify_schedule=(3600,))
    server.start()
    configure_sandbox_accounts(monkeypatch, server.url, "sandbox-primary")
    yield server
    server.stop()


def _paying_order(
    store: TradeStore,
    expires_in: int = 1800,
    *,
    channel: dict[str, Any] | None = None,
    amount: int = 1999,
) -> tuple[str, str]:
    """A new merchant's order and its payment by ``channel`` (the sandbox by default): their
    ids."""
    merchant = merchants.onboard_merchant(store, "Shop", None).merchant
    order = orders.create_order(
        store,
        merchant.id,
        CreateOrderRequest(
            merchant_order_no="A-1",
            amount=amount,
            currency="CNY",
            subject="Tea",
            expires_in=expires_in,
        ),
        "https://api.example.test/live",
    )
    instrument = {"type": "channel", "channel": "sandbox"} if channel is None else channel
    payment = payments.start_payment(
        store,
        merchant.id,
        order.id,
        CreatePaymentRequest.model_validate({"instruments": [instrument]}),
        "http://127.0.0.1:9",
    )
    return order.id, payment.id


def _queued_event_ids(stack: MotoStack) -> list[str]:
    answer = boto3.client("sqs").receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"])["event_id"] for m in answer.get("Messages", [])]


def test_create_query_and_settle_a_paid_order(
    moto_stack: MotoStack, sandbox: SandboxServer
) -> None:
    store = TradeStore()
    order_id, payment_id = _paying_order(store)
    steps = PaymentSteps(store)
    steps.create_channel_order(payment_id, "http://127.0.0.1:9", "token-1")
    payment = store.get_payment(payment_id)
    assert payment is not None and payment.next_action is not None
    # The task token is kept on the payment's item for the callback, never in the payment.
    assert store.get_payment_and_token(payment_id) == (payment, "token-1")
    assert "token-1" not in json.dumps(payment.resource())
    assert steps.query_channel(payment_id)["status"] == "pending"

    answer = requests.post(payment.next_action["url"], json={"action": "pay"}, timeout=5)
    assert answer.status_code == 200
    outcome = steps.query_channel(payment_id)
    assert outcome["status"] == "succeeded" and outcome["channel_transaction_id"]

    result = steps.settle(payment_id, outcome)
    assert result == {
        "payment_id": payment_id,
        "status": "succeeded",
        "failure_code": None,
        "newly_settled": True,
    }
    order = store.get_order(order_id)
    assert order is not None and order.status is OrderStatus.PAID and order.amount_paid == 1999
    # Settling again (a Step Functions retry) changes nothing and re-queues the same event.
    again = steps.settle(payment_id, outcome)
    assert again["newly_settled"] is False
    events, _ = store.list_events(order.merchant_id, 10, None)
    assert [event.type for event in events] == ["order.paid"]
    assert _queued_event_ids(moto_stack) == [events[0].id, events[0].id]


def test_declined_payment_fails_and_reopens_the_order(
    moto_stack: MotoStack, sandbox: SandboxServer
) -> None:
    store = TradeStore()
    order_id, payment_id = _paying_order(store)
    steps = PaymentSteps(store)
    steps.create_channel_order(payment_id, "http://127.0.0.1:9", "token-1")
    payment = store.get_payment(payment_id)
    assert payment is not None and payment.next_action is not None
    requests.post(payment.next_action["url"], json={"action": "decline"}, timeout=5)
    steps.settle(payment_id, steps.query_channel(payment_id))
    payment = store.get_payment(payment_id)
    assert payment is not None and payment.status is PaymentStatus.FAILED
    assert payment.failure_code
    order = store.get_order(order_id)
    assert order is not None and order.status is OrderStatus.CREATED
    assert order.current_payment_id is None


def test_query_past_the_deadline_closes_the_channel_order(
    moto_stack: MotoStack, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TradeStore()
    _, payment_id = _paying_order(store, expires_in=60)
    steps = PaymentSteps(store)
    steps.create_channel_order(payment_id, "http://127.0.0.1:9", "token-1")
    monkeypatch.setattr("paycore.services.orchestration.now", lambda: _later(3600))
    outcome = steps.query_channel(payment_id)
    assert outcome["status"] == "failed" and outcome["failure_code"] == "order_expired"
    listing = requests.get(f"{sandbox.url}/__sandbox/orders", timeout=5).json()
    statuses = [
        order["status"] for order in _orders(listing) if order["out_trade_no"] == payment_id
    ]
    assert statuses == ["CLOSED"]


def test_channel_rejection_settles_as_failed(moto_stack: MotoStack, sandbox: SandboxServer) -> None:
    store = TradeStore()
    _, payment_id = _paying_order(store)
    caught = {
        "Error": "ChannelRejected",
        "Cause": json.dumps({"errorMessage": "INVALID_PARAMETER"}),
    }
    result = PaymentSteps(store).settle(payment_id, caught)
    assert result["status"] == "failed" and result["failure_code"] == "channel_rejected"


def test_a_query_while_the_create_is_still_running_waits(
    moto_stack: MotoStack, sandbox: SandboxServer
) -> None:
    """The callback wait can run out while a slow create is still at the channel: no
    account holds the order yet, which is not a failure."""
    store = TradeStore()
    _, payment_id = _paying_order(store)

    assert PaymentSteps(store).query_channel(payment_id)["status"] == "pending"


def test_a_payment_fails_only_once_every_account_proved_it_created_nothing(
    moto_stack: MotoStack, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure_sandbox_accounts(monkeypatch, sandbox.url, "a", "b")
    store = TradeStore()
    down = {"create_error": {"times": 2}}  # both accounts answer 503 without creating
    _, payment_id = _paying_order(
        store,
        channel={"type": "channel", "channel": "sandbox", "sandbox_behaviour": down},
        amount=500,
    )
    steps = PaymentSteps(store)

    with pytest.raises(ChannelUnavailable):
        steps.create_channel_order(payment_id, "http://127.0.0.1:9", "token-1")

    attempts = store.get_payment(payment_id).channel_attempts  # type: ignore[union-attr]
    assert [(a["account"], a["result"]) for a in attempts] == [
        ("a", "not_created"),
        ("b", "not_created"),
    ]
    outcome = steps.query_channel(payment_id)
    assert outcome["status"] == "failed" and outcome["failure_code"] == "channel_unavailable"


def test_a_settlement_that_lost_the_race_reads_again_instead_of_failing(
    moto_stack: MotoStack, sandbox: SandboxServer
) -> None:
    """Two settlements of one payment with a balance part (the callback's and a close that
    found the channel order paid): the loser's transaction fails on the stale versions and
    on the already-spent reservation; that is a lost race, not corruption."""
    store = TradeStore()
    merchant = merchants.onboard_merchant(store, "Shop", None).merchant
    instruments.credit_balance(
        InstrumentStore(), merchant.id, "b-1", CreditBalanceRequest(amount=300, currency="CNY")
    )
    order = orders.create_order(
        store,
        merchant.id,
        CreateOrderRequest(
            merchant_order_no="R-1", amount=1000, currency="CNY", subject="Tea", buyer_id="b-1"
        ),
        "https://api.example.test/live",
    )
    payment = payments.start_payment(
        store,
        merchant.id,
        order.id,
        CreatePaymentRequest.model_validate(
            {
                "instruments": [
                    {"type": "balance", "amount": 300},
                    {"type": "channel", "channel": "sandbox"},
                ]
            }
        ),
        "http://127.0.0.1:9",
    )
    steps = PaymentSteps(store)
    # The create step pins the account that holds the channel order (the money's account).
    store.save_payment(replace(payment, channel_account="sandbox-primary"))
    stale = store.get_payment(payment.id)
    assert stale is not None
    paid = {"status": "succeeded", "paid_amount": 700, "paid_currency": "CNY"}
    assert steps.settle(payment.id, paid)["newly_settled"] is True

    with pytest.raises(ConcurrentUpdate):
        steps._settle(stale, _parse_outcome(paid))  # the loser, as it read the payment
    again = steps.settle(payment.id, paid)

    assert again == {**again, "status": "succeeded", "newly_settled": False}
    balance = InstrumentStore().get_balance(merchant.id, "b-1", "CNY")
    assert balance is not None and (balance.available, balance.frozen) == (0, 0)


OTHER_SECRET = "the-backup-accounts-own-secret"


class TestCallback:
    """POST /callbacks/{channel}/{account}: each account's notifications are verified with that
    account's own keys."""

    @pytest.fixture
    def handler(
        self, moto_stack: MotoStack, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
    ) -> Any:
        configure_sandbox_accounts(monkeypatch, sandbox.url, "sandbox-primary", "sandbox-backup")
        put_account_secret(
            "sandbox-backup",
            {"base_url": f"{sandbox.url}/accounts/sandbox-backup", "secret": OTHER_SECRET},
        )
        return load_function("channel_callback")

    @pytest.fixture
    def resumed(self, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
        """What the callback hands to the waiting execution (Step Functions' SendTaskSuccess)."""
        calls: list[dict[str, Any]] = []

        def record(token: str, outcome: dict[str, Any]) -> bool:
            calls.append({"token": token, **outcome})
            return True

        monkeypatch.setattr("paycore.services.callbacks.resume_with_outcome", record)
        return calls

    def _created(self, store: TradeStore) -> str:
        """A payment whose channel order exists at account sandbox-primary."""
        _, payment_id = _paying_order(store)
        PaymentSteps(store).create_channel_order(payment_id, "http://127.0.0.1:9", "token-1")
        payment = store.get_payment(payment_id)
        assert payment is not None and payment.channel_account == "sandbox-primary"
        return payment_id

    def _event(
        self,
        raw: str,
        *,
        account: str = "sandbox-primary",
        channel: str = "sandbox",
        secret: str = SECRET,
        timestamp: int | None = None,
        base64_body: bool = False,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        signed = {
            "Sandbox-Timestamp": stamp,
            "Sandbox-Signature": sign_notification(
                secret, stamp, raw.encode("utf-8", "surrogatepass")
            ),
        }
        event = rest_event(
            "POST",
            f"/callbacks/{channel}/{account}",
            resource="/callbacks/{channel}/{account}",
            path_parameters={"channel": channel, "account": account},
            raw_body=base64.b64encode(raw.encode()).decode() if base64_body else raw,
            headers={**signed, **(headers or {})},
        )
        event["isBase64Encoded"] = base64_body
        return event

    def _notify(self, handler: Any, body: dict[str, Any], **options: Any) -> dict[str, Any]:
        event = self._event(json.dumps(body), **options)
        return handler.lambda_handler(event, FakeContext())  # type: ignore[no-any-return]

    def _notification(self, payment_id: str, status: str = "SUCCESS") -> dict[str, Any]:
        return {
            "notify_id": "ntf_1",
            "notify_type": "trade.status_changed",
            "out_trade_no": payment_id,
            "channel_order_id": "sbx_1",
            "status": status,
            "amount": 1999,
            "currency": "CNY",
            "transaction_id": "txn_1",
            "paid_at": "2026-11-25T10:00:00Z",
            "failure_code": None,
            "failure_message": None,
            "sent_at": "2026-11-25T10:00:00Z",
        }

    @pytest.mark.parametrize("base64_body", [False, True])
    def test_a_genuine_notification_at_its_accounts_route_resumes_the_payment(
        self, handler: Any, resumed: list[dict[str, Any]], base64_body: bool
    ) -> None:
        payment_id = self._created(TradeStore())

        answer = self._notify(handler, self._notification(payment_id), base64_body=base64_body)

        assert answer["statusCode"] == 200
        assert json.loads(answer["body"]) == {"code": "SUCCESS"}
        assert [(r["token"], r["status"], r["source"]) for r in resumed] == [
            ("token-1", "succeeded", "callback")
        ]

    @pytest.mark.parametrize("attack", ["forged", "stale", "unknown_payment", "other_key"])
    def test_bad_notifications_are_refused_and_change_nothing(
        self, handler: Any, resumed: list[dict[str, Any]], attack: str
    ) -> None:
        store = TradeStore()
        payment_id = self._created(store)
        before = store.get_payment(payment_id)
        body = self._notification("pay_unknown" if attack == "unknown_payment" else payment_id)
        secret = {"forged": "not-the-secret", "other_key": OTHER_SECRET}.get(attack, SECRET)

        answer = self._notify(
            handler,
            body,
            secret=secret,
            timestamp=int(time.time()) - 3600 if attack == "stale" else None,
        )

        assert answer["statusCode"] == 401
        assert json.loads(answer["body"])["code"] == "callback_rejected"
        assert store.get_payment(payment_id) == before
        assert resumed == []

    def test_the_same_signed_notification_twice_is_a_replay_and_changes_nothing(
        self, handler: Any, resumed: list[dict[str, Any]]
    ) -> None:
        """Captured and sent again within its 5 fresh minutes: refused. The channel's own
        re-delivery is signed anew (another timestamp or body), so it is taken again."""
        store = TradeStore()
        payment_id = self._created(store)
        event = self._event(json.dumps(self._notification(payment_id)))

        first = handler.lambda_handler(event, FakeContext())
        taken = store.get_payment(payment_id)
        replay = handler.lambda_handler(event, FakeContext())

        assert first["statusCode"] == 200
        assert replay["statusCode"] == 401
        assert json.loads(replay["body"])["code"] == "callback_rejected"
        assert "replay" in json.loads(replay["body"])["detail"]
        assert len(resumed) == 1
        assert store.get_payment(payment_id) == taken
        redelivered = dict(self._notification(payment_id), sent_at="2026-11-25T10:00:05Z")
        assert self._notify(handler, redelivered)["statusCode"] == 200
        assert len(resumed) == 2

    def test_a_taken_notification_is_remembered_on_the_payment_without_a_new_version(
        self, handler: Any, resumed: list[dict[str, Any]]
    ) -> None:
        """One conditional update keeps the message's short fingerprint on the payment and
        reads payment and task token: not a state change (same version), never in the
        payment's resource; the execution gets the payment as updated."""
        store = TradeStore()
        payment_id = self._created(store)
        before = store.get_payment(payment_id)
        assert before is not None and before.notification_fingerprints == []

        assert self._notify(handler, self._notification(payment_id))["statusCode"] == 200

        after = store.get_payment(payment_id)
        assert after is not None and after.version == before.version
        assert len(after.notification_fingerprints) == 1
        assert len(after.notification_fingerprints[0]) == 32
        assert after == replace(before, notification_fingerprints=after.notification_fingerprints)
        assert store.get_payment_and_token(payment_id)[1] == "token-1"  # still waiting
        assert resumed[0]["payment"]["notification_fingerprints"] == after.notification_fingerprints
        assert "notification_fingerprints" not in json.dumps(after.resource())

    def test_a_replay_after_the_payment_settled_is_refused_and_changes_nothing(
        self, handler: Any, resumed: list[dict[str, Any]]
    ) -> None:
        """Settle writes the whole payment from the snapshot the callback handed it: the
        fingerprint survives that write, so the same message is still a replay."""
        store = TradeStore()
        payment_id = self._created(store)
        event = self._event(json.dumps(self._notification(payment_id)))
        assert handler.lambda_handler(event, FakeContext())["statusCode"] == 200
        outcome = {k: v for k, v in resumed[0].items() if k != "token"}
        payment = store.get_payment(payment_id)
        assert payment is not None
        order = store.get_order(payment.order_id)
        assert order is not None
        known = Known.carried(outcome["payment"], order_snapshot(order))

        assert PaymentSteps(store).settle(payment_id, outcome, known=known)["newly_settled"]
        settled = store.get_payment(payment_id)
        assert settled is not None and settled.status is PaymentStatus.SUCCEEDED
        assert settled.notification_fingerprints == payment.notification_fingerprints
        replay = handler.lambda_handler(event, FakeContext())

        assert replay["statusCode"] == 401
        assert "replay" in json.loads(replay["body"])["detail"]
        assert store.get_payment(payment_id) == settled
        assert len(resumed) == 1

    def test_a_payment_that_started_with_its_token_kept_apart_is_still_resumed(
        self, handler: Any, resumed: list[dict[str, Any]]
    ) -> None:
        """The token on its own ``TASKTOKEN`` item (before it moved onto the payment's)."""
        store = TradeStore()
        payment_id = self._created(store)
        ddb = boto3.client("dynamodb")
        key = {"pk": {"S": f"PAYMENT#{payment_id}"}, "sk": {"S": "PAYMENT"}}
        ddb.update_item(TableName=store.table, Key=key, UpdateExpression="REMOVE task_token")
        ddb.put_item(
            TableName=store.table,
            Item={**key, "sk": {"S": "TASKTOKEN"}, "token": {"S": "token-apart"}},
        )

        assert self._notify(handler, self._notification(payment_id))["statusCode"] == 200

        assert [(r["token"], r["status"]) for r in resumed] == [("token-apart", "succeeded")]

    def test_another_accounts_route_refuses_a_payment_it_does_not_hold(
        self, handler: Any, resumed: list[dict[str, Any]]
    ) -> None:
        """Signed with the backup account's own key, at the backup's route, about a payment
        of the primary: genuine for that account, but not its payment."""
        store = TradeStore()
        payment_id = self._created(store)
        before = store.get_payment(payment_id)

        answer = self._notify(
            handler,
            self._notification(payment_id),
            account="sandbox-backup",
            secret=OTHER_SECRET,
        )

        assert answer["statusCode"] == 401
        assert "names no payment" in json.loads(answer["body"])["detail"]
        assert resumed == []
        assert store.get_payment(payment_id) == before  # nothing remembered on it either

    @pytest.mark.parametrize(
        ("channel", "account"),
        [("nope", "sandbox-primary"), ("sandbox", "nobody"), ("alipay", "sandbox-primary")],
    )
    def test_an_unknown_channel_or_account_is_404(
        self, handler: Any, channel: str, account: str
    ) -> None:
        answer = self._notify(handler, {}, channel=channel, account=account)

        assert answer["statusCode"] == 404
        assert json.loads(answer["body"])["code"] == "callback_not_found"

    def test_an_account_without_credentials_takes_no_notification(
        self, handler: Any, resumed: list[dict[str, Any]]
    ) -> None:
        payment_id = self._created(TradeStore())
        put_account_secret("sandbox-primary", {})

        answer = self._notify(handler, self._notification(payment_id))

        assert answer["statusCode"] == 404
        assert resumed == []

    def test_oversized_bodies_and_headers_are_refused_before_parsing(self, handler: Any) -> None:
        big = "x" * (MAX_NOTIFICATION_BYTES + 1)
        body_answer = handler.lambda_handler(self._event(big), FakeContext())
        encoded = handler.lambda_handler(self._event(big, base64_body=True), FakeContext())
        headers = handler.lambda_handler(
            self._event("{}", headers={"X-Padding": "y" * MAX_NOTIFICATION_HEADER_BYTES}),
            FakeContext(),
        )

        assert (body_answer["statusCode"], encoded["statusCode"]) == (413, 413)
        assert json.loads(body_answer["body"])["code"] == "payload_too_large"
        assert headers["statusCode"] == 431

    @pytest.mark.parametrize("raw", ["not base64!", "YWJ", "\u00e9"])
    def test_a_body_that_is_not_base64_is_a_400(self, handler: Any, raw: str) -> None:
        event = self._event("{}")
        event.update(body=raw, isBase64Encoded=True)

        answer = handler.lambda_handler(event, FakeContext())

        assert answer["statusCode"] == 400

    @pytest.mark.parametrize(
        "raw", ["", "not json", "\ud800", "[]", '{"notify_type": "trade.status_changed"}']
    )
    def test_garbage_signed_or_not_is_a_4xx_never_a_5xx(self, handler: Any, raw: str) -> None:
        answer = handler.lambda_handler(self._event(raw), FakeContext())

        assert 400 <= answer["statusCode"] < 500


def _later(seconds: int) -> Any:
    from datetime import timedelta

    from paycore.clock import now

    return now() + timedelta(seconds=seconds)


def _orders(listing: Any) -> list[dict[str, Any]]:
    return listing["orders"] if isinstance(listing, dict) else listing


def test_a_payment_that_lost_the_race_for_its_order_hears_the_order_is_taken(
    moto_stack: MotoStack,
) -> None:
    """Two payments of one order, both read the order before either wrote: the winner spends
    the whole balance; the loser's transaction fails both on the order (changed) and on the
    balance (spent). The answer is the cause, the order being paid: order_not_payable."""
    from dataclasses import replace

    from paycore.api.models import CreditBalanceRequest
    from paycore.clock import now_rfc3339
    from paycore.domain.changes import PaymentStart
    from paycore.errors import Conflict
    from paycore.ids import new_id
    from paycore.services import instruments

    store = TradeStore()
    merchant = merchants.onboard_merchant(store, "Shop", None).merchant
    instruments.credit_balance(
        InstrumentStore(), merchant.id, "buyer-1", CreditBalanceRequest(amount=700, currency="CNY")
    )
    order = orders.create_order(
        store,
        merchant.id,
        CreateOrderRequest(
            merchant_order_no="RACE-1",
            amount=700,
            currency="CNY",
            subject="Tea",
            buyer_id="buyer-1",
        ),
        "https://api.example.test/live",
    )
    stale = store.get_order(order.id)
    assert stale is not None
    winner = payments.start_payment(
        store,
        merchant.id,
        order.id,
        CreatePaymentRequest.model_validate({"instruments": [{"type": "balance", "amount": 700}]}),
        "http://127.0.0.1:9",
    )
    assert winner.status is PaymentStatus.SUCCEEDED
    at = now_rfc3339()
    loser = replace(winner, id=new_id("pay"), status=PaymentStatus.PROCESSING)

    with pytest.raises(Conflict) as refused:
        store.start_payment(PaymentStart.reserving(stale.start_paying(loser.id, at), loser, at))

    assert refused.value.code == "order_not_payable"
    assert store.get_payment(loser.id) is None


def test_a_payments_channel_calls_are_counted_with_their_failures(
    moto_stack: MotoStack,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The channel error-rate alarms read these: every call, and the ones without an answer."""
    store = TradeStore()
    _, payment_id = _paying_order(store)
    steps = PaymentSteps(store)
    capsys.readouterr()

    steps.create_channel_order(payment_id, "http://127.0.0.1:9", "token-1")
    steps.query_channel(payment_id)

    assert channel_call_counts(capsys.readouterr().out, "sandbox") == {"ChannelCalls": 2}

    configure_sandbox_accounts(monkeypatch, "http://127.0.0.1:9", "sandbox-primary")
    with pytest.raises(ChannelUnavailable):
        steps.query_channel(payment_id)

    assert channel_call_counts(capsys.readouterr().out, "sandbox") == {
        "ChannelCalls": 1,
        "ChannelCallsUnavailable": 1,
    }


@pytest.fixture
def alipay(moto_stack: MotoStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[AlipayWorld]:
    """The Alipay simulator as the alipay channel's one account, alipay-a (its query never says
    where the buyer pays: only a create's answer does)."""
    world = AlipayWorld()
    world.simulator.start()
    monkeypatch.setenv("CHANNEL_ACCOUNTS", json.dumps([{"id": "alipay-a", "channel": "alipay"}]))
    put_account_secret("alipay-a", world.credentials("alipay-a"))
    yield world
    world.simulator.stop()


def test_an_adopted_order_whose_create_is_lost_again_is_asked_again_by_the_retry(
    moto_stack: MotoStack, alipay: AlipayWorld
) -> None:
    """The create reaches Alipay but its answer is lost, twice: the query finds the order (and
    no cashier URL), the create asked again is lost too. The payment is pinned to the account
    and the step fails so that the state machine retries it; the retry's create finds the same
    trade and its answer gives the buyer the cashier. Never a payment that waits, with no next
    action, for a buyer who cannot pay."""
    store = TradeStore()
    lost = {"create_error": {"times": 2, "after_create": True}}
    _, payment_id = _paying_order(
        store, channel={"type": "channel", "channel": "alipay", "simulate": lost}
    )
    steps = PaymentSteps(store)

    with pytest.raises(ChannelUnavailable):
        steps.create_channel_order(payment_id, "http://127.0.0.1:9", "token-1")

    waiting = store.get_payment(payment_id)
    assert waiting is not None and waiting.status is PaymentStatus.PROCESSING
    assert (waiting.channel_account, waiting.next_action) == ("alipay-a", None)
    assert [a["result"] for a in waiting.channel_attempts] == ["created_answer_lost"]

    steps.create_channel_order(payment_id, "http://127.0.0.1:9", "token-2")  # the retry

    created = store.get_payment(payment_id)
    assert created is not None and created.next_action is not None
    assert [a["result"] for a in created.channel_attempts] == ["created_answer_lost", "created"]
    assert store.get_payment_and_token(payment_id) == (created, "token-2")
    trades = requests.get(f"{alipay.simulator.url}/_sim/trades", timeout=5).json()["data"]
    assert [t["out_trade_no"] for t in trades].count(payment_id) == 1  # one order, never two
    assert alipay_buyer(created.next_action["url"], "pay").status_code == 200
    assert steps.query_channel(payment_id)["status"] == "succeeded"
