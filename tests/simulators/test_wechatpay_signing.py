"""The WeChat Pay simulator's cryptography against the SDK ``wechatpayv3``'s own primitives:
the merchant's Authorization the SDK builds is accepted (and nothing else), WeChat Pay's
signatures verify with the SDK's ``rsa_verify``, resources decrypt with its ``aes_decrypt``."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from wechatpayv3.utils import aes_decrypt, build_authorization, load_private_key, rsa_verify

from local_runtime.simulators.common.keys import private_key_pem_pkcs8
from local_runtime.simulators.wechatpay.errors import WechatPayError
from local_runtime.simulators.wechatpay.merchants import MerchantAccount, new_merchant_accounts
from local_runtime.simulators.wechatpay.signing import (
    Authorization,
    check_authorization,
    encrypt_resource,
    parse_authorization,
    signature_headers,
)

PATH = "/v3/pay/transactions/out-trade-no/pay_123456?mchid=1900000109"


@pytest.fixture(scope="module")
def merchants() -> list[MerchantAccount]:
    return new_merchant_accounts(["one", "two"])


def sdk_authorization(merchant: MerchantAccount, method: str, path: str, body: str = "") -> str:
    key = load_private_key(private_key_pem_pkcs8(merchant.merchant_key))
    header: str = build_authorization(
        path, method, merchant.mchid, merchant.merchant_serial_no, key, data=body or None
    )
    return header


def check(
    merchant: MerchantAccount,
    header: str,
    *,
    method: str = "GET",
    path: str = PATH,
    body: bytes = b"",
    now: datetime | None = None,
) -> None:
    check_authorization(
        parse_authorization(header),
        merchant,
        method=method,
        target=path,
        body=body,
        now=now or datetime.now(UTC),
    )


def test_the_sdks_authorization_is_accepted(merchants: list[MerchantAccount]) -> None:
    one = merchants[0]
    body = '{"mchid": "1900000109", "description": "\\u7eff\\u8336"}'
    header = sdk_authorization(one, "POST", "/v3/pay/transactions/native", body)
    parsed = parse_authorization(header)
    assert isinstance(parsed, Authorization)
    assert (parsed.mchid, parsed.serial_no) == (one.mchid, one.merchant_serial_no)
    check(one, header, method="POST", path="/v3/pay/transactions/native", body=body.encode())
    check(one, sdk_authorization(one, "GET", PATH))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", PATH, b""),  # another method
        ("GET", PATH.replace("123456", "123457"), b""),  # another order
        ("GET", PATH + "&x=1", b""),  # another query
        ("GET", PATH, b"{}"),  # a body it did not sign
    ],
)
def test_anything_else_is_a_sign_error(
    merchants: list[MerchantAccount], method: str, path: str, body: bytes
) -> None:
    header = sdk_authorization(merchants[0], "GET", PATH)
    with pytest.raises(WechatPayError) as refused:
        check(merchants[0], header, method=method, path=path, body=body)
    assert (refused.value.status, refused.value.code) == (401, "SIGN_ERROR")


def test_another_merchants_key_or_serial_is_refused(merchants: list[MerchantAccount]) -> None:
    one, two = merchants
    header = sdk_authorization(two, "GET", PATH).replace(two.mchid, one.mchid)
    with pytest.raises(WechatPayError, match="SIGN_ERROR"):
        check(one, header)  # two's serial_no
    forged = header.replace(two.merchant_serial_no, one.merchant_serial_no)
    with pytest.raises(WechatPayError, match="签名错误"):
        check(one, forged)  # one's serial_no, two's key


@pytest.mark.parametrize("skew", [301, -301])
def test_a_timestamp_more_than_5_minutes_away_is_refused(
    merchants: list[MerchantAccount], skew: int
) -> None:
    header = sdk_authorization(merchants[0], "GET", PATH)
    now = datetime.now(UTC) + timedelta(seconds=skew)
    with pytest.raises(WechatPayError, match="SIGN_ERROR"):
        check(merchants[0], header, now=now)
    check(merchants[0], header, now=datetime.now(UTC) + timedelta(seconds=skew - skew // 30))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer x",
        "WECHATPAY2-SHA256-RSA2048",
        'WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",signature="s",timestamp="1"',
        "WECHATPAY2-SHA256-RSA2048 mchid=1,nonce_str=n",
    ],
)
def test_malformed_authorization(header: str | None) -> None:
    with pytest.raises(WechatPayError) as refused:
        parse_authorization(header)
    assert (refused.value.status, refused.value.code) == (401, "SIGN_ERROR")


def test_wechatpay_signatures_verify_with_the_merchants_public_key(
    merchants: list[MerchantAccount],
) -> None:
    one, two = merchants
    body = '{"code_url":"weixin://wxpay/bizpayurl?pr=abc","note":"绿茶"}'.encode()
    headers = signature_headers(one, body, datetime.now(UTC))
    assert headers["Wechatpay-Serial"] == one.public_key_id
    assert headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    args = (headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"])
    signature = headers["Wechatpay-Signature"]
    assert rsa_verify(*args, body.decode(), signature, one.platform_key.public_key())
    assert not rsa_verify(*args, body.decode() + " ", signature, one.platform_key.public_key())
    assert not rsa_verify(*args, body.decode(), signature, two.platform_key.public_key())
    empty = signature_headers(one, b"", datetime.now(UTC))  # a 204 is signed too
    assert rsa_verify(
        empty["Wechatpay-Timestamp"],
        empty["Wechatpay-Nonce"],
        "",
        empty["Wechatpay-Signature"],
        one.platform_key.public_key(),
    )


def test_resources_decrypt_with_the_apiv3_key(merchants: list[MerchantAccount]) -> None:
    one, two = merchants
    plaintext = '{"out_trade_no":"pay_123456","trade_state":"SUCCESS","note":"支付成功"}'
    resource = encrypt_resource(
        one.apiv3_key,
        plaintext.encode(),
        original_type="transaction",
        associated_data="transaction",
    )
    assert resource["algorithm"] == "AEAD_AES_256_GCM"
    assert len(resource["nonce"]) == 12
    assert base64.b64decode(resource["ciphertext"])  # standard base64
    args = (resource["nonce"], resource["ciphertext"], resource["associated_data"])
    assert aes_decrypt(*args, one.apiv3_key) == plaintext
    assert aes_decrypt(*args, two.apiv3_key) is None
    assert aes_decrypt(resource["nonce"], resource["ciphertext"], "refund", one.apiv3_key) is None


def test_accounts_get_distinct_credentials() -> None:
    made = new_merchant_accounts(["a", "b", "c"])
    assert len({m.mchid for m in made}) == 3
    assert len({m.public_key_id for m in made}) == 3
    for merchant in made:
        assert len(merchant.apiv3_key) == 32 and merchant.apiv3_key.isalnum()
        assert merchant.public_key_id.startswith("PUB_KEY_ID_")
    with pytest.raises(ValueError, match="distinct"):
        new_merchant_accounts(["a", "a"])
    with pytest.raises(ValueError, match="at least one"):
        new_merchant_accounts([])
