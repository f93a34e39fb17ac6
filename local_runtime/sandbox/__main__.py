"""Run the sandbox channel on its own, for a quick look or a manual test.

    python -m local_runtime.sandbox --port 3100 --secret "$SANDBOX_CHANNEL_SECRET"

The local runtime starts it in-process instead; this entry point is only a convenience.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading

from local_runtime.sandbox.server import DEFAULT_NOTIFY_SCHEDULE, SandboxServer


def _schedule(value: str) -> tuple[float, ...]:
    return tuple(float(part) for part in value.split(",") if part.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description="The paycore sandbox payment channel.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3100)
    parser.add_argument(
        "--secret",
        default=os.environ.get("SANDBOX_CHANNEL_SECRET", ""),
        help="shared HMAC secret (default: $SANDBOX_CHANNEL_SECRET)",
    )
    parser.add_argument(
        "--notify-schedule",
        type=_schedule,
        default=DEFAULT_NOTIFY_SCHEDULE,
        help="comma-separated delays in seconds before each notification attempt",
    )
    args = parser.parse_args()
    if not args.secret:
        parser.error("give --secret or set SANDBOX_CHANNEL_SECRET")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = SandboxServer(args.host, args.port, args.secret, args.notify_schedule)
    server.start()
    print(f"sandbox channel on {server.url} (debug view: {server.url}/__sandbox/orders)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
