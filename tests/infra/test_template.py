"""template.yaml deploys as written: it transforms offline, lints clean, and the state
machine definition is fully substituted and guarded."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file

from tests.support import ROOT, TEMPLATE, load_template, sam_transform

ASL_DIR = ROOT / "statemachines"
SUBSTITUTION = re.compile(r"\$\{([^}]+)\}")


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    return sam_transform(load_template())


def test_template_transforms_offline(transformed: dict[str, Any]) -> None:
    types = {resource["Type"] for resource in transformed["Resources"].values()}
    assert {
        "AWS::ApiGateway::RestApi",
        "AWS::Lambda::Function",
        "AWS::StepFunctions::StateMachine",
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::Lambda::EventSourceMapping",
        "AWS::CloudWatch::Dashboard",
    } <= types


def test_cfn_lint_finds_no_errors_or_warnings() -> None:
    matches = lint_file(TEMPLATE)
    assert [str(match) for match in matches] == []


def test_template_sections_read_top_to_bottom() -> None:
    text = TEMPLATE.read_text()
    positions = [
        text.index(f"\n{section}:")
        for section in ("Parameters", "Conditions", "Globals", "Resources", "Outputs")
    ]
    assert positions == sorted(positions)


def test_functions_run_arm64_on_a_current_python_with_tracing(transformed: dict[str, Any]) -> None:
    functions = [
        r for r in transformed["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
    ]
    assert functions
    for function in functions:
        properties = function["Properties"]
        assert properties["Architectures"] == ["arm64"]
        assert properties["Runtime"] in {"python3.12", "python3.13"}
        assert properties["TracingConfig"] == {"Mode": "Active"}


def test_every_function_has_a_log_group_with_retention() -> None:
    resources = load_template()["Resources"]
    functions = {name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    covered = set()
    for resource in resources.values():
        if resource["Type"] == "AWS::Logs::LogGroup":
            assert "RetentionInDays" in resource["Properties"]
            name = json.dumps(resource["Properties"].get("LogGroupName", ""))
            covered |= {fn for fn in functions if "${" + fn + "}" in name}
    assert covered == functions


def test_no_wildcard_actions_in_policies() -> None:
    """Least privilege: no "service:*" or "*" actions anywhere (resource "*" only where the
    action has no resource-level permissions, as commented in the template)."""
    for name, resource in load_template()["Resources"].items():
        for policy in resource.get("Properties", {}).get("Policies", []) or []:
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                for action in statement.get("Action", []):
                    assert "*" not in action, f"{name}: {action}"


def test_tables_keep_point_in_time_recovery_and_idempotency_ttl() -> None:
    resources = load_template()["Resources"]
    for table in ("TradeTable", "IdempotencyTable"):
        properties = resources[table]["Properties"]
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
    ttl = resources["IdempotencyTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expiration", "Enabled": True}


def test_notification_queue_has_a_dead_letter_queue_and_an_alarm() -> None:
    resources = load_template()["Resources"]
    redrive = resources["NotificationQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["NotificationDeadLetterQueue", "Arn"]}
    alarm = resources["NotificationDeadLetterAlarm"]["Properties"]
    assert alarm["Dimensions"][0]["Value"] == {
        "Fn::GetAtt": ["NotificationDeadLetterQueue", "QueueName"]
    }


def test_the_notifier_takes_one_webhook_per_invocation() -> None:
    """A batch's records are delivered one after the other: with more than one per
    invocation, an endpoint that answers slowly or not at all (up to the webhook timeout)
    would hold up the other webhooks of its batch, or leave them without time."""
    notifier = load_template()["Resources"]["NotifierFunction"]["Properties"]
    [source] = [e for e in notifier["Events"].values() if e["Type"] == "SQS"]
    assert source["Properties"]["Queue"] == {"Fn::GetAtt": ["NotificationQueue", "Arn"]}
    assert source["Properties"]["BatchSize"] == 1
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_dashboard_shows_payments_api_state_machine_and_dlq() -> None:
    body = load_template()["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]
    text = body["Fn::Sub"]
    for metric in (
        "PaymentSucceeded",
        "PaymentFailed",
        "5XXError",
        "Latency",
        "ExecutionsFailed",
        "ApproximateNumberOfMessagesVisible",
    ):
        assert metric in text, metric


def test_outputs_name_what_a_user_needs() -> None:
    outputs = load_template()["Outputs"]
    assert {
        "ApiUrl",
        "AdminTokenSecretArn",
        "TradeTableName",
        "NotificationQueueUrl",
        "PaymentStateMachineArn",
        "DashboardName",
    } <= set(outputs)


def _state_machines() -> list[tuple[str, dict[str, Any], Path]]:
    found = []
    for name, resource in load_template()["Resources"].items():
        if resource["Type"] == "AWS::Serverless::StateMachine":
            properties = resource["Properties"]
            found.append((name, properties, ROOT / properties["DefinitionUri"]))
    return found


def test_every_asl_placeholder_is_substituted_and_every_substitution_used() -> None:
    machines = _state_machines()
    assert machines
    for name, properties, path in machines:
        placeholders = set(SUBSTITUTION.findall(path.read_text()))
        provided = set(properties.get("DefinitionSubstitutions", {}))
        assert placeholders == provided, name
    defined = {path.name for _, _, path in machines}
    assert defined == {path.name for path in ASL_DIR.glob("*.asl.json")}


def _states(definition: dict[str, Any]) -> dict[str, Any]:
    states = dict(definition["States"])
    for state in list(states.values()):
        for branch in state.get("Branches", []):
            states.update(_states(branch))
        if "Iterator" in state:
            states.update(_states(state["Iterator"]))
    return states


def test_every_task_has_retry_and_catch() -> None:
    for _, _, path in _state_machines():
        for name, state in _states(json.loads(path.read_text())).items():
            if state["Type"] == "Task":
                assert state.get("Retry"), f"{path.name}:{name} has no Retry"
                assert state.get("Catch"), f"{path.name}:{name} has no Catch"


def test_payment_machine_settles_in_two_states_on_the_happy_path() -> None:
    """Standard transitions are the largest part of a payment's AWS bill."""
    definition = json.loads((ASL_DIR / "payment.asl.json").read_text())
    first = definition["States"][definition["StartAt"]]
    assert first["Resource"].endswith(".waitForTaskToken")
    assert definition["States"][first["Next"]].get("End") is True
