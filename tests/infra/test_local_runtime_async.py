"""Asynchronous Lambda invokes (``InvocationType="Event"``) run like the Lambda service runs
them: answered 202 at once, run in the background, a function error retried
``MaximumRetryAttempts`` times, then sent to the dead-letter queue (or dropped with a warning);
and the SQS pollers long-poll 20 s yet the runtime still stops at once.

A small fixture template with its own handlers, on free ports. The handlers meet the test
through a layer module (one process: the test imports the same module object), which holds a
gate per event id and the attempts each event got."""

from __future__ import annotations

import importlib
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from local_runtime.async_invoke import AsyncInvoker
from local_runtime.lambdas import FunctionError, FunctionSpec, Invocation
from local_runtime.pollers import SqsEventSource, SqsPoller
from local_runtime.profile import LocalProfile
from local_runtime.runtime import LocalRuntime
from tests.infra.runtime_fixture import write_fixture
from tests.support import eventually

pytestmark = pytest.mark.timeout(120)

RETRY_DELAYS = (0.3, 0.6)

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.13
    Handler: app.lambda_handler
    Timeout: 10
    Layers: [!Ref GateLayer]
Resources:
  GateLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer/
  NotifyDeadLetterQueue:
    Type: AWS::SQS::Queue
  NotifyFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: notify/
      DeadLetterQueue: {Type: SQS, TargetArn: !GetAtt NotifyDeadLetterQueue.Arn}
      EventInvokeConfig: {MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 21600}
  OnceFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: notify/
      EventInvokeConfig: {MaximumRetryAttempts: 0}
  DefaultFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: notify/
  FailureQueue:
    Type: AWS::SQS::Queue
  DestinedFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: notify/
      EventInvokeConfig:
        MaximumRetryAttempts: 1
        DestinationConfig: {OnFailure: {Type: SQS, Destination: !GetAtt FailureQueue.Arn}}
  KickFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: kick/
      Environment: {Variables: {TARGET: !Ref NotifyFunction}}
  IdleQueue:
    Type: AWS::SQS::Queue
  ConsumerFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: notify/
      Events:
        Idle:
          Type: SQS
          Properties: {Queue: !GetAtt IdleQueue.Arn}
"""

HANDLERS = {
    "layer/infra_async_gate.py": """
        import threading
        import time
        from collections import defaultdict

        _lock = threading.Lock()
        _gates = {}
        # event id -> [(time.monotonic(), request id, function name)] of every attempt
        attempts = defaultdict(list)


        def gate(key):
            with _lock:
                return _gates.setdefault(key, threading.Event())


        def attempt(key, context):
            with _lock:
                attempts[key].append(
                    (time.monotonic(), context.aws_request_id, context.function_name)
                )
    """,
    "notify/app.py": """
        from infra_async_gate import attempt, gate


        class WebhookFailed(Exception):
            pass


        def lambda_handler(event, context):
            key = event.get("id", "none")
            if event.get("block"):
                gate(key + "/started").set()
                if not gate(key).wait(20):
                    raise TimeoutError("never released")
            attempt(key, context)
            if event.get("fail"):
                raise WebhookFailed(f"receiver answered 500 for {key}")
            return {"delivered": key}
    """,
    "kick/app.py": """
        import json
        import os

        import boto3


        def lambda_handler(event, context):
            answer = boto3.client("lambda").invoke(
                FunctionName=os.environ["TARGET"],
                InvocationType="Event",
                Payload=json.dumps(event),
            )
            return {"status": answer["StatusCode"]}
    """,
}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    template = write_fixture(tmp_path_factory.mktemp("async"), TEMPLATE, HANDLERS)
    profile = LocalProfile.free_ports(async_retry_delays=RETRY_DELAYS)
    with LocalRuntime(template, profile, start_sandbox=False) as started:
        yield started


@pytest.fixture
def gates(runtime: LocalRuntime) -> ModuleType:
    """The handlers' layer module (the same object the handlers import)."""
    return importlib.import_module("infra_async_gate")


def _invoke_event(runtime: LocalRuntime, function_id: str, payload: Any) -> dict[str, Any]:
    answer: dict[str, Any] = runtime.client("lambda").invoke(
        FunctionName=runtime.physical_id(function_id),
        InvocationType="Event",
        Payload=json.dumps(payload),
    )
    return answer


def _new_id() -> str:
    return uuid.uuid4().hex[:10]


def test_the_templates_async_settings_reach_the_functions(runtime: LocalRuntime) -> None:
    specs = runtime.lambdas.specs
    dead_letter_arn = runtime.stack.resources["NotifyDeadLetterQueue"].attributes["Arn"]

    assert specs["NotifyFunction"].dead_letter_arn == dead_letter_arn
    assert specs["NotifyFunction"].max_retry_attempts == 2
    assert specs["NotifyFunction"].max_event_age_seconds == 21600
    assert specs["OnceFunction"].max_retry_attempts == 0
    assert specs["OnceFunction"].dead_letter_arn is None
    assert specs["DefaultFunction"].max_retry_attempts == 2  # Lambda's default
    config = runtime.client("lambda").get_function_event_invoke_config(
        FunctionName=runtime.physical_id("NotifyFunction")
    )
    assert config["MaximumRetryAttempts"] == 2
    assert runtime.stack.skipped == {}


def test_an_event_invoke_answers_202_before_the_function_finishes(
    runtime: LocalRuntime, gates: ModuleType
) -> None:
    key = _new_id()

    started = time.monotonic()
    answer = _invoke_event(runtime, "NotifyFunction", {"id": key, "block": True})
    answered_in = time.monotonic() - started

    assert answer["StatusCode"] == 202
    assert answer["Payload"].read() == b""
    assert "FunctionError" not in answer
    assert gates.gate(key + "/started").wait(10), "the event never ran"
    assert gates.attempts[key] == []  # still blocked in the handler: the caller did not wait
    assert answered_in < 5
    gates.gate(key).set()
    assert runtime.wait_for_async_invokes(10)
    ((_, request_id, function_name),) = gates.attempts[key]
    assert function_name == runtime.physical_id("NotifyFunction")
    assert request_id
    assert runtime.lambdas.stats()["NotifyFunction"]["errors"] == 0


def test_the_caller_is_charged_one_invoke_and_the_background_run_adds_no_call(
    runtime: LocalRuntime, gates: ModuleType
) -> None:
    key = _new_id()
    runtime.reset_sdk_calls()

    kicked = runtime.invoke("KickFunction", {"id": key})
    assert runtime.wait_for_async_invokes(10)

    assert kicked.payload == {"status": 202}
    assert len(gates.attempts[key]) == 1
    calls = runtime.sdk_call_snapshot()
    assert calls.pop("KickFunction") == {"lambda:Invoke": 1}
    # Only the SQS poller's long polls may run meanwhile.
    assert set(calls.pop("@runtime", {})) <= {"sqs:ReceiveMessage"}
    assert calls == {}


def test_a_failing_event_is_retried_then_sent_to_the_dead_letter_queue_as_invoked(
    runtime: LocalRuntime, gates: ModuleType
) -> None:
    key = _new_id()
    payload = '{"id": "%s",   "fail": true, "amount": {"value": 1250}}' % key  # noqa: UP031
    runtime.reset_sdk_calls()

    answer = runtime.client("lambda").invoke(
        FunctionName=runtime.physical_id("NotifyFunction"),
        InvocationType="Event",
        Payload=payload,
    )
    assert answer["StatusCode"] == 202
    assert runtime.wait_for_async_invokes(15)

    attempts = gates.attempts[key]
    assert len(attempts) == 3  # the first attempt and MaximumRetryAttempts (2) retries
    assert len({request_id for _, request_id, _ in attempts}) == 1  # one event, one id
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(attempts)]
    assert gaps[0] >= RETRY_DELAYS[0] * 0.9
    assert gaps[1] >= RETRY_DELAYS[1] * 0.9
    sqs = runtime.client("sqs")
    received = sqs.receive_message(
        QueueUrl=runtime.physical_id("NotifyDeadLetterQueue"),
        MessageAttributeNames=["All"],
        WaitTimeSeconds=1,
    )
    (message,) = received["Messages"]
    assert message["Body"] == payload
    attributes = {
        name: value["StringValue"] for name, value in message["MessageAttributes"].items()
    }
    assert attributes == {
        "RequestID": attempts[0][1],
        "ErrorCode": "200",
        "ErrorMessage": f"receiver answered 500 for {key}",
    }
    calls = runtime.sdk_call_snapshot()
    assert calls["@runtime"]["sqs:SendMessage"] == 1  # the dead-letter message, by the runtime
    assert "NotifyFunction" not in calls
    assert runtime.lambdas.stats()["NotifyFunction"]["errors"] >= 3


def test_a_failing_event_without_a_dead_letter_queue_is_dropped_with_a_warning(
    runtime: LocalRuntime, gates: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    once, default = _new_id(), _new_id()
    dropped = runtime.async_invoker.stats.dropped
    caplog.set_level(logging.WARNING, logger="local_runtime.async")

    _invoke_event(runtime, "OnceFunction", {"id": once, "fail": True})
    _invoke_event(runtime, "DefaultFunction", {"id": default, "fail": True})
    assert runtime.wait_for_async_invokes(15)

    assert len(gates.attempts[once]) == 1  # MaximumRetryAttempts: 0
    assert len(gates.attempts[default]) == 3  # no EventInvokeConfig: Lambda's 2 retries
    assert runtime.async_invoker.stats.dropped == dropped + 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "local_runtime.async"]
    assert len([w for w in warnings if "AsyncEventsDropped" in w]) == 2


def test_an_on_failure_destination_gets_lambdas_invocation_record(
    runtime: LocalRuntime, gates: ModuleType
) -> None:
    key = _new_id()

    _invoke_event(runtime, "DestinedFunction", {"id": key, "fail": True})
    assert runtime.wait_for_async_invokes(15)

    assert len(gates.attempts[key]) == 2  # MaximumRetryAttempts: 1
    received = runtime.client("sqs").receive_message(
        QueueUrl=runtime.physical_id("FailureQueue"), WaitTimeSeconds=1
    )
    (message,) = received["Messages"]
    record = json.loads(message["Body"])
    assert record["requestContext"] == {
        "requestId": gates.attempts[key][0][1],
        "functionArn": runtime.lambdas.specs["DestinedFunction"].function_arn + ":$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 2,
    }
    assert record["requestPayload"] == {"id": key, "fail": True}
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "WebhookFailed"


def test_an_event_older_than_its_maximum_age_is_not_retried() -> None:
    """With a clock that jumps past MaximumEventAgeInSeconds during the first attempt."""
    now = [1000.0]
    spec = FunctionSpec(
        "Aged", "aged", "arn:aws:lambda:us-east-1:1:function:aged", None, "app.h", "python3.13",
        3, 128, "us-east-1", dead_letter_arn="arn:aws:sqs:us-east-1:1:dlq",
        max_event_age_seconds=60,
    )  # fmt: skip
    calls: list[str] = []

    class Host:
        specs = {"Aged": spec}

        def invoke(self, function_id: str, event: Any, source: str, **kw: Any) -> Invocation:
            calls.append(kw["request_id"])
            now[0] += 61
            error = FunctionError("Boom", "late")
            return Invocation(function_id, kw["request_id"], None, "{}", error, 1.0)

    sent: list[tuple[str, str, dict[str, Any]]] = []
    invoker = AsyncInvoker(
        Host(),  # type: ignore[arg-type]
        lambda arn, body, attributes: sent.append((arn, body, attributes)),
        retry_delays=(0.0,),
        clock=lambda: now[0],
    )

    request_id = invoker.submit("Aged", {"n": 1})
    assert invoker.wait_idle(5)
    invoker.stop()

    assert calls == [request_id]  # not retried
    ((arn, body, attributes),) = sent
    assert (arn, json.loads(body)) == ("arn:aws:sqs:us-east-1:1:dlq", {"n": 1})
    assert attributes["ErrorMessage"]["StringValue"] == "late"


def test_an_idle_queue_is_long_polled_for_20_seconds(runtime: LocalRuntime) -> None:
    pollers = [p for p in runtime._pollers if p.source.function_id == "ConsumerFunction"]
    threads = sum(len(p._threads) for p in pollers)
    runtime.reset_sdk_calls()

    time.sleep(3)

    receives = runtime.sdk_call_snapshot().get("@runtime", {}).get("sqs:ReceiveMessage", 0)
    assert receives <= threads  # a 1 s wait would have made ~3 per thread


def test_a_poller_asks_for_the_longest_wait() -> None:
    class RecordingSqs:
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def receive_message(self, **kwargs: Any) -> dict[str, Any]:
            self.calls.append(kwargs)
            return {}

    sqs = RecordingSqs()
    source = SqsEventSource("Idle", "ConsumerFunction", "arn:aws:sqs:us-east-1:1:q", "http://q")
    poller = SqsPoller(source, sqs, lambda *_: pytest.fail("nothing to invoke"), "us-east-1")

    assert poller.poll_once() == 0
    assert sqs.calls[0]["WaitTimeSeconds"] == 20


def test_the_runtime_stops_at_once_with_pollers_in_their_long_poll_and_events_pending(
    runtime: LocalRuntime, gates: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    """Last test of the module: it stops the module's runtime."""
    key = _new_id()
    caplog.set_level(logging.DEBUG, logger="local_runtime")
    thread_errors: list[Any] = []
    previous_hook = threading.excepthook
    threading.excepthook = thread_errors.append
    try:
        _invoke_event(runtime, "NotifyFunction", {"id": key, "fail": True})  # to be retried
        eventually(lambda: gates.attempts[key], timeout=10)
        time.sleep(0.1)  # the retry waits; the pollers are inside a 20 s receive

        started = time.monotonic()
        runtime.stop()
        stopped_in = time.monotonic() - started

        assert stopped_in < 2.0
        assert runtime.async_invoker.stats.abandoned >= 1
        time.sleep(RETRY_DELAYS[1] * 2)  # the abandoned retry never runs
        assert len(gates.attempts[key]) <= 2
    finally:
        threading.excepthook = previous_hook
    assert thread_errors == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
