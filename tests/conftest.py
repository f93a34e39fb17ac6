"""Fixtures shared by every suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Paycore")


@pytest.fixture
def reset_paycore_caches() -> Iterator[None]:
    """boto3 clients and secrets are cached per process; each mocked test starts clean."""
    from paycore import aws
    from paycore.dal import secrets

    aws.client.cache_clear()
    secrets._cache.clear()
    yield
    aws.client.cache_clear()
    secrets._cache.clear()


def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
