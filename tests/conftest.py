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
    """boto3 clients, secrets and channel gateways are cached per process; each mocked test
    starts clean."""
    clear_paycore_caches()
    yield
    clear_paycore_caches()


def clear_paycore_caches() -> None:
    from paycore import aws
    from paycore.channels import accounts, registry
    from paycore.dal import secrets, webhook_secrets

    aws.client.cache_clear()
    secrets.clear_cache()
    webhook_secrets.clear_cache()
    accounts.clear_cache()
    registry.clear_cache()


def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
