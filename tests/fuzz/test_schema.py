"""Schema-driven fuzzing of the whole API against its own OpenAPI description (schemathesis),
over HTTP against the local runtime: every route, valid and invalid input, then stateful
journeys that follow the description's links (create an order, pay it, close it, refund it,
read what was made).

Fails on any 5xx, and on any answer the description does not allow: an undocumented status,
a problem ``code`` not in that route's list, a body that does not match its model, a wrong
content type or a missing header. Seeded: the seed is printed first (replay a failure with
``PAYCORE_FUZZ_SEED=<seed> make test`` or ``pytest tests/fuzz``); the number of examples is
fixed, so the run is bounded.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from local_runtime.runtime import LocalRuntime

SEED = int(os.environ.get("PAYCORE_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
EXAMPLES = {GenerationMode.POSITIVE: 45, GenerationMode.NEGATIVE: 30}
STATEFUL_SCENARIOS = 25
MIN_REQUESTS = 1000

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class Callers:
    """The credentials each operation's ``security`` asks for."""

    def __init__(self, runtime: LocalRuntime, spec: dict[str, Any]) -> None:
        admin = {"Authorization": f"Bearer {runtime.profile.admin_token}"}
        onboarding = requests.post(
            runtime.api_url + "/v1/merchants",
            json={"name": "Fuzz Shop", "webhook_url": None},
            headers=admin,
            timeout=30,
        )
        assert onboarding.status_code == 201, onboarding.text
        merchant = {"Authorization": f"Bearer {onboarding.json()['api_key']}"}
        self._by_scheme = {"adminToken": admin, "merchantKey": merchant}
        self._security = {
            (method.upper(), path): operation.get("security", [])
            for path, operations in spec["paths"].items()
            for method, operation in operations.items()
        }
        self.requests = 0

    def headers(self, method: str, path: str) -> dict[str, str]:
        for requirement in self._security[(method.upper(), path)]:
            for scheme in requirement:
                return dict(self._by_scheme[scheme])
        return {}


@pytest.fixture(scope="module")
def spec(runtime: LocalRuntime) -> dict[str, Any]:
    answer = requests.get(runtime.api_url + "/openapi.json", timeout=30)
    assert answer.status_code == 200
    return dict(answer.json())


@pytest.fixture(scope="module")
def callers(runtime: LocalRuntime, spec: dict[str, Any]) -> Callers:
    return Callers(runtime, spec)


@pytest.fixture(scope="module")
def say(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Print past pytest's capture: the seed and the figures are wanted on every run."""
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def printer(text: str) -> None:
        with capture.global_and_fixture_disabled():
            print(f"\nschema fuzz: {text}", flush=True)

    printer(f"seed {SEED} (replay: PAYCORE_FUZZ_SEED={SEED})")
    return printer


def _settings(examples: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        stateful_step_count=8,
    )


def _operations(runtime: LocalRuntime, spec: dict[str, Any]) -> list[Any]:
    schema = schemathesis.openapi.from_dict(spec)
    schema.config.update(base_url=runtime.api_url)
    return [result.ok() for result in schema.get_all_operations()]


def test_every_operation_answers_as_described(
    runtime: LocalRuntime, spec: dict[str, Any], callers: Callers, say: Callable[[str], None]
) -> None:
    operations = _operations(runtime, spec)
    described = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert {(op.method.upper(), op.path) for op in operations} == described
    for operation in operations:
        for mode, examples in EXAMPLES.items():
            _fuzz(operation, mode, examples, runtime.api_url, callers)
    say(f"{callers.requests} requests to {len(operations)} operations")
    assert callers.requests >= MIN_REQUESTS, callers.requests


def _fuzz(
    operation: Any, mode: GenerationMode, examples: int, base_url: str, callers: Callers
) -> None:
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS
    headers = callers.headers(operation.method, operation.path)

    @hypothesis.seed(SEED)
    @_settings(examples)
    # The credentials are supplied, not generated: a negative case never "removes" them.
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode, headers=headers or None))
    def run(case: Any) -> None:
        callers.requests += 1
        case.call_and_validate(base_url=base_url, checks=checks, timeout=30)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        # No invalid input exists for an operation that takes none (GET /health).
        if mode is not GenerationMode.NEGATIVE:
            raise
    except Exception as failure:
        failure.add_note(f"{operation.method.upper()} {operation.path} ({mode.value}), seed {SEED}")
        raise


def test_journeys_that_follow_the_links_answer_as_described(
    runtime: LocalRuntime, spec: dict[str, Any], callers: Callers, say: Callable[[str], None]
) -> None:
    schema = schemathesis.openapi.from_dict(spec)
    schema.config.update(base_url=runtime.api_url)
    header_for: Callable[[str, str], dict[str, str]] = callers.headers

    class Journeys(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            callers.requests += 1
            return {
                "base_url": runtime.api_url,
                "headers": header_for(case.operation.method, case.operation.path),
                "timeout": 30,
            }

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    before = callers.requests
    # One scenario per run, each with its own seed derived from SEED: a journey's steps
    # depend on what the live API answered (a payment may or may not have settled yet), which
    # hypothesis would report as a flaky strategy if one run held several scenarios.
    for scenario in range(STATEFUL_SCENARIOS):
        hypothesis.seed(SEED + scenario)(Journeys.TestCase)
        Journeys.run(settings=_settings(1))
    say(f"{callers.requests - before} requests in {STATEFUL_SCENARIOS} linked journeys")
    assert callers.requests > before
