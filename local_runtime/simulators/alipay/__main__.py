"""Run the Alipay simulator on its own, for a quick look or a manual test.

    python -m local_runtime.simulators.alipay --port 3101 --accounts alipay-primary,alipay-backup

The port defaults to $PAYCORE_ALIPAY_PORT (else 3101). The local runtime starts the
simulator in-process instead; this entry point is only a convenience.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading

from local_runtime.simulators.alipay.simulator import AlipaySimulator
from local_runtime.simulators.common.delivery import ALIPAY_NOTIFY_SCHEDULE


def _schedule(value: str) -> tuple[float, ...]:
    return tuple(float(part) for part in value.split(",") if part.strip())


def _accounts(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description="The paycore Alipay simulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("PAYCORE_ALIPAY_PORT", "3101"))
    )
    parser.add_argument(
        "--accounts",
        type=_accounts,
        default=["alipay-primary", "alipay-backup"],
        help="comma-separated routing account ids (one Alipay app each)",
    )
    parser.add_argument(
        "--notify-schedule",
        type=_schedule,
        default=ALIPAY_NOTIFY_SCHEDULE,
        help="comma-separated delays in seconds before each notification attempt "
        "(default: Alipay's, 0 then 4m, 10m, 10m, 1h, 2h, 6h, 15h)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    simulator = AlipaySimulator(
        args.host, args.port, accounts=args.accounts, notify_schedule=args.notify_schedule
    )
    simulator.start()
    print(
        f"Alipay simulator on {simulator.url}: gateway {simulator.url}/gateway.do, "
        f"credentials at {simulator.url}/_sim/accounts, debug view {simulator.url}/_sim/trades"
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()


if __name__ == "__main__":
    main()
