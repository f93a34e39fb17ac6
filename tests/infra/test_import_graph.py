"""What each function's INIT imports, pinned without a timer (``make coldstart`` times it).

Each function's handler module is imported in a fresh process, the way Lambda's INIT does, in
the environment the template gives it (tracing on, as deployed). Then:

- nothing a request loads on first need is there already: the X-Ray SDK (the tracer's first
  call), the channels' adapters and SDKs (the registry's first use of an account), Powertools'
  OpenAPI models and Swagger UI (``GET /openapi.json``, ``GET /docs``), the QR code library,
  the API's answer models (each module of ``paycore.api.resources`` by the first answer that
  serializes one of its models), Powertools' idempotency utility (the first POST with an
  ``Idempotency-Key``);
- a function that serves no HTTP route loads neither the resolver nor the API's models;
- no function loads a part of ``cryptography`` that boto3 alone does not already load;
- each function loads only the paycore modules listed for it here: a new import in a shared
  module shows up as a failure that names the function and the module.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from bench.coldstart import BARE, BARE_HANDLER, LAYER, environments_to_measure

# The API's answer models, one module per resource (the package itself only names them).
RESOURCE_MODELS = tuple(
    sorted(
        f"paycore.api.resources.{path.stem}"
        for path in (LAYER / "paycore" / "api" / "resources").glob("*.py")
        if path.stem != "__init__"
    )
)

# Loaded when a request first needs them, never at INIT.
ON_FIRST_NEED = (
    "aws_xray_sdk",
    "stripe",
    "segno",
    "requests",
    "sqlite3",  # what X-Ray's patch_all would import at INIT
    "paycore.channels.sandbox",
    "paycore.channels.alipay",
    "paycore.channels.wechatpay",
    "paycore.channels.stripe",
    "aws_lambda_powertools.event_handler.openapi.models",
    "aws_lambda_powertools.event_handler.openapi.swagger_ui",
    "aws_lambda_powertools.utilities.idempotency",
    *RESOURCE_MODELS,
)

# Only the API serves routes and validates request bodies.
API_ONLY = (
    "aws_lambda_powertools.event_handler",
    "paycore.api.models",
    "paycore.api.resources",
    "paycore.api.openapi",
    "paycore.api.routes",
    "paycore.api.resolver",
    "paycore.api.cashier_page",
)

# The API's use cases that only some routes call, loaded by the first request of such a route:
# paying, refunding, closing, confirming, settling, onboarding, rolling a key, the cashier.
# (The channel registry is not among them: the first request of every container reads the
# channel accounts to say when none is configured, so it is loaded at INIT.)
API_ON_FIRST_NEED = (
    "paycore.api.cashier_page",
    "paycore.dal.refund_store",
    "paycore.dal.workflow",
    "paycore.services.cashier",
    "paycore.services.closing",
    "paycore.services.confirmation",
    "paycore.services.merchants",
    "paycore.services.orchestration",
    "paycore.services.payments",
    "paycore.services.refunds",
    "paycore.services.settlement",
)

# Every function: its observability, settings and the trade table.
_BASE = {
    "paycore",
    "paycore.aws",
    "paycore.clock",
    "paycore.config",
    "paycore.dal",
    "paycore.dal.codec",
    "paycore.dal.trade_store",
    "paycore.domain",
    "paycore.domain.cashier",
    "paycore.domain.models",
    "paycore.domain.refunds",
    "paycore.domain.status",
    "paycore.errors",
    "paycore.observability",
} | {
    # The trade store writes each change with its journal entry: the ledger is part of it.
    "paycore.dal.instruments",
    "paycore.dal.ledger",
    "paycore.dal.transaction",
    "paycore.domain.changes",
    "paycore.domain.instruments",
    "paycore.domain.postings",
    "paycore.ledger",
    "paycore.ledger.accounts",
    "paycore.ledger.books",
    "paycore.ledger.entries",
    "paycore.ledger.fees",
    "paycore.ledger.rules",
    "paycore.money",
}
# The merchant's webhook endpoints: where events go (and where an event is sent again).
_ENDPOINTS = {
    "paycore.ids",
    "paycore.dal.webhook_endpoint_store",
    "paycore.dal.webhook_secrets",
    "paycore.domain.webhook_endpoints",
    "paycore.services.webhook_endpoints",
    "paycore.webhooks",
}

# What moves money: the channel registry (no adapter), the ledger of instruments, events.
_PAYMENTS = _ENDPOINTS | {
    "paycore.channels",
    "paycore.channels.accounts",
    "paycore.channels.base",
    "paycore.channels.registry",
    "paycore.channels.routing",
    "paycore.dal.instruments",
    "paycore.dal.notification_queue",
    "paycore.dal.secrets",
    "paycore.dal.workflow",
    "paycore.domain.instruments",
    "paycore.http_urls",
    "paycore.money",
    "paycore.services",
    "paycore.services.events",
    "paycore.services.orders",
}
_WEBHOOKS = {
    "paycore.dal.notification_dead_letters",
    "paycore.dal.notification_queue",
    "paycore.http_urls",
    "paycore.services",
    "paycore.services.notifications",
    "paycore.webhooks",
} | _ENDPOINTS

ALLOWED_PAYCORE: Mapping[str, set[str]] = {
    "authorizer": _BASE | {"paycore.api_keys", "paycore.auth", "paycore.dal.secrets"},
    "api": (
        _BASE
        | _PAYMENTS
        | {
            "paycore.api",
            "paycore.api.idempotency",
            "paycore.api.models",
            "paycore.api.openapi",
            "paycore.api.problem",
            "paycore.api.request_body",
            "paycore.api.resolver",
            "paycore.api.resources",
            "paycore.api.routes",
            "paycore.api.routes.api_keys",
            "paycore.api.routes.cashier",
            "paycore.api.routes.channels",
            "paycore.api.routes.events",
            "paycore.api.routes.http",
            "paycore.api.routes.instruments",
            "paycore.api.routes.ledger",
            "paycore.api.routes.merchants",
            "paycore.api.routes.orders",
            "paycore.api.routes.params",
            "paycore.api.routes.payments",
            "paycore.api.routes.refunds",
            "paycore.api.routes.settlements",
            "paycore.api.routes.webhook_endpoints",
            "paycore.api_keys",
            "paycore.auth",
            "paycore.channels.simulate",
            "paycore.services.channels",
            "paycore.services.instruments",
            "paycore.services.ledger",
        }
    )
    - set(API_ON_FIRST_NEED),
    "channel_callback": _BASE
    | _PAYMENTS
    | {
        "paycore.api",
        "paycore.api.problem",
        "paycore.dal.refund_store",
        "paycore.services.callbacks",
        "paycore.services.orchestration",
        "paycore.services.refunds",
    },
    "payment_worker": _BASE
    | (_PAYMENTS - {"paycore.services.orders"})
    | {"paycore.services.orchestration"},
    "refund_worker": _BASE | _PAYMENTS | {"paycore.dal.refund_store", "paycore.services.refunds"},
    "order_expiry": _BASE
    | _PAYMENTS
    | {"paycore.services.closing", "paycore.services.orchestration"},
    "notifier": _BASE | _WEBHOOKS,
    "notification_redrive": _BASE | _WEBHOOKS,
    "webhook_secret_migration": _BASE | _ENDPOINTS | {"paycore.http_urls", "paycore.services"},
    "auto_confirm": _BASE
    | _ENDPOINTS
    | {
        "paycore.dal.notification_queue",
        "paycore.http_urls",
        "paycore.services",
        "paycore.services.confirmation",
        "paycore.services.events",
        "paycore.services.orders",
    },
    "settlement": _BASE | {"paycore.services", "paycore.services.settlement"},
}


def _matching(modules: Iterable[str], prefixes: Iterable[str]) -> list[str]:
    prefixes = tuple(prefixes)
    return sorted(
        m for m in modules if m in prefixes or m.startswith(tuple(f"{p}." for p in prefixes))
    )


@pytest.fixture(scope="module")
def loaded() -> dict[str, set[str]]:
    """Per function (and the bare boto3 handler), the modules loaded by importing it."""
    script = "import app, sys\nprint('\\n'.join(sorted(sys.modules)))"
    with tempfile.TemporaryDirectory(prefix="paycore-bare-") as folder:
        (Path(folder) / "app.py").write_text(BARE_HANDLER)
        found = {}
        for name, environment in environments_to_measure(Path(folder)).items():
            done = subprocess.run(
                [sys.executable, "-c", script],
                env=environment,
                cwd=environment["LAMBDA_TASK_ROOT"],
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, (name, done.stderr)
            found[name] = set(done.stdout.split())
    return found


def test_every_function_of_the_template_is_pinned(loaded: dict[str, set[str]]) -> None:
    assert set(loaded) - {BARE} == set(ALLOWED_PAYCORE)
    for name, modules in loaded.items():
        assert "app" in modules, name
        assert name == BARE or "paycore.observability" in modules, name


@pytest.mark.parametrize("function", sorted(ALLOWED_PAYCORE))
def test_init_loads_nothing_a_request_loads_on_first_need(
    loaded: dict[str, set[str]], function: str
) -> None:
    assert _matching(loaded[function], ON_FIRST_NEED) == []


@pytest.mark.parametrize("function", sorted(set(ALLOWED_PAYCORE) - {"api"}))
def test_only_the_api_loads_the_resolver_and_the_api_models(
    loaded: dict[str, set[str]], function: str
) -> None:
    assert _matching(loaded[function], API_ONLY) == []


def test_the_api_loads_its_validation_at_init_and_the_description_on_request(
    loaded: dict[str, set[str]],
) -> None:
    """Request bodies are validated from the first request: the validation is there."""
    modules = loaded["api"]
    assert "aws_lambda_powertools.event_handler.middlewares.openapi_validation" in modules
    assert "paycore.api.models" in modules
    assert "aws_lambda_powertools.event_handler.openapi.models" not in modules


def test_the_api_names_its_answers_at_init_and_loads_their_models_on_first_need(
    loaded: dict[str, set[str]],
) -> None:
    """Routes are registered with the name of their answer (paycore.api.resources); no model
    of an answer is built before a request serializes one."""
    assert "paycore.api.resources.orders" in RESOURCE_MODELS  # the glob found the modules
    assert "paycore.api.resources" in loaded["api"]
    assert _matching(loaded["api"], RESOURCE_MODELS) == []


def test_the_api_loads_a_use_case_with_the_first_request_that_calls_it(
    loaded: dict[str, set[str]],
) -> None:
    assert _matching(loaded["api"], API_ON_FIRST_NEED) == []


@pytest.mark.parametrize("function", sorted(ALLOWED_PAYCORE))
def test_each_list_is_exactly_what_its_init_loads(
    loaded: dict[str, set[str]], function: str
) -> None:
    """A list shrinks with each import made lazy, so it never hides what could come back."""
    assert sorted(ALLOWED_PAYCORE[function] - loaded[function]) == []


@pytest.mark.parametrize("function", sorted(ALLOWED_PAYCORE))
def test_no_part_of_cryptography_beyond_what_boto3_loads(
    loaded: dict[str, set[str]], function: str
) -> None:
    extra = _matching(loaded[function] - loaded[BARE], ["cryptography", "OpenSSL", "cffi"])
    assert extra == []


@pytest.mark.parametrize("function", sorted(ALLOWED_PAYCORE))
def test_init_loads_only_the_paycore_modules_listed_for_the_function(
    loaded: dict[str, set[str]], function: str
) -> None:
    unexpected = sorted(set(_matching(loaded[function], ["paycore"])) - ALLOWED_PAYCORE[function])
    assert unexpected == [], f"{function} now imports {unexpected} at INIT"
