"""`make bench`: complete payments through the local runtime, measured.

Each payment is the whole merchant journey: create the order, pay it through a channel, the
buyer pays at the channel's page (or scans the WeChat Pay QR code at the simulator's /scan
page), the channel's signed notification reaches the callback, the state machine settles,
and the signed ``order.paid`` webhook reaches the merchant's receiver. It runs on every
channel (``CHANNELS``: the sandbox, and the Alipay, WeChat Pay and Stripe simulators, each
in its own protocol), then refunds part of paid orders of each channel: create the refund,
the refund state machine asks the channel, the signed ``refund.succeeded`` webhook arrives
(its transitions are the refund state machine's). The benchmark prints payments per second,
end-to-end latency percentiles, the AWS API calls per payment counted at the SDK (by caller,
service and operation), the DynamoDB write units per payment (counted by item from the write
requests: moto reports no consumed capacity for transactions), the largest transaction
(items in one TransactWriteItems) and Step Functions state transitions per payment, and ends
with one table row per channel.

Two more journeys follow on the sandbox, each measured on its own (same figures):
- a combined payment: coupon + stored balance + the sandbox channel for the rest;
- an internal-only payment, coupon + balance: settled in the API call, no state machine.

    python -m bench [--payments N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from local_runtime.profile import LocalProfile
from local_runtime.runtime import LocalRuntime
from tests.webhook_receiver import WebhookReceiver

CHANNELS = ("sandbox", "alipay", "wechatpay", "stripe")
SANDBOX = [{"type": "channel", "channel": "sandbox"}]
AMOUNT = 1999
COUPON = 300  # the combined and internal journeys: a coupon, the balance, (the channel)
BALANCE_WITH_CHANNEL = 700
REFUND = 500


class Journey:
    """One merchant's session against the runtime, with its webhook receiver."""

    def __init__(self, runtime: LocalRuntime, receiver: WebhookReceiver) -> None:
        self.api = runtime.api_url
        self.simulators = runtime.simulator_urls
        self.receiver = receiver
        onboarded = requests.post(
            f"{self.api}/v1/merchants",
            json={"name": "Bench Shop", "webhook_url": receiver.url},
            headers={"Authorization": f"Bearer {runtime.admin_token}"},
            timeout=30,
        ).json()
        receiver.secret = onboarded["webhook_secret"]
        self.headers = {"Authorization": f"Bearer {onboarded['api_key']}"}
        self.local = threading.local()
        self._counter = 0
        self._lock = threading.Lock()

    def _session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session  # type: ignore[no-any-return]

    def _next_no(self) -> str:
        with self._lock:
            self._counter += 1
            return f"BENCH-{self._counter}"

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self._session().post(
            f"{self.api}{path}", json=body, headers=self.headers, timeout=30
        )
        if answer.status_code >= 300:
            raise RuntimeError(f"POST {path} answered {answer.status_code}: {answer.text}")
        return answer.json()  # type: ignore[no-any-return]

    def _wait_webhook(self, event_type: str, object_id: str) -> None:
        def arrived(receiver: WebhookReceiver) -> bool:
            return any(
                e["data"]["object"]["id"] == object_id for e in receiver.accepted(event_type)
            )

        if not self.receiver.wait_for(arrived, timeout=60):
            raise RuntimeError(f"no {event_type} webhook for {object_id}")

    def _pay(self, instruments: list[dict[str, Any]], buyer_id: str | None = None) -> str:
        """Create an order and pay it (the buyer pays at the channel when there is one) until
        the ``order.paid`` webhook arrives; the payment id."""
        order_body: dict[str, Any] = {
            "merchant_order_no": self._next_no(),
            "amount": AMOUNT,
            "currency": "CNY",
            "subject": "Green tea",
        }
        if buyer_id is not None:
            order_body["buyer_id"] = buyer_id
        order = self._post("/v1/orders", order_body)
        payment = self._post(f"/v1/orders/{order['id']}/payments", {"instruments": instruments})
        if any(instrument["type"] == "channel" for instrument in instruments):
            action = self._next_action(payment)
            if action["type"] == "redirect":
                url = action["url"]
            else:  # a QR code: the WeChat Pay simulator's page stands in for the buyer's phone
                code = quote(action["code_url"], safe="")
                url = f"{self.simulators['wechatpay']}/scan?code_url={code}"
            session = self._session()
            session.post(url, json={"action": "pay"}, timeout=30).raise_for_status()
        elif payment["status"] != "succeeded":
            raise RuntimeError(f"internal payment {payment['id']} is {payment['status']}")
        self._wait_webhook("order.paid", str(order["id"]))
        return str(payment["id"])

    def _next_action(self, payment: dict[str, Any]) -> dict[str, Any]:
        """The payment's next action, waiting for it when the answer came before it."""
        deadline = time.monotonic() + 30
        while not payment.get("next_action"):
            if payment.get("status") != "processing" or time.monotonic() > deadline:
                raise RuntimeError(f"payment {payment.get('id')} had no next_action: {payment}")
            time.sleep(0.2)
            payment = (
                self._session()
                .get(f"{self.api}/v1/payments/{payment['id']}", headers=self.headers, timeout=30)
                .json()
            )
        return payment["next_action"]  # type: ignore[no-any-return]

    def pay_once(self, channel: str = "sandbox") -> tuple[float, str]:
        """One complete payment; (seconds from create to webhook received, payment id)."""
        started = time.perf_counter()
        payment_id = self._pay([{"type": "channel", "channel": channel}])
        return time.perf_counter() - started, payment_id

    def prepare_buyer(self, buyer_id: str, balance: int) -> str:
        """Credit ``buyer_id`` and issue a coupon (setup, not measured); the coupon id."""
        self._post(f"/v1/buyers/{buyer_id}/balance/credits", {"amount": balance, "currency": "CNY"})
        coupon = self._post(
            "/v1/coupons", {"buyer_id": buyer_id, "amount": COUPON, "currency": "CNY"}
        )
        return str(coupon["id"])

    def pay_combined_once(self, buyer_id: str, coupon_id: str) -> tuple[float, str]:
        """Coupon + balance + the channel for the rest, through to the webhook."""
        started = time.perf_counter()
        payment_id = self._pay(
            [
                {"type": "coupon", "coupon_id": coupon_id},
                {"type": "balance", "amount": BALANCE_WITH_CHANNEL},
                *SANDBOX,
            ],
            buyer_id,
        )
        return time.perf_counter() - started, payment_id

    def pay_internal_once(self, buyer_id: str, coupon_id: str) -> tuple[float, str]:
        """Coupon + balance for the whole amount: settled by the API call itself."""
        started = time.perf_counter()
        payment_id = self._pay(
            [
                {"type": "coupon", "coupon_id": coupon_id},
                {"type": "balance", "amount": AMOUNT - COUPON},
            ],
            buyer_id,
        )
        return time.perf_counter() - started, payment_id

    def refund_once(self, order_id: str) -> tuple[float, str]:
        """Refund part of a paid order through the channel, through to the webhook."""
        started = time.perf_counter()
        refund = self._post(f"/v1/orders/{order_id}/refunds", {"amount": REFUND})
        self._wait_webhook("refund.succeeded", str(refund["id"]))
        return time.perf_counter() - started, str(refund["id"])

    def order_of(self, payment_id: str) -> str:
        answer = self._session().get(
            f"{self.api}/v1/payments/{payment_id}", headers=self.headers, timeout=30
        )
        return str(answer.json()["order_id"])


def _paying(journey: Journey, channel: str) -> Callable[[int], tuple[float, str]]:
    return lambda _: journey.pay_once(channel)


def _refunding(journey: Journey, orders: list[str]) -> Callable[[int], tuple[float, str]]:
    return lambda n: journey.refund_once(orders[n])


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def _print_calls(snapshot: dict[str, dict[str, int]], payments: int, unit: str = "payment") -> None:
    print(f"\nAWS API calls per {unit}, counted at the SDK (caller / service:Operation):")
    total = 0
    for caller, operations in snapshot.items():
        subtotal = sum(operations.values())
        total += subtotal
        print(f"  {caller:<32} {subtotal / payments:6.2f}")
        for name, count in sorted(operations.items(), key=lambda item: -item[1]):
            print(f"      {name:<40} {count / payments:6.2f}")
    print(f"  {'all callers':<32} {total / payments:6.2f}")
    print(
        "  (@stepfunctions: the state machine invoking Lambda; @runtime: the local SQS\n"
        "   event-source poller, which Lambda's own poller replaces in AWS)"
    )


def _print_write_units(units: dict[str, dict[str, int]], count: int, unit: str) -> None:
    print(
        f"\nDynamoDB write units per {unit}, by caller (transactional items count twice; "
        "index: Puts carrying an index key):"
    )
    table = index = 0
    for caller, kinds in units.items():
        table += kinds["table"]
        index += kinds["index"]
        print(f"  {caller:<32} {kinds['table'] / count:6.2f}   index {kinds['index'] / count:5.2f}")
    print(f"  {'all callers':<32} {table / count:6.2f}   index {index / count:5.2f}")


@dataclass
class Section:
    """One measured journey, ``count`` times at ``concurrency``."""

    title: str
    unit: str
    results: list[tuple[float, str]]
    elapsed: float
    snapshot: dict[str, dict[str, int]]
    transitions: list[int]
    units: dict[str, dict[str, int]]
    largest: dict[str, int]
    note: str = ""

    @property
    def calls_per_unit(self) -> float:
        return sum(sum(ops.values()) for ops in self.snapshot.values()) / len(self.results)

    @property
    def write_units_per_unit(self) -> tuple[float, float]:
        count = len(self.results)
        table = sum(kinds["table"] for kinds in self.units.values())
        index = sum(kinds["index"] for kinds in self.units.values())
        return table / count, index / count


def _transitions(runtime: LocalRuntime, machine_output: str, name: str) -> int:
    """Billed transitions of the execution ``name`` (0 when none was started)."""
    machine = str(runtime.outputs()[machine_output])
    arn = machine.replace(":stateMachine:", ":execution:") + ":" + name
    try:
        return runtime.state_transitions(arn)
    except Exception as exc:  # ExecutionDoesNotExist: the journey started no execution
        if "ExecutionDoesNotExist" in repr(exc) or "does not exist" in str(exc).lower():
            return 0
        raise


def _measure(
    runtime: LocalRuntime,
    title: str,
    journey: Callable[[int], tuple[float, str]],
    *,
    unit: str,
    count: int,
    concurrency: int,
    machine_output: str,
    note: str = "",
) -> Section:
    time.sleep(0.5)  # let the setup's webhooks and SQS deletes land before counting
    runtime.reset_sdk_calls()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(journey, range(count)))
    elapsed = time.perf_counter() - started
    time.sleep(1.0)  # let the last SQS deletes land in the counts
    snapshot = runtime.sdk_call_snapshot()
    units = runtime.write_units()
    largest = runtime.largest_transactions()
    transitions = [_transitions(runtime, machine_output, name) for _, name in results]
    return Section(title, unit, results, elapsed, snapshot, transitions, units, largest, note)


def _print_section(section: Section, concurrency: int, header: str | None = None) -> None:
    count = len(section.results)
    unit = section.unit
    latencies = [seconds * 1000 for seconds, _ in section.results]
    print(header or f"\n== {section.title}: {count} {unit}s, concurrency {concurrency} ==")
    print(f"  {unit + 's/s':<24}{count / section.elapsed:8.2f}")
    print(f"  end-to-end latency p50  {_percentile(latencies, 0.50):8.1f} ms")
    print(f"  end-to-end latency p95  {_percentile(latencies, 0.95):8.1f} ms")
    print(f"  end-to-end latency p99  {_percentile(latencies, 0.99):8.1f} ms")
    transitions = section.transitions
    print(
        f"  state transitions/{unit} {statistics.mean(transitions):6.2f} "
        f"(min {min(transitions)}, max {max(transitions)}){section.note}"
    )
    _print_calls(section.snapshot, count, unit)
    _print_write_units(section.units, count, unit)
    print(
        "\nLargest transaction (items in one TransactWriteItems, of 100 allowed): "
        + (", ".join(f"{caller} {n}" for caller, n in section.largest.items()) or "none")
    )


def _print_channels(
    payments: dict[str, Section], refunds: dict[str, Section], concurrency: int
) -> None:
    """One row per channel: its payments, then its refunds."""
    count = len(next(iter(payments.values())).results)
    print(
        f"\n== per channel: {count} payments and {count} refunds each, concurrency {concurrency} =="
    )
    print(
        "| channel | payments/s | p50 / p95 ms | transitions | AWS calls | write units "
        "(table + index) | largest transaction | refund: transitions | AWS calls | write units |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for channel, paid in payments.items():
        refunded = refunds[channel]
        latencies = [seconds * 1000 for seconds, _ in paid.results]
        table, index = paid.write_units_per_unit
        refund_table, refund_index = refunded.write_units_per_unit
        largest = max([*paid.largest.values(), *refunded.largest.values()], default=0)
        print(
            f"| {channel} | {count / paid.elapsed:.2f} | "
            f"{_percentile(latencies, 0.50):.0f} / {_percentile(latencies, 0.95):.0f} | "
            f"{statistics.mean(paid.transitions):.2f} | {paid.calls_per_unit:.1f} | "
            f"{table:.1f} + {index:.1f} | {largest} items | "
            f"{statistics.mean(refunded.transitions):.2f} | {refunded.calls_per_unit:.1f} | "
            f"{refund_table:.1f} + {refund_index:.1f} |"
        )


def run(payments: int, concurrency: int) -> int:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aws_lambda_powertools").setLevel(logging.ERROR)
    profile = LocalProfile.free_ports(function_log_level="ERROR")
    receiver = WebhookReceiver().start()
    with LocalRuntime(profile=profile) as runtime:
        journey = Journey(runtime, receiver)
        channels: dict[str, Section] = {}
        for name in CHANNELS:
            for _ in range(min(3, payments)):  # warm every function's first container
                journey.pay_once(name)
            channels[name] = _measure(
                runtime,
                f"channel payment ({name})",
                _paying(journey, name),
                unit="payment",
                count=payments,
                concurrency=concurrency,
                machine_output="PaymentStateMachineArn",
            )

        # Setup, not measured: a coupon and a balance per buyer, then one warm-up each.
        combined_buyers = [
            (f"bench-mix-{n}", journey.prepare_buyer(f"bench-mix-{n}", BALANCE_WITH_CHANNEL))
            for n in range(payments + 1)
        ]
        internal_buyers = [
            (f"bench-int-{n}", journey.prepare_buyer(f"bench-int-{n}", AMOUNT - COUPON))
            for n in range(payments + 1)
        ]
        journey.pay_combined_once(*combined_buyers.pop())
        journey.pay_internal_once(*internal_buyers.pop())
        combined = _measure(
            runtime,
            "combined payment: coupon + balance + channel (sandbox)",
            lambda n: journey.pay_combined_once(*combined_buyers[n]),
            unit="payment",
            count=payments,
            concurrency=concurrency,
            machine_output="PaymentStateMachineArn",
        )

        refunds: dict[str, Section] = {}
        for name in CHANNELS:
            # Setup, not measured: paid orders to refund (two of them warm the refund worker).
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                paid = list(pool.map(_paying(journey, name), range(payments + 2)))
            orders = [journey.order_of(payment_id) for _, payment_id in paid]
            for order_id in orders[payments:]:
                journey.refund_once(order_id)
            refunds[name] = _measure(
                runtime,
                f"refund of a paid order through the channel ({name}, {REFUND} of {AMOUNT})",
                _refunding(journey, orders),
                unit="refund",
                count=payments,
                concurrency=concurrency,
                machine_output="RefundStateMachineArn",
                note="  (refund state machine)",
            )

        internal = _measure(
            runtime,
            "internal-only payment: coupon + balance",
            lambda n: journey.pay_internal_once(*internal_buyers[n]),
            unit="payment",
            count=payments,
            concurrency=concurrency,
            machine_output="PaymentStateMachineArn",
            note="  (no execution is started)",
        )
    receiver.stop()

    print(f"paycore bench: {payments} complete payments per journey, concurrency {concurrency}")
    for section in (*channels.values(), combined, *refunds.values(), internal):
        _print_section(section, concurrency)
    _print_channels(channels, refunds, concurrency)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--payments", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    if args.payments < 1 or args.concurrency < 1:
        parser.error("--payments and --concurrency must be at least 1")
    return run(args.payments, args.concurrency)


if __name__ == "__main__":
    sys.exit(main())
