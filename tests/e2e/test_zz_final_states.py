"""Collected last (by name): after every flow of the suite, each payment execution the suite
started has reached a final state and nothing is left running."""

from __future__ import annotations

from local_runtime.runtime import LocalRuntime
from tests.e2e.conftest import eventually


def test_every_payment_execution_finished_successfully(runtime: LocalRuntime) -> None:
    sfn = runtime.client("stepfunctions")
    machine = runtime.outputs()["PaymentStateMachineArn"]

    def statuses() -> dict[str, str]:
        executions = sfn.list_executions(stateMachineArn=machine, maxResults=1000)["executions"]
        return {e["name"]: e["status"] for e in executions}

    eventually(
        lambda: statuses() and all(s == "SUCCEEDED" for s in statuses().values()), timeout=30
    )
