"""The key roll's answer."""

from __future__ import annotations

from pydantic import Field

from paycore.api.resources.common import Resource, Timestamp


class RolledApiKey(Resource):
    """The new API key (shown once, null in a replay) and when the one it replaces stops
    working: API Gateway caches an authorization for 60 s, so it is refused at most 60 s
    later."""

    api_key: str | None = Field(description="Shown once; null in a replay")
    previous_key_expires_at: Timestamp
