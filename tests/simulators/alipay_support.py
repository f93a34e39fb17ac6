"""Helpers for the Alipay simulator tests: python-alipay-sdk (fzlee, ``alipay.AliPay``) is the
oracle, pointed at the simulator only through its ``_gateway``.

The SDK stamps ``timestamp`` with ``datetime.now()``, the machine's local time, while Alipay
reads it as Beijing time; ``beijing_local_time()`` runs the SDK as on a machine set to
Asia/Shanghai (what the SDK assumes), restoring the zone afterwards.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote

import requests
from alipay import AliPay

from local_runtime.simulators.alipay import AlipaySimulator


@contextmanager
def local_time_zone(zone: str) -> Iterator[None]:
    """The process's local time zone (what ``datetime.now()`` returns) set to ``zone``."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


def beijing_local_time() -> Any:
    return local_time_zone("Asia/Shanghai")


class ShiftedClock:
    """The real time plus ``offset``: lets a test move the simulator's clock forward while
    the SDK's timestamps (real time) stay within the gateway's tolerance."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def entry_of(simulator: AlipaySimulator, account: str) -> dict[str, Any]:
    return next(entry for entry in simulator.accounts() if entry["account"] == account)


def sdk_for(
    entry: dict[str, Any],
    *,
    app_private_key: str | None = None,
    alipay_public_key: str | None = None,
) -> AliPay:
    """The SDK as the account's merchant, gateway pointed at the simulator."""
    client = AliPay(
        appid=entry["app_id"],
        app_notify_url=None,
        app_private_key_string=app_private_key or entry["app_private_key"],
        alipay_public_key_string=alipay_public_key or entry["alipay_public_key"],
        sign_type="RSA2",
    )
    client._gateway = entry["gateway_url"]
    return client


def page_pay_url(
    sdk: AliPay,
    out_trade_no: str,
    amount: str = "19.99",
    *,
    subject: str = "Green tea",
    notify_url: str | None = None,
    return_url: str | None = None,
    simulate: dict[str, Any] | None = None,
    **biz: Any,
) -> str:
    """The signed page.pay URL the merchant sends the buyer to (the SDK builds it; no
    request is made). ``simulate`` rides in passback_params, URL-encoded JSON."""
    if simulate is not None:
        biz["passback_params"] = quote(json.dumps(simulate, separators=(",", ":")))
    query = sdk.api_alipay_trade_page_pay(
        subject, out_trade_no, amount, return_url=return_url, notify_url=notify_url, **biz
    )
    return f"{sdk._gateway}?{query}"


def open_cashier(url: str) -> str:
    """The buyer's browser opens a page.pay URL: the gateway answers 302 to the cashier."""
    answer = requests.get(url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, (answer.status_code, answer.text[:500])
    location = answer.headers["Location"]
    assert "/cashier/" in location
    return location


def choose(cashier_url: str, action: str) -> dict[str, Any]:
    """The buyer presses Pay or Decline (as JSON)."""
    answer = requests.post(cashier_url, json={"action": action}, timeout=10)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def paid_trade(sdk: AliPay, out_trade_no: str, amount: str = "19.99", **kwargs: Any) -> str:
    """A trade created through page.pay and paid by the buyer; its cashier URL."""
    cashier = open_cashier(page_pay_url(sdk, out_trade_no, amount, **kwargs))
    assert choose(cashier, "pay")["status"] == "SUCCESS"
    return cashier


def form_fields(body: bytes) -> dict[str, str]:
    """A notification's form body as the merchant's framework hands it over."""
    return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))


def sdk_verifies(sdk: AliPay, fields: dict[str, str]) -> bool:
    """The SDK's own check of a notification or return: verify(data minus sign, sign)."""
    data = dict(fields)
    signature = data.pop("sign")
    return bool(sdk.verify(data, signature))


def debug_trade(simulator: AlipaySimulator, out_trade_no: str) -> dict[str, Any]:
    answer = requests.get(f"{simulator.url}/_sim/trades", timeout=10)
    answer.raise_for_status()
    trades = [t for t in answer.json()["data"] if t["out_trade_no"] == out_trade_no]
    assert len(trades) == 1, trades
    trade: dict[str, Any] = trades[0]
    return trade
