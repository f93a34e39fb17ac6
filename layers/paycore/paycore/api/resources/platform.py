"""The platform's own answers."""

from __future__ import annotations

from typing import Literal

from paycore.api.resources.common import Resource


class Health(Resource):
    status: Literal["ok"]
