"""Run the Stripe simulator on its own, for a manual look:

    python -m local_runtime.simulators.stripe [--port 3103] [--account stripe-main ...]
        [--webhook-url stripe-main=http://127.0.0.1:3000/callbacks/stripe/stripe-main]

The port defaults to $PAYCORE_STRIPE_PORT, else 3103. The local runtime starts the simulator
in-process instead; this entry point is only a convenience. It prints each account's
credentials (as ``GET /_sim/accounts`` does): they are local test keys, fresh per start.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import threading

from local_runtime.simulators.stripe.simulator import DEFAULT_PORT, StripeSimulator


def _webhook(value: str) -> tuple[str, str]:
    account, separator, url = value.partition("=")
    if not separator or not account or not url:
        raise argparse.ArgumentTypeError("give ACCOUNT=URL")
    return account, url


def main() -> None:
    parser = argparse.ArgumentParser(description="A local Stripe for paycore.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("PAYCORE_STRIPE_PORT", DEFAULT_PORT))
    )
    parser.add_argument(
        "--account", action="append", dest="accounts", help="an account id (repeatable)"
    )
    parser.add_argument(
        "--webhook-url", action="append", type=_webhook, default=[], help="ACCOUNT=URL"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    simulator = StripeSimulator(
        args.host,
        args.port,
        accounts=args.accounts or ["stripe-default"],
        webhook_urls=dict(args.webhook_url),
    )
    simulator.start()
    print(f"Stripe simulator on {simulator.url} (debug view: {simulator.url}/_sim/trades)")
    print(json.dumps(simulator.accounts(), indent=2))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()


if __name__ == "__main__":
    main()
