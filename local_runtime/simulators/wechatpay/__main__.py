"""Run the WeChat Pay simulator on its own, for a quick look or a manual test.

    python -m local_runtime.simulators.wechatpay [--port 3102] [--account wechatpay-main ...]

The port defaults to $PAYCORE_WECHATPAY_PORT, else 3102. The local runtime starts the simulator
in-process instead; this entry point is only a convenience. It prints where the accounts'
credentials are listed; it never prints the credentials themselves.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading

from local_runtime.simulators.common.delivery import LOCAL_NOTIFY_SCHEDULE
from local_runtime.simulators.wechatpay.simulator import WechatPaySimulator

DEFAULT_PORT = 3102


def _schedule(value: str) -> tuple[float, ...]:
    return tuple(float(part) for part in value.split(",") if part.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description="The local WeChat Pay API v3 simulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PAYCORE_WECHATPAY_PORT") or DEFAULT_PORT),
        help=f"default: $PAYCORE_WECHATPAY_PORT, else {DEFAULT_PORT}",
    )
    parser.add_argument(
        "--account",
        action="append",
        dest="accounts",
        help="a routing account id (repeat for several; default: wechatpay-main)",
    )
    parser.add_argument(
        "--notify-schedule",
        type=_schedule,
        default=None,
        help="comma-separated delays in seconds before each notification attempt "
        "(default: WeChat Pay's own, 15 attempts over a day; e.g. "
        + ",".join(f"{delay:g}" for delay in LOCAL_NOTIFY_SCHEDULE)
        + " for quick local runs)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    simulator = WechatPaySimulator(
        args.host,
        args.port,
        accounts=args.accounts or ["wechatpay-main"],
        notify_schedule=args.notify_schedule,
    )
    simulator.start()
    print(
        f"WeChat Pay simulator on {simulator.url} "
        f"(credentials: {simulator.url}/_sim/accounts, debug view: {simulator.url}/_sim/trades)"
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()


if __name__ == "__main__":
    main()
