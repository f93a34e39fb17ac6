"""The merchant's side of the WeChat Pay simulator tests: the community SDK ``wechatpayv3`` in
public-key mode, pointed at the simulator by its gateway alone, plus the buyer's phone (the
simulator's ``/scan`` page) and the simulator's debug view."""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import requests
from wechatpayv3 import WeChatPay, WeChatPayType

from local_runtime.simulators.wechatpay import WechatPaySimulator
from tests.simulators.receiver import NotificationReceiver

FAST_SCHEDULE = (0.0, 0.05, 0.05)
ACK = (204, "")


def merchant(
    entry: Mapping[str, Any], *, notify_url: str | None = None, timeout: float | None = None
) -> WeChatPay:
    """The SDK as a merchant configures it from its credentials; only the gateway changes.
    (Cached: loading the keys takes the SDK ~0.1 s, and the SDK object holds no call state.)"""
    return _merchant(tuple(sorted(entry.items())), notify_url, timeout)


@functools.lru_cache(maxsize=64)
def _merchant(
    items: tuple[tuple[str, Any], ...], notify_url: str | None, timeout: float | None
) -> WeChatPay:
    entry = dict(items)
    pay = WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE,
        mchid=entry["mchid"],
        private_key=entry["merchant_private_key"],
        cert_serial_no=entry["merchant_serial_no"],
        appid=entry["appid"],
        apiv3_key=entry["apiv3_key"],
        notify_url=notify_url,
        public_key=entry["wechatpay_public_key"],
        public_key_id=entry["wechatpay_public_key_id"],
        timeout=timeout,
    )
    pay._core._gate_way = entry["api_base_url"]
    return pay


def new_number(prefix: str = "pay") -> str:
    """A fresh out_trade_no / out_refund_no (6-32 characters)."""
    return f"{prefix}_{secrets.token_hex(10)}"


def body(answer: tuple[int, Any]) -> dict[str, Any]:
    status, text = answer
    assert isinstance(text, str), f"not a JSON answer: {status} {text!r}"
    loaded = json.loads(text)
    assert isinstance(loaded, dict)
    return loaded


def ok(answer: tuple[int, Any], status: int = 200) -> dict[str, Any]:
    """The JSON of a successful answer (the SDK has verified its signature already)."""
    assert answer[0] == status, answer
    return body(answer)


def error(answer: tuple[int, Any], status: int, code: str) -> dict[str, Any]:
    assert answer[0] == status, answer
    found = body(answer)
    assert found["code"] == code, found
    assert isinstance(found["message"], str) and found["message"]
    return found


def create(
    pay: WeChatPay,
    out_trade_no: str,
    total: int = 1999,
    *,
    attach: str | None = None,
    description: str = "Green tea 绿茶",
    **fields: Any,
) -> str:
    """A Native order; returns its code_url."""
    answer = pay.pay(
        description=description,
        out_trade_no=out_trade_no,
        amount={"total": total, "currency": "CNY"},
        attach=attach,
        **fields,
    )
    code_url = ok(answer)["code_url"]
    assert code_url.startswith("weixin://wxpay/bizpayurl?pr=")
    return str(code_url)


def scan(simulator_url: str, code_url: str, action: str | None = None) -> requests.Response:
    """The buyer's phone: GET the scan page, or POST the choice as JSON."""
    url = f"{simulator_url}/scan"
    if action is None:
        return requests.get(url, params={"code_url": code_url}, timeout=5)
    return requests.post(url, params={"code_url": code_url}, json={"action": action}, timeout=5)


def pay_now(simulator_url: str, code_url: str) -> None:
    answer = scan(simulator_url, code_url, "pay")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "SUCCESS"


def trade_view(simulator_url: str, account: str, out_trade_no: str) -> dict[str, Any]:
    """The simulator's debug view of one trade."""
    answer = requests.get(f"{simulator_url}/_sim/trades", params={"account": account}, timeout=5)
    answer.raise_for_status()
    found = [t for t in answer.json()["data"] if t["out_trade_no"] == out_trade_no]
    assert len(found) == 1, found
    return dict(found[0])


def eventually(check: Callable[[], Any], timeout: float = 3.0) -> Any:
    """``check()``'s first truthy result, polling; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def start_simulator(accounts: list[str], **kwargs: Any) -> WechatPaySimulator:
    simulator = WechatPaySimulator(
        "127.0.0.1", 0, accounts=accounts, notify_schedule=FAST_SCHEDULE, **kwargs
    )
    simulator.start()
    return simulator


@pytest.fixture
def receiver() -> Iterator[NotificationReceiver]:
    """A merchant notification endpoint that acknowledges with 204."""
    endpoint = NotificationReceiver([ACK])
    yield endpoint
    endpoint.close()
