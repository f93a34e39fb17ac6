"""python-alipay-sdk (fzlee, ``from alipay import AliPay``) as the oracle on our side of the wire.

- What our adapter signs, the SDK signs byte for byte (RSA2 PKCS#1 v1.5 is deterministic): the
  same page.pay parameters give the same ``sign``, and for an ASCII subject the SDK builds the
  very same signed query string. The SDK's ``verify()`` accepts our RSA2 over notification
  content. (``verify()`` cannot take a request's parameters as they are: it drops
  ``sign_type``, which Alipay signs in requests; the byte-identical signature shows the rest.)
- What the SDK signs, our verification accepts: its page.pay signature over the request
  content, and notifications it signs with Alipay's key, which ``parse_notification`` takes.
- On the notifications the simulator really posts, the SDK's verify() and our parse agree.
- A trade the SDK creates, our adapter reads; the SDK's verified answers and ours agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from alipay import AliPay
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from local_runtime.simulators.common.keys import private_key_pem_pkcs1, public_key_pem
from paycore.channels.alipay.adapter import AlipayGateway
from paycore.channels.alipay.signing import (
    NOTIFICATION_EXCLUDED,
    REQUEST_EXCLUDED,
    load_public_key,
    sign,
    signing_content,
    verify,
)
from paycore.channels.alipay.transformers import beijing
from paycore.channels.base import ChannelPaymentStatus, ChannelRefundState, ChannelRefundStatus
from paycore.errors import CallbackRejected
from tests.functional.alipay_support import AlipayWorld, buyer, order, paid, refund_of
from tests.simulators.alipay_support import (
    beijing_local_time,
    local_time_zone,
    open_cashier,
    sdk_for,
)
from tests.simulators.receiver import NotificationReceiver

FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


@pytest.fixture(scope="module")
def world() -> Iterator[AlipayWorld]:
    made = AlipayWorld()
    made.simulator.start()
    yield made
    made.simulator.stop()


@pytest.fixture(scope="module")
def gateway(world: AlipayWorld) -> AlipayGateway:
    return world.gateway("alipay-a")


@pytest.fixture(scope="module")
def merchant_sdk(world: AlipayWorld) -> AliPay:
    """The SDK as account alipay-a's merchant (the app key; Alipay's public key)."""
    return sdk_for(next(e for e in world.simulator.accounts() if e["account"] == "alipay-a"))


@pytest.fixture(scope="module")
def alipay_side_sdk(world: AlipayWorld) -> AliPay:
    """The SDK holding Alipay's own key pair for app alipay-a: it signs as Alipay does and
    verifies with Alipay's public key."""
    key = world.alipay_key("alipay-a")
    return AliPay(
        appid=world.credentials("alipay-a")["app_id"],
        app_private_key_string=private_key_pem_pkcs1(key),
        alipay_public_key_string=public_key_pem(key),
        sign_type="RSA2",
    )


@pytest.fixture
def receiver() -> Iterator[NotificationReceiver]:
    started = NotificationReceiver([(200, "success")])
    yield started
    started.close()


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True, strict_parsing=True))


def our_page_pay(gateway: AlipayGateway, subject: str) -> dict[str, str]:
    """The parameters of a page.pay URL our adapter signs (as it would request it)."""
    biz = {
        "out_trade_no": "pay_conformance_1",
        "total_amount": "19.99",
        "subject": subject,
        "product_code": "FAST_INSTANT_TRADE_PAY",
        "time_expire": beijing(datetime.now(UTC) + timedelta(minutes=10)),
        "passback_params": "%7B%22decline%22%3Atrue%7D",
    }
    url = gateway._client.page_pay_url(
        biz, "https://api.example/callbacks/alipay/alipay-a", "https://shop.example/back"
    )
    return query_of(url)


# -- what we sign, the SDK signs ---------------------------------------------------------------


@pytest.mark.parametrize("subject", ["Green tea", "绿茶 & 抹茶 = 茶"])
def test_the_sdk_signs_our_page_pay_parameters_byte_for_byte(
    gateway: AlipayGateway, merchant_sdk: AliPay, subject: str
) -> None:
    ours = our_page_pay(gateway, subject)
    unsigned = {name: value for name, value in ours.items() if name != "sign"}

    sdk_signed = dict(parse_qsl(merchant_sdk.sign_data(dict(unsigned))))

    assert sdk_signed["sign"] == ours["sign"]


def test_for_an_ascii_subject_the_sdk_builds_the_same_signed_page_pay(
    gateway: AlipayGateway, merchant_sdk: AliPay
) -> None:
    ours = our_page_pay(gateway, "Green tea")

    built = merchant_sdk.client_api(
        "alipay.trade.page.pay",
        json.loads(ours["biz_content"]),
        timestamp=ours["timestamp"],
        format="JSON",
        notify_url=ours["notify_url"],
        return_url=ours["return_url"],
    )

    assert dict(parse_qsl(built)) == ours


def test_the_sdks_verify_accepts_our_rsa2(world: AlipayWorld, alipay_side_sdk: AliPay) -> None:
    """Our signing primitive and content rules, as the SDK's verify() checks them (signed
    here with the key the SDK verifies with: Alipay's for this app)."""
    fields = {
        "notify_id": "n1",
        "out_trade_no": "pay_1",
        "subject": "绿茶 & tea",
        "total_amount": "19.99",
        "sign_type": "RSA2",
    }
    signature = sign(world.alipay_key("alipay-a"), signing_content(fields, NOTIFICATION_EXCLUDED))

    assert alipay_side_sdk.verify(dict(fields), signature)
    assert not alipay_side_sdk.verify({**fields, "total_amount": "0.01"}, signature)


# -- what the SDK signs, we verify -------------------------------------------------------------


def test_we_verify_the_sdks_page_pay_signature(world: AlipayWorld, merchant_sdk: AliPay) -> None:
    with beijing_local_time():
        query = merchant_sdk.api_alipay_trade_page_pay(
            "绿茶", "pay_sdk_signed", "19.99", notify_url="https://api.example/cb"
        )
    params = dict(parse_qsl(query))
    app_key = load_pem_private_key(world.credentials("alipay-a")["app_private_key"].encode(), None)
    assert isinstance(app_key, rsa.RSAPrivateKey)
    app_public = load_public_key(public_key_pem(app_key))

    assert verify(app_public, signing_content(params, REQUEST_EXCLUDED), params["sign"])
    assert not verify(
        app_public, signing_content({**params, "method": "x"}, REQUEST_EXCLUDED), params["sign"]
    )


def sdk_signed_notification(sdk: AliPay, fields: dict[str, str]) -> bytes:
    """A notification signed by the SDK as Alipay (over every field but sign/sign_type)."""
    signed = dict(parse_qsl(sdk.sign_data(dict(fields))))
    return urlencode({**fields, "sign_type": "RSA2", "sign": signed["sign"]}).encode()


def test_our_parse_accepts_a_notification_the_sdk_signs_as_alipay(
    world: AlipayWorld, gateway: AlipayGateway, alipay_side_sdk: AliPay
) -> None:
    fields = {
        "notify_time": beijing(datetime.now(UTC)),
        "notify_type": "trade_status_sync",
        "notify_id": "sdk-notify-1",
        "app_id": world.credentials("alipay-a")["app_id"],
        "charset": "utf-8",
        "version": "1.0",
        "out_trade_no": "pay_sdk_1",
        "trade_no": "2026120622001000000000000001",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "88.80",
        "subject": "绿茶 & tea",
        "gmt_payment": beijing(datetime.now(UTC)),
    }
    body = sdk_signed_notification(alipay_side_sdk, fields)

    state = gateway.parse_notification(body, FORM)

    assert (state.status, state.out_trade_no, state.notification_id) == (
        ChannelPaymentStatus.SUCCEEDED,
        "pay_sdk_1",
        "sdk-notify-1",
    )
    assert state.amount == 8880
    tampered = body.replace(b"total_amount=88.80", b"total_amount=0.01")
    with pytest.raises(CallbackRejected):
        gateway.parse_notification(tampered, FORM)


# -- on what the simulator really posts, the SDK and we agree ------------------------------------


def test_on_real_notifications_the_sdks_verify_and_our_parse_agree(
    world: AlipayWorld,
    gateway: AlipayGateway,
    merchant_sdk: AliPay,
    receiver: NotificationReceiver,
) -> None:
    request = order(notify_url=receiver.url, amount=1000)
    paid(gateway, request)
    refund = gateway.refund(refund_of(request.out_trade_no, 1000))
    bodies = [r.body for r in receiver.wait_for(2)]

    for body in bodies:
        fields = dict(parse_qsl(body.decode()))
        signature = fields.pop("sign")
        assert merchant_sdk.verify(dict(fields), signature)
        gateway.parse_notification(body, FORM)  # accepted
        forged = {**fields, "total_amount": "0.01"}
        assert not merchant_sdk.verify(dict(forged), signature)
        with pytest.raises(CallbackRejected):
            gateway.parse_notification(urlencode({**forged, "sign": signature}).encode(), FORM)
    last = gateway.parse_notification(bodies[1], FORM)
    assert isinstance(last, ChannelRefundState)
    assert (last.out_refund_no, last.status) == (
        refund.out_refund_no,
        ChannelRefundStatus.SUCCEEDED,
    )


# -- a trade the SDK creates, we read; the SDK's answers and ours agree ---------------------------


def test_a_trade_the_sdk_creates_and_the_buyer_pays_reads_the_same_through_both(
    world: AlipayWorld, gateway: AlipayGateway, merchant_sdk: AliPay
) -> None:
    number = "pay_sdk_created_1"
    with beijing_local_time():
        query = merchant_sdk.api_alipay_trade_page_pay("Green tea", number, "12.34")
    cashier = open_cashier(f"{merchant_sdk._gateway}?{query}")

    ours_before = gateway.query_order(number)
    assert buyer(cashier, "pay").json()["status"] == "SUCCESS"
    ours = gateway.query_order(number)
    with beijing_local_time():
        theirs: dict[str, Any] = merchant_sdk.api_alipay_trade_query(out_trade_no=number)
        refunded = merchant_sdk.api_alipay_trade_refund(
            "2.00", out_trade_no=number, out_request_no="rfd_sdk_1"
        )
        refund_query = merchant_sdk.server_api(
            "alipay.trade.fastpay.refund.query",
            {"out_trade_no": number, "out_request_no": "rfd_sdk_1"},
        )

    assert ours_before.status is ChannelPaymentStatus.PENDING
    assert theirs["trade_status"] == "TRADE_SUCCESS"
    assert (ours.status, ours.amount, ours.channel_transaction_id) == (
        ChannelPaymentStatus.SUCCEEDED,
        1234,
        theirs["trade_no"],
    )
    assert refunded["fund_change"] == "Y" and refund_query["refund_status"] == "REFUND_SUCCESS"
    ours_refund = gateway.query_refund(number, "rfd_sdk_1")
    assert (ours_refund.status, ours_refund.amount) == (ChannelRefundStatus.SUCCEEDED, 200)
    # a repeat through our adapter is the same refund (fund_change N), not a second one
    assert gateway.refund(refund_of(number, 200, "rfd_sdk_1")).status is (
        ChannelRefundStatus.SUCCEEDED
    )
    assert world.debug_trade(number)["amount_refunded"] == 200


def test_our_adapter_works_whatever_the_machines_time_zone(world: AlipayWorld) -> None:
    """The SDK stamps local time; we stamp Beijing time explicitly, so a UTC Lambda and a
    Beijing laptop both pass the gateway's timestamp check."""
    for zone in ("UTC", "America/Los_Angeles", "Asia/Shanghai"):
        with local_time_zone(zone):
            gateway = world.gateway("alipay-a")
            assert gateway.create_order(order()).next_action.url
