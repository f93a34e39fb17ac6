"""A WeChat Pay account's credentials: exactly the simulator's ``/_sim/accounts`` fields, every key
a SecretStr that neither the settings, the gateway nor a log line shows, keys loaded once, and
credentials whose keys do not load refused with a ValueError that quotes nothing."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from pydantic import SecretStr, ValidationError

from local_runtime.simulators.common.keys import private_key_pem_pkcs1
from paycore.channels.wechatpay.adapter import WechatPayGateway, create_gateway
from paycore.channels.wechatpay.settings import PRODUCTION_API_BASE_URL, WechatPaySettings
from paycore.config import Settings
from tests.unit.wechatpay_fakes import credentials, merchants

SECRET_FIELDS = ("merchant_private_key", "apiv3_key", "wechatpay_public_key")


def _secrets(given: dict[str, Any]) -> list[str]:
    """Pieces of every secret value that must never be shown (the apiv3 key whole; a line of
    each PEM key's body)."""
    pieces = [given["apiv3_key"]]
    for field in ("merchant_private_key", "wechatpay_public_key"):
        lines = given[field].splitlines()
        pieces.append(lines[2] if len(lines) > 2 else given[field])
    return pieces


def test_the_simulators_entry_is_the_settings_and_every_key_is_a_secret_str() -> None:
    merchant = merchants()[0]
    given = credentials(merchant)

    read = WechatPaySettings.model_validate(given)

    assert set(given) == set(WechatPaySettings.model_fields)
    for field in SECRET_FIELDS:
        assert isinstance(getattr(read, field), SecretStr)
    assert read.merchant_key.private_numbers() == merchant.merchant_key.private_numbers()
    assert (
        read.wechatpay_key.public_numbers() == merchant.platform_key.public_key().public_numbers()
    )
    assert read.apiv3_key_bytes == merchant.apiv3_key.encode()
    assert (read.simulator, read.api_base_url) == (True, "http://127.0.0.1:9")


def test_a_production_account_needs_no_url_and_is_no_simulator() -> None:
    given = credentials(merchants()[0])
    del given["api_base_url"], given["simulator"]

    read = WechatPaySettings.model_validate(given)

    assert read.api_base_url == PRODUCTION_API_BASE_URL == "https://api.mch.weixin.qq.com"
    assert read.simulator is False


def test_a_pkcs1_merchant_key_is_accepted() -> None:
    merchant = merchants()[0]
    given = credentials(merchant, merchant_private_key=private_key_pem_pkcs1(merchant.merchant_key))
    assert WechatPaySettings.model_validate(given).merchant_key.key_size == 2048


def test_neither_the_settings_nor_the_gateway_show_a_key() -> None:
    given = credentials(merchants()[0])
    read = WechatPaySettings.model_validate(given)
    gateway = WechatPayGateway(read, account_id="wx")

    shown = [
        repr(read),
        str(read),
        read.model_dump_json(),
        json.dumps(read.model_dump(), default=str),
        repr(gateway),
        str(gateway),
        repr(vars(gateway)),
    ]

    for piece in _secrets(given):
        assert all(piece not in text for text in shown)


def test_a_powertools_log_line_carrying_them_shows_no_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    given = credentials(merchants()[0])
    read = WechatPaySettings.model_validate(given)
    logger = Logger(service="wechatpay-secrets-test", level=logging.INFO)

    logger.info(
        "account loaded",
        extra={"settings": read, "gateway": WechatPayGateway(read, account_id="wx")},
    )
    logger.append_keys(credentials=read.model_dump())
    logger.warning("with appended keys")

    output = capsys.readouterr().out
    assert "account loaded" in output and "with appended keys" in output
    for piece in _secrets(given):
        assert piece not in output


@pytest.mark.parametrize(
    "change",
    [
        {"merchant_private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"},
        {"wechatpay_public_key": "not a key"},
        {"apiv3_key": "too-short"},
        {"apiv3_key": "é" * 32},
        {"mchid": "19000x0109"},
        {"wechatpay_public_key_id": "0114232134912410000000000000"},
        {"merchant_serial_no": "not hex"},
        {"api_base_url": "api.mch.weixin.qq.com"},
        {"api_base_url": "https://api.mch.weixin.qq.com/?x=1"},
        {"simulator": "yes"},
        {"platform_certificate": "x"},
    ],
)
def test_credentials_that_are_not_a_wechatpay_accounts_are_a_value_error_quoting_nothing(
    change: dict[str, Any],
) -> None:
    given = {**credentials(merchants()[0]), **change}

    with pytest.raises(ValueError) as refused:  # noqa: PT011 - pydantic's ValidationError is one
        create_gateway("wx", given, Settings())

    assert isinstance(refused.value, ValidationError)
    described = json.dumps(
        refused.value.errors(include_input=False, include_url=False), default=str
    )
    for piece in _secrets(given):
        assert piece not in described


@pytest.mark.parametrize("missing", [*SECRET_FIELDS, "appid", "mchid", "wechatpay_public_key_id"])
def test_every_credential_but_the_url_and_the_simulator_flag_is_required(missing: str) -> None:
    given = credentials(merchants()[0])
    del given[missing]
    with pytest.raises(ValidationError):
        WechatPaySettings.model_validate(given)


def test_the_gateway_takes_its_timeout_from_the_settings() -> None:
    gateway = create_gateway(
        "wx", credentials(merchants()[0]), Settings(CHANNEL_TIMEOUT_SECONDS=2.5)
    )
    assert "timeout=2.5" in repr(gateway)
    assert (gateway.name, gateway.account_id, gateway.simulator) == ("wechatpay", "wx", True)
    assert gateway.next_action_type.value == "qr_code"
