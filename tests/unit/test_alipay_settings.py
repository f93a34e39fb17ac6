"""An Alipay account's credentials: exactly the simulator's ``/_sim/accounts`` fields minus
``account``/``channel``, strict, every key a SecretStr that no repr, dump or log line shows,
keys that do not load refused with a plain ValueError that quotes nothing."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr, ValidationError

from local_runtime.simulators.alipay.accounts import new_accounts
from paycore.channels.alipay.adapter import AlipayGateway, create_gateway
from paycore.channels.alipay.settings import PRODUCTION_GATEWAY_URL, AlipaySettings
from paycore.config import Settings

ENTRY = new_accounts(["alipay-unit"])[0].entry("http://127.0.0.1:3101")
CREDENTIALS = {key: value for key, value in ENTRY.items() if key not in ("account", "channel")}
KEY_BODY = "".join(CREDENTIALS["app_private_key"].splitlines()[1:-1])


def settings(**changes: Any) -> AlipaySettings:
    return AlipaySettings.model_validate({**CREDENTIALS, **changes})


def test_the_simulators_entry_minus_account_and_channel_is_exactly_the_model() -> None:
    assert set(CREDENTIALS) == set(AlipaySettings.model_fields)
    read = settings()

    assert isinstance(read.app_private_key, SecretStr)
    assert isinstance(read.alipay_public_key, SecretStr)
    assert read.simulator is True
    assert read.gateway_url == "http://127.0.0.1:3101/gateway.do"


def test_a_production_account_needs_only_its_app_id_and_keys() -> None:
    read = AlipaySettings.model_validate(
        {key: CREDENTIALS[key] for key in ("app_id", "app_private_key", "alipay_public_key")}
    )

    assert read.gateway_url == PRODUCTION_GATEWAY_URL == "https://openapi.alipay.com/gateway.do"
    assert read.simulator is False


def test_neither_the_settings_nor_the_gateway_show_a_key() -> None:
    read = settings()
    gateway = AlipayGateway(read, account_id="alipay-unit")

    shown = [
        repr(read),
        str(read),
        read.model_dump_json(),
        json.dumps(read.model_dump(), default=str),
    ]
    shown += [repr(gateway), str(gateway), repr(vars(gateway)), repr(read.load_keys())]
    for text in shown:
        assert KEY_BODY[:40] not in text
        assert "PRIVATE KEY" not in text and "PUBLIC KEY" not in text


def test_a_powertools_log_line_carrying_them_shows_no_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger = Logger(service="alipay-secrets-test", level=logging.INFO)
    read = settings()

    logger.info(
        "account loaded",
        extra={"settings": read, "gateway": AlipayGateway(read, account_id="alipay-unit")},
    )
    logger.append_keys(credentials=read.model_dump())
    logger.warning("with appended keys")

    output = capsys.readouterr().out
    assert "account loaded" in output and "with appended keys" in output
    assert KEY_BODY[:40] not in output and "PRIVATE KEY" not in output


@pytest.mark.parametrize(
    "changes",
    [
        {"app_id": "123"},
        {"app_id": 2021000000000001},
        {"app_private_key": ""},
        {"alipay_public_key": None},
        {"gateway_url": "openapi.alipay.com/gateway.do"},
        {"gateway_url": "ftp://openapi.alipay.com/gateway.do"},
        {"gateway_url": "https://openapi.alipay.com/gateway.do?charset=utf-8"},
        {"simulator": "yes"},
        {"sign_type": "RSA2"},
        {"app_cert": "..."},
    ],
)
def test_credentials_that_are_not_an_alipay_accounts_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as refused:
        settings(**changes)

    described = json.dumps(
        refused.value.errors(include_input=False, include_url=False), default=str
    )
    assert KEY_BODY[:40] not in described


def test_a_key_that_does_not_load_is_a_plain_value_error_naming_the_field_only() -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong_kind = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()

    with pytest.raises(ValueError, match=r"^app_private_key does not load") as bad_private:
        create_gateway("a", {**CREDENTIALS, "app_private_key": "MIIEv" + "A" * 30}, Settings())
    with pytest.raises(ValueError, match=r"^alipay_public_key does not load") as bad_public:
        create_gateway("a", {**CREDENTIALS, "alipay_public_key": wrong_kind}, Settings())

    assert type(bad_private.value) is ValueError and type(bad_public.value) is ValueError
    assert "MIIEv" not in str(bad_private.value)
    assert wrong_kind[40:80] not in str(bad_public.value)


def test_the_factory_uses_the_channel_timeout() -> None:
    gateway = create_gateway("alipay-unit", CREDENTIALS, Settings(CHANNEL_TIMEOUT_SECONDS=1.5))

    assert "timeout=1.5" in repr(gateway)
    assert gateway.simulator is True and gateway.account_id == "alipay-unit"
