"""X-Ray tracing still works once the X-Ray SDK is loaded on first use instead of at INIT.

A deployed function is imported in a fresh process with Lambda's environment (tracing on), a
UDP socket stands in for the X-Ray daemon, and moto for SQS. The import leaves the SDK out;
the first invocation then records the handler's subsegment and, inside it, one subsegment per
AWS call (botocore patched before the first call), all under the invocation's trace id.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support import ROOT

TRACE_ID = "1-5759e988-bd862e3fe1be46a994272793"
PARENT_ID = "53995c3f42cd8ad8"

SCRIPT = """
import json, os, socket, sys

daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
daemon.bind(("127.0.0.1", 0))
daemon.settimeout(2)
os.environ["AWS_XRAY_DAEMON_ADDRESS"] = "127.0.0.1:%d" % daemon.getsockname()[1]

import boto3
from moto import mock_aws

from tests.support import FakeContext

with mock_aws():
    sqs = boto3.client("sqs")
    os.environ["NOTIFICATION_QUEUE_URL"] = sqs.create_queue(QueueName="notify")["QueueUrl"]
    os.environ["DEAD_LETTER_QUEUE_URL"] = sqs.create_queue(QueueName="parked")["QueueUrl"]
    sqs.send_message(QueueUrl=os.environ["DEAD_LETTER_QUEUE_URL"], MessageBody="{}")
    loaded = set(sys.modules)
    import app
    at_init = sorted(set(sys.modules) - loaded)
    answer = app.lambda_handler({"max_messages": 1}, FakeContext())

documents = []
try:
    while True:
        documents.append(json.loads(daemon.recv(65536).decode().split("\\n", 1)[1]))
except socket.timeout:
    pass
print(json.dumps({
    "disabled": app.tracer.disabled,
    "at_init": at_init,
    "answer": answer,
    "documents": documents,
}))
"""


def test_the_first_invocation_traces_the_handler_and_each_aws_call_inside_it() -> None:
    function = ROOT / "functions" / "notification_redrive"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": f"{function}:{ROOT / 'layers' / 'paycore'}:{ROOT}",
        "LAMBDA_TASK_ROOT": str(function),
        "AWS_LAMBDA_FUNCTION_NAME": "paycore-notification-redrive",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "POWERTOOLS_SERVICE_NAME": "notification_redrive",
        "_X_AMZN_TRACE_ID": f"Root={TRACE_ID};Parent={PARENT_ID};Sampled=1",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])

    assert result["disabled"] is False
    assert "aws_xray_sdk.core" not in result["at_init"]
    assert result["answer"] == {"moved": 1}
    documents = result["documents"]
    assert {document["trace_id"] for document in documents} == {TRACE_ID}
    (handler,) = [d for d in documents if d["name"] == "## lambda_handler"]
    assert handler["parent_id"] == PARENT_ID
    calls = [d["aws"]["operation"] for d in documents if d.get("namespace") == "aws"]
    assert calls == ["ReceiveMessage", "SendMessageBatch", "DeleteMessageBatch"]
    assert {d["parent_id"] for d in documents if d.get("namespace") == "aws"} == {handler["id"]}
