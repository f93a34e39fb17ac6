"""Functional tests run the real handlers against moto (in-process), with the tables created
from template.yaml's own definitions so the schema cannot drift from what is deployed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.support import ROOT, load_template

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
_TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")


@dataclass
class MotoStack:
    trade_table: str
    idempotency_table: str
    queue_url: str
    dead_letter_queue_url: str
    state_machine_arn: str
    admin_secret_id: str


def _create_table(name: str, properties: dict[str, Any]) -> None:
    boto3.client("dynamodb").create_table(
        TableName=name, **{key: properties[key] for key in _TABLE_KEYS if key in properties}
    )


@pytest.fixture
def moto_stack(monkeypatch: pytest.MonkeyPatch, reset_paycore_caches: None) -> Iterator[MotoStack]:
    resources = load_template()["Resources"]
    with mock_aws():
        _create_table("trade", resources["TradeTable"]["Properties"])
        _create_table("idempotency", resources["IdempotencyTable"]["Properties"])
        sqs = boto3.client("sqs")
        dlq_url = sqs.create_queue(QueueName="notifications-dlq")["QueueUrl"]
        queue_url = sqs.create_queue(QueueName="notifications")["QueueUrl"]
        secret_arn = boto3.client("secretsmanager").create_secret(
            Name="admin-token", SecretString=ADMIN_TOKEN
        )["ARN"]
        sandbox_secret = boto3.client("secretsmanager").create_secret(
            Name="sandbox-channel", SecretString="sandbox-secret-for-tests"
        )["ARN"]
        role = boto3.client("iam").create_role(
            RoleName="sfn", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
        )["Role"]["Arn"]
        definition = (ROOT / "statemachines" / "payment.asl.json").read_text()
        definition = definition.replace(
            "${PaymentWorkerFunctionArn}",
            "arn:aws:lambda:us-east-1:123456789012:function:payment-worker",
        )
        machine = boto3.client("stepfunctions").create_state_machine(
            name="payment", definition=definition, roleArn=role
        )["stateMachineArn"]
        stack = MotoStack("trade", "idempotency", queue_url, dlq_url, machine, secret_arn)
        for name, value in {
            "TRADE_TABLE_NAME": stack.trade_table,
            "IDEMPOTENCY_TABLE_NAME": stack.idempotency_table,
            "NOTIFICATION_QUEUE_URL": queue_url,
            "PAYMENT_STATE_MACHINE_ARN": machine,
            "ADMIN_TOKEN_SECRET_ID": secret_arn,
            "PAYMENT_ACTION_WAIT_SECONDS": "0",
            # Enabled, but nothing listens: the API path never calls the channel itself.
            "SANDBOX_CHANNEL_URL": "http://127.0.0.1:9",
            "SANDBOX_CHANNEL_SECRET_ID": sandbox_secret,
        }.items():
            monkeypatch.setenv(name, value)
        yield stack
