"""The local runtime's pure parts: intrinsic functions, schedules, IAM policies, SQS batch
results, gateway responses and the per-thread environment. No moto, no HTTP."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from local_runtime import scope
from local_runtime.accounting import SdkCallCounter, item_size, write_units
from local_runtime.apigateway import RestApiDefinition, RestApiGateway, policy_allows
from local_runtime.lambdas import FunctionError, Invocation
from local_runtime.pollers import (
    ScheduleSpec,
    next_cron_time,
    rate_seconds,
    scheduled_event,
    succeeded_messages,
)
from local_runtime.provision import generate_secret_string, physical_name
from local_runtime.resolver import NO_VALUE, Resolver, dependency_order
from local_runtime.template import TemplateError, effective_parameters, load_yaml

TEMPLATE_TEXT = """
Parameters:
  Url: {Type: String, Default: ""}
  Sizes: {Type: CommaDelimitedList, Default: "1,2,3"}
  Count: {Type: Number, Default: 3, MinValue: 1}
Mappings:
  Tiers: {small: {size: "10"}}
Conditions:
  HasUrl: !Not [!Equals [!Ref Url, ""]]
Resources:
  Queue: {Type: AWS::SQS::Queue}
  Consumer:
    Type: AWS::Lambda::Function
    Properties:
      Q: !GetAtt Queue.Arn
  Alarm:
    Type: AWS::CloudWatch::Alarm
    DependsOn: Consumer
    Properties:
      Name: !Sub "${AWS::StackName}-${Queue.QueueName}-${!Literal}"
"""


def _resolver(**parameters: str) -> Resolver:
    template = load_yaml(TEMPLATE_TEXT)
    values = effective_parameters(template, parameters)
    resolver = Resolver(template, values, "us-east-1")
    resolver.refs["Queue"] = "http://sqs/q"
    resolver.attributes["Queue"] = {"Arn": "arn:aws:sqs:us-east-1:123456789012:q", "QueueName": "q"}
    return resolver


# -- intrinsic functions ------------------------------------------------------------------


def test_sub_resolves_refs_attributes_pseudo_parameters_and_escapes() -> None:
    resolver = _resolver()

    assert resolver.resolve({"Fn::Sub": "${AWS::StackName}-${Queue.QueueName}-${!Literal}"}) == (
        "paycore-local-q-${Literal}"
    )
    assert resolver.resolve({"Fn::Sub": ["${A}/${Queue}", {"A": {"Ref": "AWS::Region"}}]}) == (
        "us-east-1/http://sqs/q"
    )


def test_conditions_and_no_value_drop_properties() -> None:
    without_url = _resolver()
    with_url = _resolver(Url="https://example.test")
    value = {"URL": {"Fn::If": ["HasUrl", {"Ref": "Url"}, {"Ref": "AWS::NoValue"}]}, "X": "1"}

    assert without_url.resolve(value) == {"X": "1"}
    assert with_url.resolve(value) == {"URL": "https://example.test", "X": "1"}
    assert without_url.resolve({"Ref": "AWS::NoValue"}) is NO_VALUE


def test_list_functions_and_maps() -> None:
    resolver = _resolver()

    assert resolver.resolve({"Fn::Join": ["-", {"Ref": "Sizes"}]}) == "1-2-3"
    assert resolver.resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}) == "b"
    assert resolver.resolve({"Fn::FindInMap": ["Tiers", "small", "size"]}) == "10"
    assert resolver.resolve({"Fn::GetAtt": "Queue.Arn"}).endswith(":q")


def test_unknown_reference_is_a_clear_error() -> None:
    with pytest.raises(TemplateError, match="Consumer"):
        _resolver().resolve({"Ref": "Consumer"})


def test_dependency_order_follows_refs_getatts_subs_and_depends_on() -> None:
    template = load_yaml(TEMPLATE_TEXT)

    order = dependency_order(template["Resources"])

    assert order.index("Queue") < order.index("Consumer") < order.index("Alarm")


def test_parameter_constraints_apply_to_local_overrides() -> None:
    template = load_yaml(TEMPLATE_TEXT)

    with pytest.raises(TemplateError, match="MinValue"):
        effective_parameters(template, {"Count": "0"})
    assert effective_parameters(template, {"Count": "5", "Undeclared": "x"})["Count"] == "5"


def test_generated_names_are_stable_and_fit() -> None:
    name = physical_name("A" * 100, 64)

    assert name == physical_name("A" * 100, 64)
    assert len(name) <= 64
    assert name.startswith("paycore-local-")


def test_generated_secret_follows_the_template_options() -> None:
    value = generate_secret_string({"PasswordLength": 48, "ExcludePunctuation": True})

    assert len(value) == 48
    assert value.isalnum()


# -- schedules ----------------------------------------------------------------------------


def test_rate_expressions() -> None:
    assert rate_seconds("rate(1 minute)") == 60
    assert rate_seconds("rate(5 minutes)") == 300
    assert rate_seconds("rate(2 hours)") == 7200
    assert rate_seconds("cron(0 12 * * ? *)") is None


def test_cron_expressions_use_aws_fields() -> None:
    after = datetime(2025, 1, 1, 10, 30, tzinfo=UTC)  # a Wednesday

    assert next_cron_time("cron(0 12 * * ? *)", after) == datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert next_cron_time("cron(0/15 * * * ? *)", after) == datetime(2025, 1, 1, 10, 45, tzinfo=UTC)
    # Day of week: 2 is Monday in AWS cron.
    assert next_cron_time("cron(0 8 ? * 2 *)", after) == datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
    assert next_cron_time("cron(0 0 1 JAN ? *)", after) == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)


def test_a_scheduler_cron_runs_in_its_time_zone() -> None:
    # 00:00 in Shanghai (UTC+8) is 16:00 UTC the day before.
    midnight = "cron(0 0 * * ? *)"
    after = datetime(2026, 12, 6, 15, 59, tzinfo=UTC)
    assert next_cron_time(midnight, after, "Asia/Shanghai") == datetime(
        2026, 12, 6, 16, 0, tzinfo=UTC
    )
    assert next_cron_time(midnight, after, "UTC") == datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    # New York in summer is UTC-4, in winter UTC-5.
    assert next_cron_time(midnight, datetime(2026, 7, 1, 12, tzinfo=UTC), "America/New_York") == (
        datetime(2026, 7, 2, 4, 0, tzinfo=UTC)
    )
    assert next_cron_time(midnight, datetime(2026, 12, 1, 12, tzinfo=UTC), "America/New_York") == (
        datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
    )


def test_a_scheduler_input_gets_its_context_attributes() -> None:
    spec = ScheduleSpec(
        logical_id="Daily",
        expression="cron(0 0 * * ? *)",
        function_id="SettlementFunction",
        arn="arn:aws:scheduler:us-east-1:123456789012:schedule/default/Daily",
        input='{"scheduled_time": "<aws.scheduler.scheduled-time>", '
        '"arn": "<aws.scheduler.schedule-arn>"}',
        source="aws.scheduler",
        timezone="Asia/Shanghai",
    )
    before = datetime.now(UTC).replace(microsecond=0)
    event = scheduled_event(spec, "us-east-1", "123456789012")
    fired = datetime.strptime(event["scheduled_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= fired <= datetime.now(UTC)
    assert event["arn"] == spec.arn


# -- API Gateway --------------------------------------------------------------------------

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc/local/GET/v1/orders"


def _policy(effect: str, resource: str) -> dict[str, Any]:
    statement = {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}
    return {"Version": "2012-10-17", "Statement": [statement]}


def test_policies_allow_by_arn_glob_and_deny_wins() -> None:
    assert policy_allows(_policy("Allow", "arn:aws:execute-api:*:*:abc/*/GET/*"), METHOD_ARN)
    assert not policy_allows(_policy("Allow", "arn:aws:execute-api:*:*:abc/*/POST/*"), METHOD_ARN)
    assert not policy_allows(_policy("Deny", "*"), METHOD_ARN)
    both = _policy("Allow", "*")
    both["Statement"].append(_policy("Deny", METHOD_ARN)["Statement"][0])
    assert not policy_allows(both, METHOD_ARN)


def _gateway(responses: dict[str, Any]) -> RestApiGateway:
    body = {"paths": {}, "x-amazon-apigateway-gateway-responses": responses}
    api = RestApiDefinition("Api", "abc", "local", body)
    return RestApiGateway([api], lambda *_: None, lambda _: None, "us-east-1", "123456789012")  # type: ignore[arg-type,return-value]


def test_gateway_responses_come_from_the_template_with_context_variables() -> None:
    gateway = _gateway(
        {
            "DEFAULT_4XX": {
                "statusCode": "418",
                "responseParameters": {"gatewayresponse.header.X-Why": "'teapot'"},
                "responseTemplates": {"application/json": '{"m": "$context.error.message"}'},
            }
        }
    )
    request = Request(EnvironBuilder(path="/x").get_environ())

    reply = gateway.gateway_response("UNAUTHORIZED", None, request, {})

    assert reply.status == 418
    assert reply.headers["X-Why"] == "teapot"
    assert reply.body == b'{"m": "Unauthorized"}'


def test_gateway_response_defaults_are_api_gateways() -> None:
    request = Request(EnvironBuilder(path="/x").get_environ())

    reply = _gateway({}).gateway_response("MISSING_AUTHENTICATION_TOKEN", None, request, {})

    assert reply.status == 403
    assert reply.body == b'{"message":"Missing Authentication Token"}'


# -- SQS batch results --------------------------------------------------------------------

MESSAGES = [{"MessageId": f"m{n}", "ReceiptHandle": f"r{n}"} for n in range(3)]


def _invocation(payload: Any, errored: bool = False) -> Invocation:
    error = FunctionError("Boom", "boom") if errored else None
    return Invocation("F", "req", payload, "", error, 1.0)


def test_batch_item_failures_keep_only_the_failed_messages() -> None:
    failures = {"batchItemFailures": [{"itemIdentifier": "m1"}]}

    kept = succeeded_messages(MESSAGES, _invocation(failures), report_batch_item_failures=True)

    assert [m["MessageId"] for m in kept] == ["m0", "m2"]


def test_batch_results_follow_the_lambda_service_rules() -> None:
    def deleted(payload: Any, report: bool = True, errored: bool = False) -> int:
        return len(succeeded_messages(MESSAGES, _invocation(payload, errored), report))

    assert deleted(None, errored=True) == 0
    assert deleted({"batchItemFailures": [{"itemIdentifier": "m1"}]}, report=False) == 3
    assert deleted({"batchItemFailures": []}) == 3
    assert deleted({"batchItemFailures": [{"itemIdentifier": "unknown"}]}) == 0


# -- per-thread environment ---------------------------------------------------------------


def test_each_thread_sees_its_own_scope_over_the_process_environment() -> None:
    environ_before = os.environ
    scope.install_environ_overlay()
    try:
        os.environ["PAYCORE_TEST_BASE"] = "base"
        seen: dict[str, tuple[str | None, str | None]] = {}
        barrier = threading.Barrier(2)

        def run(name: str) -> None:
            with scope.enter(name, {"WHO": name, "PAYCORE_TEST_BASE": "over"}):
                barrier.wait()
                os.environ["WRITTEN"] = name
                barrier.wait()
                seen[name] = (os.environ.get("WHO"), os.environ.get("WRITTEN"))

        threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)

        assert seen == {"a": ("a", "a"), "b": ("b", "b")}
        assert "WHO" not in os.environ
        assert "WRITTEN" not in os.environ
        assert os.environ["PAYCORE_TEST_BASE"] == "base"
    finally:
        os.environ.pop("PAYCORE_TEST_BASE", None)
        scope.uninstall_environ_overlay()
    assert os.environ is environ_before


def test_channel_settings_of_the_profile_become_template_parameters() -> None:
    from local_runtime.profile import LocalProfile

    accounts = '[{"id": "only", "channel": "sandbox"}]'
    profile = LocalProfile.from_env(
        {"PAYCORE_CHANNEL_TIMEOUT_SECONDS": "1.5", "PAYCORE_CHANNEL_ACCOUNTS": accounts}
    )
    overrides = profile.parameter_overrides("http://api")

    assert overrides["ChannelTimeoutSeconds"] == "1.5"
    assert overrides["ChannelAccounts"] == accounts
    assert "ChannelAccounts" not in LocalProfile.from_env({}).parameter_overrides("a")


class _Service:
    """A local channel service as a simulator will be: it lists its accounts."""

    def __init__(self, *entries: dict[str, object]) -> None:
        self.entries = list(entries)

    def accounts(self) -> list[dict[str, object]]:
        return self.entries


def test_channel_services_fill_each_accounts_secret_without_account_and_channel() -> None:
    import json

    import boto3
    from moto import mock_aws

    from local_runtime.channel_services import fill_account_secrets

    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        client.create_secret(Name="stack/channel-accounts/declared", SecretString="{}")
        service = _Service(
            {"account": "declared", "channel": "alipay", "app_id": "2021", "simulator": True},
            {"account": "extra", "channel": "stripe", "secret_key": "sk_test", "simulator": True},
        )

        written = fill_account_secrets(
            client, "stack/channel-accounts/", [service, _Service()], {"declared": "alipay"}
        )

        def value(account: str) -> object:
            name = f"stack/channel-accounts/{account}"
            return json.loads(client.get_secret_value(SecretId=name)["SecretString"])

        assert written == ["declared", "extra"]
        assert value("declared") == {"app_id": "2021", "simulator": True}
        assert value("extra") == {"secret_key": "sk_test", "simulator": True}


def test_the_sandbox_lists_the_routed_sandbox_accounts_with_its_secret() -> None:
    from local_runtime.channel_services import SandboxAccounts
    from local_runtime.sandbox.server import SandboxServer

    server = SandboxServer("127.0.0.1", 0, "s3cret", notify_schedule=())
    server.start()
    try:
        url = server.url
        entries = SandboxAccounts(server, "s3cret", ["a", "b"]).accounts()
    finally:
        server.stop()

    assert entries == [
        {
            "account": account,
            "channel": "sandbox",
            "base_url": f"{url}/accounts/{account}",
            "secret": "s3cret",
            "simulator": True,
        }
        for account in ("a", "b")
    ]


def test_write_units_are_counted_by_item_and_twice_inside_transactions() -> None:
    small = {"pk": {"S": "ORDER#1"}, "sk": {"S": "ORDER"}, "amount": {"N": "1999"}}
    assert item_size(small) == len("pk") + 7 + len("sk") + 5 + len("amount") + 3
    big = {**small, "blob": {"S": "x" * 1500}}
    indexed = {**small, "gsi1pk": {"S": "MERCHANT#m#ORDERS"}, "gsi2pk": {"S": "OPEN#1"}}
    assert write_units("PutItem", {"Item": small}) == (1, 0)
    assert write_units("PutItem", {"Item": big}) == (2, 0)
    assert write_units("PutItem", {"Item": indexed}) == (1, 2)
    assert write_units("UpdateItem", {"Key": {}}) == (1, 0)
    transaction = {
        "TransactItems": [
            {"Put": {"Item": big}},
            {"Put": {"Item": indexed}},
            {"Update": {"Key": {}}},
            {"ConditionCheck": {"Key": {}}},
        ]
    }
    assert write_units("TransactWriteItems", transaction) == (2 * 2 + 2 + 2, 2)
    assert write_units("GetItem", {"Key": {}}) == (0, 0)
    counter = SdkCallCounter()
    counter.record_write_units("ApiFunction", 8, 2)
    counter.record_write_units("ApiFunction", 1, 0)
    assert counter.write_units() == {"ApiFunction": {"table": 9, "index": 2}}
    counter.record_transaction("ApiFunction", 7)
    counter.record_transaction("ApiFunction", 12)
    counter.record_transaction("ApiFunction", 3)
    counter.record_transaction("PaymentWorkerFunction", 5)
    assert counter.largest_transactions() == {"ApiFunction": 12, "PaymentWorkerFunction": 5}
    counter.reset()
    assert counter.write_units() == {}
    assert counter.largest_transactions() == {}


def test_the_access_log_never_shows_a_cashier_link() -> None:
    """A hosted cashier link is a credential: the local access log writes <token> for it."""
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    from local_runtime.apigateway import _logged_path

    def logged(path: str) -> str:
        return _logged_path(Request(EnvironBuilder(path=path).get_environ()))

    assert logged("/cashier/s3cr3t-t0ken") == "/cashier/<token>"
    assert logged("/cashier/s3cr3t-t0ken/status") == "/cashier/<token>/status"
    assert logged("/local/cashier/s3cr3t-t0ken/payments") == "/local/cashier/<token>/payments"
    assert logged("/v1/orders/ord_1?limit=2") == "/v1/orders/ord_1?limit=2"
