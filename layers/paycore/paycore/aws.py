"""boto3 clients, created once per process and shared (boto3 clients are thread-safe).

Only the data layer (``paycore.dal``) and channel registry use these. Locally,
``AWS_ENDPOINT_URL`` points every client at the moto server.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=3,
    read_timeout=10,
)


@cache
def client(service: str) -> Any:
    """A shared low-level client for ``service``."""
    return boto3.session.Session().client(service, config=_CONFIG)  # type: ignore[call-overload]
