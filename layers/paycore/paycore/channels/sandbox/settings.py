"""A sandbox account's credentials, as its Secrets Manager secret holds them (JSON)::

    {"base_url": "http://127.0.0.1:3100/accounts/sandbox-primary",
     "secret": "<the sandbox's shared secret>", "simulator": true}

``base_url`` is the account's API root (the sandbox serves account ``A`` under
``/accounts/A``); the sandbox has no production address, so it has no default. ``secret``
signs requests and verifies notifications. ``simulator`` defaults to true: the sandbox is a
simulator by nature, and its misbehaviour switches are its purpose.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class SandboxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    base_url: Annotated[str, Field(max_length=2048)]
    secret: Annotated[SecretStr, Field(min_length=1)]
    simulator: bool = True

    @field_validator("base_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")
