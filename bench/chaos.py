"""`make chaos`: randomized concurrent payment journeys against the local runtime, then the
money invariants checked against the API, the sandbox channel's own books and the trade table.

    python -m bench.chaos [--payments N] [--concurrency C] [--seed S]

The seed is printed first; every scenario draws from its own ``random.Random`` seeded with
``(seed, index)``, so ``--seed S`` replays the same scenarios (timing between threads is the
only thing a replay cannot repeat). Exit code 0 when every invariant holds, 1 otherwise; each
violation is printed with the ids involved.

A scenario: one order of a merchant, paid with one of five instrument mixes (channel only,
balance + channel, coupon + balance + channel, balance only, coupon + balance), the channel
misbehaving through random ``simulate`` switches, the buyer paying, declining or
walking away, sometimes a merchant close racing the buyer, then concurrent partial refunds of
a paid order (some deliberately over-refunding), and Idempotency-Key replays of the POSTs
(after the first answer, or concurrently with it). Orders the buyer left unfinished are
closed by the driver, so every channel order ends final. The driver then waits (with a
deadline) until every payment, refund, channel order, channel refund, webhook and execution
is final, and checks the invariants listed in ``INVARIANTS``.

``run_chaos(runtime, ...)`` drives an already started runtime (the e2e suite's); ``main``
starts its own with short waits (``chaos_profile``).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests
from boto3.dynamodb.types import TypeDeserializer

from local_runtime.profile import LocalProfile
from local_runtime.runtime import LocalRuntime
from tests.webhook_receiver import WebhookReceiver

CURRENCY = "CNY"
MERCHANTS = 3  # their receivers fail the first 0, 1 and 2 deliveries of each event
BUYERS_PER_MERCHANT = 3
HTTP_TIMEOUT = 30.0

KINDS = ("channel", "balance+channel", "coupon+balance+channel", "balance", "coupon+balance")
KIND_WEIGHTS = (30, 20, 20, 15, 15)
ACTIONS = ("pay", "decline", "abandon")
ACTION_WEIGHTS = (60, 15, 25)
FINAL_ORDER_STATUSES = {"paid", "partially_refunded", "refunded", "closed"}
PAID_ORDER_STATUSES = {"paid", "partially_refunded", "refunded"}
FINAL_SANDBOX_ORDERS = {"SUCCESS", "DECLINED", "CLOSED"}
FINAL_SANDBOX_REFUNDS = {"SUCCESS", "FAILED"}
# 409 answers that say "try again", not "no": the driver retries them.
RETRYABLE_CODES = {"concurrent_update", "idempotency_in_progress", "payment_starting"}
# ... of which these are not stored under the Idempotency-Key (a replay runs the request again).
TRANSIENT = {"concurrent_update", "idempotency_in_progress"}

INVARIANTS = {
    "final-states": "every payment and refund is succeeded or failed; every order is paid, "
    "refunded or closed; every channel order SUCCESS/DECLINED/CLOSED and channel refund "
    "SUCCESS/FAILED",
    "reservations": "no balance frozen, no coupon locked, no balance negative",
    "balance-conservation": "per buyer: credited - spent + refunded to balance == available",
    "coupons": "a coupon is used by at most one payment, and is used exactly when a "
    "succeeded payment holds it and has not refunded it whole",
    "one-payment": "at most one succeeded payment per order; a paid order's amounts and "
    "instruments add up",
    "channel-money": "a channel order is SUCCESS exactly when its payment succeeded, for "
    "the payment's channel amount, in the payment's account; at most one per payment",
    "late-payment": "channel money taken for a payment that did not succeed is given back by "
    "one late_payment refund (succeeded; failed only with refund_fail)",
    "refund-bounds": "per order amount_refunded <= amount_paid and == its succeeded merchant "
    "refunds; per instrument and per channel order refunds never exceed what was paid",
    "channel-refunds": "a succeeded refund's channel part is one SUCCESS channel refund; a "
    "failed one has none; no channel refund without a refund of ours",
    "refund-answers": "an over-refund is 409 refund_exceeds_paid; refunds that fit are accepted",
    "events": "exactly one event per state change, no duplicate by id or by (type, object)",
    "webhooks": "every event reached its merchant's receiver, validly signed",
    "executions": "every payment's and channel refund's execution SUCCEEDED",
    "idempotency": "a replayed POST (same Idempotency-Key, same body) answers as the first",
    "api": "no 5xx and no unexpected answer from the API or the sandbox",
    "outcomes": "each scenario ends as the buyer's action and the faults imply",
}


# -- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """One scenario, decided up front from its own seeded random generator."""

    index: int
    merchant: int
    buyer: str
    kind: str
    amount: int
    coupon_amount: int
    balance_amount: int
    behaviour: dict[str, Any]
    action: str  # pay | decline | abandon
    close_race: bool  # the merchant closes while the buyer acts
    idempotent: bool  # POSTs carry an Idempotency-Key and are replayed
    replay: str  # after | concurrent (how a replay is sent)
    refunds: tuple[int, ...]  # concurrent refunds once the payment succeeded
    dwell: float  # how long an abandoning buyer looks at the page before the close

    @property
    def has_channel(self) -> bool:
        return self.kind.endswith("channel")

    @property
    def close_ignored(self) -> bool:
        return bool(self.behaviour.get("close_ignored"))

    @property
    def buyer_pays(self) -> bool:
        """The buyer presses Pay and the channel takes the money."""
        return self.action == "pay" and not self.behaviour.get("decline")

    @property
    def expect_success(self) -> bool:
        return (not self.has_channel) or (
            self.buyer_pays and not self.close_ignored and not self.close_race
        )

    @property
    def faults(self) -> list[str]:
        return sorted(self.behaviour)


def plan_scenario(seed: int, index: int, *, callback_wait: float, channel_timeout: float) -> Plan:
    """The scenario ``index`` of run ``seed`` (the same on every replay)."""
    rng = random.Random(f"chaos/{seed}/{index}")
    merchant = rng.randrange(MERCHANTS)
    buyer = f"buyer-{rng.randrange(BUYERS_PER_MERCHANT)}"
    kind = rng.choices(KINDS, KIND_WEIGHTS)[0]
    amount = rng.randint(300, 5000)
    coupon = balance = 0
    if kind == "balance+channel":
        balance = rng.randint(1, amount - 1)
    elif kind == "coupon+balance+channel":
        coupon = rng.randint(1, amount // 3)
        balance = rng.randint(1, amount - coupon - 1)
    elif kind == "balance":
        balance = amount
    elif kind == "coupon+balance":
        coupon = rng.randint(1, amount - 1)
        balance = amount - coupon
    behaviour: dict[str, Any] = {}
    action = rng.choices(ACTIONS, ACTION_WEIGHTS)[0]
    close_race = False
    if kind.endswith("channel"):
        behaviour = _faults(rng, callback_wait, channel_timeout)
        if behaviour.get("close_ignored"):
            # The merchant closes first and the buyer still acts (a close that reached the
            # channel after the buyer pressed Pay). Only the buyer's choice or a notification
            # can then tell us; a buyer that walks away would leave the channel order open
            # for good, and a channel that never notifies would hide the late payment from
            # everyone (no merchant could recover that without reconciliation).
            action = "pay" if rng.random() < 0.75 else "decline"
            behaviour.pop("query_only", None)
            behaviour.pop("notify_drop", None)
        elif action != "abandon":
            close_race = rng.random() < 0.2
    else:
        action = "pay"
    idempotent = rng.random() < 0.35
    replay = "concurrent" if rng.random() < 0.4 else "after"
    refunds: tuple[int, ...] = ()
    if action == "pay" and rng.random() < 0.55:
        parts = [rng.randint(1, max(1, amount // 2)) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.3:
            parts.insert(rng.randrange(len(parts) + 1), amount + rng.randint(1, 500))
        refunds = tuple(parts)
    return Plan(
        index=index,
        merchant=merchant,
        buyer=buyer,
        kind=kind,
        amount=amount,
        coupon_amount=coupon,
        balance_amount=balance,
        behaviour=behaviour,
        action=action,
        close_race=close_race,
        idempotent=idempotent,
        replay=replay,
        refunds=refunds,
        dwell=round(rng.uniform(0.0, 1.5), 2),
    )


def _faults(rng: random.Random, callback_wait: float, channel_timeout: float) -> dict[str, Any]:
    """Random sandbox misbehaviour switches for one channel instrument."""
    late = round(callback_wait + 1.5, 1)  # past the callback wait: the status query finds it
    faults: dict[str, Any] = {}
    if rng.random() < 0.10:
        faults["decline"] = True
    if rng.random() < 0.15:
        faults["notify_delay_seconds"] = rng.choice([0.5, 1.5, late])
    if rng.random() < 0.10:
        faults["notify_drop"] = True
    if rng.random() < 0.15:
        faults["notify_duplicate"] = rng.randint(2, 5)
    if rng.random() < 0.12:
        faults["notify_reorder"] = True
    if rng.random() < 0.08:
        faults["query_only"] = True
    if rng.random() < 0.12:
        faults["create_error"] = {"times": rng.randint(1, 2), "after_create": rng.random() < 0.5}
    elif rng.random() < 0.08:
        faults["create_timeout"] = {"times": 1, "seconds": round(channel_timeout + 1, 1)}
    if rng.random() < 0.12:
        faults["refund_fail"] = True
    if rng.random() < 0.15:
        faults["refund_delay_seconds"] = rng.choice([0.5, 2.0, late])
    if rng.random() < 0.08:
        faults["close_ignored"] = True
    return faults


# -- what the driver saw -------------------------------------------------------------------


@dataclass
class Merchant:
    index: int
    id: str
    api_key: str
    receiver: WebhookReceiver


@dataclass
class Trace:
    """What one scenario did and what it was answered."""

    plan: Plan
    order_id: str | None = None
    payment_id: str | None = None
    coupon_id: str | None = None
    close_answers: list[tuple[int, str | None]] = field(default_factory=list)
    buyer_answer: tuple[int, str | None] | None = None
    refund_answers: list[tuple[int, int, str | None, str | None]] = field(default_factory=list)


@dataclass
class Report:
    seed: int
    payments: int
    concurrency: int
    violations: list[str]
    summary: list[str]
    elapsed: float

    @property
    def ok(self) -> bool:
        return not self.violations

    def render(self) -> str:
        lines = list(self.summary)
        if self.violations:
            lines.append(f"FAILED: {len(self.violations)} invariant violation(s), seed {self.seed}")
            lines.extend(f"  - {violation}" for violation in self.violations)
            lines.append(
                f"replay: python -m bench.chaos --payments {self.payments} "
                f"--concurrency {self.concurrency} --seed {self.seed}"
            )
        else:
            lines.append(f"OK: every invariant held (seed {self.seed})")
        return "\n".join(lines)


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.at


_deserializer = TypeDeserializer()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | set):
        return [_plain(item) for item in value]
    return value


def _json(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _code(answer: requests.Response) -> str | None:
    return _code_of(answer.text)


def _code_of(text: str) -> str | None:
    """The ``code`` of a problem+json body."""
    try:
        body = json.loads(text)
    except ValueError:
        return None
    return str(body.get("code")) if isinstance(body, dict) and body.get("code") else None


# -- the run -------------------------------------------------------------------------------


class ChaosRun:
    """Drives ``payments`` scenarios through ``runtime`` with ``concurrency`` threads."""

    def __init__(
        self,
        runtime: LocalRuntime,
        *,
        payments: int,
        concurrency: int,
        seed: int,
        settle_timeout: float = 90.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.api = runtime.api_url
        self.sandbox = str(runtime.sandbox_url)
        self.payments = payments
        self.concurrency = concurrency
        self.seed = seed
        self.settle_timeout = settle_timeout
        self.log = log or (lambda _line: None)
        profile = runtime.profile
        self.callback_wait = float(profile.callback_wait_seconds)
        self.plans = [
            plan_scenario(
                seed,
                index,
                callback_wait=self.callback_wait,
                channel_timeout=float(profile.channel_timeout_seconds),
            )
            for index in range(payments)
        ]
        self.traces = [Trace(plan) for plan in self.plans]
        self.merchants: list[Merchant] = []
        self.credited: Counter[tuple[str, str]] = Counter()  # (merchant id, buyer) -> amount
        self._violations: list[str] = []
        self._checked: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._local = threading.local()
        self.stats: Counter[str] = Counter()
        # (method, url, what, status, body) of every 5xx answer and of every close answered
        # neither 200 nor 409 order_not_closable, judged by verify().
        self.odd_answers: list[tuple[str, str, str, int, str]] = []

    # -- bookkeeping ---------------------------------------------------------------------

    def violation(self, invariant: str, message: str) -> None:
        with self._lock:
            self._violations.append(f"[{invariant}] {message}")

    def check(self, invariant: str, holds: bool, message: Callable[..., str] | str) -> bool:
        with self._lock:
            self._checked[invariant] += 1
        if not holds:
            self.violation(invariant, message() if callable(message) else message)
        return holds

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.stats[name] += amount

    # -- HTTP ----------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def send(
        self,
        method: str,
        url: str,
        *,
        merchant: Merchant | None = None,
        admin: bool = False,
        body: Any = None,
        params: dict[str, Any] | None = None,
        key: str | None = None,
        what: str = "",
    ) -> requests.Response:
        headers: dict[str, str] = {}
        if merchant is not None:
            headers["Authorization"] = f"Bearer {merchant.api_key}"
        if admin:
            headers["Authorization"] = f"Bearer {self.runtime.admin_token}"
        if key is not None:
            headers["Idempotency-Key"] = key
        answer = self._session().request(
            method, url, json=body, params=params, headers=headers, timeout=HTTP_TIMEOUT
        )
        self.count("http requests")
        if answer.status_code >= 500:
            with self._lock:
                self.odd_answers.append((method, url, what, answer.status_code, answer.text))
        return answer

    def post(
        self,
        merchant: Merchant,
        path: str,
        body: dict[str, Any],
        *,
        key: str | None,
        replay: str,
        what: str,
    ) -> requests.Response:
        """POST, retrying "try again" answers; with a key, replay it too (after the first
        answer, or concurrently with it) and check that the replay answers the same. A
        "try again" answer is retried with the same key, as a merchant would: paycore does
        not keep such answers under the key."""
        url = self.api + path

        def attempt(key: str | None) -> requests.Response:
            if key is None:
                return self.send("POST", url, merchant=merchant, body=body, what=what)
            return self._keyed(merchant, url, body, key, replay=replay, what=what)

        answer = attempt(key)
        server_errors = 0
        for number in range(1, 40):
            if answer.status_code >= 500 and server_errors < 3:
                # Recorded by send(); a merchant retries (paycore: "with the same key").
                server_errors += 1
                self.count(f"retried {answer.status_code}")
            elif answer.status_code == 409 and _code(answer) in RETRYABLE_CODES:
                self.count(f"retried 409 {_code(answer)}")
            else:
                break
            time.sleep(min(0.1 * number, 0.5))
            answer = attempt(key)
        return answer

    def _keyed(
        self,
        merchant: Merchant,
        url: str,
        body: dict[str, Any],
        key: str,
        *,
        replay: str,
        what: str,
    ) -> requests.Response:
        """One keyed POST and its replay (see ``post``)."""

        def once() -> requests.Response:
            return self.send("POST", url, merchant=merchant, body=body, key=key, what=what)

        if replay == "concurrent":
            answers: list[requests.Response] = []
            guard = threading.Lock()
            start = threading.Barrier(2)

            def twin() -> None:
                start.wait()
                answer = once()
                with guard:
                    answers.append(answer)

            threads = [threading.Thread(target=twin) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            self.count("idempotent twins sent concurrently")
            done = [a for a in answers if _code(a) not in TRANSIENT and a.status_code < 500]
            first = done[0] if done else once()
            for other in done[1:]:
                self._same_answer(what, key, first, other)
        else:
            first = once()
        if _code(first) in TRANSIENT or first.status_code >= 500:
            return first  # not an answer: nothing is stored to replay
        self.count("idempotent replays")
        self._same_answer(what, key, first, once())
        return first

    def _same_answer(
        self, what: str, key: str, first: requests.Response, again: requests.Response
    ) -> None:
        self.check(
            "idempotency",
            (again.status_code, _json(again)) == (first.status_code, _json(first)),
            lambda: (
                f"{what}: key {key} replayed as {again.status_code} {again.text[:200]} "
                f"but first answered {first.status_code} {first.text[:200]}"
            ),
        )

    # -- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        rng = random.Random(f"chaos/{self.seed}/setup")
        for index in range(MERCHANTS):
            receiver = WebhookReceiver(fail_first=index % 3).start()
            answer = self.send(
                "POST",
                f"{self.api}/v1/merchants",
                admin=True,
                body={"name": f"Chaos Shop {index}", "webhook_url": receiver.url},
                what="onboard",
            )
            if answer.status_code != 201:
                raise RuntimeError(f"onboarding failed: {answer.status_code} {answer.text}")
            body = answer.json()
            receiver.secret = body["webhook_secret"]
            self.merchants.append(Merchant(index, body["id"], body["api_key"], receiver))
        needs: Counter[tuple[int, str]] = Counter()
        for plan in self.plans:
            needs[(plan.merchant, plan.buyer)] += plan.balance_amount
        for (index, buyer), need in sorted(needs.items()):
            merchant = self.merchants[index]
            total = need + rng.randint(0, 2000)
            parts = (
                [total // 2, total - total // 2] if total > 1 and rng.random() < 0.5 else [total]
            )
            for number, part in enumerate(p for p in parts if p > 0):
                key = f"credit-{self.seed}-{index}-{buyer}-{number}"
                answer = self.post(
                    merchant,
                    f"/v1/buyers/{buyer}/balance/credits",
                    {"amount": part, "currency": CURRENCY},
                    key=key if rng.random() < 0.5 else None,
                    replay="after",
                    what=f"credit {buyer}",
                )
                if answer.status_code != 201:
                    raise RuntimeError(f"credit failed: {answer.status_code} {answer.text}")
                self.credited[(merchant.id, buyer)] += part
        for trace in self.traces:
            plan = trace.plan
            if not plan.coupon_amount:
                continue
            answer = self.post(
                self.merchants[plan.merchant],
                "/v1/coupons",
                {"buyer_id": plan.buyer, "amount": plan.coupon_amount, "currency": CURRENCY},
                key=f"coupon-{self.seed}-{plan.index}" if plan.idempotent else None,
                replay="after",
                what=f"coupon for scenario {plan.index}",
            )
            if answer.status_code != 201:
                raise RuntimeError(f"coupon failed: {answer.status_code} {answer.text}")
            trace.coupon_id = answer.json()["id"]

    # -- one scenario --------------------------------------------------------------------

    def scenario(self, trace: Trace) -> None:
        try:
            self._scenario(trace)
        except Exception as exc:
            self.violation(
                "api",
                f"scenario {trace.plan.index} (order {trace.order_id}, payment "
                f"{trace.payment_id}) stopped: {exc!r}\n" + "".join(traceback.format_exc(limit=4)),
            )

    def _key(self, plan: Plan, what: str) -> str | None:
        return f"s{self.seed}-{plan.index}-{what}" if plan.idempotent else None

    def _scenario(self, trace: Trace) -> None:
        plan = trace.plan
        merchant = self.merchants[plan.merchant]
        order = self.post(
            merchant,
            "/v1/orders",
            {
                "merchant_order_no": f"CHAOS-{self.seed}-{plan.index}",
                "amount": plan.amount,
                "currency": CURRENCY,
                "subject": f"Chaos {plan.kind}",
                "buyer_id": plan.buyer,
                "metadata": {"scenario": str(plan.index)},
            },
            key=self._key(plan, "order"),
            replay=plan.replay,
            what=f"scenario {plan.index} create order",
        )
        if not self.check("api", order.status_code == 201, f"create order: {order.text[:300]}"):
            return
        trace.order_id = order_id = str(order.json()["id"])
        answer = self.post(
            merchant,
            f"/v1/orders/{order_id}/payments",
            {"instruments": self._instruments(plan, trace)},
            key=self._key(plan, "payment"),
            replay=plan.replay,
            what=f"scenario {plan.index} pay order {order_id}",
        )
        if not self.check(
            "api",
            answer.status_code == 202,
            lambda: (
                f"pay order {order_id} (scenario {plan.index}): {answer.status_code} "
                f"{answer.text[:300]}"
            ),
        ):
            return
        payment = answer.json()
        trace.payment_id = payment_id = str(payment["id"])
        if not plan.has_channel:
            self.check(
                "outcomes",
                payment["status"] == "succeeded" and payment["next_action"] is None,
                lambda: f"internal payment {payment_id} answered {payment['status']}",
            )
        else:
            self._channel_journey(trace, merchant, payment)
        final = self._wait_payment(merchant, payment_id, Deadline(self.callback_wait + 25))
        if final is not None and final["status"] == "succeeded" and plan.refunds:
            self._refunds(trace, merchant)
        if final is not None and final["status"] == "failed":
            self._close(trace, merchant)  # a declined order stays payable: finish it

    def _instruments(self, plan: Plan, trace: Trace) -> list[dict[str, Any]]:
        instruments: list[dict[str, Any]] = []
        if plan.coupon_amount:
            instruments.append({"type": "coupon", "coupon_id": trace.coupon_id})
        if plan.balance_amount:
            instruments.append({"type": "balance", "amount": plan.balance_amount})
        if plan.has_channel:
            channel: dict[str, Any] = {"type": "channel", "channel": "sandbox"}
            if plan.behaviour:
                channel["simulate"] = plan.behaviour
            instruments.append(channel)
        random.Random(f"chaos/{self.seed}/{plan.index}/order").shuffle(instruments)
        return instruments

    def _channel_journey(self, trace: Trace, merchant: Merchant, payment: dict[str, Any]) -> None:
        plan = trace.plan
        payment_id = str(payment["id"])
        deadline = Deadline(self.callback_wait + 20)
        while payment.get("next_action") is None and payment["status"] == "processing":
            if deadline.passed:
                self.violation(
                    "outcomes", f"payment {payment_id} got no next_action in time ({plan.faults})"
                )
                return
            time.sleep(0.2)
            payment = self.send(
                "GET", f"{self.api}/v1/payments/{payment_id}", merchant=merchant
            ).json()
        if payment.get("next_action") is None:
            return  # final before the buyer could act: judged with the outcomes
        url = str(payment["next_action"]["url"])
        if plan.close_ignored:
            self._close(trace, merchant)
            self._buyer(trace, url)
        elif plan.close_race:
            threads = [
                threading.Thread(target=self._buyer, args=(trace, url)),
                threading.Thread(target=self._close, args=(trace, merchant)),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        elif plan.action == "abandon":
            time.sleep(plan.dwell)
            self._close(trace, merchant)
        else:
            self._buyer(trace, url)

    def _buyer(self, trace: Trace, url: str) -> None:
        action = "decline" if trace.plan.action == "decline" else "pay"
        answer = self.send("POST", url, body={"action": action}, what="buyer")
        trace.buyer_answer = (answer.status_code, _json(answer) and _json(answer).get("status"))
        allowed = {200} | ({409} if trace.plan.close_race else set())
        self.check(
            "api",
            answer.status_code in allowed,
            lambda: (
                f"buyer {action} of payment {trace.payment_id}: {answer.status_code} "
                f"{answer.text[:200]}"
            ),
        )

    def _close(self, trace: Trace, merchant: Merchant) -> None:
        plan = trace.plan
        answer = self.post(
            merchant,
            f"/v1/orders/{trace.order_id}/close",
            {},
            key=self._key(plan, f"close{len(trace.close_answers)}"),
            replay=plan.replay,
            what=f"scenario {plan.index} close order {trace.order_id}",
        )
        code = _code(answer)
        with self._lock:
            trace.close_answers.append((answer.status_code, code))
            self._checked["api"] += 1
            if answer.status_code != 200 and (answer.status_code, code) != (
                409,
                "order_not_closable",
            ):  # judged by verify(), once the order's fate is known
                self.odd_answers.append(
                    (
                        "POST",
                        f"{self.api}/v1/orders/{trace.order_id}/close",
                        "close (final answer)",
                        answer.status_code,
                        answer.text,
                    )
                )

    def _wait_payment(
        self, merchant: Merchant, payment_id: str, deadline: Deadline
    ) -> dict[str, Any] | None:
        while True:
            payment: dict[str, Any] = self.send(
                "GET", f"{self.api}/v1/payments/{payment_id}", merchant=merchant
            ).json()
            if payment["status"] != "processing":
                return payment
            if deadline.passed:
                return None  # the settle phase waits longer and reports it
            time.sleep(0.25)

    def _refunds(self, trace: Trace, merchant: Merchant) -> None:
        plan = trace.plan
        start = threading.Barrier(len(plan.refunds))

        def refund(number: int, amount: int) -> None:
            start.wait()
            answer = self.post(
                merchant,
                f"/v1/orders/{trace.order_id}/refunds",
                {"amount": amount, "reason": f"chaos {number}"},
                key=self._key(plan, f"refund{number}"),
                replay=plan.replay,
                what=f"scenario {plan.index} refund {amount} of {trace.order_id}",
            )
            body = _json(answer) or {}
            with self._lock:
                trace.refund_answers.append(
                    (amount, answer.status_code, _code(answer), body.get("id"))
                )

        threads = [
            threading.Thread(target=refund, args=(number, amount))
            for number, amount in enumerate(plan.refunds)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # -- the settle phase ----------------------------------------------------------------

    def finish_unfinished(self) -> None:
        """Close every order a scenario left open (a stopped scenario, a slow payment)."""
        for trace in self.traces:
            if trace.order_id is None:
                continue
            merchant = self.merchants[trace.plan.merchant]
            order = self.send("GET", f"{self.api}/v1/orders/{trace.order_id}", merchant=merchant)
            if order.status_code == 200 and order.json()["status"] not in FINAL_ORDER_STATUSES:
                self.count("orders closed in the settle phase")
                self._close(trace, merchant)

    def settle(self, deadline: Deadline) -> dict[str, Any]:
        """Wait until everything is final and every event delivered; the last snapshot."""
        pending: list[str] = []
        while True:
            snapshot = self.snapshot()
            pending = self._pending(snapshot)
            if not pending:
                return snapshot
            if deadline.passed:
                self.violation(
                    "final-states",
                    f"not final after {self.settle_timeout:.0f} s: " + "; ".join(pending[:20]),
                )
                return snapshot
            time.sleep(0.5)

    def _pending(self, snap: dict[str, Any]) -> list[str]:
        pending: list[str] = []
        pending += [
            f"order {o['id']} {o['status']}"
            for o in snap["orders"].values()
            if o["status"] not in FINAL_ORDER_STATUSES
        ]
        pending += [
            f"payment {p['id']} processing"
            for p in snap["payments"].values()
            if p["status"] == "processing"
        ]
        pending += [
            f"refund {r['id']} processing"
            for r in snap["refunds"].values()
            if r["status"] == "processing"
        ]
        pending += [
            f"channel order {o['out_trade_no']}@{o['account']} {o['status']}"
            for o in snap["sandbox_orders"]
            if o["status"] not in FINAL_SANDBOX_ORDERS
        ]
        pending += [
            f"channel refund {r['out_refund_no']} {r['status']}"
            for r in snap["sandbox_refunds"]
            if r["status"] not in FINAL_SANDBOX_REFUNDS
        ]
        pending += [
            f"channel notification {n['notify_id']} of {o.get('out_refund_no', o['out_trade_no'])}"
            for o in [*snap["sandbox_orders"], *snap["sandbox_refunds"]]
            for n in o.get("notifications") or []
            if n["state"] == "PENDING"
        ]
        settled_late = {
            r["payment_id"]
            for r in snap["refunds"].values()
            if r["kind"] == "late_payment" and r["status"] != "processing"
        }
        pending += [
            f"channel took {o['amount']} for {o['out_trade_no']}, not refunded yet"
            for o in snap["sandbox_orders"]
            if o["status"] == "SUCCESS"
            and snap["payments"][o["out_trade_no"]]["status"] == "failed"
            and o["out_trade_no"] not in settled_late
        ]
        delivered = self._delivered()
        pending += [
            f"event {e['id']} ({e['type']}) not delivered"
            for e in snap["events"].values()
            if e["id"] not in delivered
        ]
        for kind, name in self._execution_names(snap):
            status = self._execution_status(kind, name)
            if status in (None, "RUNNING"):
                pending.append(f"{kind} execution {name} {status or 'missing'}")
        return pending

    def _delivered(self) -> set[str]:
        delivered: set[str] = set()
        for merchant in self.merchants:
            for delivery in list(merchant.receiver.deliveries):
                if delivery.status == 200:
                    delivered.add(delivery.webhook_id)
        return delivered

    def _execution_names(self, snap: dict[str, Any]) -> list[tuple[str, str]]:
        names = [("payment", p["id"]) for p in snap["payments"].values() if p.get("channel")]
        names += [
            ("refund", r["id"])
            for r in snap["refunds"].values()
            if any(a["type"] == "channel" for a in r["allocations"])
        ]
        return names

    def _execution_status(self, kind: str, name: str) -> str | None:
        output = "PaymentStateMachineArn" if kind == "payment" else "RefundStateMachineArn"
        machine = str(self.runtime.outputs()[output])
        arn = machine.replace(":stateMachine:", ":execution:") + ":" + name
        try:
            described = self.runtime.client("stepfunctions").describe_execution(executionArn=arn)
        except Exception:  # ExecutionDoesNotExist
            return None
        return str(described["status"])

    def snapshot(self) -> dict[str, Any]:
        """Everything of this run's merchants: the trade table's items and the sandbox's."""
        mine = {merchant.id for merchant in self.merchants}
        table = str(self.runtime.outputs()["TradeTableName"])
        dynamodb = self.runtime.client("dynamodb")
        snap: dict[str, Any] = {
            "orders": {},
            "payments": {},
            "refunds": {},
            "events": {},
            "balances": [],
            "coupons": {},
        }
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for raw in page["Items"]:
                item = {k: _plain(_deserializer.deserialize(v)) for k, v in raw.items()}
                if item.get("merchant_id") not in mine:
                    continue
                sk = item["sk"]
                if sk == "ORDER":
                    snap["orders"][item["id"]] = item
                elif sk == "PAYMENT":
                    for name in ("instruments", "simulate"):
                        if isinstance(item.get(name), str):
                            item[name] = json.loads(item[name])
                    snap["payments"][item["id"]] = item
                elif sk == "REFUND":
                    snap["refunds"][item["id"]] = item
                elif sk == "EVENT":
                    item["data_object"] = json.loads(item["data_object"])
                    snap["events"][item["id"]] = item
                elif sk == "BALANCE":
                    snap["balances"].append(item)
                elif sk == "COUPON":
                    snap["coupons"][item["id"]] = item
        payment_ids = set(snap["payments"])
        orders = self.send("GET", f"{self.sandbox}/__sandbox/orders", what="sandbox orders")
        refunds = self.send("GET", f"{self.sandbox}/__sandbox/refunds", what="sandbox refunds")
        snap["sandbox_orders"] = [
            o for o in orders.json()["orders"] if o["out_trade_no"] in payment_ids
        ]
        snap["sandbox_refunds"] = [
            r for r in refunds.json()["refunds"] if r["out_trade_no"] in payment_ids
        ]
        return snap

    # -- the invariants ------------------------------------------------------------------

    def verify(self, snap: dict[str, Any]) -> None:
        orders: dict[str, dict[str, Any]] = snap["orders"]
        payments: dict[str, dict[str, Any]] = snap["payments"]
        refunds: dict[str, dict[str, Any]] = snap["refunds"]
        payments_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for payment in payments.values():
            payments_of[payment["order_id"]].append(payment)
        refunds_of_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
        refunds_of_payment: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for refund in refunds.values():
            if refund["kind"] == "merchant":
                refunds_of_order[refund["order_id"]].append(refund)
            refunds_of_payment[refund["payment_id"]].append(refund)
        channel_orders: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for channel_order in snap["sandbox_orders"]:
            channel_orders[channel_order["out_trade_no"]].append(channel_order)
        channel_refunds: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for channel_refund in snap["sandbox_refunds"]:
            channel_refunds[channel_refund["out_trade_no"]].append(channel_refund)

        self._verify_final(snap)
        self._verify_orders(orders, payments_of, refunds_of_order)
        self._verify_instruments(snap, payments, refunds)
        self._verify_channel(payments, refunds_of_payment, channel_orders, channel_refunds)
        self._verify_events(snap, orders, payments, refunds)
        self._verify_executions(snap)
        self._verify_scenarios(orders, payments, refunds_of_payment)
        self._verify_odd_answers(orders, payments)

    def _verify_odd_answers(
        self, orders: dict[str, dict[str, Any]], payments: dict[str, dict[str, Any]]
    ) -> None:
        with self._lock:
            answers = list(self.odd_answers)
        for method, url, what, status, text in answers:
            self.check("api", False, f"{method} {url} ({what}) answered {status}: {text[:300]}")

    def _verify_final(self, snap: dict[str, Any]) -> None:
        for order in snap["orders"].values():
            self.check(
                "final-states",
                order["status"] in FINAL_ORDER_STATUSES,
                lambda o=order: f"order {o['id']} is {o['status']}",
            )
        for kind in ("payments", "refunds"):
            for obj in snap[kind].values():
                self.check(
                    "final-states",
                    obj["status"] in ("succeeded", "failed"),
                    lambda o=obj: f"{o['id']} is {o['status']}",
                )
        for channel_order in snap["sandbox_orders"]:
            self.check(
                "final-states",
                channel_order["status"] in FINAL_SANDBOX_ORDERS,
                lambda o=channel_order: (
                    f"channel order {o['out_trade_no']}@{o['account']} is {o['status']}"
                ),
            )
        for channel_refund in snap["sandbox_refunds"]:
            self.check(
                "final-states",
                channel_refund["status"] in FINAL_SANDBOX_REFUNDS,
                lambda r=channel_refund: f"channel refund {r['out_refund_no']} is {r['status']}",
            )

    def _verify_orders(
        self,
        orders: dict[str, dict[str, Any]],
        payments_of: dict[str, list[dict[str, Any]]],
        refunds_of_order: dict[str, list[dict[str, Any]]],
    ) -> None:
        tracked = {t.order_id for t in self.traces if t.order_id}
        for order_id, order in orders.items():
            self.check("one-payment", order_id in tracked, f"order {order_id} was never created")
            attempts = payments_of.get(order_id, [])
            succeeded = [p for p in attempts if p["status"] == "succeeded"]
            self.check(
                "one-payment",
                len(attempts) <= 1,
                lambda o=order_id, a=attempts: (
                    f"order {o} has {len(a)} payments {[p['id'] for p in a]} (the driver made one)"
                ),
            )
            self.check(
                "one-payment",
                len(succeeded) <= 1,
                lambda o=order_id, s=succeeded: f"order {o} paid twice: {[p['id'] for p in s]}",
            )
            paid = order["status"] in PAID_ORDER_STATUSES
            if paid:
                self.check(
                    "one-payment",
                    len(succeeded) == 1
                    and order["amount_paid"] == order["amount"] == succeeded[0]["amount"]
                    and order.get("current_payment_id") == succeeded[0]["id"],
                    lambda o=order, s=succeeded: (
                        f"paid order {o['id']} (amount_paid "
                        f"{o['amount_paid']}/{o['amount']}) has succeeded payments "
                        f"{[(p['id'], p['amount']) for p in s]}"
                    ),
                )
            else:
                self.check(
                    "one-payment",
                    not succeeded and order["amount_paid"] == 0,
                    lambda o=order, s=succeeded: (
                        f"{o['status']} order {o['id']} has "
                        f"amount_paid {o['amount_paid']} and succeeded payments "
                        f"{[p['id'] for p in s]}"
                    ),
                )
            for payment in attempts:
                parts = sum(int(i["amount"]) for i in payment["instruments"])
                self.check(
                    "one-payment",
                    parts == payment["amount"] == order["amount"],
                    lambda p=payment, n=parts: (
                        f"payment {p['id']}: instruments add up to {n}, amount {p['amount']}"
                    ),
                )
            mine = refunds_of_order.get(order_id, [])
            refunded = sum(r["amount"] for r in mine if r["status"] == "succeeded")
            self.check(
                "refund-bounds",
                order["amount_refunded"] == refunded <= order["amount_paid"]
                and order.get("refund_pending", 0) == 0,
                lambda o=order, n=refunded: (
                    f"order {o['id']}: amount_refunded "
                    f"{o['amount_refunded']}, succeeded refunds {n}, "
                    f"amount_paid {o['amount_paid']}, "
                    f"refund_pending {o.get('refund_pending')}"
                ),
            )
            if paid:
                expected_status = (
                    "paid"
                    if refunded == 0
                    else "refunded"
                    if refunded == order["amount_paid"]
                    else "partially_refunded"
                )
                self.check(
                    "refund-bounds",
                    order["status"] == expected_status,
                    lambda o=order, s=expected_status: (
                        f"order {o['id']} is {o['status']}, its refunds make it {s}"
                    ),
                )
            if succeeded:
                self._verify_allocations(order, succeeded[0], mine)

    def _verify_allocations(
        self, order: dict[str, Any], payment: dict[str, Any], refunds: list[dict[str, Any]]
    ) -> None:
        paid_by: Counter[str] = Counter()
        for instrument in payment["instruments"]:
            paid_by[_instrument_key(instrument)] += int(instrument["amount"])
        taken: Counter[str] = Counter()
        given: Counter[str] = Counter()
        for refund in refunds:
            self.check(
                "refund-bounds",
                sum(int(a["amount"]) for a in refund["allocations"]) == refund["amount"],
                lambda r=refund: (
                    f"refund {r['id']} allocations {r['allocations']} do not add "
                    f"up to {r['amount']}"
                ),
            )
            for allocation in refund["allocations"]:
                if refund["status"] != "failed":
                    taken[_instrument_key(allocation)] += int(allocation["amount"])
                if refund["status"] == "succeeded":
                    given[_instrument_key(allocation)] += int(allocation["amount"])
        for key, amount in taken.items():
            self.check(
                "refund-bounds",
                amount <= paid_by.get(key, 0),
                lambda k=key, a=amount: (
                    f"order {order['id']}: refunds took {a} from {k}, "
                    f"which paid {paid_by.get(k, 0)}"
                ),
            )
        self.check(
            "refund-bounds",
            dict(given) == dict(order.get("refunded_by_instrument") or {})
            and dict(taken) == dict(order.get("refund_allocated") or {}),
            lambda: (
                f"order {order['id']}: refunded_by_instrument "
                f"{order.get('refunded_by_instrument')} / refund_allocated "
                f"{order.get('refund_allocated')} disagree with its refunds {dict(given)} / "
                f"{dict(taken)}"
            ),
        )

    def _verify_instruments(
        self,
        snap: dict[str, Any],
        payments: dict[str, dict[str, Any]],
        refunds: dict[str, dict[str, Any]],
    ) -> None:
        spent: Counter[tuple[str, str]] = Counter()
        for payment in payments.values():
            if payment["status"] == "succeeded" and payment.get("balance_amount"):
                spent[(payment["merchant_id"], str(payment["buyer_id"]))] += int(
                    payment["balance_amount"]
                )
        back: Counter[tuple[str, str]] = Counter()
        coupon_back: Counter[str] = Counter()
        for refund in refunds.values():
            if refund["status"] != "succeeded":
                continue
            payment = payments[refund["payment_id"]]
            for allocation in refund["allocations"]:
                if allocation["type"] == "balance":
                    back[(refund["merchant_id"], str(payment["buyer_id"]))] += int(
                        allocation["amount"]
                    )
                elif allocation["type"] == "coupon":
                    coupon_back[str(allocation["coupon_id"])] += int(allocation["amount"])
        balances = {(b["merchant_id"], b["buyer_id"]): b for b in snap["balances"]}
        for key in set(balances) | set(self.credited):
            balance = balances.get(key, {"available": 0, "frozen": 0})
            self.check(
                "reservations",
                balance["frozen"] == 0 and balance["available"] >= 0,
                lambda k=key, b=balance: (
                    f"balance of {k[1]} at {k[0]}: available {b['available']}, frozen {b['frozen']}"
                ),
            )
            expected = self.credited[key] - spent[key] + back[key]
            self.check(
                "balance-conservation",
                balance["available"] == expected,
                lambda k=key, b=balance, e=expected: (
                    f"balance of {k[1]} at {k[0]}: available "
                    f"{b['available']}, but credited {self.credited[k]} - spent {spent[k]} + "
                    f"refunded {back[k]} = {e}"
                ),
            )
        api_checked = 0
        for merchant in self.merchants:
            for buyer in range(BUYERS_PER_MERCHANT):
                if api_checked >= 3:
                    break
                key = (merchant.id, f"buyer-{buyer}")
                if key not in balances:
                    continue
                api_checked += 1
                answer = self.send(
                    "GET",
                    f"{self.api}/v1/buyers/buyer-{buyer}/balance",
                    merchant=merchant,
                    params={"currency": CURRENCY},
                ).json()
                self.check(
                    "balance-conservation",
                    (answer["available"], answer["frozen"])
                    == (balances[key]["available"], balances[key]["frozen"]),
                    lambda a=answer, k=key: (
                        f"API balance {a} differs from the table's {balances[k]}"
                    ),
                )
        self._verify_coupons(snap, payments, coupon_back)

    def _verify_coupons(
        self,
        snap: dict[str, Any],
        payments: dict[str, dict[str, Any]],
        coupon_back: Counter[str],
    ) -> None:
        for coupon in snap["coupons"].values():
            users = [
                p
                for p in payments.values()
                if p.get("coupon_id") == coupon["id"] and p["status"] == "succeeded"
            ]
            holding = [p for p in users if coupon_back[coupon["id"]] < int(p["coupon_amount"])]
            status = "used" if holding else "available"
            self.check(
                "coupons",
                len(users) <= 1 and coupon["status"] == status,
                lambda c=coupon, u=users, e=status: (
                    f"coupon {c['id']} is {c['status']} "
                    f"(expected {e}); succeeded payments using it {[p['id'] for p in u]}, "
                    f"refunded {coupon_back[c['id']]}"
                ),
            )
            self.check(
                "reservations",
                coupon["status"] != "locked",
                lambda c=coupon: f"coupon {c['id']} still locked by {c.get('locked_by')}",
            )

    def _verify_channel(
        self,
        payments: dict[str, dict[str, Any]],
        refunds_of_payment: dict[str, list[dict[str, Any]]],
        channel_orders: dict[str, list[dict[str, Any]]],
        channel_refunds: dict[str, list[dict[str, Any]]],
    ) -> None:
        for payment_id, payment in payments.items():
            found = channel_orders.get(payment_id, [])
            ours = refunds_of_payment.get(payment_id, [])
            late = [r for r in ours if r["kind"] == "late_payment"]
            if not payment.get("channel"):
                self.check(
                    "channel-money",
                    not found and not late,
                    f"internal payment {payment_id} has channel orders or late refunds",
                )
                continue
            taken = [o for o in found if o["status"] == "SUCCESS"]
            self.check(
                "channel-money",
                len(found) <= 1,
                lambda p=payment_id, f=found: (
                    f"payment {p} has {len(f)} channel orders in {[o['account'] for o in f]}"
                ),
            )
            if payment["status"] == "succeeded":
                self.check(
                    "channel-money",
                    len(taken) == 1
                    and taken[0]["amount"] == payment["channel_amount"]
                    and taken[0]["account"] == payment.get("channel_account"),
                    lambda p=payment, t=taken: (
                        f"succeeded payment {p['id']} (channel "
                        f"{p['channel_amount']} at {p.get('channel_account')}) has SUCCESS channel "
                        f"orders {[(o['account'], o['amount']) for o in t]}"
                    ),
                )
                self.check(
                    "late-payment",
                    not late,
                    f"succeeded payment {payment_id} has late-payment refunds",
                )
            elif taken:
                self._verify_late(payment, taken[0], late, channel_refunds.get(payment_id, []))
            else:
                self.check(
                    "late-payment",
                    not late,
                    lambda p=payment_id, f=found: (
                        f"payment {p} has a late-payment refund "
                        f"but its channel orders are {[o['status'] for o in f]}"
                    ),
                )
            self._verify_channel_refunds(payment, ours, found, channel_refunds)

    def _verify_late(
        self,
        payment: dict[str, Any],
        channel_order: dict[str, Any],
        late: list[dict[str, Any]],
        channel_refunds: list[dict[str, Any]],
    ) -> None:
        refund_fail = bool((channel_order.get("sandbox_behaviour") or {}).get("refund_fail"))
        expected = "failed" if refund_fail else "succeeded"
        taken_back = sum(r["amount"] for r in channel_refunds if r["status"] == "SUCCESS")
        self.check(
            "late-payment",
            len(late) == 1
            and late[0]["amount"] == channel_order["amount"]
            and late[0]["status"] == expected
            and taken_back == (0 if refund_fail else channel_order["amount"]),
            lambda: (
                f"{payment['status']} payment {payment['id']} "
                f"({payment.get('failure_code')}): the channel took {channel_order['amount']}, "
                f"late-payment refunds {[(r['id'], r['amount'], r['status']) for r in late]} "
                f"(expected one {expected}), channel refunded {taken_back}"
            ),
        )
        if late and late[0]["status"] == "failed":
            self.count("late-payment refunds failed (refund_fail; refund.failed sent)")
        elif late:
            self.count(f"late-payment refunds {late[0]['status']}")

    def _verify_channel_refunds(
        self,
        payment: dict[str, Any],
        ours: list[dict[str, Any]],
        found: list[dict[str, Any]],
        channel_refunds: dict[str, list[dict[str, Any]]],
    ) -> None:
        theirs = channel_refunds.get(payment["id"], [])
        by_no: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for channel_refund in theirs:
            by_no[channel_refund["out_refund_no"]].append(channel_refund)
        known = {r["id"] for r in ours}
        for number, items in by_no.items():
            self.check(
                "channel-refunds",
                number in known and len(items) == 1,
                lambda n=number, i=items: (
                    f"channel refund {n} of payment {payment['id']} "
                    f"({len(i)} of them) is no refund of ours"
                ),
            )
        for refund in ours:
            part = sum(int(a["amount"]) for a in refund["allocations"] if a["type"] == "channel")
            if not part:
                continue
            matching = by_no.get(refund["id"], [])
            succeeded = [r for r in matching if r["status"] == "SUCCESS"]
            if refund["status"] == "succeeded":
                holds = len(succeeded) == 1 and succeeded[0]["amount"] == part
            else:
                holds = not succeeded
            self.check(
                "channel-refunds",
                holds,
                lambda r=refund, m=matching, n=part: (
                    f"{r['status']} refund {r['id']} (channel "
                    f"part {n}) has channel refunds {[(c['status'], c['amount']) for c in m]}"
                ),
            )
        for channel_order in found:
            success = sum(
                r["amount"]
                for r in theirs
                if r["status"] == "SUCCESS" and r["account"] == channel_order["account"]
            )
            self.check(
                "refund-bounds",
                success <= channel_order["amount"]
                and success == channel_order.get("amount_refunded", success),
                lambda o=channel_order, s=success: (
                    f"channel order {o['out_trade_no']}: "
                    f"refunded {s} of {o['amount']} (view says {o.get('amount_refunded')})"
                ),
            )

    def _verify_events(
        self,
        snap: dict[str, Any],
        orders: dict[str, dict[str, Any]],
        payments: dict[str, dict[str, Any]],
        refunds: dict[str, dict[str, Any]],
    ) -> None:
        expected: set[tuple[str, str]] = set()
        for payment in payments.values():
            if payment["status"] == "succeeded":
                expected.add(("order.paid", payment["order_id"]))
            elif payment["status"] == "failed":
                expected.add(("payment.failed", payment["id"]))
        for order in orders.values():
            if order["status"] == "closed":
                expected.add(("order.closed", order["id"]))
        for refund in refunds.values():
            if refund["status"] in ("succeeded", "failed"):
                expected.add((f"refund.{refund['status']}", refund["id"]))
        seen: Counter[tuple[str, str]] = Counter()
        owner: dict[str, str] = {}
        for event in snap["events"].values():
            seen[(event["type"], str(event["data_object"].get("id")))] += 1
            owner[event["id"]] = event["merchant_id"]
        for key, times in seen.items():
            self.check(
                "events",
                times == 1,
                lambda k=key, n=times: f"{n} events {k[0]} for {k[1]}",
            )
        for key in expected - set(seen):
            self.violation("events", f"no {key[0]} event for {key[1]}")
        for key in set(seen) - expected:
            self.violation("events", f"unexpected {key[0]} event for {key[1]}")
        self._checked["events"] += len(expected)
        for merchant in self.merchants:
            listed = self._list_events(merchant)
            ids = [event["id"] for event in listed]
            stored = {i for i, m in owner.items() if m == merchant.id}
            self.check(
                "events",
                len(ids) == len(set(ids)) and set(ids) == stored,
                lambda m=merchant, i=ids, s=stored: (
                    f"GET /v1/events of {m.id} lists "
                    f"{len(i)} ({len(set(i))} distinct) events, the table holds {len(s)}"
                ),
            )
            self._verify_webhooks(snap, merchant, stored)
        self.count("events", len(snap["events"]))

    def _verify_webhooks(self, snap: dict[str, Any], merchant: Merchant, stored: set[str]) -> None:
        deliveries = list(merchant.receiver.deliveries)
        accepted = {d.webhook_id: d.event for d in deliveries if d.status == 200}
        for event_id in sorted(stored):
            event = snap["events"][event_id]
            body = accepted.get(event_id)
            self.check(
                "webhooks",
                body is not None
                and body.get("id") == event_id
                and body.get("type") == event["type"],
                lambda e=event, m=merchant: (
                    f"event {e['id']} ({e['type']}) never reached {m.id}'s receiver"
                ),
            )
        self.check(
            "webhooks",
            merchant.receiver.rejected == 0,
            lambda m=merchant: (
                f"{m.id}'s receiver refused {m.receiver.rejected} deliveries (bad signature)"
            ),
        )
        strangers = {d.webhook_id for d in deliveries} - stored
        self.check(
            "webhooks",
            not strangers,
            lambda m=merchant, s=strangers: (
                f"{m.id}'s receiver got events that are not its own: {sorted(s)[:5]}"
            ),
        )
        self.count("webhook deliveries", len(deliveries))

    def _list_events(self, merchant: Merchant) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            page = self.send(
                "GET", f"{self.api}/v1/events", merchant=merchant, params=params
            ).json()
            listed.extend(page["data"])
            if not page["has_more"] or not page["data"]:
                return listed
            params["starting_after"] = page["data"][-1]["id"]

    def _verify_executions(self, snap: dict[str, Any]) -> None:
        for kind, name in self._execution_names(snap):
            status = self._execution_status(kind, name)
            self.check(
                "executions",
                status == "SUCCEEDED",
                lambda k=kind, n=name, s=status: f"{k} execution {n} is {s}",
            )

    def _verify_scenarios(
        self,
        orders: dict[str, dict[str, Any]],
        payments: dict[str, dict[str, Any]],
        refunds_of_payment: dict[str, list[dict[str, Any]]],
    ) -> None:
        for trace in self.traces:
            plan = trace.plan
            if trace.payment_id is None or trace.order_id is None:
                continue
            payment = payments.get(trace.payment_id)
            order = orders.get(trace.order_id)
            if payment is None or order is None:
                self.violation("outcomes", f"scenario {plan.index}: order or payment missing")
                continue
            outcome = payment["status"]
            if outcome == "failed":
                outcome += f" ({payment.get('failure_code')})"
            self.count(f"payment {outcome}")
            what = (
                f"scenario {plan.index} ({plan.kind}, {plan.action}"
                f"{', close race' if plan.close_race else ''}, faults {plan.faults}): "
                f"payment {payment['id']} {outcome}, order {order['id']} {order['status']}"
            )
            if plan.expect_success:
                holds = payment["status"] == "succeeded" and order["status"] in PAID_ORDER_STATUSES
            elif plan.close_race:
                closed = [a for a in trace.close_answers if a[0] == 200]
                if payment["status"] == "succeeded":
                    holds = not closed and order["status"] in PAID_ORDER_STATUSES
                else:
                    holds = order["status"] == "closed" and trace.buyer_answer != (200, "SUCCESS")
                self.count(
                    "close races won by the " + ("buyer" if outcome == "succeeded" else "merchant")
                )
            else:
                code = "order_closed" if plan.action == "abandon" or plan.close_ignored else None
                code = code or "buyer_declined"
                holds = (
                    payment["status"] == "failed"
                    and payment.get("failure_code") == code
                    and order["status"] == "closed"
                )
            self.check("outcomes", holds, what)
            late = [r for r in refunds_of_payment.get(payment["id"], []) if r["kind"] != "merchant"]
            # The channel took money after the (ignored) close: it must come back.
            taken_late = plan.close_ignored and trace.buyer_answer == (200, "SUCCESS")
            self.check(
                "outcomes",
                bool(late) == taken_late,
                f"{what}: {len(late)} late-payment refunds",
            )
            self._verify_refund_answers(trace, order)

    def _verify_refund_answers(self, trace: Trace, order: dict[str, Any]) -> None:
        asked = trace.refund_answers
        fitting = [a for a in asked if a[0] <= order["amount"]]
        for amount, status, code, refund_id in asked:
            self.count("refund requests " + ("accepted" if status == 202 else f"{status} {code}"))
            if amount > order["amount"]:
                self.check(
                    "refund-answers",
                    (status, code) == (409, "refund_exceeds_paid"),
                    f"over-refund {amount} of order {order['id']} ({order['amount']}) "
                    f"answered {status} {code} {refund_id or ''}",
                )
            else:
                allowed = {(202, None), (409, "refund_exceeds_paid")}
                self.check(
                    "refund-answers",
                    (status, code if status != 202 else None) in allowed,
                    f"refund {amount} of order {order['id']} answered {status} {code}",
                )
        if fitting and sum(a[0] for a in fitting) <= order["amount"]:
            refused = [a for a in fitting if a[1] != 202]
            self.check(
                "refund-answers",
                not refused,
                lambda: (
                    f"order {order['id']} ({order['amount']}): refunds "
                    f"{[a[0] for a in fitting]} fit, yet {[(a[0], a[2]) for a in refused]} refused"
                ),
            )

    # -- the whole run -------------------------------------------------------------------

    def run(self) -> Report:
        started = time.perf_counter()
        self.setup()
        self.log(
            f"chaos: {len(self.merchants)} merchants, {self.payments} scenarios, "
            f"concurrency {self.concurrency}"
        )
        driving = time.perf_counter()
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            list(pool.map(self.scenario, self.traces))
        driven = time.perf_counter() - driving
        self.finish_unfinished()
        settling = time.perf_counter()
        snapshot = self.settle(Deadline(self.settle_timeout))
        settled = time.perf_counter() - settling
        self.verify(snapshot)
        elapsed = time.perf_counter() - started
        for merchant in self.merchants:
            merchant.receiver.stop()
        summary = self._summary(snapshot, elapsed, driven, settled)
        with self._lock:
            violations = list(self._violations)
        return Report(
            self.seed,
            self.payments,
            self.concurrency,
            violations,
            summary,
            elapsed,
        )

    def _summary(
        self, snap: dict[str, Any], elapsed: float, driven: float, settled: float
    ) -> list[str]:
        plans = self.plans
        refunds = list(snap["refunds"].values())
        lines = [
            f"chaos run: seed {self.seed}, {self.payments} scenarios, concurrency "
            f"{self.concurrency}",
            f"  elapsed {elapsed:.1f} s (driving {driven:.1f} s, settling {settled:.1f} s)",
            "  scenarios by instruments: " + _counts(p.kind for p in plans),
            "  buyer actions: "
            + _counts(p.action for p in plans if p.has_channel)
            + f"; close races {sum(p.close_race for p in plans)}, "
            f"close_ignored {sum(p.close_ignored for p in plans)}, "
            f"idempotent {sum(p.idempotent for p in plans)}, "
            f"with refunds {sum(bool(p.refunds) for p in plans)}",
            "  channel faults: " + _counts(f for p in plans for f in p.faults),
            "  payments by outcome: "
            + _counts(k.removeprefix("payment ") for k in self._stat_keys("payment ")),
            "  refunds by kind/status: " + _counts(f"{r['kind']} {r['status']}" for r in refunds),
            "  refund requests: "
            + _counts(
                k.removeprefix("refund requests ") for k in self._stat_keys("refund requests ")
            ),
            f"  events {self.stats['events']}, webhook deliveries "
            f"{self.stats['webhook deliveries']} (receivers fail the first 0/1/2 of each), "
            f"HTTP requests {self.stats['http requests']}",
            "  driver notes: "
            + (
                ", ".join(
                    f"{k} {v}"
                    for k, v in sorted(self.stats.items())
                    if k.startswith(
                        ("retried", "idempotent", "close races", "late-payment", "orders closed")
                    )
                )
                or "none"
            ),
            f"  invariants checked ({sum(self._checked.values())} checks):",
        ]
        for name, meaning in INVARIANTS.items():
            lines.append(f"    {name:<21} {self._checked[name]:5d}  {meaning}")
        return lines

    def _stat_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for key, count in self.stats.items():
            if key.startswith(prefix):
                keys.extend([key] * count)
        return keys


def _instrument_key(instrument: dict[str, Any]) -> str:
    kind = str(instrument["type"])
    return f"coupon:{instrument['coupon_id']}" if kind == "coupon" else kind


def _counts(values: Iterable[str]) -> str:
    counted = Counter(values)
    return ", ".join(f"{k} {v}" for k, v in sorted(counted.items())) or "none"


def run_chaos(
    runtime: LocalRuntime,
    *,
    payments: int,
    concurrency: int,
    seed: int,
    settle_timeout: float = 90.0,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Drive ``payments`` scenarios through an already started runtime; the report."""
    return ChaosRun(
        runtime,
        payments=payments,
        concurrency=concurrency,
        seed=seed,
        settle_timeout=settle_timeout,
        log=log,
    ).run()


def chaos_profile() -> LocalProfile:
    """Short waits, so that late callbacks, queries and webhook retries run in seconds."""
    return LocalProfile.free_ports(
        callback_wait_seconds=3,
        channel_query_interval_seconds=1,
        webhook_retry_schedule="1,1,1",
        webhook_max_attempts=4,
        sandbox_notify_schedule=(0.0, 0.5, 1.0, 2.0),
        channel_timeout_seconds=2,
        schedule_time_scale=30.0,
        function_log_level="ERROR",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--payments", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--settle-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    if args.payments < 1 or args.concurrency < 1:
        parser.error("--payments and --concurrency must be at least 1")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**9)
    print(f"chaos seed: {seed}", flush=True)  # first, so any failure can be replayed
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aws_lambda_powertools").setLevel(logging.ERROR)
    with LocalRuntime(profile=chaos_profile()) as runtime:
        report = run_chaos(
            runtime,
            payments=args.payments,
            concurrency=args.concurrency,
            seed=seed,
            settle_timeout=args.settle_timeout,
            log=lambda line: print(line, flush=True),
        )
    print(report.render(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
