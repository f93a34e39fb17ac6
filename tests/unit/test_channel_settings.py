"""An account's credentials never reach a log: every key is a SecretStr, and neither the
settings, the gateway nor a Powertools log line that carries them shows the value."""

from __future__ import annotations

import json
import logging

import pytest
from aws_lambda_powertools import Logger
from pydantic import SecretStr, ValidationError

from paycore.channels.sandbox.adapter import SandboxGateway
from paycore.channels.sandbox.settings import SandboxSettings

SECRET = "hmac-key-that-must-never-be-logged"


def settings() -> SandboxSettings:
    return SandboxSettings.model_validate(
        {"base_url": "http://127.0.0.1:3100/accounts/a/", "secret": SECRET, "simulator": True}
    )


def test_the_secret_is_a_secret_str_and_the_url_is_normalised() -> None:
    read = settings()

    assert isinstance(read.secret, SecretStr)
    assert read.secret.get_secret_value() == SECRET
    assert read.base_url == "http://127.0.0.1:3100/accounts/a"


def test_neither_the_settings_nor_the_gateway_show_the_secret() -> None:
    read = settings()
    gateway = SandboxGateway(read, account_id="a")

    shown = [
        repr(read),
        str(read),
        read.model_dump_json(),
        json.dumps(read.model_dump(), default=str),
    ]
    shown += [repr(gateway), str(gateway), repr(vars(gateway))]
    assert all(SECRET not in text for text in shown)


def test_a_powertools_log_line_carrying_them_shows_no_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger = Logger(service="secrets-test", level=logging.INFO)
    read = settings()

    logger.info(
        "account loaded",
        extra={"settings": read, "gateway": SandboxGateway(read, account_id="a")},
    )
    logger.append_keys(credentials=read.model_dump())
    logger.warning("with appended keys")

    output = capsys.readouterr().out
    assert "account loaded" in output and "with appended keys" in output
    assert SECRET not in output


def test_a_validation_error_of_the_settings_can_be_told_without_the_value() -> None:
    with pytest.raises(ValidationError) as refused:
        SandboxSettings.model_validate(
            {"base_url": "http://127.0.0.1", "secret": SECRET, "simulator": "yes"}
        )

    described = json.dumps(refused.value.errors(include_input=False, include_url=False))
    assert "simulator" in described
    assert SECRET not in described


@pytest.mark.parametrize(
    "credentials",
    [
        {"base_url": "http://127.0.0.1"},
        {"base_url": "http://127.0.0.1", "secret": ""},
        {"base_url": "127.0.0.1:3100", "secret": SECRET},
        {"base_url": "http://127.0.0.1", "secret": SECRET, "api_key": "x"},
        {"base_url": "http://127.0.0.1", "secret": 42},
    ],
)
def test_credentials_that_are_not_a_sandbox_accounts_are_refused(
    credentials: dict[str, object],
) -> None:
    with pytest.raises(ValidationError):
        SandboxSettings.model_validate(credentials)
