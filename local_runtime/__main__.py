"""``python -m local_runtime`` (``make run``): serve template.yaml locally until Ctrl-C.

Exit codes: 0 after Ctrl-C/SIGTERM, 1 if the template cannot be run, 2 if a port is taken
or the environment is invalid.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from local_runtime.profile import LocalProfile
from local_runtime.runtime import DEFAULT_TEMPLATE, LocalRuntime, PortInUseError, busy_ports
from local_runtime.template import TemplateError

# A first payment, webhook included, once API and ADMIN are exported. README.md ("A payment,
# with curl") shows the same lines; tests/infra/test_docs.py keeps the two in step.
WALKTHROUGH = (
    "# 1. Onboard a merchant: its api_key and webhook_secret are shown in this answer only.",
    'curl -s -X POST $API/v1/merchants -H "Authorization: Bearer $ADMIN" \\',
    "  -H 'Content-Type: application/json' \\",
    """  -d '{"name": "Tea Shop", "webhook_url": "http://127.0.0.1:8000/webhooks"}'""",
    "export KEY=<api_key from that answer>",
    "# 2. In another terminal, receive the webhooks (docs/examples/webhook_receiver.py):",
    "PAYCORE_WEBHOOK_SECRET=<webhook_secret from step 1> "
    ".venv/bin/python docs/examples/webhook_receiver.py",
    "# 3. Create an order: 19.99 CNY, in minor units.",
    'curl -s -X POST $API/v1/orders -H "Authorization: Bearer $KEY" \\',
    "  -H 'Content-Type: application/json' -H 'Idempotency-Key: order-A-1001' \\",
    """  -d '{"merchant_order_no": "A-1001", "amount": 1999, "currency": "CNY", """
    """"subject": "Green tea"}'""",
    "export ORDER=<id from that answer>",
    "# 4. Pay it: send the buyer to the order's cashier_url (any channel, in a browser), or",
    "#    pay through the sandbox channel here: the answer carries next_action.url.",
    'curl -s -X POST $API/v1/orders/$ORDER/payments -H "Authorization: Bearer $KEY" \\',
    "  -H 'Content-Type: application/json' \\",
    """  -d '{"instruments": [{"type": "channel", "channel": "sandbox"}]}'""",
    "export PAY_URL=<next_action.url from that answer>",
    "# 5. Be the buyer: open $PAY_URL in a browser and choose Pay, or:",
    """curl -s -X POST "$PAY_URL" -H 'Content-Type: application/json' -d '{"action": "pay"}'""",
    "# 6. The order is paid, and the receiver prints the order.paid event.",
    'curl -s $API/v1/orders/$ORDER -H "Authorization: Bearer $KEY"',
)


# How the banner names each channel's local simulator.
SIMULATOR_NAMES = {"alipay": "Alipay", "wechatpay": "WeChat Pay", "stripe": "Stripe"}


def banner(runtime: LocalRuntime) -> str:
    """What a developer needs to start using the running backend."""
    api, token, moto = runtime.api_url, runtime.admin_token, runtime.moto_endpoint
    tables = runtime.stack.of_type("AWS::DynamoDB::Table")
    token_note = (
        "generated; set PAYCORE_ADMIN_TOKEN to choose one"
        if runtime.profile.admin_token_generated
        else "from PAYCORE_ADMIN_TOKEN"
    )
    sandbox = runtime.sandbox_url or f"not running: {runtime.sandbox_error}"
    lines = [
        "",
        f"paycore is running locally (ready in {runtime.started_in_seconds:.1f} s)",
        "",
        f"  API          {api}   (GET {api}/health)",
        f"  Admin token  {token}   ({token_note})",
        f"  AWS (moto)   {moto}   (any credentials, region {runtime.region})",
    ]
    if tables:
        lines.append(
            "               AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
            f"aws --region {runtime.region} --endpoint-url {moto} "
            f"dynamodb scan --table-name {shlex.quote(str(tables[0].ref))}"
        )
    lines.append(f"  Sandbox      {sandbox}")
    for channel, url in runtime.simulator_urls.items():
        lines.append(
            f"  {SIMULATOR_NAMES.get(channel, channel):<12} {url}   (GET {url}/_sim/accounts)"
        )
    filled = ", ".join(runtime.channel_accounts_filled) or "none"
    lines.append(f"  Channel accounts with local credentials: {filled}")
    outputs = runtime.outputs()
    if outputs:
        lines += ["", "Stack outputs:"]
        lines += [f"  {name:<32} {value}" for name, value in outputs.items()]
    lines += [
        "",
        "Try it (README.md, docs/getting-started.md):",
        f"  export API={api} ADMIN={token}",
        *(f"  {line}" for line in WALKTHROUGH),
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local_runtime",
        description="Serve the paycore backend of a SAM template locally (moto, no Docker).",
    )
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="SAM template")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.verbose:  # show the Step Functions interpreter's failure dumps too
        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.INFO)

    try:
        profile = LocalProfile.from_env()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    taken = busy_ports(profile)
    if taken:
        for error in taken:
            print(f"error: {error}", file=sys.stderr)
        return 2

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    runtime = LocalRuntime(args.template, profile)
    try:
        runtime.start()
    except PortInUseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TemplateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(banner(runtime), flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        logging.getLogger("local_runtime").info("stopping")
        runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
