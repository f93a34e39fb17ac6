"""The schema-driven fuzz run gets a runtime of its own: it leaves payments and executions in
every state, which the e2e suite's final-state checks must never see."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local_runtime.profile import LocalProfile
from local_runtime.runtime import LocalRuntime


@pytest.fixture(scope="package")
def runtime() -> Iterator[LocalRuntime]:
    profile = LocalProfile.free_ports(
        callback_wait_seconds=2,
        channel_query_interval_seconds=1,
        webhook_retry_schedule="1,1",
        webhook_max_attempts=2,
        channel_timeout_seconds=1,
    )
    with LocalRuntime(profile=profile) as started:
        yield started
