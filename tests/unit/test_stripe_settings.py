"""A Stripe account's credentials: the simulator's ``/_sim/accounts`` fields, every key a
SecretStr that never reaches a repr or a log line, production's API by default, https unless
the account is a simulator."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from pydantic import SecretStr, ValidationError

from paycore.channels.stripe.adapter import StripeGateway, create_gateway
from paycore.channels.stripe.settings import PRODUCTION_API_BASE_URL, StripeSettings
from paycore.config import Settings

KEY = "sk_test_" + "S3cr3tK3y" * 5
WEBHOOK = "whsec_" + "W3bh00k" * 5


def entry(**changes: Any) -> dict[str, Any]:
    """The credentials as the simulator lists them (minus account and channel)."""
    values: dict[str, Any] = {
        "secret_key": KEY,
        "webhook_secret": WEBHOOK,
        "api_base_url": "http://127.0.0.1:3103/",
        "simulator": True,
    }
    values.update(changes)
    return {key: value for key, value in values.items() if value is not None}


def test_the_simulators_entry_is_read_with_every_key_a_secret_str() -> None:
    read = StripeSettings.model_validate(entry())

    assert isinstance(read.secret_key, SecretStr)
    assert isinstance(read.webhook_secret, SecretStr)
    assert (read.secret_key.get_secret_value(), read.webhook_secret.get_secret_value()) == (
        KEY,
        WEBHOOK,
    )
    assert read.api_base_url == "http://127.0.0.1:3103"
    assert read.simulator is True


def test_a_production_account_needs_only_its_keys() -> None:
    read = StripeSettings.model_validate({"secret_key": KEY, "webhook_secret": WEBHOOK})

    assert read.api_base_url == PRODUCTION_API_BASE_URL == "https://api.stripe.com"
    assert read.simulator is False


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"secret_key": None}, "secret_key"),
        ({"webhook_secret": None}, "webhook_secret"),
        ({"secret_key": "pk_test_publishable"}, "secret_key"),  # a publishable key
        ({"secret_key": f" {KEY}"}, "secret_key"),
        ({"secret_key": ""}, "secret_key"),
        ({"webhook_secret": "not-a-signing-secret"}, "webhook_secret"),
        ({"webhook_secret": "whsec_"}, "webhook_secret"),
        ({"api_base_url": "api.stripe.com"}, "api_base_url"),
        ({"api_base_url": "ftp://api.stripe.com"}, "api_base_url"),
        ({"api_base_url": "https://api.stripe.com/?x=1"}, "api_base_url"),
        ({"simulator": "yes"}, "simulator"),
        ({"account": "stripe-main"}, "account"),  # a misspelt or stray field is refused
    ],
)
def test_credentials_that_are_not_a_stripe_accounts_are_refused_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        StripeSettings.model_validate(entry(**changes))

    locations = {".".join(map(str, error["loc"])) for error in refused.value.errors()}
    assert field in locations


def test_plain_http_is_only_for_a_simulator() -> None:
    with pytest.raises(ValidationError, match="must be https"):
        StripeSettings.model_validate(entry(simulator=False))

    assert StripeSettings.model_validate(entry(api_base_url="https://stripe.internal")).simulator


def test_neither_the_settings_nor_the_gateway_show_a_key() -> None:
    read = StripeSettings.model_validate(entry())
    gateway = StripeGateway(read, account_id="stripe-a")

    shown = [
        repr(read),
        str(read),
        read.model_dump_json(),
        json.dumps(read.model_dump(), default=str),
        repr(gateway),
        str(gateway),
        repr(vars(gateway)),
        repr(vars(gateway)["_api"]),
    ]
    assert all(KEY not in text and WEBHOOK not in text for text in shown)


def test_a_powertools_log_line_carrying_them_shows_no_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger = Logger(service="stripe-secrets-test", level=logging.INFO)
    read = StripeSettings.model_validate(entry())

    logger.info(
        "account loaded",
        extra={"settings": read, "gateway": create_gateway("a", entry(), Settings())},
    )
    logger.append_keys(credentials=read.model_dump())
    logger.warning("with appended keys")

    output = capsys.readouterr().out
    assert "account loaded" in output
    assert KEY not in output
    assert WEBHOOK not in output


def test_a_validation_error_can_be_told_without_the_value() -> None:
    with pytest.raises(ValidationError) as refused:
        StripeSettings.model_validate(entry(secret_key="pk_live_" + "p" * 20))

    told = json.dumps(
        refused.value.errors(include_input=False, include_url=False, include_context=False)
    )
    assert "p" * 20 not in told
    assert "secret_key" in told


def test_the_factory_takes_the_timeout_from_the_settings() -> None:
    gateway = create_gateway(
        "stripe-a", entry(), Settings.model_validate({"CHANNEL_TIMEOUT_SECONDS": 1.5})
    )

    assert (gateway.name, gateway.account_id, gateway.simulator) == ("stripe", "stripe-a", True)
    assert "timeout=1.5" in repr(gateway)
