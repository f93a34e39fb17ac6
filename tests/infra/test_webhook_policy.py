"""The webhook retry policy as deployed: template.yaml's parameters, queues and functions agree
with each other, with SQS's limits and with the code's defaults."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from paycore.config import Settings
from tests.support import ROOT, load_template


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _schedule(template: dict[str, Any]) -> list[int]:
    default = template["Parameters"]["WebhookRetrySchedule"]["Default"]
    return [int(part) for part in default.split(",")]


def test_the_default_schedule_retries_for_at_least_three_days(template: dict[str, Any]) -> None:
    assert sum(_schedule(template)) >= 3 * 24 * 3600


def test_max_attempts_is_the_first_delivery_plus_one_per_scheduled_retry(
    template: dict[str, Any],
) -> None:
    max_attempts = template["Parameters"]["WebhookMaxAttempts"]["Default"]

    assert max_attempts == len(_schedule(template)) + 1


def test_the_queue_parks_a_webhook_after_max_attempts(template: dict[str, Any]) -> None:
    queue = template["Resources"]["NotificationQueue"]["Properties"]

    assert queue["RedrivePolicy"]["maxReceiveCount"] == {"Ref": "WebhookMaxAttempts"}


def test_every_backoff_fits_sqs_and_the_queue_keeps_messages_past_the_last_retry(
    template: dict[str, Any],
) -> None:
    schedule = _schedule(template)
    queue = template["Resources"]["NotificationQueue"]["Properties"]

    assert max(schedule) <= 12 * 3600  # SQS's longest visibility timeout
    assert sum(schedule) < queue["MessageRetentionPeriod"]


def test_a_parked_webhook_stays_in_the_dead_letter_queue_for_a_week_at_least(
    template: dict[str, Any],
) -> None:
    """SQS counts a dead letter's retention from when it was first queued, not parked."""
    dead_letters = template["Resources"]["NotificationDeadLetterQueue"]["Properties"]

    assert dead_letters["MessageRetentionPeriod"] - sum(_schedule(template)) >= 7 * 24 * 3600


def _duration(text: str) -> int:
    units = {"h": 3600, "min": 60, "s": 1}
    parts = re.findall(r"(\d+) (h|min|s)\b", text.partition("(")[0])
    return sum(int(number) * units[unit] for number, unit in parts)


def test_the_docs_say_when_each_retry_of_the_default_schedule_happens(
    template: dict[str, Any],
) -> None:
    text = (ROOT / "docs" / "webhooks.md").read_text()
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \| ([^|]+) \|$", text, re.MULTILINE)
    schedule = _schedule(template)

    assert [int(retry) for retry, _, _ in rows] == list(range(1, len(schedule) + 1))
    assert [_duration(delay) for _, delay, _ in rows] == schedule
    assert [_duration(at) for _, _, at in rows] == list(itertools.accumulate(schedule))


def test_the_queue_visibility_is_at_least_six_notifier_timeouts(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    notifier_timeout = resources["NotifierFunction"]["Properties"]["Timeout"]

    assert resources["NotificationQueue"]["Properties"]["VisibilityTimeout"] >= 6 * notifier_timeout


def test_functions_get_the_schedule_parameter_and_the_code_defaults_to_the_same(
    template: dict[str, Any],
) -> None:
    variables = template["Globals"]["Function"]["Environment"]["Variables"]

    assert variables["WEBHOOK_RETRY_SCHEDULE"] == {"Ref": "WebhookRetrySchedule"}
    assert list(Settings().webhook_retry_schedule) == _schedule(template)


def test_the_redrive_function_reads_the_dlq_and_writes_the_queue_only(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    redrive = resources["NotificationRedriveFunction"]["Properties"]

    assert redrive["Environment"]["Variables"]["DEAD_LETTER_QUEUE_URL"] == {
        "Ref": "NotificationDeadLetterQueue"
    }
    assert redrive["Policies"] == [
        {
            "SQSPollerPolicy": {
                "QueueName": {"Fn::GetAtt": ["NotificationDeadLetterQueue", "QueueName"]}
            }
        },
        {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["NotificationQueue", "QueueName"]}}},
    ]
    assert "Events" not in redrive  # an operator invokes it; nothing triggers it
    assert "NotificationRedriveFunctionName" in template["Outputs"]


def _kms_actions(template: dict[str, Any], function: str) -> set[str]:
    policies = template["Resources"][function]["Properties"]["Policies"]
    names = {"KMSEncryptPolicy": "kms:Encrypt", "KMSDecryptPolicy": "kms:Decrypt"}
    found = set()
    for policy in policies:
        for name, action in names.items():
            if isinstance(policy, dict) and name in policy:
                assert policy[name] == {"KeyId": {"Ref": "WebhookSecretKey"}}
                found.add(action)
    return found


def test_only_the_notifier_may_decrypt_webhook_secrets(template: dict[str, Any]) -> None:
    functions = [
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    ]
    decrypting = [name for name in functions if "kms:Decrypt" in _kms_actions(template, name)]

    assert decrypting == ["NotifierFunction"]
    assert _kms_actions(template, "ApiFunction") == {"kms:Encrypt"}
    key = template["Resources"]["WebhookSecretKey"]
    assert key["DeletionPolicy"] == "Retain"  # losing it would lose every secret
    assert key["Properties"]["EnableKeyRotation"] is True


def test_a_rolled_key_is_refused_within_the_60_seconds_the_docs_promise(
    template: dict[str, Any],
) -> None:
    api = template["Resources"]["PaycoreApi"]["Properties"]
    identity = api["Auth"]["Authorizers"]["BearerKeyAuthorizer"]["Identity"]

    assert identity["ReauthorizeEvery"] <= 60
    assert "up to 60 seconds after" in (ROOT / "docs" / "api.md").read_text()
