"""The local runtime serves a SAM template the way AWS would: API Gateway routes and
authorizers, Step Functions with Lambda tasks and task tokens, SQS event sources with partial
batch failures and a dead-letter queue, schedules, and one environment per function.

Everything runs against a small fixture template written to a temporary folder, with tiny
handlers, on free ports."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from local_runtime.profile import LocalProfile
from local_runtime.runtime import LocalRuntime
from tests.infra.runtime_fixture import write_fixture
from tests.support import eventually

pytestmark = pytest.mark.timeout(120)

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  StageName: {Type: String, Default: live}
  Greeting: {Type: String, Default: hello}
Globals:
  Function:
    Runtime: python3.13
    Handler: app.lambda_handler
    Timeout: 10
    Layers: [!Ref HelperLayer]
    Environment:
      Variables:
        GREETING: !Ref Greeting
        TABLE_NAME: !Ref RecordTable
Resources:
  HelperLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer/
  RecordTable:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: !Ref StageName
      Cors: {AllowOrigin: "'*'", AllowHeaders: "'Authorization'"}
      Auth:
        DefaultAuthorizer: TokenAuthorizer
        AddDefaultAuthorizerToCorsPreflight: false
        Authorizers:
          TokenAuthorizer:
            FunctionArn: !GetAtt AuthorizerFunction.Arn
            Identity: {Header: Authorization, ReauthorizeEvery: 0}
      GatewayResponses:
        UNAUTHORIZED:
          StatusCode: "401"
          ResponseParameters: {Headers: {WWW-Authenticate: "'Bearer'"}}
          ResponseTemplates:
            application/json: '{"code": "unauthenticated", "message": "$context.error.message"}'
        ACCESS_DENIED:
          StatusCode: "403"
          ResponseTemplates: {application/json: '{"code": "denied"}'}
        MISSING_AUTHENTICATION_TOKEN:
          StatusCode: "404"
          ResponseTemplates: {application/json: '{"code": "route_not_found"}'}
        DEFAULT_5XX:
          ResponseTemplates:
            application/json: '{"code": "internal", "message": "$context.error.message"}'
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: echo/
      Environment: {Variables: {WHO: echo}}
      Events:
        Health:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /health, Method: GET, Auth: {Authorizer: NONE}}
        GetItem:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: "/items/{item_id}", Method: GET}
        PostItem:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /items, Method: POST}
        Crash:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /crash, Method: GET, Auth: {Authorizer: NONE}}
        AnyFile:
          Type: Api
          Properties:
            RestApiId: !Ref Api
            Path: "/files/{path+}"
            Method: ANY
            Auth: {Authorizer: NONE}
        Readme:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /files/readme, Method: GET, Auth: {Authorizer: NONE}}
  AuthorizerFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: authorizer/
  WorkerFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: worker/
  Flow:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: flow.asl.json
      DefinitionSubstitutions:
        WorkerArn: !GetAtt WorkerFunction.Arn
      Policies:
        - LambdaInvokePolicy: {FunctionName: !Ref WorkerFunction}
  WorkQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 1
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt WorkDeadLetterQueue.Arn
        maxReceiveCount: 2
  WorkDeadLetterQueue:
    Type: AWS::SQS::Queue
  ConsumerFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: consumer/
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt WorkQueue.Arn
            BatchSize: 10
            FunctionResponseTypes: [ReportBatchItemFailures]
  AlphaFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: env/
      Environment: {Variables: {WHO: alpha}}
  BetaFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: env/
      Timeout: 30
      Environment: {Variables: {WHO: beta}}
  Setting:
    Type: AWS::SSM::Parameter
  TickFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: tick/
      Events:
        Tick:
          Type: Schedule
          Properties:
            Schedule: rate(1 minute)
            Input: '{"tick": "tock"}'
"""

FLOW = {
    "StartAt": "Step",
    "States": {
        "Step": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {
                "FunctionName": "${WorkerArn}",
                "Payload": {"step.$": "$.step", "id.$": "$.id"},
            },
            "ResultSelector": {"ok.$": "$.Payload.ok"},
            "ResultPath": "$.first",
            "Catch": [
                {"ErrorEquals": ["ChannelRejected"], "ResultPath": "$.error", "Next": "Rejected"}
            ],
            "Next": "Wait",
        },
        "Wait": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {
                "FunctionName": "${WorkerArn}",
                "Payload": {"step": "wait", "id.$": "$.id", "token.$": "$$.Task.Token"},
            },
            "TimeoutSeconds": 20,
            "ResultPath": "$.callback",
            "Next": "Done",
        },
        "Rejected": {"Type": "Pass", "Result": "rejected", "ResultPath": "$.outcome", "End": True},
        "Done": {"Type": "Pass", "Result": "done", "ResultPath": "$.outcome", "End": True},
    },
}

HANDLERS = {
    "layer/infra_fixture_records.py": """
        import json
        import os

        import boto3

        _client = None


        def record(key, data):
            global _client
            if _client is None:
                _client = boto3.client("dynamodb")
            _client.put_item(
                TableName=os.environ["TABLE_NAME"],
                Item={"pk": {"S": key}, "data": {"S": json.dumps(data)}},
            )
    """,
    "echo/app.py": """
        import json
        import os


        def lambda_handler(event, context):
            if event["resource"] == "/crash":
                raise KeyError("boom")
            return {
                "statusCode": 201 if event["httpMethod"] == "POST" else 200,
                "headers": {"Content-Type": "application/json", "X-Who": os.environ["WHO"]},
                "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
                "body": json.dumps({"event": event, "greeting": os.environ["GREETING"]}),
            }
    """,
    "authorizer/app.py": """
        def _policy(effect, arn):
            statement = {"Action": "execute-api:Invoke", "Effect": effect, "Resource": arn}
            return {"Version": "2012-10-17", "Statement": [statement]}


        def lambda_handler(event, context):
            token = event["authorizationToken"]
            if token.startswith("allow"):
                return {
                    "principalId": "user-1",
                    "policyDocument": _policy("Allow", event["methodArn"]),
                    "context": {"merchant_id": "m1", "n": 7, "flag": True},
                }
            if token == "deny":
                return {"principalId": "user-2", "policyDocument": _policy("Deny", "*")}
            raise Exception("Unauthorized")
    """,
    "worker/app.py": """
        from infra_fixture_records import record


        class ChannelRejected(Exception):
            pass


        def lambda_handler(event, context):
            if event.get("step") == "reject":
                raise ChannelRejected("declined by the channel")
            if event.get("step") == "wait":
                record("token#" + event["id"], event["token"])
                return {"waiting": True}
            return {"ok": True}
    """,
    "consumer/app.py": """
        from infra_fixture_records import record


        def lambda_handler(event, context):
            failures = []
            for message in event["Records"]:
                count = int(message["attributes"]["ApproximateReceiveCount"])
                record(f"sqs#{message['body']}#{count}", message)
                flaky = message["body"].startswith("flaky") and count == 1
                if message["body"].startswith("poison") or flaky:
                    failures.append({"itemIdentifier": message["messageId"]})
            return {"batchItemFailures": failures}
    """,
    "env/app.py": """
        import os
        import threading
        import time

        INIT_WHO = os.environ["WHO"]
        _busy = threading.Lock()


        def lambda_handler(event, context):
            if not _busy.acquire(blocking=False):
                raise RuntimeError("two events ran on one instance at once")
            try:
                seen = set()
                for _ in range(event.get("spins", 20)):
                    seen.add(os.environ["WHO"])
                    time.sleep(0.001)
                if event.get("fail"):
                    raise ValueError("asked to fail")
                return {
                    "who": sorted(seen),
                    "init_who": INIT_WHO,
                    "greeting": os.environ["GREETING"],
                    "function_name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
                    "context_function_name": context.function_name,
                    "remaining_ms": context.get_remaining_time_in_millis(),
                    "trace_disabled": os.environ.get("POWERTOOLS_TRACE_DISABLED"),
                }
            finally:
                _busy.release()
    """,
    "tick/app.py": """
        from infra_fixture_records import record


        def lambda_handler(event, context):
            record("tick", event)
    """,
}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    template = write_fixture(
        tmp_path_factory.mktemp("mini"), TEMPLATE, HANDLERS, {"flow.asl.json": json.dumps(FLOW)}
    )
    profile = LocalProfile.free_ports(schedule_time_scale=60.0)
    with LocalRuntime(template, profile, start_sandbox=False) as started:
        yield started


def record_of(runtime: LocalRuntime, key: str) -> Any:
    item = runtime.client("dynamodb").get_item(
        TableName=runtime.physical_id("RecordTable"), Key={"pk": {"S": key}}
    )
    return json.loads(item["Item"]["data"]["S"]) if "Item" in item else None


def auth(token: str) -> dict[str, str]:
    return {"Authorization": token}


# -- API Gateway --------------------------------------------------------------------------


def test_routes_become_rest_proxy_events_with_path_and_query_parameters(
    runtime: LocalRuntime,
) -> None:
    answer = requests.get(
        f"{runtime.api_url}/items/it-42?x=1&x=2&y=3", headers=auth("allow-1"), timeout=10
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    event = body["event"]
    assert event["resource"] == "/items/{item_id}"
    assert event["path"] == "/items/it-42"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"item_id": "it-42"}
    assert event["queryStringParameters"] == {"x": "2", "y": "3"}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["3"]}
    assert event["headers"]["Authorization"] == "allow-1"
    assert event["multiValueHeaders"]["Authorization"] == ["allow-1"]
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["resourcePath"] == "/items/{item_id}"
    assert context["stage"] == "local"
    assert context["path"] == "/local/items/it-42"
    assert context["domainName"] == f"127.0.0.1:{runtime.api_port}"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["authorizer"]["principalId"] == "user-1"
    assert context["authorizer"]["merchant_id"] == "m1"
    assert context["authorizer"]["n"] == "7"
    assert context["authorizer"]["flag"] == "true"
    assert body["greeting"] == "hello"


def test_proxy_responses_keep_status_headers_and_body(runtime: LocalRuntime) -> None:
    answer = requests.post(
        f"{runtime.api_url}/items", headers=auth("allow-2"), json={"sku": "tea"}, timeout=10
    )

    assert answer.status_code == 201
    assert answer.headers["X-Who"] == "echo"
    assert answer.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert json.loads(answer.json()["event"]["body"]) == {"sku": "tea"}


def test_literal_paths_win_over_greedy_ones_and_encoded_slashes_stay_in_a_parameter(
    runtime: LocalRuntime,
) -> None:
    readme = requests.get(f"{runtime.api_url}/files/readme", timeout=10).json()["event"]
    nested = requests.delete(f"{runtime.api_url}/files/a/b%2Fc", timeout=10).json()["event"]
    item = requests.get(f"{runtime.api_url}/items/a%2Fb", headers=auth("allow"), timeout=10)
    no_fallback = requests.post(f"{runtime.api_url}/files/readme", timeout=10)

    assert readme["resource"] == "/files/readme"
    assert nested["resource"] == "/files/{path+}"
    assert nested["httpMethod"] == "DELETE"
    assert nested["pathParameters"] == {"path": "a/b/c"}
    assert item.json()["event"]["pathParameters"] == {"item_id": "a/b"}
    assert no_fallback.status_code == 404  # the resource exists, the method does not


def test_cors_preflight_is_answered_by_the_mock_integration(runtime: LocalRuntime) -> None:
    answer = requests.options(f"{runtime.api_url}/items", timeout=10)

    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.headers["Access-Control-Allow-Headers"] == "Authorization"


def test_missing_authorization_header_is_rejected_without_calling_the_authorizer(
    runtime: LocalRuntime,
) -> None:
    before = runtime.lambdas.stats()["AuthorizerFunction"]["invocations"]

    answer = requests.get(f"{runtime.api_url}/items/1", timeout=10)

    assert answer.status_code == 401
    assert answer.json() == {"code": "unauthenticated", "message": "Unauthorized"}
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert runtime.lambdas.stats()["AuthorizerFunction"]["invocations"] == before


def test_authorizer_decisions_map_to_the_templates_gateway_responses(
    runtime: LocalRuntime,
) -> None:
    unauthorized = requests.get(f"{runtime.api_url}/items/1", headers=auth("nope"), timeout=10)
    denied = requests.get(f"{runtime.api_url}/items/1", headers=auth("deny"), timeout=10)

    assert unauthorized.status_code == 401
    assert unauthorized.json()["code"] == "unauthenticated"
    assert denied.status_code == 403
    assert denied.json() == {"code": "denied"}


def test_unknown_routes_and_methods_get_the_missing_token_response(
    runtime: LocalRuntime,
) -> None:
    unknown = requests.get(f"{runtime.api_url}/nowhere", timeout=10)
    wrong_method = requests.delete(f"{runtime.api_url}/health", timeout=10)

    assert unknown.status_code == 404
    assert unknown.json() == {"code": "route_not_found"}
    assert wrong_method.status_code == 404


def test_a_crashing_handler_gets_the_default_5xx_response(runtime: LocalRuntime) -> None:
    answer = requests.get(f"{runtime.api_url}/crash", timeout=10)

    assert answer.status_code == 502
    assert answer.json() == {"code": "internal", "message": "Internal server error"}


# -- Step Functions -----------------------------------------------------------------------


def test_state_machine_catches_a_custom_error_and_resumes_on_a_task_token(
    runtime: LocalRuntime,
) -> None:
    stepfunctions = runtime.client("stepfunctions")
    machine = runtime.physical_id("Flow")
    waiting_id, rejected_id = f"w-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:8]}"
    waiting = stepfunctions.start_execution(
        stateMachineArn=machine, name=waiting_id, input=json.dumps({"step": "ok", "id": waiting_id})
    )["executionArn"]
    rejected = stepfunctions.start_execution(
        stateMachineArn=machine,
        name=rejected_id,
        input=json.dumps({"step": "reject", "id": rejected_id}),
    )["executionArn"]

    token = eventually(lambda: record_of(runtime, f"token#{waiting_id}"))
    stepfunctions.send_task_success(taskToken=token, output=json.dumps({"approved": True}))

    done = runtime.wait_for_execution(waiting, timeout=15)
    assert done["status"] == "SUCCEEDED", done
    output = json.loads(done["output"])
    assert output["first"] == {"ok": True}
    assert output["callback"] == {"approved": True}
    assert output["outcome"] == "done"
    assert runtime.state_transitions(waiting) == 3

    caught = runtime.wait_for_execution(rejected, timeout=15)
    assert caught["status"] == "SUCCEEDED", caught
    output = json.loads(caught["output"])
    assert output["outcome"] == "rejected"
    assert output["error"]["Error"] == "ChannelRejected"
    assert "declined by the channel" in output["error"]["Cause"]
    assert runtime.sdk_call_snapshot()["@stepfunctions"]["lambda:Invoke"] >= 3


# -- SQS ----------------------------------------------------------------------------------


def test_sqs_partial_batch_failure_redelivers_and_poison_goes_to_the_dead_letter_queue(
    runtime: LocalRuntime,
) -> None:
    sqs = runtime.client("sqs")
    tag = uuid.uuid4().hex[:8]
    sqs.send_message_batch(
        QueueUrl=runtime.physical_id("WorkQueue"),
        Entries=[
            {
                "Id": name,
                "MessageBody": f"{name}-{tag}",
                "MessageAttributes": {"kind": {"DataType": "String", "StringValue": name}},
            }
            for name in ("ok", "flaky", "poison")
        ],
    )

    def dead_lettered() -> list[str]:
        answer = sqs.receive_message(
            QueueUrl=runtime.physical_id("WorkDeadLetterQueue"), WaitTimeSeconds=1
        )
        return [message["Body"] for message in answer.get("Messages", [])]

    assert eventually(dead_lettered, timeout=20) == [f"poison-{tag}"]
    first = record_of(runtime, f"sqs#ok-{tag}#1")
    assert first["eventSource"] == "aws:sqs"
    assert first["eventSourceARN"].endswith(
        ":" + runtime.stack.resources["WorkQueue"].attributes["QueueName"]
    )
    assert first["messageAttributes"]["kind"]["stringValue"] == "ok"
    assert first["md5OfBody"]
    assert record_of(runtime, f"sqs#ok-{tag}#2") is None
    assert record_of(runtime, f"sqs#flaky-{tag}#2") is not None
    assert record_of(runtime, f"sqs#flaky-{tag}#3") is None
    assert record_of(runtime, f"sqs#poison-{tag}#2") is not None


# -- functions ----------------------------------------------------------------------------


def test_each_function_sees_only_its_own_environment_under_concurrency(
    runtime: LocalRuntime,
) -> None:
    functions = ["AlphaFunction", "BetaFunction"] * 20

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda f: (f, runtime.invoke(f, {"spins": 10})), functions))

    for function_id, invocation in results:
        assert not invocation.errored, invocation.error
        expected = "alpha" if function_id == "AlphaFunction" else "beta"
        assert invocation.payload["who"] == [expected]
        assert invocation.payload["init_who"] == expected
        assert invocation.payload["greeting"] == "hello"
        assert invocation.payload["function_name"] == runtime.physical_id(function_id)
        assert invocation.payload["context_function_name"] == runtime.physical_id(function_id)
        assert invocation.payload["trace_disabled"] == "true"
    beta_remaining = [i.payload["remaining_ms"] for f, i in results if f == "BetaFunction"]
    assert 10_000 < min(beta_remaining) <= 30_000


def test_the_lambda_invoke_api_runs_the_handler_and_reports_errors_by_type(
    runtime: LocalRuntime,
) -> None:
    client = runtime.client("lambda")
    name = runtime.physical_id("AlphaFunction")

    ok = client.invoke(FunctionName=name, Payload=json.dumps({"spins": 1}))
    failed = client.invoke(FunctionName=name, Payload=json.dumps({"fail": True}))

    assert json.loads(ok["Payload"].read())["who"] == ["alpha"]
    assert "FunctionError" in failed
    error = json.loads(failed["Payload"].read())
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "asked to fail"


def test_sdk_calls_are_attributed_to_the_function_that_made_them(
    runtime: LocalRuntime,
) -> None:
    runtime.reset_sdk_calls()

    invocation = runtime.invoke("WorkerFunction", {"step": "wait", "id": "sdk", "token": "t"})

    assert not invocation.errored
    assert runtime.sdk_call_snapshot()["WorkerFunction"] == {"dynamodb:PutItem": 1}


def test_a_schedule_invokes_its_function_with_the_configured_input(
    runtime: LocalRuntime,
) -> None:
    assert eventually(lambda: record_of(runtime, "tick"), timeout=10) == {"tick": "tock"}
    fired = runtime.schedule_fire_count("TickFunctionTick")
    eventually(lambda: runtime.schedule_fire_count("TickFunctionTick") > fired, timeout=5)


def test_health_answers_once_everything_is_provisioned(runtime: LocalRuntime) -> None:
    answer = requests.get(f"{runtime.api_url}/health", timeout=10)

    assert runtime.stack.skipped == {"Setting": "AWS::SSM::Parameter"}

    assert answer.status_code == 200
    assert (
        runtime.client("dynamodb").describe_table(TableName=runtime.physical_id("RecordTable"))[
            "Table"
        ]["TableStatus"]
        == "ACTIVE"
    )
