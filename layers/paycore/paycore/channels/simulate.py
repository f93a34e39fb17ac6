"""``simulate``: how a local channel service should misbehave for one payment.

Every local channel service (the sandbox and each real channel's simulator) takes the same
switches, carried from the channel instrument's ``simulate`` object to the channel in the field
it hands back untouched (the sandbox's ``sandbox_behaviour``, Alipay ``passback_params``, WeChat
Pay ``attach``, Stripe ``metadata``). This model is the one definition of their names, types and
ranges: the API validates ``simulate`` with it, and the simulators validate what they receive
with it, so a switch the API accepts is one every simulator understands. (The sandbox keeps its
own copy, ``local_runtime.sandbox.models.SandboxBehaviour``, because it shares no code with
paycore; a unit test holds the two to the same switches.)

An account takes ``simulate`` only when its credentials say ``"simulator": true``; on a real
channel account the API refuses it (422 ``simulate_not_allowed``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from paycore.money import MAX_AMOUNT

_Seconds = Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)]
_SWITCHES = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class CreateError(BaseModel):
    """``create_error``: the first ``times`` create calls answer ``status``; with
    ``after_create`` the order is created (or found) first, so only the answer is lost."""

    model_config = _SWITCHES

    times: Annotated[int, Field(ge=1)] = 1
    status: Literal[500, 502, 503] = 503
    after_create: bool = False


class CreateTimeout(BaseModel):
    """``create_timeout``: the first ``times`` create calls create the order, then stall
    ``seconds`` before answering (past a client's timeout)."""

    model_config = _SWITCHES

    times: Annotated[int, Field(ge=1)] = 1
    seconds: Annotated[float, Field(ge=0, le=60, allow_inf_nan=False)] = 8.0


class RefundError(BaseModel):
    """``refund_error``: the first ``times`` refund calls answer 503 and do nothing."""

    model_config = _SWITCHES

    times: Annotated[int, Field(ge=1)] = 1


class SimulateSwitches(BaseModel):
    """The misbehaviour switches; all optional. Unknown switches and wrong types are refused,
    so nobody relies on a switch that does nothing. What each one does is described in
    local_runtime/sandbox/README.md, "Misbehaviour switches"."""

    model_config = _SWITCHES

    decline: bool = False
    notify_delay_seconds: _Seconds | None = None
    notify_drop: bool = False
    notify_duplicate: Annotated[int, Field(ge=2, le=5)] | None = None
    notify_reorder: bool = False
    query_only: bool = False
    create_error: CreateError | None = None
    create_timeout: CreateTimeout | None = None
    refund_fail: bool = False
    refund_delay_seconds: _Seconds | None = None
    refund_error: RefundError | None = None
    close_ignored: bool = False
    # The daily statement (reconciliation): the payment's lines are missing, its amount is
    # off by this many minor units, or it shows this channel status word instead.
    statement: Literal["omit"] | None = None
    statement_amount_delta: Annotated[int, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT)] | None = None
    statement_status: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,32}$")] | None = (
        None
    )

    def shown(self) -> dict[str, Any]:
        """The switches that were set (nested objects in full, defaults included): what is
        stored with the payment and forwarded to the channel."""
        return self.model_dump(include=set(self.model_fields_set))
