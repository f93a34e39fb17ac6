"""The metrics in template.yaml (dashboard and alarms) are the metrics the code publishes, both
ways: a metric the code publishes that the dashboard does not show fails, and so does a
metric the template reads (in the Paycore namespace, with its dimensions) that no code
publishes; AWS metrics must name a resource the template declares.

The code side is read from the source: every ``add_metric`` call in the layer and the
functions, its name (a literal, or a variable whose every value is a literal), the namespace
and the dimensions of the metrics object it is called on."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from paycore.channels.registry import FACTORIES
from paycore.observability import NAMESPACE
from tests.support import ROOT, load_template

SOURCES = [ROOT / "layers" / "paycore" / "paycore", ROOT / "functions"]
SUBSTITUTION = re.compile(r"\$\{([^}]+)\}")

# A metric as CloudWatch files it: namespace, name and its dimensions (sorted name/value pairs).
Metric = tuple[str, str, tuple[tuple[str, str], ...]]


def _python_files() -> Iterator[Path]:
    for folder in SOURCES:
        yield from sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _literals(node: ast.expr, module: ast.Module) -> set[str]:
    """Every string ``node`` can be: a literal, a conditional of literals, or a name assigned
    only such values (a dict's values too, when the name is looked up in it); empty when it
    cannot be told from the source."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    parts: list[ast.expr] = []
    if isinstance(node, ast.IfExp):
        parts = [node.body, node.orelse]
    elif isinstance(node, ast.Dict):
        parts = list(node.values)
    elif isinstance(node, ast.Subscript):
        parts = [node.value]
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
    ):
        parts = [node.func.value]
    elif isinstance(node, ast.Name):
        parts = _assigned(node.id, module)
    found = [_literals(part, module) for part in parts]
    return set().union(*found) if found and all(found) else set()


def _assigned(name: str, module: ast.Module) -> list[ast.expr]:
    """Every value assigned to ``name`` anywhere in the module (=, :=, annotated =)."""
    values: list[ast.expr] = []
    for node in ast.walk(module):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)):
            targets = [node.target]
        else:
            continue
        if node.value is not None and any(_named(target, name) for target in targets):
            values.append(node.value)
    return values


def _named(target: ast.expr, name: str) -> bool:
    return isinstance(target, ast.Name) and target.id == name


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _dimensions(module: ast.Module, path: Path) -> list[dict[str, str]]:
    """The dimension sets of the metrics a module publishes: a function's ``observability(
    "<service>")`` gives ``service``; an ``EphemeralMetrics(service="")`` with
    ``add_dimension(name="channel")`` gives one set per channel paycore speaks."""
    services = [
        call.args[0].value
        for call in ast.walk(module)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "observability"
        and call.args
        and isinstance(call.args[0], ast.Constant)
    ]
    if services:
        return [{"service": str(service)} for service in services]
    added = {
        node.value
        for call in ast.walk(module)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "add_dimension"
        and isinstance(node := _keyword(call, "name"), ast.Constant)
    }
    if added == {"channel"}:
        return [{"channel": channel} for channel in FACTORIES]
    raise AssertionError(f"{path}: cannot tell the dimensions of its metrics ({added})")


def published_by_code() -> set[Metric]:
    found: set[Metric] = set()
    for path in _python_files():
        source = path.read_text()
        if "add_metric(" not in source:
            continue
        module = ast.parse(source)
        names: set[str] = set()
        for call in ast.walk(module):
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "add_metric"
            ):
                continue
            name = _keyword(call, "name")
            resolved = _literals(name, module) if name is not None else set()
            assert resolved, f"{path}:{call.lineno}: the metric's name is not a literal"
            names |= resolved
        for dimensions in _dimensions(module, path):
            found |= {(NAMESPACE, name, tuple(sorted(dimensions.items()))) for name in names}
    return found


def _dashboard_metrics() -> list[list[Any]]:
    body = load_template()["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]
    rows = []
    # The ${...} references sit inside JSON strings: the body parses as written.
    for widget in json.loads(body["Fn::Sub"])["widgets"]:
        for row in widget["properties"].get("metrics", []):
            assert "." not in row, "spell every dashboard metric out (no '.' shorthand)"
            rows.append([part for part in row if not isinstance(part, dict)])
    return rows


def _as_metric(namespace: str, name: str, dimensions: list[tuple[str, Any]]) -> Metric:
    return (namespace, name, tuple(sorted((k, _text(v)) for k, v in dimensions)))


def _text(value: Any) -> str:
    """A dimension value as the dashboard writes it: ``${Ref}`` for a reference."""
    if isinstance(value, dict):
        [(function, argument)] = value.items()
        if function == "Ref":
            return "${" + str(argument) + "}"
        if function == "Fn::GetAtt":
            return "${" + ".".join(argument) + "}"
        if function == "Fn::Sub":
            return str(argument)
    return str(value)


def on_dashboard() -> set[Metric]:
    return {
        _as_metric(row[0], row[1], list(zip(row[2::2], row[3::2], strict=True)))
        for row in _dashboard_metrics()
    }


def in_alarms() -> set[Metric]:
    found: set[Metric] = set()
    for resource in load_template()["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        alarm = resource["Properties"]
        stats = [q["MetricStat"]["Metric"] for q in alarm.get("Metrics", []) if "MetricStat" in q]
        if "MetricName" in alarm:
            stats.append(alarm)
        for metric in stats:
            dimensions = [(d["Name"], d["Value"]) for d in metric.get("Dimensions", [])]
            found.add(_as_metric(metric["Namespace"], metric["MetricName"], dimensions))
    return found


def test_the_code_publishes_metrics_the_scan_can_see() -> None:
    published = published_by_code()
    names = {name for _, name, _ in published}

    # The scan reads literals, dict lookups and conditionals: it must find the known ones.
    assert {"PaymentSucceeded", "WebhookDelivered", "ChannelCalls"} <= names
    assert ("Paycore", "ChannelCallsRejected", (("channel", "alipay"),)) in published


def test_the_template_publishes_the_code_namespace_to_every_function() -> None:
    environment = load_template()["Globals"]["Function"]["Environment"]["Variables"]

    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == NAMESPACE


def test_every_metric_the_code_publishes_is_on_the_dashboard() -> None:
    missing = published_by_code() - on_dashboard()

    assert missing == set()


def test_every_paycore_metric_the_template_reads_is_published_by_the_code() -> None:
    read = {m for m in on_dashboard() | in_alarms() if m[0] == NAMESPACE}

    unknown = read - published_by_code()

    assert read
    assert unknown == set()


def test_every_aws_metric_the_template_reads_names_a_declared_resource() -> None:
    """An AWS metric is published by AWS for a resource: its dimension must be one of ours."""
    declared = set(load_template()["Resources"])
    api_name = "${AWS::StackName}-api"
    for namespace, name, dimensions in on_dashboard() | in_alarms():
        if namespace == NAMESPACE:
            continue
        assert namespace in {"AWS/Lambda", "AWS/SQS", "AWS/States", "AWS/ApiGateway"}, namespace
        for key, value in dimensions:
            if namespace == "AWS/ApiGateway":
                assert (key, value) == ("ApiName", api_name), (name, value)
                continue
            reference = SUBSTITUTION.fullmatch(value)
            assert reference is not None, (namespace, name, value)
            assert reference.group(1).split(".")[0] in declared, (namespace, name, value)


def test_the_api_metrics_name_the_api_the_template_declares() -> None:
    api = load_template()["Resources"]["PaycoreApi"]["Properties"]

    assert api["Name"] == {"Fn::Sub": "${AWS::StackName}-api"}
