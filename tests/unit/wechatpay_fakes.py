"""WeChat Pay's side for the adapter's unit tests, without a server: merchant accounts with fresh
keys (the simulator's own ``MerchantAccount``: the merchant's half goes into our settings, the
WeChat Pay half signs), and notifications signed and sealed exactly as WeChat Pay sends them."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from local_runtime.simulators.wechatpay.merchants import MerchantAccount, new_merchant_accounts
from local_runtime.simulators.wechatpay.notifications import notification_request
from paycore.channels.wechatpay.adapter import WechatPayGateway
from paycore.channels.wechatpay.settings import WechatPaySettings

NOWHERE = "http://127.0.0.1:9"
TRANSACTION_SUCCESS = ("TRANSACTION.SUCCESS", "支付成功", "transaction")
REFUND_SUCCESS = ("REFUND.SUCCESS", "退款成功", "refund")


@functools.cache
def merchants() -> tuple[MerchantAccount, MerchantAccount]:
    """Two WeChat Pay merchants (keys made once per test run)."""
    first, second = new_merchant_accounts(["wx-unit", "wx-other"])
    return first, second


def credentials(merchant: MerchantAccount, **more: Any) -> dict[str, Any]:
    """The account's secret as the local runtime writes it."""
    entry = merchant.entry(NOWHERE)
    entry.pop("account")
    entry.pop("channel")
    return {**entry, **more}


def gateway(merchant: MerchantAccount) -> WechatPayGateway:
    settings = WechatPaySettings.model_validate(credentials(merchant))
    return WechatPayGateway(settings, account_id=merchant.account)


def transaction(merchant: MerchantAccount, **more: Any) -> dict[str, Any]:
    """A paid Native transaction as TRANSACTION.SUCCESS carries it."""
    return {
        "appid": merchant.appid,
        "mchid": merchant.mchid,
        "out_trade_no": "pay_unit0000000001",
        "transaction_id": "4200000001202401010000000001",
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "success_time": "2024-01-01T10:00:00+08:00",
        "payer": {"openid": "o-unit"},
        "amount": {"total": 1999, "currency": "CNY", "payer_total": 1999, "payer_currency": "CNY"},
        **more,
    }


def refund(merchant: MerchantAccount, **more: Any) -> dict[str, Any]:
    """A refund as REFUND.SUCCESS carries it (``refund_status``, four amounts, no currency)."""
    return {
        "mchid": merchant.mchid,
        "out_trade_no": "pay_unit0000000001",
        "transaction_id": "4200000001202401010000000001",
        "out_refund_no": "rfd_unit0000000001",
        "refund_id": "50000000012024010100000000001",
        "refund_status": "SUCCESS",
        "success_time": "2024-01-01T10:05:00+08:00",
        "user_received_account": "支付用户零钱",
        "amount": {"total": 1999, "refund": 500, "payer_total": 1999, "payer_refund": 500},
        **more,
    }


def notification(
    merchant: MerchantAccount,
    resource: Mapping[str, Any],
    event: tuple[str, str, str] = TRANSACTION_SUCCESS,
    *,
    at: datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a notification WeChat Pay signs for ``merchant`` at ``at``."""
    moment = at or datetime.now(UTC)
    body, headers = notification_request(merchant, event, resource, lambda: moment)()
    return body, dict(headers)
