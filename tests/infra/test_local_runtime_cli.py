"""``python -m local_runtime``: refuses taken ports with a clear message and exit code 2,
serves until Ctrl-C, then stops everything and exits 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Resources:
  HealthFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: health/
      Handler: app.lambda_handler
      Runtime: python3.13
      Events:
        Health:
          Type: Api
          Properties: {Path: /health, Method: GET}
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
"""

HANDLER = """
def lambda_handler(event, context):
    return {"statusCode": 200, "body": '{"status": "ok"}'}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def template(tmp_path: Path) -> Path:
    (tmp_path / "health").mkdir()
    (tmp_path / "health" / "app.py").write_text(textwrap.dedent(HANDLER))
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    return path


@pytest.fixture
def ports() -> dict[str, str]:
    return {
        "PAYCORE_PORT": str(free_port()),
        "PAYCORE_MOTO_PORT": str(free_port()),
        "PAYCORE_SANDBOX_PORT": str(free_port()),
        "PAYCORE_ALIPAY_PORT": str(free_port()),
        "PAYCORE_WECHATPAY_PORT": str(free_port()),
        "PAYCORE_STRIPE_PORT": str(free_port()),
    }


def cli_env(ports: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYCORE_", "AWS_"))}
    env.update(ports)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "paycore"), str(ROOT)])
    env["PAYCORE_ADMIN_TOKEN"] = "cli-admin-token"
    return env


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_taken_port_is_refused_with_the_variable_to_change(
    template: Path, ports: dict[str, str], taken_port: int
) -> None:
    ports["PAYCORE_PORT"] = str(taken_port)

    finished = subprocess.run(
        [sys.executable, "-m", "local_runtime", "--template", str(template)],
        cwd=ROOT,
        env=cli_env(ports),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 2, finished.stderr
    assert f"port {taken_port} is already in use; set PAYCORE_PORT=" in finished.stderr


def test_serves_until_interrupted_then_stops_and_exits_zero(
    template: Path, ports: dict[str, str]
) -> None:
    api = f"http://127.0.0.1:{ports['PAYCORE_PORT']}"
    process = subprocess.Popen(
        [sys.executable, "-m", "local_runtime", "--template", str(template)],
        cwd=ROOT,
        env=cli_env(ports),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = requests.get(f"{api}/health", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert health is not None, process.stderr.read() if process.stderr else ""
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}

        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, stderr
    assert api in stdout
    assert "cli-admin-token" in stdout
    assert f"--endpoint-url http://127.0.0.1:{ports['PAYCORE_MOTO_PORT']}" in stdout
    assert "dynamodb scan --table-name paycore-local-Table-" in stdout
    assert "GET /health 200" in stderr
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{api}/health", timeout=2)
