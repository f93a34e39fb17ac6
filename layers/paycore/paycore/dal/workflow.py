"""Step Functions: start a payment's or a refund's execution and resume it from a callback."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from botocore.exceptions import ClientError

from paycore.aws import client
from paycore.config import get_settings
from paycore.errors import ServiceUnavailable

# A token that can no longer be used: the wait already timed out (the state machine has moved
# on to querying the channel) or the execution finished. Not an error for the caller.
_STALE_TOKEN_ERRORS = {"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"}


def start_payment_execution(payment_id: str, execution_input: dict[str, Any]) -> str:
    """Start the payment's execution, named after the payment so a retry cannot start a twin
    (same name and input while running returns the same execution)."""
    try:
        answer = client("stepfunctions").start_execution(
            stateMachineArn=get_settings().payment_state_machine_arn,
            name=payment_id,
            input=json.dumps(execution_input, separators=(",", ":")),
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ExecutionAlreadyExists":
            return f"{get_settings().payment_state_machine_arn}:{payment_id}"
        raise ServiceUnavailable("the payment workflow could not be started") from exc
    return str(answer["executionArn"])


def start_refund_execution(refund_id: str, execution_input: dict[str, Any]) -> str:
    """Start the refund's execution, named after the refund (a retry cannot start a twin;
    an execution that already ran under that name is left as it is)."""
    arn = get_settings().refund_state_machine_arn
    try:
        answer = client("stepfunctions").start_execution(
            stateMachineArn=arn,
            name=refund_id,
            input=json.dumps(execution_input, separators=(",", ":")),
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ExecutionAlreadyExists":
            return f"{arn.replace(':stateMachine:', ':execution:')}:{refund_id}"
        raise ServiceUnavailable("the refund workflow could not be started") from exc
    return str(answer["executionArn"])


def resume_with_outcome(task_token: str, outcome: dict[str, Any]) -> bool:
    """Hand the channel's outcome to the waiting execution; False if it no longer waits."""
    try:
        client("stepfunctions").send_task_success(
            taskToken=task_token, output=json.dumps(outcome, separators=(",", ":"))
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] in _STALE_TOKEN_ERRORS:
            return False
        raise
    return True


def caught_channel_error(raw: dict[str, Any]) -> tuple[str, str] | None:
    """A ``Catch`` result (``{"Error", "Cause"}``) as a failure code and message: the channel
    refused (``channel_rejected``) or failed otherwise (``channel_error``). None when ``raw``
    is not a caught error."""
    if "Error" not in raw:
        return None
    message = str(raw.get("Cause") or "")
    with contextlib.suppress(ValueError, AttributeError):
        message = str(json.loads(message).get("errorMessage", message))
    code = "channel_rejected" if raw["Error"] == "ChannelRejected" else "channel_error"
    return code, message or str(raw["Error"])
