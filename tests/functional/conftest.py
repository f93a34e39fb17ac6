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

from tests.conftest import clear_paycore_caches
from tests.support import ROOT, load_template

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
CHANNEL_SECRET_PREFIX = "paycore-test/channel-accounts/"
SANDBOX_SECRET = "sandbox-secret-for-tests"
# Nothing listens there: the API path never calls the channel itself.
NOWHERE = "http://127.0.0.1:9"
_TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")


@dataclass
class MotoStack:
    trade_table: str
    idempotency_table: str
    queue_url: str
    dead_letter_queue_url: str
    state_machine_arn: str
    admin_secret_id: str
    webhook_secret_key_id: str


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
        key_id = create_webhook_secret_key()
        stack = MotoStack("trade", "idempotency", queue_url, dlq_url, machine, secret_arn, key_id)
        for name, value in {
            "TRADE_TABLE_NAME": stack.trade_table,
            "IDEMPOTENCY_TABLE_NAME": stack.idempotency_table,
            "NOTIFICATION_QUEUE_URL": queue_url,
            "PAYMENT_STATE_MACHINE_ARN": machine,
            "ADMIN_TOKEN_SECRET_ID": secret_arn,
            "PAYMENT_ACTION_WAIT_SECONDS": "0",
            "CHANNEL_SECRET_PREFIX": CHANNEL_SECRET_PREFIX,
            "WEBHOOK_SECRET_KEY_ID": key_id,
        }.items():
            monkeypatch.setenv(name, value)
        configure_sandbox_accounts(monkeypatch, NOWHERE, "sandbox-primary")
        yield stack


def create_webhook_secret_key() -> str:
    """The KMS key that seals webhook secrets, as the template declares it (its key id)."""
    properties = load_template()["Resources"]["WebhookSecretKey"]["Properties"]
    key = boto3.client("kms").create_key(Description=properties["Description"])
    return str(key["KeyMetadata"]["KeyId"])


def configure_sandbox_accounts(
    monkeypatch: pytest.MonkeyPatch,
    sandbox_url: str,
    *account_ids: str,
    secret: str = SANDBOX_SECRET,
    **more: Any,
) -> None:
    """Route the sandbox channel to ``account_ids`` (in this order) of the sandbox at
    ``sandbox_url``, each with its credentials secret as the local runtime writes it."""
    monkeypatch.setenv(
        "CHANNEL_ACCOUNTS",
        json.dumps([{"id": account, "channel": "sandbox"} for account in account_ids]),
    )
    for account in account_ids:
        put_account_secret(
            account,
            {
                "base_url": f"{sandbox_url}/accounts/{account}",
                "secret": secret,
                "simulator": True,
                **more,
            },
        )


def put_account_secret(account_id: str, credentials: Any) -> None:
    """Write ``credentials`` (JSON) as the account's secret, as an operator would."""
    client = boto3.client("secretsmanager")
    name = CHANNEL_SECRET_PREFIX + account_id
    text = credentials if isinstance(credentials, str) else json.dumps(credentials)
    try:
        client.put_secret_value(SecretId=name, SecretString=text)
    except client.exceptions.ResourceNotFoundException:
        client.create_secret(Name=name, SecretString=text)
    clear_paycore_caches()  # as if the cached value had aged out


@pytest.fixture
def refund_machine(moto_stack: MotoStack, monkeypatch: pytest.MonkeyPatch) -> str:
    """The refund state machine in moto (not executed here: the steps are called directly)."""
    role = boto3.client("iam").create_role(
        RoleName="sfn-refund", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
    )["Role"]["Arn"]
    definition = (ROOT / "statemachines" / "refund.asl.json").read_text()
    definition = definition.replace(
        "${RefundWorkerFunctionArn}",
        "arn:aws:lambda:us-east-1:123456789012:function:refund-worker",
    )
    arn: str = boto3.client("stepfunctions").create_state_machine(
        name="refund", definition=definition, roleArn=role
    )["stateMachineArn"]
    monkeypatch.setenv("REFUND_STATE_MACHINE_ARN", arn)
    return arn
