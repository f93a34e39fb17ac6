"""The WeChat Pay client's error policy over real HTTP, against a scripted WeChat Pay (a local
server that signs what it is told to answer with the account's WeChat Pay key): whatever leaves
the outcome unknown is ChannelUnavailable, never a raw exception and never believed, and a
verified refusal is ChannelRejected. Every request it receives is checked with the simulator's
own Authorization verification."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from local_runtime.simulators.wechatpay.merchants import MerchantAccount
from local_runtime.simulators.wechatpay.signing import (
    check_authorization,
    parse_authorization,
    signature_headers,
)
from paycore.channels.base import ChannelPaymentStatus
from paycore.channels.wechatpay.adapter import WechatPayGateway
from paycore.channels.wechatpay.settings import WechatPaySettings
from paycore.errors import ChannelRejected, ChannelUnavailable
from tests.functional.wechatpay_support import order
from tests.unit.wechatpay_fakes import credentials, merchants


@dataclass
class Reply:
    status: int
    body: bytes = b""
    signed: bool = True
    signed_at: datetime | None = None
    signer: MerchantAccount | None = None
    headers: dict[str, str] = field(default_factory=dict)


class ScriptedWechatPay:
    """Answers each request with the next reply (the last one repeats); records requests."""

    def __init__(self, merchant: MerchantAccount) -> None:
        self.merchant = merchant
        self.replies: list[Reply] = [Reply(500)]
        self.requests: list[tuple[str, str, bytes]] = []
        self.refused_authorizations = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self, method: str, target: str, body: bytes, authorization: str | None) -> Reply:
        try:
            check_authorization(
                parse_authorization(authorization),
                self.merchant,
                method=method,
                target=target,
                body=body,
                now=datetime.now(UTC),
            )
        except Exception:
            self.refused_authorizations += 1
        with self._lock:
            self.requests.append((method, target, body))
            return self.replies[min(len(self.requests), len(self.replies)) - 1]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                reply = scripted._next(
                    self.command, self.path, body, self.headers.get("Authorization")
                )
                headers = dict(reply.headers)
                if reply.signed:
                    headers.update(
                        signature_headers(
                            reply.signer or scripted.merchant,
                            reply.body,
                            reply.signed_at or datetime.now(UTC),
                        )
                    )
                if reply.body:
                    headers.setdefault("Content-Type", "application/json; charset=utf-8")
                try:
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:  # the client gave up (a timeout or size test)
                    pass

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def wechatpay() -> Iterator[ScriptedWechatPay]:
    server = ScriptedWechatPay(merchants()[0])
    yield server
    server.close()


def _gateway(server: ScriptedWechatPay) -> WechatPayGateway:
    settings = WechatPaySettings.model_validate(
        credentials(server.merchant, api_base_url=server.url)
    )
    return WechatPayGateway(settings, account_id="wx-scripted", timeout=1.0)


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _transaction(merchant: MerchantAccount, out_trade_no: str, **more: Any) -> bytes:
    return _json(
        {
            "appid": merchant.appid,
            "mchid": merchant.mchid,
            "out_trade_no": out_trade_no,
            "trade_state": "NOTPAY",
            "trade_state_desc": "订单未支付",
            "amount": {"total": 1999, "currency": "CNY"},
            **more,
        }
    )


def test_requests_are_signed_as_wechatpay_verifies_them(wechatpay: ScriptedWechatPay) -> None:
    wechatpay.replies = [Reply(200, _transaction(wechatpay.merchant, "pay_scripted_0001"))]

    state = _gateway(wechatpay).query_order("pay_scripted_0001")

    assert state.status is ChannelPaymentStatus.PENDING
    assert wechatpay.refused_authorizations == 0
    method, target, body = wechatpay.requests[0]
    assert (method, body) == ("GET", b"")
    assert (
        target
        == f"/v3/pay/transactions/out-trade-no/pay_scripted_0001?mchid={wechatpay.merchant.mchid}"
    )


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(200, b"", signed=True), "no body"),
        (Reply(200, b"[]"), "not a JSON object"),
        (Reply(200, b"<html>"), "not JSON"),
        (Reply(200, _json({"code_url": ""})), "code_url"),
        (Reply(200, _json({"code_url": "weixin://x"}), signed=False), "does not verify"),
        (
            Reply(
                200,
                _json({"code_url": "weixin://x"}),
                signed_at=datetime.now(UTC) - timedelta(minutes=6),
            ),
            "stale",
        ),
        (Reply(200, _json({"code_url": "weixin://x"}), signer=merchants()[1]), "does not verify"),
        (Reply(302, headers={"Location": "http://127.0.0.1:9/"}), "HTTP 302"),
        (Reply(429, _json({"code": "FREQUENCY_LIMITED", "message": "频率超限"})), "HTTP 429"),
        (Reply(500, _json({"code": "SYSTEM_ERROR", "message": "系统异常"})), "HTTP 500"),
        (Reply(400, _json({"code": "BANKERROR", "message": "银行异常"})), "BANKERROR"),
        (Reply(404, b"not found"), "not JSON"),
        (Reply(404, _json({"error": "not found"})), "without a WeChat Pay error body"),
        (Reply(200, b"{" + b" " * (1024 * 1024) + b"}"), "over"),
    ],
)
def test_an_answer_that_leaves_the_outcome_unknown_is_unavailable(
    wechatpay: ScriptedWechatPay, reply: Reply, reason: str
) -> None:
    wechatpay.replies = [
        reply,
        Reply(404, _json({"code": "ORDER_NOT_EXIST", "message": "x"}), signed=False),
    ]

    with pytest.raises(ChannelUnavailable, match=reason):
        _gateway(wechatpay).create_order(order("http://127.0.0.1:9/notify"))
    # The recovery query's unsigned ORDER_NOT_EXIST was not believed either.
    assert len(wechatpay.requests) in (1, 2)


def test_a_create_whose_order_then_queries_unpaid_is_created_again(
    wechatpay: ScriptedWechatPay,
) -> None:
    asked = order("http://127.0.0.1:9/notify")
    wechatpay.replies = [
        Reply(503, _json({"code": "SYSTEM_ERROR", "message": "系统异常"})),
        Reply(200, _transaction(wechatpay.merchant, asked.out_trade_no)),
        Reply(200, _json({"code_url": "weixin://wxpay/bizpayurl?pr=again"})),
    ]

    created = _gateway(wechatpay).create_order(asked)

    assert created.next_action.code_url == "weixin://wxpay/bizpayurl?pr=again"
    first, query, again = wechatpay.requests
    assert (first[0], query[0], again[0]) == ("POST", "GET", "POST")
    assert first[2] == again[2]  # the very same create


def test_a_verified_refusal_is_rejected_and_an_unknown_code_is_a_refusal(
    wechatpay: ScriptedWechatPay,
) -> None:
    wechatpay.replies = [Reply(403, _json({"code": "RULE_LIMIT", "message": "业务规则限制"}))]
    with pytest.raises(ChannelRejected, match="RULE_LIMIT"):
        _gateway(wechatpay).create_order(order("http://127.0.0.1:9/notify"))
    wechatpay.replies = [Reply(403, _json({"code": "NEW_CODE", "message": "新错误"}))]
    with pytest.raises(ChannelRejected, match="NEW_CODE"):
        _gateway(wechatpay).close_order("pay_scripted_0002")


def test_an_answer_about_another_order_or_merchant_is_unavailable(
    wechatpay: ScriptedWechatPay,
) -> None:
    merchant, other = merchants()
    wechatpay.replies = [Reply(200, _transaction(merchant, "pay_someone_else"))]
    with pytest.raises(ChannelUnavailable, match="another order"):
        _gateway(wechatpay).query_order("pay_scripted_0003")
    wechatpay.replies = [Reply(200, _transaction(merchant, "pay_scripted_0003", mchid=other.mchid))]
    with pytest.raises(ChannelUnavailable, match="another merchant"):
        _gateway(wechatpay).query_order("pay_scripted_0003")


def test_a_slow_answer_is_unavailable(wechatpay: ScriptedWechatPay) -> None:
    settings = WechatPaySettings.model_validate(
        credentials(wechatpay.merchant, api_base_url=wechatpay.url)
    )
    gateway = WechatPayGateway(settings, account_id="wx-scripted", timeout=0.2)
    release = threading.Event()
    original = wechatpay._next

    def stall(*args: Any) -> Reply:
        release.wait(2)
        return original(*args)

    wechatpay._next = stall  # type: ignore[method-assign]
    try:
        with pytest.raises(ChannelUnavailable, match="timed out"):
            gateway.query_order("pay_scripted_0004")
    finally:
        release.set()


def test_a_bill_whose_download_fails_is_unavailable_not_rejected(
    wechatpay: ScriptedWechatPay,
) -> None:
    link = {"hash_type": "SHA1", "hash_value": "0" * 40}
    link["download_url"] = f"{wechatpay.url}/v3/billdownload/file?token=abc"
    wechatpay.replies = [
        Reply(200, _json(link)),
        Reply(400, _json({"code": "INVALID_REQUEST", "message": "下载地址已失效"})),
    ]

    with pytest.raises(ChannelUnavailable, match="download answered HTTP 400 INVALID_REQUEST"):
        _gateway(wechatpay).fetch_statement(date(2030, 1, 1))
    assert wechatpay.requests[1][1] == "/v3/billdownload/file?token=abc"
    assert wechatpay.refused_authorizations == 0  # the download is a signed GET too


def test_a_lost_create_stays_unknown_whatever_the_recovery_calls_answer(
    wechatpay: ScriptedWechatPay,
) -> None:
    """A refusal of the recovery query or of the repeated create proves nothing about the
    first create: the outcome stays unknown, never a final no."""
    asked = order("http://127.0.0.1:9/notify")
    lost = Reply(502, _json({"code": "SYSTEM_ERROR", "message": "系统异常"}))
    refused = Reply(400, _json({"code": "PARAM_ERROR", "message": "参数错误"}))
    unpaid = Reply(200, _transaction(wechatpay.merchant, asked.out_trade_no))

    for replies in ([lost, refused], [lost, unpaid, refused]):
        wechatpay.replies = replies
        wechatpay.requests.clear()
        with pytest.raises(ChannelUnavailable, match="HTTP 502"):
            _gateway(wechatpay).create_order(asked)
        assert len(wechatpay.requests) == len(replies)
