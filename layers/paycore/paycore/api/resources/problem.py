"""The error answer (problem+json), as the OpenAPI description shows it: errors are built by
``paycore.api.problem``, not serialized through this model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """An error (RFC 9457 problem details). ``code`` is stable: program against it, not
    against ``detail``; ``param`` names the field at fault when there is one."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:paycore:problem:order_not_found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(ge=400, le=599)
    detail: str
    code: str = Field(examples=["order_not_found"])
    param: str | None = None
