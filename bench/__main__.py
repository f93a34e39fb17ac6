"""`make bench`: complete payments through the local runtime, measured.

Each payment is the whole merchant journey: create the order, pay it through the sandbox
channel, the buyer pays at the sandbox's page, the channel's signed notification reaches the
callback, the state machine settles, and the signed ``order.paid`` webhook reaches the
merchant's receiver. The benchmark prints payments per second, end-to-end latency
percentiles, the AWS API calls per payment counted at the SDK (by caller, service and
operation) and Step Functions state transitions per payment.

    python -m bench [--payments N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from local_runtime.profile import LocalProfile
from local_runtime.runtime import LocalRuntime
from tests.webhook_receiver import WebhookReceiver

SANDBOX = [{"type": "channel", "channel": "sandbox"}]


class Journey:
    """One merchant's session against the runtime, with its webhook receiver."""

    def __init__(self, runtime: LocalRuntime, receiver: WebhookReceiver) -> None:
        self.api = runtime.api_url
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

    def pay_once(self) -> tuple[float, str]:
        """One complete payment; (seconds from create to webhook received, payment id)."""
        session = self._session()
        started = time.perf_counter()
        order = session.post(
            f"{self.api}/v1/orders",
            json={
                "merchant_order_no": self._next_no(),
                "amount": 1999,
                "currency": "CNY",
                "subject": "Green tea",
            },
            headers=self.headers,
            timeout=30,
        ).json()
        payment = session.post(
            f"{self.api}/v1/orders/{order['id']}/payments",
            json={"instruments": SANDBOX},
            headers=self.headers,
            timeout=30,
        ).json()
        action = payment.get("next_action")
        if not action:
            raise RuntimeError(f"payment {payment.get('id')} had no next_action: {payment}")
        session.post(action["url"], json={"action": "pay"}, timeout=30).raise_for_status()

        def webhook_arrived(receiver: WebhookReceiver) -> bool:
            return any(
                e["data"]["object"]["id"] == order["id"] for e in receiver.accepted("order.paid")
            )

        if not self.receiver.wait_for(webhook_arrived, timeout=60):
            raise RuntimeError(f"no order.paid webhook for {order['id']}")
        return time.perf_counter() - started, str(payment["id"])


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def _print_calls(snapshot: dict[str, dict[str, int]], payments: int) -> None:
    print("\nAWS API calls per payment, counted at the SDK (caller / service:Operation):")
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


def run(payments: int, concurrency: int) -> int:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aws_lambda_powertools").setLevel(logging.ERROR)
    profile = LocalProfile.from_env(
        api_port=0, moto_port=0, sandbox_port=0, function_log_level="ERROR"
    )
    receiver = WebhookReceiver().start()
    with LocalRuntime(profile=profile) as runtime:
        journey = Journey(runtime, receiver)
        for _ in range(min(3, payments)):  # warm every function's first container
            journey.pay_once()
        time.sleep(0.5)
        runtime.reset_sdk_calls()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            results = list(pool.map(lambda _: journey.pay_once(), range(payments)))
        elapsed = time.perf_counter() - started
        time.sleep(1.0)  # let the last SQS deletes land in the counts
        snapshot = runtime.sdk_call_snapshot()
        machine = runtime.outputs()["PaymentStateMachineArn"]
        execution_prefix = machine.replace(":stateMachine:", ":execution:")
        transitions = [runtime.state_transitions(f"{execution_prefix}:{pid}") for _, pid in results]
    receiver.stop()

    latencies = [seconds * 1000 for seconds, _ in results]
    print(f"paycore bench: {payments} complete payments, concurrency {concurrency}")
    print(f"  payments/s              {payments / elapsed:8.2f}")
    print(f"  end-to-end latency p50  {_percentile(latencies, 0.50):8.1f} ms")
    print(f"  end-to-end latency p95  {_percentile(latencies, 0.95):8.1f} ms")
    print(f"  end-to-end latency p99  {_percentile(latencies, 0.99):8.1f} ms")
    print(
        f"  state transitions/payment {statistics.mean(transitions):6.2f} "
        f"(min {min(transitions)}, max {max(transitions)})"
    )
    _print_calls(snapshot, payments)
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
