"""Operators are paged: every alarm of the deployed template (after SAM's transform) pages the
alarm topic, and the things that go wrong each have their alarm: every function's errors and
throttles, the notification queue's backlog and its dead-letter queue, every state machine's
failed and timed-out executions, the API's 5xx and each channel's error rate. The e-mail
subscription exists only when AlarmEmail is given."""

from __future__ import annotations

from typing import Any

import pytest

from local_runtime.resolver import Resolver
from paycore.channels.registry import FACTORIES
from tests.support import load_template, sam_transform

REGION = "us-east-1"


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return sam_transform(load_template())["Resources"]  # type: ignore[no-any-return]


def _of_type(resources: dict[str, Any], resource_type: str) -> dict[str, Any]:
    return {name: r for name, r in resources.items() if r["Type"] == resource_type}


def _alarms(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: r["Properties"] for name, r in _of_type(resources, "AWS::CloudWatch::Alarm").items()
    }


def _watching(
    resources: dict[str, Any], namespace: str, metric: str, dimension: str
) -> dict[str, dict[str, Any]]:
    """The single-metric alarms on ``namespace``/``metric``, by the value of ``dimension``
    (a Ref or GetAtt as written, in JSON)."""
    found = {}
    for name, alarm in _alarms(resources).items():
        if alarm.get("Namespace") == namespace and alarm.get("MetricName") == metric:
            [value] = [d["Value"] for d in alarm["Dimensions"] if d["Name"] == dimension]
            found[repr(value)] = alarm | {"logical_id": name}
    return found


def test_every_alarm_pages_the_topic_and_says_when_it_is_ok_again(
    resources: dict[str, Any],
) -> None:
    alarms = _alarms(resources)

    assert len(alarms) > 20
    assert resources["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    for name, alarm in alarms.items():
        assert alarm.get("AlarmActions") == [{"Ref": "AlarmTopic"}], name
        assert alarm.get("OKActions") == [{"Ref": "AlarmTopic"}], name
        assert alarm.get("AlarmDescription"), name


def test_every_function_has_an_errors_and_a_throttles_alarm(resources: dict[str, Any]) -> None:
    functions = set(_of_type(resources, "AWS::Lambda::Function"))

    assert len(functions) >= 9
    assert "WebhookSecretMigrationFunction" in functions
    for metric in ("Errors", "Throttles"):
        watched = _watching(resources, "AWS/Lambda", metric, "FunctionName")
        assert set(watched) == {repr({"Ref": function}) for function in functions}, metric
        for alarm in watched.values():
            assert alarm["Statistic"] == "Sum"
            assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
            assert alarm["TreatMissingData"] == "notBreaching"


def test_only_the_workers_errors_alarm_tolerates_a_few_errors(resources: dict[str, Any]) -> None:
    """The workers raise by design (the state machine retries or catches); nothing else may."""
    errors = _watching(resources, "AWS/Lambda", "Errors", "FunctionName")
    throttles = _watching(resources, "AWS/Lambda", "Throttles", "FunctionName")

    tolerant = {key for key, alarm in errors.items() if alarm["Threshold"] > 0}

    assert tolerant == {
        repr({"Ref": "PaymentWorkerFunction"}),
        repr({"Ref": "RefundWorkerFunction"}),
    }
    assert all(alarm["Threshold"] == 0 for alarm in throttles.values())


def test_both_notification_queues_have_their_alarm(resources: dict[str, Any]) -> None:
    queues = _of_type(resources, "AWS::SQS::Queue")
    redriven = {
        name: q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for name, q in queues.items()
        if "RedrivePolicy" in q["Properties"]
    }
    visible = _watching(resources, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName")
    age = _watching(resources, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName")

    assert redriven == {"NotificationQueue": "NotificationDeadLetterQueue"}
    assert set(visible) == {repr({"Fn::GetAtt": [dlq, "QueueName"]}) for dlq in redriven.values()}
    assert set(age) == {repr({"Fn::GetAtt": [queue, "QueueName"]}) for queue in redriven}
    for alarm in visible.values():
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    # Longer than a healthy queue's oldest message (its third attempt is 90 s after the first).
    retries = [
        int(s) for s in load_template()["Parameters"]["WebhookRetrySchedule"]["Default"].split(",")
    ]
    for alarm in age.values():
        assert alarm["Threshold"] > sum(retries[:2])


def test_every_state_machine_pages_on_failed_and_timed_out_executions(
    resources: dict[str, Any],
) -> None:
    machines = set(_of_type(resources, "AWS::StepFunctions::StateMachine"))

    assert machines == {"PaymentStateMachine", "RefundStateMachine"}
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut"):
        watched = _watching(resources, "AWS/States", metric, "StateMachineArn")
        assert set(watched) == {repr({"Ref": machine}) for machine in machines}, metric


def test_the_api_pages_on_5xx(resources: dict[str, Any]) -> None:
    [api] = _of_type(resources, "AWS::ApiGateway::RestApi").values()

    watched = _watching(resources, "AWS/ApiGateway", "5XXError", "ApiName")

    assert set(watched) == {repr(api["Properties"]["Name"])}


def test_every_channel_has_an_error_rate_alarm_with_a_minimum_of_calls(
    resources: dict[str, Any],
) -> None:
    by_channel: dict[str, dict[str, Any]] = {}
    for alarm in _alarms(resources).values():
        queries = alarm.get("Metrics") or []
        stats = [q["MetricStat"] for q in queries if "MetricStat" in q]
        if not stats or stats[0]["Metric"]["Namespace"] != "Paycore":
            continue
        [channel] = {d["Value"] for s in stats for d in s["Metric"]["Dimensions"]}
        by_channel[channel] = alarm

    assert set(by_channel) == set(FACTORIES)
    for channel, alarm in by_channel.items():
        queries = {q["Id"]: q for q in alarm["Metrics"]}
        metrics = {
            q["MetricStat"]["Metric"]["MetricName"]: ident
            for ident, q in queries.items()
            if "MetricStat" in q
        }
        assert set(metrics) == {"ChannelCalls", "ChannelCallsUnavailable", "ChannelCallsRejected"}
        [returned] = [q for q in queries.values() if q.get("ReturnData", True)]
        expression = returned["Expression"]
        calls = metrics["ChannelCalls"]
        # A percentage of failed calls, read only once there are enough calls to tell.
        assert expression.startswith(f"IF({calls} >= 10, 100 * ("), channel
        assert metrics["ChannelCallsUnavailable"] in expression
        assert metrics["ChannelCallsRejected"] in expression
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (20, "GreaterThanThreshold")


@pytest.mark.parametrize("email", ["", "oncall@example.com"])
def test_the_email_subscription_exists_only_when_an_address_is_given(email: str) -> None:
    template = sam_transform(load_template(), {"AlarmEmail": email})
    resolver = Resolver(template, {"AlarmEmail": email}, REGION)
    subscriptions = {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::SNS::Subscription"
        and ("Condition" not in resource or resolver.condition(resource["Condition"]))
    }

    if not email:
        assert subscriptions == {}
        return
    [subscription] = subscriptions.values()
    properties = subscription["Properties"]
    assert properties["TopicArn"] == {"Ref": "AlarmTopic"}
    assert properties["Protocol"] == "email"
    assert resolver.resolve(properties["Endpoint"]) == email
