"""Helpers shared by the test suites: the template, function modules, API Gateway events."""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from local_runtime.template import load_yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
_counter = itertools.count()


def load_template() -> dict[str, Any]:
    """template.yaml with CloudFormation short forms (!Ref, !Sub, ...) as {"Fn::X": ...} maps."""
    return load_yaml(TEMPLATE.read_text())  # type: ignore[no-any-return]


def sam_transform(
    template: dict[str, Any], parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    """The CloudFormation that SAM makes of ``template``, offline: s3:// locations where `sam
    build` would upload (the folders stay ours), no managed policies looked up."""
    from samtranslator.public.translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    class NoManagedPolicies(ManagedPolicyLoader):  # type: ignore[misc]
        def __init__(self) -> None:
            pass

        def load(self) -> dict[str, str]:
            return {}

    uploaded = copy.deepcopy(template)
    for name, resource in uploaded["Resources"].items():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(properties.get(key), str):
                properties[key] = f"s3://paycore-artifacts/{name}/{key}"
    return transform(uploaded, parameters or {}, NoManagedPolicies())  # type: ignore[no-any-return]


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/app.py as a fresh module (each import is a new 'container')."""
    path = ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"fn_{name}_{next(_counter)}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeContext:
    """The few LambdaContext attributes Powertools reads."""

    function_name = "test-function"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


def rest_event(
    method: str,
    path: str,
    *,
    resource: str | None = None,
    path_parameters: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: Any = None,
    raw_body: str | None = None,
    headers: dict[str, str] | None = None,
    authorizer: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST (payload 1.0) proxy event as the authorizer leaves it."""
    text = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {key: [value] for key, value in all_headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path,
            "httpMethod": method,
            "path": f"/live{path}",
            "stage": "live",
            "domainName": "api.example.test",
            "requestId": "req-1",
            "identity": {"sourceIp": "127.0.0.1"},
            "authorizer": authorizer or {},
        },
        "body": text,
        "isBase64Encoded": False,
    }


def eventually(probe: Callable[[], Any], *, timeout: float = 20.0, pause: float = 0.05) -> Any:
    """The first truthy value of ``probe()``; fails the test when none comes in time."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        time.sleep(pause)


def sandbox_gateway(
    base_url: str, secret: str, *, timeout: float = 2.0, account_id: str = "default"
) -> Any:
    """A sandbox ``ChannelGateway`` for the account at ``base_url`` signing with ``secret``."""
    from pydantic import SecretStr

    from paycore.channels.sandbox.adapter import SandboxGateway
    from paycore.channels.sandbox.settings import SandboxSettings

    settings = SandboxSettings(base_url=base_url, secret=SecretStr(secret))
    return SandboxGateway(settings, account_id=account_id, timeout=timeout)


def published_metrics(output: str) -> list[tuple[str, str, dict[str, str], float]]:
    """Every metric datum in the CloudWatch embedded-metric-format lines of captured stdout
    (what Powertools prints and CloudWatch reads from the log): (namespace, name, dimensions,
    value) each."""
    found = []
    for line in output.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        record = json.loads(line)
        for directive in record["_aws"]["CloudWatchMetrics"]:
            keys = [key for group in directive["Dimensions"] for key in group]
            dimensions = {key: str(record[key]) for key in keys}
            for metric in directive["Metrics"]:
                for value in record[metric["Name"]]:
                    found.append((directive["Namespace"], metric["Name"], dimensions, value))
    return found


def channel_call_counts(output: str, channel: str) -> dict[str, float]:
    """The ChannelCalls* metrics published for ``channel`` in captured stdout, summed by name."""
    counts: dict[str, float] = {}
    for _, name, dimensions, value in published_metrics(output):
        if name.startswith("ChannelCalls") and dimensions == {"channel": channel}:
            counts[name] = counts.get(name, 0) + value
    return counts
