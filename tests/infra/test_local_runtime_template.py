"""The local runtime provisions the real template.yaml: every table, queue, state machine,
secret and function it declares exists in moto, configured as the template says.

What to expect is read from the transformed template, so the test follows the template."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from local_runtime.profile import LocalProfile
from local_runtime.runtime import DEFAULT_TEMPLATE, LocalRuntime

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    profile = LocalProfile.free_ports(admin_token="local-admin-token")
    with LocalRuntime(DEFAULT_TEMPLATE, profile, start_sandbox=False) as started:
        yield started


def _declared(runtime: LocalRuntime, resource_type: str) -> list[str]:
    return [
        logical_id
        for logical_id, resource in runtime.stack.template.resources.items()
        if resource["Type"] == resource_type
    ]


def test_every_table_exists_with_its_indexes_ttl_and_backups(runtime: LocalRuntime) -> None:
    dynamodb = runtime.client("dynamodb")
    tables = _declared(runtime, "AWS::DynamoDB::Table")

    assert tables
    assert set(dynamodb.list_tables()["TableNames"]) == {runtime.physical_id(t) for t in tables}
    for logical_id in tables:
        declared = runtime.stack.template.resources[logical_id]["Properties"]
        name = runtime.physical_id(logical_id)
        table = dynamodb.describe_table(TableName=name)["Table"]
        indexes = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
        assert indexes == {i["IndexName"] for i in declared.get("GlobalSecondaryIndexes", [])}
        if "TimeToLiveSpecification" in declared:
            ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            assert ttl["AttributeName"] == declared["TimeToLiveSpecification"]["AttributeName"]
        if declared.get("PointInTimeRecoverySpecification"):
            backups = dynamodb.describe_continuous_backups(TableName=name)
            pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
            assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"


def test_every_queue_exists_and_redrives_after_the_local_attempt_count(
    runtime: LocalRuntime,
) -> None:
    sqs = runtime.client("sqs")
    queues = _declared(runtime, "AWS::SQS::Queue")

    assert set(sqs.list_queues()["QueueUrls"]) == {runtime.physical_id(q) for q in queues}
    for logical_id in queues:
        declared = runtime.stack.template.resources[logical_id]["Properties"]
        attributes = sqs.get_queue_attributes(
            QueueUrl=runtime.physical_id(logical_id), AttributeNames=["All"]
        )["Attributes"]
        if "RedrivePolicy" in declared:
            policy = json.loads(attributes["RedrivePolicy"])
            assert policy["maxReceiveCount"] == runtime.profile.webhook_max_attempts
        if "VisibilityTimeout" in declared:
            assert attributes["VisibilityTimeout"] == str(declared["VisibilityTimeout"])


def test_every_state_machine_exists_with_its_substitutions_applied(
    runtime: LocalRuntime,
) -> None:
    stepfunctions = runtime.client("stepfunctions")
    machines = _declared(runtime, "AWS::StepFunctions::StateMachine")
    function_arns = {spec.function_arn for spec in runtime.lambdas.specs.values()}

    listed = {m["stateMachineArn"] for m in stepfunctions.list_state_machines()["stateMachines"]}
    assert listed == {runtime.physical_id(m) for m in machines}
    for logical_id in machines:
        definition = stepfunctions.describe_state_machine(
            stateMachineArn=runtime.physical_id(logical_id)
        )["definition"]
        assert "${" not in definition
        resources = [
            state.get("Parameters", {}).get("FunctionName")
            for state in json.loads(definition)["States"].values()
        ]
        assert {arn for arn in resources if arn} <= function_arns


def test_every_secret_exists_and_the_admin_token_is_the_profiles(runtime: LocalRuntime) -> None:
    secretsmanager = runtime.client("secretsmanager")
    secrets = _declared(runtime, "AWS::SecretsManager::Secret")

    listed = {s["ARN"] for s in secretsmanager.list_secrets()["SecretList"]}
    assert listed == {runtime.physical_id(s) for s in secrets}
    for logical_id in secrets:
        value = secretsmanager.get_secret_value(SecretId=runtime.physical_id(logical_id))
        assert value["SecretString"]
    if "AdminTokenSecret" in secrets:
        admin = secretsmanager.get_secret_value(SecretId=runtime.physical_id("AdminTokenSecret"))
        assert admin["SecretString"] == "local-admin-token"


def test_every_function_exists_with_its_resolved_environment(runtime: LocalRuntime) -> None:
    client = runtime.client("lambda")
    functions = _declared(runtime, "AWS::Lambda::Function")

    listed = {f["FunctionName"] for f in client.list_functions()["Functions"]}
    assert listed == {runtime.physical_id(f) for f in functions}
    assert set(runtime.lambdas.specs) == set(functions)
    for spec in runtime.lambdas.specs.values():
        assert spec.code_dir is not None
        assert spec.code_dir.is_dir()
        assert spec.layer_dirs
        for value in spec.environment.values():
            assert '"Ref"' not in value  # an unresolved {"Ref": ...} (not RefundStateMachine)
            assert "Fn::" not in value
        if "PUBLIC_API_URL" in spec.environment:
            assert spec.environment["PUBLIC_API_URL"] == runtime.api_url


def test_routes_and_event_sources_come_from_the_template(runtime: LocalRuntime) -> None:
    api_events = [
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for resource in runtime.stack.template.sam["Resources"].values()
        if resource.get("Type") == "AWS::Serverless::Function"
        for event in (resource.get("Properties", {}).get("Events") or {}).values()
        if event.get("Type") == "Api"
    ]
    sqs_events = _declared(runtime, "AWS::Lambda::EventSourceMapping")
    gateway = runtime.client("apigateway")

    assert gateway.get_rest_apis()["items"] == []  # served by the runtime, not by moto
    assert {s.logical_id for s in runtime.stack.sqs_sources} == set(sqs_events)
    served = {(route.method, route.resource_path) for route in runtime.gateway.routes}
    assert set(api_events) == served
    assert all(route.function_id in runtime.lambdas.specs for route in runtime.gateway.routes)


def test_every_functions_asynchronous_invoke_settings_come_from_the_template(
    runtime: LocalRuntime,
) -> None:
    """DeadLetterConfig and EventInvokeConfig (SAM's DeadLetterQueue and EventInvokeConfig)
    reach the function the runtime invokes asynchronously; the others keep Lambda's defaults."""
    resources = runtime.stack.template.resources
    resolve = runtime.stack.resolver.resolve
    configs = {
        runtime.lambdas.function_id(str(resolve(r["Properties"]["FunctionName"]))): r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventInvokeConfig"
    }
    for logical_id in _declared(runtime, "AWS::Lambda::Function"):
        spec = runtime.lambdas.specs[logical_id]
        declared = resources[logical_id]["Properties"].get("DeadLetterConfig") or {}
        target = resolve(declared.get("TargetArn")) if declared.get("TargetArn") else None
        assert spec.dead_letter_arn == target
        config = configs.get(logical_id, {})
        assert spec.max_retry_attempts == config.get("MaximumRetryAttempts", 2)
        assert spec.max_event_age_seconds == config.get("MaximumEventAgeInSeconds", 21600)
        if target is not None:
            assert target in runtime.stack.queue_urls  # an SQS queue of the stack


def test_every_real_channel_routing_names_has_a_simulator_that_filled_its_secrets(
    runtime: LocalRuntime,
) -> None:
    """make run starts one simulator per real channel of the routing configuration, serving
    its accounts, and writes each account's credentials into the secret the functions read."""
    api = runtime.stack.functions["ApiFunction"].environment
    routed = {a["id"]: a["channel"] for a in json.loads(api["CHANNEL_ACCOUNTS"])}
    real = {channel for channel in routed.values() if channel != "sandbox"}
    assert real == {"alipay", "wechatpay", "stripe"}
    assert set(runtime.simulator_urls) == real
    secretsmanager = runtime.client("secretsmanager")
    for channel, url in runtime.simulator_urls.items():
        listed = requests.get(f"{url}/_sim/accounts", timeout=10).json()["data"]
        assert {entry["account"] for entry in listed} == {
            account for account, named in routed.items() if named == channel
        }
        for entry in listed:
            assert entry["channel"] == channel and entry["simulator"] is True
            secret = secretsmanager.get_secret_value(
                SecretId=api["CHANNEL_SECRET_PREFIX"] + entry["account"]
            )
            credentials = {k: v for k, v in entry.items() if k not in ("account", "channel")}
            assert json.loads(secret["SecretString"]) == credentials
    # (This runtime runs without the sandbox, so only the simulators' accounts are filled.)
    assert set(runtime.channel_accounts_filled) == {a for a, c in routed.items() if c in real}


def test_every_alarm_exists_and_pages_the_topic_without_a_subscription_by_default(
    runtime: LocalRuntime,
) -> None:
    cloudwatch = runtime.client("cloudwatch")
    sns = runtime.client("sns")
    topics = _declared(runtime, "AWS::SNS::Topic")
    alarms = _declared(runtime, "AWS::CloudWatch::Alarm")

    assert {t["TopicArn"] for t in sns.list_topics()["Topics"]} == {
        runtime.physical_id(t) for t in topics
    }
    # AlarmEmail is empty unless given: nobody is subscribed.
    assert sns.list_subscriptions()["Subscriptions"] == []
    described = {
        alarm["AlarmName"]: alarm
        for page in cloudwatch.get_paginator("describe_alarms").paginate()
        for alarm in page["MetricAlarms"]
    }
    assert set(described) == {runtime.physical_id(a) for a in alarms}
    topic = runtime.physical_id("AlarmTopic")
    for logical_id in alarms:
        alarm = described[runtime.physical_id(logical_id)]
        assert alarm["AlarmActions"] == [topic], logical_id
        assert alarm["OKActions"] == [topic], logical_id
        declared = runtime.stack.template.resources[logical_id]["Properties"]
        if "Metrics" in declared:  # a metric-math alarm keeps its expression
            assert [q["Id"] for q in alarm["Metrics"]] == [q["Id"] for q in declared["Metrics"]]
            assert [q.get("Expression") for q in alarm["Metrics"]] == [
                q.get("Expression") for q in declared["Metrics"]
            ]
