# Alipay's messages (sub_msg) are Chinese with full-width punctuation, as Alipay writes them.
# ruff: noqa: RUF001
"""The Alipay simulator's HTTP surface (a WSGI app, werkzeug routing).

- ``/gateway.do`` (GET query or POST form, or both): the open platform gateway. Every call is
  authenticated the way Alipay does it (app id, RSA2 signature over the sorted parameters,
  sign type, timestamp), then ``alipay.trade.page.pay`` answers the buyer's browser (302 to
  the cashier, or an HTML error page) and the other methods answer JSON envelopes signed by
  Alipay's key for the app.
- ``/cashier/{token}``: the buyer's page (GET) and choice (POST ``action`` pay/decline).
- ``/downloadBillFile.resource?...&fileId=``: a bill file behind a ``bill_download_url``.
- ``/_sim/accounts``, ``/_sim/orphans``, ``/_sim/trades``: the simulator's own endpoints.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from local_runtime.sandbox.orders import Clock
from local_runtime.simulators.alipay.accounts import AlipayAccount
from local_runtime.simulators.alipay.notifications import return_url_for, trade_status
from local_runtime.simulators.alipay.protocol import (
    SHANGHAI,
    SIGN_TYPE,
    AlipayError,
    business,
    envelope,
    invalid,
    invalid_parameter,
    missing,
    parse_beijing,
    parse_yuan,
    response_name,
    signing_content,
    system_error,
    verify_request,
)
from local_runtime.simulators.alipay.trade_api import MERCHANT_NUMBER, BillDesk, TradeApi
from local_runtime.simulators.common.delivery import NotificationDeliverer
from local_runtime.simulators.common.pages import (
    buyer_choice,
    buyer_page,
    html_response,
    json_response,
    message_page,
)
from local_runtime.simulators.common.sim_routes import accounts_response, orphan_response
from local_runtime.simulators.common.switches import InvalidSimulate, parse_simulate
from local_runtime.simulators.common.trades import (
    SimulatedFailure,
    Trade,
    TradeBook,
    TradeError,
    TradeErrorCode,
)

logger = logging.getLogger(__name__)

PAGE_PAY = "alipay.trade.page.pay"
BILL_DOWNLOAD_URL = "alipay.data.dataservice.bill.downloadurl.query"
PRODUCT_CODE = "FAST_INSTANT_TRADE_PAY"
# Alipay refuses a timestamp far from its clock (isv.invalid-timestamp) without publishing
# the window; the simulator allows 15 minutes either way, in Beijing time.
TIMESTAMP_TOLERANCE = timedelta(minutes=15)
DEFAULT_TIMEOUT = timedelta(days=15)  # a page.pay trade without time_expire/timeout_express
MAX_TIMEOUT = timedelta(days=15)
MAX_PASSBACK = 512
MAX_BODY_BYTES = 64 * 1024
JSON_CONTENT_TYPE = "text/html;charset=utf-8"  # what Alipay's gateway labels its JSON with
CHANNEL_NAME = "Alipay"

_REQUIRED_PARAMS = (
    ("sign", "isv.missing-signature", "缺少签名参数"),
    ("sign_type", "isv.missing-signature-type", "缺少签名类型参数"),
    ("timestamp", "isv.missing-timestamp", "缺少时间戳参数"),
    ("version", "isv.missing-version", "缺少版本参数"),
)
_TIMEOUT_EXPRESS = re.compile(r"^([1-9]\d{0,4})([mhdc])$")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}

_ROUTES = Map(
    [
        Rule("/gateway.do", methods=["GET", "POST"], endpoint="gateway"),
        Rule("/cashier/<token>", methods=["GET"], endpoint="cashier_page"),
        Rule("/cashier/<token>", methods=["POST"], endpoint="cashier_choice"),
        Rule("/downloadBillFile.resource", methods=["GET"], endpoint="download_bill"),
        Rule("/_sim/accounts", methods=["GET"], endpoint="sim_accounts"),
        Rule("/_sim/orphans", methods=["POST"], endpoint="sim_orphans"),
        Rule("/_sim/trades", methods=["GET"], endpoint="sim_trades"),
    ],
    strict_slashes=False,
    merge_slashes=False,
)


@dataclass(frozen=True)
class Refusal(Exception):
    """A gateway call refused before its method ran: the error, the answer's name and the
    key to sign it with (None when no app is known)."""

    error: AlipayError
    name: str
    account: AlipayAccount | None


@dataclass(frozen=True)
class Call:
    """An authenticated gateway call."""

    account: AlipayAccount
    method: str
    params: Mapping[str, str]
    biz: Mapping[str, Any]


class AlipayGateway:
    """Routes requests; ``on_buyer_change(trade)`` is called when the buyer's choice changed
    a trade (the simulator notifies from there)."""

    def __init__(
        self,
        *,
        accounts: list[AlipayAccount],
        book: TradeBook,
        api: TradeApi,
        bills: BillDesk,
        deliverer: NotificationDeliverer,
        clock: Clock,
        account_entries: Callable[[], list[dict[str, Any]]],
        on_buyer_change: Callable[[Trade], None],
    ) -> None:
        self._by_app_id = {account.app_id: account for account in accounts}
        self._by_account = {account.account: account for account in accounts}
        self._book = book
        self._api = api
        self._bills = bills
        self._deliverer = deliverer
        self._clock = clock
        self._account_entries = account_entries
        self._on_buyer_change = on_buyer_change

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = MAX_BODY_BYTES
        try:
            response = self._dispatch(request)
        except RequestEntityTooLarge:
            response = Response("request body too large", status=413, mimetype="text/plain")
        except HTTPException as exc:
            response = Response(exc.description or exc.name, exc.code, mimetype="text/plain")
        except Exception:
            logger.exception("alipay simulator: %s %s failed", request.method, request.path)
            response = Response("internal error", status=500, mimetype="text/plain")
        answer: Iterable[bytes] = response(environ, start_response)
        return answer

    def _dispatch(self, request: Request) -> Response:
        endpoint, args = _ROUTES.bind_to_environ(request.environ).match()
        handlers: dict[str, Callable[..., Response]] = {
            "gateway": self.gateway,
            "cashier_page": self.cashier_page,
            "cashier_choice": self.cashier_choice,
            "download_bill": self.download_bill,
            "sim_accounts": self.sim_accounts,
            "sim_orphans": self.sim_orphans,
            "sim_trades": self.sim_trades,
        }
        return handlers[str(endpoint)](request, **args)

    # -- the gateway -------------------------------------------------------------------------

    def gateway(self, request: Request) -> Response:
        values = MultiDict(request.args)
        if request.method == "POST":
            values.update(request.form)
        try:
            call = self._authenticate(values)
        except Refusal as refusal:
            if values.get("method") == PAGE_PAY:
                return _error_page(refusal.error)
            body = envelope(
                refusal.name,
                refusal.error.content(),
                refusal.account.alipay_key if refusal.account else None,
            )
            return _json(body)
        if call.method == PAGE_PAY:
            return self.page_pay(request, call)
        name = response_name(call.method)
        try:
            if call.method == BILL_DOWNLOAD_URL:
                content = self._api.bill_download_url(
                    call.account, call.biz, base_url=_base_url(request)
                )
            else:
                content = self._api.methods[call.method](call.account, call.biz)
        except AlipayError as error:
            content = error.content()
        return _json(envelope(name, content, call.account.alipay_key))

    def _authenticate(self, values: MultiDict[str, str]) -> Call:
        """The call, once Alipay would accept it; else a ``Refusal``: first the app (unsigned
        answers while no app is known), then the common parameters and the signature."""
        method = values.get("method", "")
        known = method in (PAGE_PAY, BILL_DOWNLOAD_URL) or method in self._api.methods
        name = response_name(method if known else None)
        if not method:
            raise Refusal(missing("isv.missing-method", "缺少方法名参数"), name, None)
        app_id = values.get("app_id", "")
        if not app_id:
            raise Refusal(missing("isv.missing-app-id", "缺少appId参数"), name, None)
        account = self._by_app_id.get(app_id)
        if account is None:
            raise Refusal(invalid("isv.invalid-app-id", "无效的AppID参数"), name, None)
        try:
            if not known:
                raise invalid("isv.invalid-method", "不存在的方法名")
            params = self._checked_params(account, values)
            biz = _biz_content(params)
        except AlipayError as error:
            raise Refusal(error, name, account) from None
        return Call(account, method, params, biz)

    def _checked_params(
        self, account: AlipayAccount, values: MultiDict[str, str]
    ) -> dict[str, str]:
        """The common parameters of an app's call, checked in Alipay's order."""
        repeated = sorted(key for key, items in values.lists() if len(items) > 1)
        if repeated:
            raise invalid("isv.invalid-parameter", f"参数重复: {', '.join(repeated)}")
        params: dict[str, str] = values.to_dict()
        for field, sub_code, sub_msg in _REQUIRED_PARAMS:
            if not params.get(field):
                raise missing(sub_code, sub_msg)
        if params["sign_type"] != SIGN_TYPE:
            raise invalid("isv.invalid-signature-type", "无效的签名类型")
        if params.get("charset", "utf-8").lower() != "utf-8":
            raise invalid("isv.invalid-charset", "字符集错误")
        if params.get("format", "JSON").upper() != "JSON":
            raise invalid("isv.invalid-format", "无效的数据格式")
        if not verify_request(account.app_public_key, params):
            content = signing_content(params, ("sign",))
            raise invalid(
                "isv.invalid-signature",
                "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，"
                f"网关生成的验签字符串为：{content}",
            )
        if not self._fresh(params["timestamp"]):
            raise invalid("isv.invalid-timestamp", "非法的时间戳参数")
        if params["version"] != "1.0":
            raise invalid("isv.invalid-parameter", "version 只支持 1.0")
        return params

    def _fresh(self, timestamp: str) -> bool:
        try:
            sent = parse_beijing(timestamp)
        except ValueError:
            return False
        return abs(self._clock() - sent) <= TIMESTAMP_TOLERANCE

    # -- page.pay and the cashier ------------------------------------------------------------

    def page_pay(self, request: Request, call: Call) -> Response:
        """The buyer's browser arrives with the signed page.pay parameters: create (or find)
        the trade and send the browser to the cashier."""
        try:
            order = _page_pay_order(call, self._clock())
            trade, _ = self._book.create(
                call.account.account,
                order["out_trade_no"],
                amount=order["amount"],
                currency="CNY",
                subject=order["subject"],
                expires_at=order["expires_at"],
                simulate=order["simulate"],
                extra=order["extra"],
            )
        except SimulatedFailure as failure:
            return _error_page(system_error(), failure.http_status)
        except AlipayError as error:
            return _error_page(error)
        except TradeError as exc:
            if exc.code is TradeErrorCode.TRADE_PARAMS_MISMATCH:
                return _error_page(business("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改"))
            return _error_page(invalid_parameter("time_expire 已过期"))
        return redirect(f"{_base_url(request)}/cashier/{trade.pay_token}", 302)

    def cashier_page(self, request: Request, token: str) -> Response:
        return buyer_page(self._book, token, channel=CHANNEL_NAME)

    def cashier_choice(self, request: Request, token: str) -> Response:
        def return_url(trade: Trade) -> str | None:
            return return_url_for(self._by_account[trade.account], trade, self._clock())

        return buyer_choice(
            request,
            self._book,
            token,
            channel=CHANNEL_NAME,
            return_url=return_url,
            on_change=self._on_buyer_change,
        )

    # -- bills and the simulator's own endpoints ---------------------------------------------

    def download_bill(self, request: Request) -> Response:
        file = self._bills.get(request.args.get("fileId", ""))
        if file is None:
            return Response("bill link unknown or expired", status=404, mimetype="text/plain")
        return Response(
            file.content,
            mimetype="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{file.name}"'},
        )

    def sim_accounts(self, request: Request) -> Response:
        return accounts_response(self._account_entries())

    def sim_orphans(self, request: Request) -> Response:
        return orphan_response(
            request, self._book, accounts=self._by_account, tz=SHANGHAI, currencies=("CNY",)
        )

    def sim_trades(self, request: Request) -> Response:
        """A debug view: every trade (or one account's) with its Alipay status, refunds and
        notifications."""
        account = request.args.get("account")
        data = []
        for trade in self._book.trades(account):
            view = trade.view()
            view["trade_status"] = trade_status(trade)
            view["refunds"] = [
                refund.view() for refund in self._book.refunds_of(trade.account, trade.out_trade_no)
            ]
            view["notifications"] = self._deliverer.history(
                ("trade", trade.account, trade.out_trade_no)
            )
            data.append(view)
        return json_response({"object": "list", "data": data})


def _biz_content(params: Mapping[str, str]) -> dict[str, Any]:
    try:
        biz = json.loads(params.get("biz_content") or "{}")
    except ValueError:
        biz = None
    if not isinstance(biz, dict):
        raise invalid("isv.invalid-parameter", "biz_content 不是合法的 JSON 对象")
    return biz


def _page_pay_order(call: Call, now: datetime) -> dict[str, Any]:
    """page.pay's biz_content and URLs checked as Alipay checks them."""
    biz = call.biz
    out_trade_no = biz.get("out_trade_no")
    if not isinstance(out_trade_no, str) or not MERCHANT_NUMBER.match(out_trade_no):
        raise invalid_parameter("out_trade_no 须为 1-64 位字母、数字或下划线")
    if "total_amount" not in biz:
        raise invalid_parameter("total_amount 不能为空")
    try:
        amount = parse_yuan(biz["total_amount"])
    except ValueError as exc:
        raise invalid_parameter(f"total_amount {exc}") from None
    subject = biz.get("subject")
    if not isinstance(subject, str) or not 0 < len(subject) <= 256:
        raise invalid_parameter("subject 须为 1-256 个字符")
    if biz.get("product_code") != PRODUCT_CODE:
        raise invalid_parameter(f"product_code 须为 {PRODUCT_CODE}")
    body = biz.get("body")
    if body is not None and (not isinstance(body, str) or len(body) > 128):
        raise invalid_parameter("body 须为不超过 128 个字符的字符串")
    passback = biz.get("passback_params")
    if passback is not None and (not isinstance(passback, str) or len(passback) > MAX_PASSBACK):
        raise invalid_parameter(f"passback_params 须为不超过 {MAX_PASSBACK} 个字符的字符串")
    try:
        simulate = parse_simulate(unquote_plus(passback) if passback else None)
    except InvalidSimulate as exc:
        where = f"simulate.{exc.field}" if exc.field else "simulate"
        raise invalid_parameter(f"passback_params {where}: {exc.message}") from None
    extra: dict[str, Any] = {
        name: value
        for name, value in (
            ("notify_url", _url(call.params, "notify_url")),
            ("return_url", _url(call.params, "return_url")),
            ("passback_params", passback),
            ("body", body),
        )
        if value
    }
    return {
        "out_trade_no": out_trade_no,
        "amount": amount,
        "subject": subject,
        "expires_at": _expires_at(biz, now),
        "simulate": simulate,
        "extra": extra,
    }


def _expires_at(biz: Mapping[str, Any], now: datetime) -> datetime:
    """``time_expire`` (absolute, Beijing) wins over ``timeout_express`` (``90m``, ``2h``,
    ``1d``, ``1c`` = end of today), 1 minute to 15 days; 15 days without either."""
    time_expire = biz.get("time_expire")
    if time_expire is not None:
        if not isinstance(time_expire, str):
            raise invalid_parameter("time_expire 须为 yyyy-MM-dd HH:mm:ss")
        try:
            return parse_beijing(time_expire)
        except ValueError:
            raise invalid_parameter("time_expire 须为 yyyy-MM-dd HH:mm:ss") from None
    express = biz.get("timeout_express")
    if express is None:
        return now + DEFAULT_TIMEOUT
    match = _TIMEOUT_EXPRESS.match(express) if isinstance(express, str) else None
    if match is None:
        raise invalid_parameter("timeout_express 取值范围 1m～15d")
    count, unit = int(match.group(1)), match.group(2)
    if unit == "c":
        if count != 1:
            raise invalid_parameter("timeout_express 取值范围 1m～15d")
        today = now.astimezone(SHANGHAI).date()
        midnight = datetime.combine(today + timedelta(days=1), datetime.min.time(), SHANGHAI)
        return midnight.astimezone(UTC)
    timeout = _UNITS[unit] * count
    if timeout > MAX_TIMEOUT:
        raise invalid_parameter("timeout_express 取值范围 1m～15d")
    return now + timeout


def _url(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if not value:
        return None
    parts = urlsplit(value)
    if len(value) > 256 or parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid("isv.invalid-parameter", f"{name} 须为 http(s) 绝对地址")
    return value


def _base_url(request: Request) -> str:
    return str(request.host_url).rstrip("/")


def _json(body: bytes) -> Response:
    return Response(body, status=200, content_type=JSON_CONTENT_TYPE)


def _error_page(error: AlipayError, status: int = 200) -> Response:
    """What the buyer's browser shows when page.pay is refused (Alipay's own page says the
    same: the error code and the reason)."""
    message = f"{error.code} {error.msg}: {error.sub_code} {error.sub_msg}"
    page = message_page(f"错误代码 {error.sub_code}", message, channel=CHANNEL_NAME)
    return html_response(page, status)
