"""The merchant guide (docs/, README.md) stays true to the code: every error code the API can
answer is documented and nothing else, every route and event is named, every link resolves
inside the repository, the README and the `make run` banner walk through the same steps, and
the example webhook receiver really receives and verifies signed webhooks."""

from __future__ import annotations

import ast
import base64
import json
import os
import queue
import re
import secrets
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from standardwebhooks import Webhook

from local_runtime.__main__ import WALKTHROUGH, banner
from paycore.channels.simulate import SimulateSwitches
from paycore.channels.stripe.transformers import WEBHOOK_EVENTS
from paycore.webhooks import post_webhook
from tests.support import ROOT, FakeContext, load_function, load_template, rest_event

DOCS = ROOT / "docs"
ERRORS = DOCS / "errors.md"
RECEIVER = DOCS / "examples" / "webhook_receiver.py"
GUIDE = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
# Not the project's own files: version control, environments, caches.
NOT_SCANNED = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
NOT_SCANNED |= {".aws-sam", ".paycore", "node_modules"}


# -- the OpenAPI description, as GET /openapi.json serves it ------------------------------


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    answer = load_function("api").lambda_handler(rest_event("GET", "/openapi.json"), FakeContext())
    assert answer["statusCode"] == 200
    return dict(json.loads(answer["body"]))


def _spec_codes(spec: dict[str, Any]) -> dict[str, set[int]]:
    """Every problem code of the description, with the statuses it comes with."""
    codes: dict[str, set[int]] = {}
    for operations in spec["paths"].values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                schema = response["content"]["application/problem+json"]["schema"]
                for code in schema["allOf"][1]["properties"]["code"]["enum"]:
                    codes.setdefault(code, set()).add(int(status))
    return codes


# -- docs/errors.md ------------------------------------------------------------------------


def _table_rows(text: str, first_header: str) -> list[list[str]]:
    """The rows of every markdown table whose first column is headed ``first_header``."""
    rows: list[list[str]] = []
    in_table = False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == first_header:
            in_table = True
        elif in_table and not set(cells[0]) <= {"-", ":"}:
            rows.append(cells)
    return rows


def _documented_problem_codes() -> dict[str, set[int]]:
    documented: dict[str, set[int]] = {}
    for cells in _table_rows(ERRORS.read_text(), "code"):
        code = cells[0].strip("`")
        assert code not in documented, f"{code} is documented twice"
        documented[code] = {int(status) for status in re.findall(r"\d{3}", cells[1])}
    return documented


def _documented_failure_codes() -> list[str]:
    return [cells[0].strip("`") for cells in _table_rows(ERRORS.read_text(), "failure_code")]


def _layer_strings() -> set[str]:
    """Every string literal of the paycore package (the codes it can raise or record)."""
    found: set[str] = set()
    for path in (ROOT / "layers" / "paycore" / "paycore").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return found


def test_every_code_of_the_description_is_in_errors_md_with_its_statuses(
    spec: dict[str, Any],
) -> None:
    described = _spec_codes(spec)
    documented = _documented_problem_codes()
    assert len(described) > 30  # the parsing found the codes
    missing = sorted(set(described) - set(documented))
    assert not missing, f"docs/errors.md does not document {missing}"
    for code, statuses in described.items():
        assert documented[code] == statuses, (code, "documented", documented[code], statuses)


def test_every_code_errors_md_names_is_one_the_api_or_its_workflows_can_give(
    spec: dict[str, Any],
) -> None:
    described = set(_spec_codes(spec))
    literals = _layer_strings()
    documented = set(_documented_problem_codes())
    unknown = sorted(code for code in documented if code not in described | literals)
    assert not unknown, f"docs/errors.md names codes nothing answers: {unknown}"
    failures = _documented_failure_codes()
    assert len(failures) >= 10
    assert not [code for code in failures if code not in literals]


# -- routes, events and switches -----------------------------------------------------------


def test_api_md_names_every_route_of_the_description(spec: dict[str, Any]) -> None:
    text = (DOCS / "api.md").read_text()
    for path, operations in spec["paths"].items():
        for method in operations:
            assert re.search(rf"`{method.upper()} {re.escape(path)}[`?]", text), (method, path)


def test_webhooks_md_names_every_event_type(spec: dict[str, Any]) -> None:
    rows = _table_rows((DOCS / "webhooks.md").read_text(), "type")
    assert {cells[0].strip("`") for cells in rows} == set(spec["webhooks"])


def test_channels_md_subscribes_stripe_to_exactly_the_events_paycore_needs() -> None:
    text = (DOCS / "channels.md").read_text()
    unindented = "\n".join(line.strip() for line in text.splitlines())  # a list item's table
    rows = _table_rows(unindented, "event")
    assert [cells[0].strip("`") for cells in rows] == list(WEBHOOK_EVENTS)


def test_sandbox_md_describes_every_misbehaviour_switch() -> None:
    rows = _table_rows((DOCS / "sandbox.md").read_text(), "switch")
    assert {cells[0].strip("`") for cells in rows} == set(SimulateSwitches.model_fields)


# -- links and the team-only contract ------------------------------------------------------


def _repository_files() -> Iterator[Path]:
    """Every file of the repository but tests/ (which names what it checks)."""
    for directory, subdirectories, files in os.walk(ROOT):
        skipped = NOT_SCANNED | ({"tests"} if Path(directory) == ROOT else set())
        subdirectories[:] = [d for d in subdirectories if d not in skipped]
        for name in files:
            yield Path(directory) / name


def test_nothing_outside_tests_points_at_the_team_only_contract() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in _repository_files()
        if b"../shared" in path.read_bytes()
    ]
    assert not offenders


_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(markdown: Path) -> set[str]:
    text = _FENCE.sub("", markdown.read_text())
    return {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def _links() -> list[tuple[Path, str]]:
    found = []
    for page in GUIDE:
        for target in _LINK.findall(_FENCE.sub("", page.read_text())):
            found.append((page, target))
    return found


def test_every_relative_link_of_the_guide_resolves_inside_the_repository() -> None:
    links = _links()
    assert len(links) > 20
    for page, target in links:
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            assert target.startswith("https://"), (page.name, target)
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        assert resolved.is_relative_to(ROOT), (page.name, target)
        assert resolved.exists(), (page.name, target)
        if anchor:
            assert anchor in _anchors(resolved), (page.name, target)


# -- the README: where things live, and the walk-through -----------------------------------


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_the_readme_table_names_every_function_and_state_machine() -> None:
    table = _readme_section("Where things live")
    functions = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
    assert len(functions) >= 8
    for name in functions:
        assert f"`functions/{name}/app.py`" in table, name
    resources = load_template()["Resources"]
    for logical_id, resource in resources.items():
        if resource["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            assert f"`{logical_id}`" in table, logical_id
    machines = sorted((ROOT / "statemachines").glob("*.asl.json"))
    assert len(machines) >= 2
    for machine in machines:
        assert f"`statemachines/{machine.name}`" in table, machine.name


def _walkthrough_block() -> list[str]:
    section = _readme_section("A payment, with curl")
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return block.group(1).splitlines()


def test_the_readme_walks_through_exactly_what_the_make_run_banner_prints() -> None:
    lines = _walkthrough_block()
    assert re.fullmatch(r"export API=http://127\.0\.0\.1:3000 ADMIN=<.+>", lines[0])
    assert lines[1:] == list(WALKTHROUGH)
    runtime = SimpleNamespace(
        api_url="http://127.0.0.1:3000",
        admin_token="t0ken",
        moto_endpoint="http://127.0.0.1:5000",
        region="us-east-1",
        stack=SimpleNamespace(of_type=lambda kind: []),
        profile=SimpleNamespace(admin_token_generated=True),
        sandbox_url="http://127.0.0.1:3100",
        sandbox_error=None,
        channel_accounts_filled=["sandbox-primary", "sandbox-backup"],
        simulator_urls={"alipay": "http://127.0.0.1:3101"},
        started_in_seconds=1.0,
        outputs=dict,
    )
    printed = banner(runtime)  # type: ignore[arg-type]
    expected = ["export API=http://127.0.0.1:3000 ADMIN=t0ken", *WALKTHROUGH]
    assert "\n".join(f"  {line}" for line in expected) in printed


def test_the_walkthrough_starts_the_example_receiver_where_the_merchant_sends_webhooks() -> None:
    text = "\n".join(WALKTHROUGH)
    assert '"webhook_url": "http://127.0.0.1:8000/webhooks"' in text
    assert "PAYCORE_WEBHOOK_SECRET=" in text
    assert f"python {RECEIVER.relative_to(ROOT)}" in text
    assert "else 8000" in RECEIVER.read_text()  # its default port is the one onboarded
    assert text.index("webhook_receiver.py") < text.index("/payments")  # before any event


# -- the example webhook receiver ----------------------------------------------------------


class Receiver:
    """docs/examples/webhook_receiver.py, run as the guide runs it, on a free port."""

    def __init__(self, secret: str) -> None:
        env = {**os.environ, "PAYCORE_WEBHOOK_SECRET": secret}
        self.process = subprocess.Popen(
            [sys.executable, str(RECEIVER), "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self.next_line()
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+/webhooks)", first)
        assert match, first
        self.url = match.group(1)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout: float = 10.0) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            self.process.kill()
            _, errors = self.process.communicate(timeout=5)
            raise AssertionError(f"the receiver printed nothing; stderr: {errors}") from None

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as refused:
            refused.close()
            return int(refused.code)

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=10)
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        return "\n".join(rest)


def _event(event_id: str, event_type: str = "order.paid") -> bytes:
    order = {"id": "ord_01test", "object": "order", "merchant_order_no": "A-1", "status": "paid"}
    payload = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created_at": "2026-12-06T08:00:00.000Z",
        "data": {"object": order},
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def _signed(secret: str, event_id: str, body: bytes, at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(event_id, at, body.decode())
    return {
        "Content-Type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


@pytest.fixture
def webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def receiver(webhook_secret: str) -> Iterator[Receiver]:
    started = Receiver(webhook_secret)
    yield started
    if started.process.poll() is None:
        started.stop()


def test_the_example_receiver_verifies_prints_and_dedupes_signed_webhooks(
    receiver: Receiver, webhook_secret: str
) -> None:
    body = _event("evt_first")
    headers = _signed(webhook_secret, "evt_first", body)

    assert receiver.post(body, headers) == 204
    kind, event_id, data = receiver.next_line().split(" ", 2)
    assert (kind, event_id) == ("order.paid", "evt_first")
    assert json.loads(data)["merchant_order_no"] == "A-1"

    assert receiver.post(body, headers) == 204  # a retry: acknowledged, not handled twice
    second = _event("evt_second", "refund.succeeded")
    assert receiver.post(second, _signed(webhook_secret, "evt_second", second)) == 204
    assert receiver.next_line().startswith("refund.succeeded evt_second ")
    assert receiver.stop() == ""


def test_the_example_receiver_refuses_what_is_not_signed_with_the_secret(
    receiver: Receiver, webhook_secret: str
) -> None:
    body = _event("evt_forged")
    good = _signed(webhook_secret, "evt_forged", body)
    other_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    refused = {
        "unsigned": {"Content-Type": "application/json"},
        "signed with another secret": _signed(other_secret, "evt_forged", body),
        "a garbled signature": {**good, "webhook-signature": "not a signature"},
        "stale": _signed(
            webhook_secret, "evt_forged", body, datetime.now(UTC) - timedelta(minutes=10)
        ),
    }
    for why, headers in refused.items():
        assert receiver.post(body, headers) == 401, why
    assert receiver.post(body.replace(b"A-1", b"A-2"), good) == 401  # tampered body
    assert receiver.stop() == ""  # nothing was handled


def test_the_example_receiver_accepts_what_paycore_itself_sends(
    receiver: Receiver, webhook_secret: str
) -> None:
    body = _event("evt_from_paycore", "order.closed")

    result = post_webhook(
        receiver.url,
        [webhook_secret],
        "evt_from_paycore",
        body,
        timeout=10,
        allow_private_targets=True,
    )

    assert result.delivered and result.status_code == 204
    assert receiver.next_line().startswith("order.closed evt_from_paycore ")
