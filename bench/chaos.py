"""`make chaos`: randomized concurrent payment journeys against the local runtime, then the
money invariants (bench/invariants.py) checked against the API, each channel's own books (the
sandbox's and the Alipay, WeChat Pay and Stripe simulators'), the trade table and the ledger.

    python -m bench.chaos [--payments N] [--concurrency C] [--seed S]

The seed is printed first; every scenario draws from its own ``random.Random`` seeded with
``(seed, index)``, so ``--seed S`` replays the same scenarios (timing between threads is the
only thing a replay cannot repeat). Exit code 0 when every invariant holds, 1 otherwise; each
violation is printed with the ids involved.

A scenario: one order of a merchant (instant or guaranteed trade), paid with one of five
instrument mixes (channel only, balance + channel, coupon + balance + channel, balance only,
coupon + balance; the channel drawn among ``CHANNELS``), the channel misbehaving through
random ``simulate`` switches, the buyer paying, declining or walking away, sometimes a
merchant close racing the buyer, then concurrent partial refunds of a paid order (some
deliberately over-refunding) racing the merchant's confirmation of a guaranteed one, and
Idempotency-Key replays of the POSTs (after the first answer, or concurrently with it). The
three merchants charge different fees; one has no settlement delay, and today's settlement
runs again and again during the drive, so settlements race refunds and confirmations. Orders
the buyer left unfinished are closed by the driver, so every channel order ends final. The
driver then waits (with a deadline) until every payment, refund, channel order, channel
refund, webhook and execution is final, runs today's settlement once more, and checks the
invariants listed in ``INVARIANTS``.

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
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import requests
from boto3.dynamodb.types import TypeDeserializer

from bench.invariants import (
    BUYERS_PER_MERCHANT,
    CURRENCY,
    FINAL_CHANNEL_ORDERS,
    FINAL_CHANNEL_REFUNDS,
    FINAL_ORDER_STATUSES,
    INVARIANTS,
    Invariants,
)
from local_runtime.profile import LocalProfile
from local_runtime.runtime import LocalRuntime
from tests.webhook_receiver import WebhookReceiver

MERCHANTS = 3  # their receivers fail the first 0, 1 and 2 deliveries of each event
# The merchants' terms: fee rates at the default, higher and zero; the last one's money is due
# the day it is paid, so the settlement runs during the drive settle it (racing its refunds).
MERCHANT_TERMS = (
    {"fee_rate_bps": 60, "settlement_delay_days": 1},
    {"fee_rate_bps": 250, "settlement_delay_days": 1},
    {"fee_rate_bps": 0, "settlement_delay_days": 0},
)
SETTLEMENT_TIME_ZONE = "Asia/Shanghai"  # the template's default SettlementTimeZone
HTTP_TIMEOUT = 30.0

# Every channel the local runtime serves; a scenario with a channel part draws one.
CHANNELS = ("sandbox", "alipay", "wechatpay", "stripe")
KINDS = ("channel", "balance+channel", "coupon+balance+channel", "balance", "coupon+balance")
KIND_WEIGHTS = (30, 20, 20, 15, 15)
ACTIONS = ("pay", "decline", "abandon")
ACTION_WEIGHTS = (60, 15, 25)
# 409 answers that say "try again", not "no": the driver retries them.
RETRYABLE_CODES = {"concurrent_update", "idempotency_in_progress", "payment_starting"}
# ... of which these are not stored under the Idempotency-Key (a replay runs the request again).
TRANSIENT = {"concurrent_update", "idempotency_in_progress"}


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
    trade_type: str = "instant"  # or guaranteed (担保交易): the money waits in escrow
    confirm: bool = False  # the merchant confirms once paid (racing the refunds)
    channel: str | None = None  # the channel of the channel part (None: internal only)

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
    guaranteed = rng.random() < 0.3
    confirm = guaranteed and action == "pay" and rng.random() < 0.6
    channel = rng.choice(CHANNELS) if kind.endswith("channel") else None
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
        trade_type="guaranteed" if guaranteed else "instant",
        confirm=confirm,
        channel=channel,
    )


def _faults(rng: random.Random, callback_wait: float, channel_timeout: float) -> dict[str, Any]:
    """Random misbehaviour switches for one channel instrument (every channel, the sandbox and
    the simulators, honours the same switches)."""
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
    confirm_answer: tuple[int, str | None] | None = None


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
        self.simulators = dict(runtime.simulator_urls)
        missing = [c for c in CHANNELS if c != "sandbox" and c not in self.simulators]
        if missing or runtime.sandbox_url is None:
            raise RuntimeError(f"the local runtime serves no {missing or ['sandbox']} channel")
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

    def violations(self) -> list[str]:
        """The violations found so far, oldest first."""
        with self._lock:
            return list(self._violations)

    def tally(self, invariant: str, checks: int) -> None:
        """Count ``checks`` checks of ``invariant`` that were made without ``check``."""
        with self._lock:
            self._checked[invariant] += checks

    def odd_answers_seen(self) -> list[tuple[str, str, str, int, str]]:
        with self._lock:
            return list(self.odd_answers)

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
                body={
                    "name": f"Chaos Shop {index}",
                    "webhook_url": receiver.url,
                    **MERCHANT_TERMS[index % len(MERCHANT_TERMS)],
                },
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
                "trade_type": plan.trade_type,
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
        if final is not None and final["status"] == "succeeded" and (plan.refunds or plan.confirm):
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
            channel: dict[str, Any] = {"type": "channel", "channel": plan.channel}
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
        url = self._buyer_url(payment["next_action"])
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

    def _buyer_url(self, next_action: dict[str, Any]) -> str:
        """Where the buyer acts: the channel's payment page for a redirect; for a QR code, the
        WeChat Pay simulator's /scan page standing in for the buyer's phone."""
        if next_action["type"] == "redirect":
            return str(next_action["url"])
        code = quote(str(next_action["code_url"]), safe="")
        return f"{self.simulators['wechatpay']}/scan?code_url={code}"

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
        """The plan's refunds, at once, and the merchant's confirmation racing them."""
        plan = trace.plan
        start = threading.Barrier(len(plan.refunds) + plan.confirm)

        def confirm() -> None:
            start.wait()
            answer = self.post(
                merchant,
                f"/v1/orders/{trace.order_id}/confirm",
                {},
                key=self._key(plan, "confirm"),
                replay=plan.replay,
                what=f"scenario {plan.index} confirm {trace.order_id}",
            )
            trace.confirm_answer = (answer.status_code, _code(answer))

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
        if plan.confirm:
            threads.append(threading.Thread(target=confirm))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # -- settlement ----------------------------------------------------------------------

    def run_settlement(self) -> None:
        """Run today's settlement (in the stack's settlement time zone) for every merchant."""
        day = datetime.now(ZoneInfo(SETTLEMENT_TIME_ZONE)).date().isoformat()
        answer = self.send(
            "POST",
            f"{self.api}/v1/settlements/run",
            admin=True,
            body={"date": day},
            what="settlement run",
        )
        if self.check("api", answer.status_code == 200, f"settlement run: {answer.text[:300]}"):
            self.count("settlement runs")
            self.count("payments settled", int(answer.json()["payments_count"]))

    def _settlements(self, stop: threading.Event) -> None:
        while not stop.wait(0.7):
            self.run_settlement()

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
            for o in snap["channel_orders"]
            if o["status"] not in FINAL_CHANNEL_ORDERS
        ]
        pending += [
            f"channel refund {r['out_refund_no']} {r['status']}"
            for r in snap["channel_refunds"]
            if r["status"] not in FINAL_CHANNEL_REFUNDS
        ]
        pending += [
            f"channel notification {n.get('notify_id') or n.get('notification_id')} of "
            f"{o.get('out_refund_no', o['out_trade_no'])}"
            for o in [*snap["channel_orders"], *snap["channel_refunds"]]
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
            for o in snap["channel_orders"]
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
        for kind, name in self.execution_names(snap):
            status = self.execution_status(kind, name)
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

    def execution_names(self, snap: dict[str, Any]) -> list[tuple[str, str]]:
        names = [("payment", p["id"]) for p in snap["payments"].values() if p.get("channel")]
        names += [
            ("refund", r["id"])
            for r in snap["refunds"].values()
            if any(a["type"] == "channel" for a in r["allocations"])
        ]
        return names

    def execution_status(self, kind: str, name: str) -> str | None:
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
            "settlements": [],
            "entries": [],  # every journal entry of the table (the books are global)
            "accounts": [],  # every ledger account shard of the table
        }
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for raw in page["Items"]:
                item = {k: _plain(_deserializer.deserialize(v)) for k, v in raw.items()}
                _file(snap, item, mine)
        payment_ids = set(snap["payments"])
        channel_orders, channel_refunds = self.channel_books()
        snap["channel_orders"] = [o for o in channel_orders if o["out_trade_no"] in payment_ids]
        snap["channel_refunds"] = [r for r in channel_refunds if r["out_trade_no"] in payment_ids]
        return snap

    def channel_books(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every channel's own orders and refunds in one neutral shape: ``channel``,
        ``account``, ``out_trade_no`` (our payment id), ``status``, ``amount``,
        ``amount_refunded``, ``behaviour`` (the simulate switches), ``notifications``; a
        refund's ``out_refund_no`` is our refund id. Alipay's book keys a refund by trade and
        ``out_request_no``; Stripe names a payment by its session's ``client_reference_id``
        and a refund by its ``metadata[refund_id]``."""
        orders: list[dict[str, Any]] = []
        refunds: list[dict[str, Any]] = []
        sandbox_orders = self.send("GET", f"{self.sandbox}/__sandbox/orders", what="sandbox")
        sandbox_refunds = self.send("GET", f"{self.sandbox}/__sandbox/refunds", what="sandbox")
        for order in sandbox_orders.json()["orders"]:
            behaviour = order.get("sandbox_behaviour") or {}
            orders.append({**order, "channel": "sandbox", "behaviour": behaviour})
        for refund in sandbox_refunds.json()["refunds"]:
            refunds.append({**refund, "channel": "sandbox"})
        for channel, url in sorted(self.simulators.items()):
            trades = self.send("GET", f"{url}/_sim/trades", what=f"{channel} trades").json()
            for trade in trades["data"]:
                payment_id = trade["out_trade_no"]
                if channel == "stripe":
                    payment_id = (trade.get("extra") or {}).get("client_reference_id")
                if not payment_id or trade.get("orphan"):
                    continue
                orders.append(
                    {
                        **trade,
                        "channel": channel,
                        "channel_trade_no": trade["out_trade_no"],
                        "out_trade_no": payment_id,
                        "behaviour": trade.get("simulate") or {},
                        "notifications": trade.get("notifications") or trade.get("webhooks"),
                    }
                )
                for refund in trade.get("refunds") or []:
                    refund_id = refund["out_refund_no"]
                    if channel == "alipay":  # the book's key: <out_trade_no>:<out_request_no>
                        refund_id = refund_id.removeprefix(f"{trade['out_trade_no']}:")
                    if channel == "stripe":
                        metadata = (refund.get("extra") or {}).get("metadata") or {}
                        refund_id = metadata.get("refund_id", refund_id)
                    refunds.append(
                        {
                            **refund,
                            "channel": channel,
                            "out_refund_no": refund_id,
                            "out_trade_no": payment_id,
                            "notifications": refund.get("notifications") or refund.get("webhooks"),
                        }
                    )
        return orders, refunds

    # -- the whole run -------------------------------------------------------------------

    def run(self) -> Report:
        started = time.perf_counter()
        self.setup()
        self.log(
            f"chaos: {len(self.merchants)} merchants, {self.payments} scenarios, "
            f"concurrency {self.concurrency}"
        )
        driving = time.perf_counter()
        settling_runs = threading.Event()
        settler = threading.Thread(target=self._settlements, args=(settling_runs,), daemon=True)
        settler.start()  # today's settlement runs again and again, racing refunds
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            list(pool.map(self.scenario, self.traces))
        settling_runs.set()
        settler.join()
        driven = time.perf_counter() - driving
        self.finish_unfinished()
        settling = time.perf_counter()
        self.settle(Deadline(self.settle_timeout))
        self.run_settlement()  # once everything is final: what is due now is settled
        snapshot = self.settle(Deadline(self.settle_timeout))
        settled = time.perf_counter() - settling
        Invariants(self, snapshot).verify()
        elapsed = time.perf_counter() - started
        for merchant in self.merchants:
            merchant.receiver.stop()
        summary = self._summary(snapshot, elapsed, driven, settled)
        return Report(
            self.seed,
            self.payments,
            self.concurrency,
            self.violations(),
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
            "  journeys by channel: "
            + _counts(p.channel or "none (balance/coupon only)" for p in plans),
            "  channel payments succeeded by channel: "
            + _counts(
                str(p.get("channel"))
                for p in snap["payments"].values()
                if p.get("channel") and p["status"] == "succeeded"
            ),
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


def _file(snap: dict[str, Any], item: dict[str, Any], mine: set[str]) -> None:
    """Put one trade table item where the snapshot keeps its kind (ledger items of everyone,
    the rest of this run's merchants only)."""
    sk, pk = item["sk"], str(item["pk"])
    if sk == "ENTRY":
        snap["entries"].append(item)
    elif pk.startswith("ACCOUNT#"):
        snap["accounts"].append(item)
    elif item.get("merchant_id") not in mine:
        return
    elif pk.startswith("SETTLEMENT#"):
        snap["settlements"].append(item)
    elif sk in ("PAYMENT", "EVENT", "ORDER", "REFUND", "COUPON"):
        for name in ("instruments", "simulate", "data_object"):
            if isinstance(item.get(name), str):
                item[name] = json.loads(item[name])
        snap[f"{sk.lower()}s"][item["id"]] = item
    elif sk == "BALANCE":
        snap["balances"].append(item)


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
        simulator_notify_schedule=(0.0, 0.5, 1.0, 2.0),
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
