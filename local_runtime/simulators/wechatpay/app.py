"""The WeChat Pay simulator's HTTP surface (werkzeug routing, no framework).

- The merchant's server: ``/v3/...`` at WeChat Pay's own paths. Every call is signed by the
  merchant (``signing.check_authorization``; the ``mchid`` in the Authorization header picks
  the account) and every answer is signed by WeChat Pay with the account's public key id,
  errors included once the caller is known; the bill file itself is not signed (its SHA1 is).
- The buyer's phone: ``GET /scan?code_url=<url-encoded code_url>`` shows the payment,
  ``POST`` the same URL with ``{"action": "pay" | "decline"}`` (JSON or form) is the choice.
- Developers and tests: ``GET /_sim/accounts``, ``POST /_sim/orphans``, ``GET /_sim/trades``
  (a debug view of trades, refunds and notifications), no authentication.

The misbehaviour switches ride in ``attach`` (at most 128 characters, like any ``attach``) as
a JSON object; see the simulators README.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any, TypeAlias

from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from local_runtime.simulators.common.delivery import NotificationDeliverer
from local_runtime.simulators.common.keys import random_alphanumeric
from local_runtime.simulators.common.pages import buyer_choice, buyer_page, json_response
from local_runtime.simulators.common.sim_routes import accounts_response, orphan_response
from local_runtime.simulators.common.switches import InvalidSimulate, parse_simulate
from local_runtime.simulators.common.trades import (
    Refund,
    RefundStatus,
    SimulatedFailure,
    Trade,
    TradeBook,
    TradeError,
    TradeErrorCode,
    TradeStatus,
)
from local_runtime.simulators.wechatpay.bills import FEE_RATE_BPS, BillDownloads, trade_bill
from local_runtime.simulators.wechatpay.errors import (
    WechatPayError,
    invalid_request,
    param_error,
    sign_error,
)
from local_runtime.simulators.wechatpay.merchants import MerchantAccount
from local_runtime.simulators.wechatpay.models import (
    CloseRequest,
    NativeOrderRequest,
    RefundRequest,
    parse_body,
)
from local_runtime.simulators.wechatpay.notifications import (
    REFUND_EVENTS,
    STALE_REFUND,
    STALE_TRANSACTION,
    TRANSACTION_SUCCESS,
    acknowledged,
    compact_json,
    notification_request,
)
from local_runtime.simulators.wechatpay.resources import (
    CURRENCY,
    REFUND_STATUS,
    SHANGHAI,
    code_url,
    new_refund_id,
    new_transaction_id,
    pay_token_of,
    refund_notification_resource,
    refund_resource,
    trade_state,
    transaction_resource,
)
from local_runtime.simulators.wechatpay.signing import (
    check_authorization,
    parse_authorization,
    signature_headers,
)

logger = logging.getLogger(__name__)

CHANNEL_NAME = "WeChat Pay"
DEFAULT_EXPIRY = timedelta(hours=2)  # a Native code_url is valid for 2 hours
_MAX_BODY_BYTES = 64 * 1024
_BILL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_ROUTES = Map(
    [
        Rule("/v3/pay/transactions/native", methods=["POST"], endpoint="create_native"),
        Rule(
            "/v3/pay/transactions/out-trade-no/<out_trade_no>",
            methods=["GET"],
            endpoint="query_by_out_trade_no",
        ),
        Rule(
            "/v3/pay/transactions/id/<transaction_id>",
            methods=["GET"],
            endpoint="query_by_transaction_id",
        ),
        Rule(
            "/v3/pay/transactions/out-trade-no/<out_trade_no>/close",
            methods=["POST"],
            endpoint="close",
        ),
        Rule("/v3/refund/domestic/refunds", methods=["POST"], endpoint="create_refund"),
        Rule(
            "/v3/refund/domestic/refunds/<out_refund_no>", methods=["GET"], endpoint="query_refund"
        ),
        Rule("/v3/bill/tradebill", methods=["GET"], endpoint="trade_bill"),
        Rule("/v3/billdownload/file", methods=["GET"], endpoint="download_bill"),
        Rule("/scan", methods=["GET", "POST"], endpoint="scan"),
        Rule("/_sim/accounts", methods=["GET"], endpoint="sim_accounts"),
        Rule("/_sim/orphans", methods=["POST"], endpoint="sim_orphans"),
        Rule("/_sim/trades", methods=["GET"], endpoint="sim_trades"),
    ],
    strict_slashes=False,
    merge_slashes=False,
)
_MERCHANT_API = frozenset(
    {
        "create_native",
        "query_by_out_trade_no",
        "query_by_transaction_id",
        "close",
        "create_refund",
        "query_refund",
        "trade_bill",
        "download_bill",
    }
)

Answer: TypeAlias = tuple[int, dict[str, Any] | None] | Response
StartResponse = Callable[..., Any]


class WechatPayApp:
    """The WSGI app; owns the trade book, the deliverer and the bill downloads.

    ``base_url()`` is the simulator's URL once it serves (``api_base_url`` of the accounts).
    """

    def __init__(
        self,
        merchants: Sequence[MerchantAccount],
        *,
        clock: Callable[[], datetime],
        deliverer: NotificationDeliverer,
        base_url: Callable[[], str],
    ) -> None:
        self._merchants = list(merchants)
        self._by_account = {merchant.account: merchant for merchant in merchants}
        self._by_mchid = {merchant.mchid: merchant for merchant in merchants}
        self._clock = clock
        self._base_url = base_url
        self.deliverer = deliverer
        self.book = TradeBook(
            clock=clock,
            new_transaction_id=new_transaction_id,
            new_refund_id=new_refund_id,
            on_refund_final=self._refund_final,
        )
        self._bills = BillDownloads(clock)
        self._lock = threading.Lock()
        self._merchant_closed: set[tuple[str, str]] = set()

    def accounts(self) -> list[dict[str, Any]]:
        url = self._base_url()
        return [merchant.entry(url) for merchant in self._merchants]

    # -- dispatch ----------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = _MAX_BODY_BYTES
        body: Iterable[bytes] = self._dispatch(request)(environ, start_response)
        return body

    def _dispatch(self, request: Request) -> Response:
        try:
            endpoint, args = _ROUTES.bind_to_environ(request.environ).match()
        except MethodNotAllowed:
            error = WechatPayError(405, "METHOD_NOT_ALLOWED", f"{request.method} 不被允许")
            return _answer(error.status, error.body())
        except HTTPException:
            error = WechatPayError(404, "NOT_FOUND", f"没有这个接口 (no route {request.path})")
            return _answer(error.status, error.body())
        name = str(endpoint)
        try:
            if name in _MERCHANT_API:
                return self._merchant_call(request, name, args)
            handler: Callable[..., Response] = getattr(self, name)
            return handler(request, **args)
        except Exception:
            logger.exception("simulator bug while serving %s %s", request.method, request.path)
            error = WechatPayError(500, "SYSTEM_ERROR", "系统异常 (a simulator bug; see its log)")
            return _answer(error.status, error.body())

    def _merchant_call(self, request: Request, name: str, args: dict[str, Any]) -> Response:
        """Authenticate, run the handler, sign the answer (errors too, once the caller is
        known)."""
        merchant: MerchantAccount | None = None
        try:
            merchant = self._authenticate(request)
            handler: Callable[..., Answer] = getattr(self, name)
            answer = handler(merchant, request, **args)
        except WechatPayError as exc:
            answer = (exc.status, exc.body())
        except SimulatedFailure as exc:
            answer = (
                exc.http_status,
                {"code": "SYSTEM_ERROR", "message": f"系统异常, 请稍后重试 ({exc})"},
            )
        except RequestEntityTooLarge:
            answer = (400, param_error("请求体超过 64 KiB").body())
        if isinstance(answer, Response):
            return answer
        status, body = answer
        return _answer(status, body, merchant, self._clock())

    def _authenticate(self, request: Request) -> MerchantAccount:
        authorization = parse_authorization(request.headers.get("Authorization"))
        merchant = self._by_mchid.get(authorization.mchid)
        if merchant is None:
            raise sign_error(f"商户号 mchid {authorization.mchid} 不存在 (unknown merchant)")
        check_authorization(
            authorization,
            merchant,
            method=request.method,
            target=_request_target(request),
            body=request.get_data(cache=True),
            now=self._clock(),
        )
        serial = request.headers.get("Wechatpay-Serial")
        if serial and serial != merchant.public_key_id:
            raise param_error(
                "Wechatpay-Serial 不是该商户的微信支付公钥ID",
                field="Wechatpay-Serial",
                location="header",
            )
        return merchant

    # -- payments ----------------------------------------------------------------------------

    def create_native(self, merchant: MerchantAccount, request: Request) -> Answer:
        order = parse_body(NativeOrderRequest, request.get_data(cache=True))
        if order.mchid != merchant.mchid:
            raise param_error("mchid 与 Authorization 中的商户号不一致", field="/mchid")
        if order.appid != merchant.appid:
            raise WechatPayError(400, "APPID_MCHID_NOT_MATCH", "AppID和mch_id不匹配")
        try:
            switches = parse_simulate(order.attach)
        except InvalidSimulate as exc:
            raise param_error(
                f"attach 不是有效的 simulate 开关: {exc}", field="/attach", issue=str(exc)
            ) from None
        expires_at = order.expires_at or self._clock() + DEFAULT_EXPIRY
        try:
            trade, created = self.book.create(
                merchant.account,
                order.out_trade_no,
                amount=order.amount.total,
                currency=CURRENCY,
                subject=order.description,
                expires_at=expires_at,
                simulate=switches,
                extra={"attach": order.attach, "notify_url": order.notify_url},
                pay_token=random_alphanumeric(24),
            )
        except TradeError as exc:
            if exc.code is TradeErrorCode.EXPIRY_PASSED:
                raise param_error("time_expire 必须晚于当前时间", field="/time_expire") from None
            if exc.code is TradeErrorCode.TRADE_PARAMS_MISMATCH:
                raise invalid_request("201 商户订单号重复 (another amount)") from None
            raise
        if not created and trade.status is TradeStatus.SUCCESS:
            raise WechatPayError(400, "ORDERPAID", "该订单已支付")
        if not created and trade.status is TradeStatus.CLOSED:
            raise WechatPayError(400, "ORDER_CLOSED", "订单已关闭")
        return 200, {"code_url": code_url(trade.pay_token)}

    def query_by_out_trade_no(
        self, merchant: MerchantAccount, request: Request, out_trade_no: str
    ) -> Answer:
        _check_mchid_query(merchant, request)
        try:
            trade = self.book.get(merchant.account, out_trade_no)
        except TradeError:
            raise _order_not_exist() from None
        return 200, self._transaction(merchant, trade)

    def query_by_transaction_id(
        self, merchant: MerchantAccount, request: Request, transaction_id: str
    ) -> Answer:
        _check_mchid_query(merchant, request)
        trade = self._trade_by_id(merchant, transaction_id)
        if trade is None:
            raise _order_not_exist()
        return 200, self._transaction(merchant, trade)

    def close(self, merchant: MerchantAccount, request: Request, out_trade_no: str) -> Answer:
        close = parse_body(CloseRequest, request.get_data(cache=True))
        if close.mchid != merchant.mchid:
            raise param_error("mchid 与 Authorization 中的商户号不一致", field="/mchid")
        try:
            self.book.close(merchant.account, out_trade_no)
        except TradeError as exc:
            if exc.code is TradeErrorCode.TRADE_PAID:
                raise WechatPayError(400, "ORDERPAID", "该订单已支付") from None
            raise _order_not_exist() from None
        if self.book.get(merchant.account, out_trade_no).status is TradeStatus.CLOSED:
            with self._lock:  # close_ignored leaves it payable: not closed by the merchant
                self._merchant_closed.add((merchant.account, out_trade_no))
        return 204, None

    # -- refunds -----------------------------------------------------------------------------

    def create_refund(self, merchant: MerchantAccount, request: Request) -> Answer:
        ask = parse_body(RefundRequest, request.get_data(cache=True))
        if ask.transaction_id is None and ask.out_trade_no is None:
            raise param_error("transaction_id 和 out_trade_no 必须二选一", field="/out_trade_no")
        trade = self._refunded_trade(merchant, ask)
        if ask.amount.total != trade.amount:
            raise invalid_request("amount.total 与原订单金额不一致")
        funds_account = ask.funds_account or "AVAILABLE"
        try:
            refund, _ = self.book.refund(
                merchant.account,
                trade.out_trade_no,
                ask.out_refund_no,
                amount=ask.amount.refund,
                extra={
                    "notify_url": ask.notify_url,
                    "reason": ask.reason,
                    "funds_account": funds_account,
                },
            )
        except TradeError as exc:
            raise _refund_refused(exc) from None
        return 200, refund_resource(
            trade, refund, fee_rate_bps=FEE_RATE_BPS, funds_account=funds_account
        )

    def _refunded_trade(self, merchant: MerchantAccount, ask: RefundRequest) -> Trade:
        """The trade a refund names, by transaction_id first (``404 RESOURCE_NOT_EXISTS``)."""
        if ask.transaction_id is not None:
            found = self._trade_by_id(merchant, ask.transaction_id)
            if found is not None:
                return found
        elif ask.out_trade_no is not None:
            try:
                return self.book.get(merchant.account, ask.out_trade_no)
            except TradeError:
                pass
        raise WechatPayError(404, "RESOURCE_NOT_EXISTS", "订单不存在")

    def query_refund(
        self, merchant: MerchantAccount, request: Request, out_refund_no: str
    ) -> Answer:
        try:
            refund = self.book.get_refund(merchant.account, out_refund_no)
        except TradeError:
            raise WechatPayError(404, "RESOURCE_NOT_EXISTS", "退款单不存在") from None
        trade = self.book.get(merchant.account, refund.out_trade_no)
        funds_account = str(refund.extra.get("funds_account") or "AVAILABLE")
        return 200, refund_resource(
            trade, refund, fee_rate_bps=FEE_RATE_BPS, funds_account=funds_account
        )

    # -- bills -------------------------------------------------------------------------------

    def trade_bill(self, merchant: MerchantAccount, request: Request) -> Answer:
        day = self._bill_date(request.args.get("bill_date"))
        bill_type = request.args.get("bill_type", "ALL")
        if bill_type != "ALL":
            raise param_error(
                "bill_type: the simulator publishes only ALL",
                field="bill_type",
                location="query",
            )
        tar_type = request.args.get("tar_type")
        if tar_type not in (None, "GZIP"):
            raise param_error("tar_type 只能是 GZIP", field="tar_type", location="query")
        if day not in self.book.statement_days(merchant.account, SHANGHAI):
            raise WechatPayError(400, "NO_STATEMENT_EXIST", "账单文件不存在")
        lines = self.book.statement_lines(merchant.account, day, SHANGHAI)
        bill = trade_bill(merchant, lines)
        content = gzip.compress(bill, mtime=0) if tar_type == "GZIP" else bill
        token = self._bills.publish(merchant.mchid, content)
        return 200, {
            "hash_type": "SHA1",
            "hash_value": hashlib.sha1(bill).hexdigest(),  # noqa: S324 - WeChat Pay's choice
            "download_url": f"{request.host_url.rstrip('/')}/v3/billdownload/file?token={token}",
        }

    def download_bill(self, merchant: MerchantAccount, request: Request) -> Answer:
        content = self._bills.get(merchant.mchid, request.args.get("token", ""))
        if content is None:
            raise invalid_request("下载地址已失效或不存在 (download_url is valid 30 s)")
        return Response(content, status=200, mimetype="application/octet-stream")

    def _bill_date(self, value: str | None) -> date:
        if not value or not _BILL_DATE.match(value):
            raise param_error("bill_date 格式为 YYYY-MM-DD", field="bill_date", location="query")
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise param_error(
                "bill_date 不是有效日期", field="bill_date", location="query"
            ) from None
        if day > self._clock().astimezone(SHANGHAI).date():
            raise param_error("bill_date 不能晚于今天", field="bill_date", location="query")
        return day

    # -- the buyer ---------------------------------------------------------------------------

    def scan(self, request: Request) -> Response:
        token = pay_token_of(request.args.get("code_url", "")) or ""
        if request.method == "GET":
            return buyer_page(self.book, token, channel=CHANNEL_NAME)
        return buyer_choice(
            request, self.book, token, channel=CHANNEL_NAME, on_change=self._trade_changed
        )

    def _trade_changed(self, trade: Trade) -> None:
        """The buyer paid or declined. WeChat Pay notifies a payment only (TRANSACTION.SUCCESS);
        a failed payment is learnt by querying."""
        if trade.status is not TradeStatus.SUCCESS or trade.simulate.query_only:
            return
        url = trade.extra.get("notify_url")
        if not url:
            return
        merchant = self._by_account[trade.account]
        unpaid = dataclasses.replace(
            trade, status=TradeStatus.WAIT_BUYER_PAY, transaction_id=None, paid_at=None
        )
        self.deliverer.deliver(
            ("trade", trade.account, trade.out_trade_no),
            str(url),
            notification_request(
                merchant,
                TRANSACTION_SUCCESS,
                transaction_resource(merchant, trade, "SUCCESS"),
                self._clock,
            ),
            acknowledged,
            trade.simulate,
            stale_request=notification_request(
                merchant,
                STALE_TRANSACTION,
                transaction_resource(merchant, unpaid, "NOTPAY"),
                self._clock,
            ),
            label=TRANSACTION_SUCCESS[0],
        )

    def _refund_final(self, refund: Refund, trade: Trade) -> None:
        """A refund became SUCCESS or CLOSED: REFUND.SUCCESS / REFUND.CLOSED to its notify_url."""
        url = refund.extra.get("notify_url")
        if trade.simulate.query_only or not url:
            return
        merchant = self._by_account[refund.account]
        status = REFUND_STATUS[refund.status]
        event = REFUND_EVENTS[status]
        in_progress = dataclasses.replace(refund, status=RefundStatus.PROCESSING, finished_at=None)
        self.deliverer.deliver(
            ("refund", refund.account, refund.out_refund_no),
            str(url),
            notification_request(
                merchant,
                event,
                refund_notification_resource(merchant, trade, refund, status),
                self._clock,
            ),
            acknowledged,
            trade.simulate,
            stale_request=notification_request(
                merchant,
                STALE_REFUND,
                refund_notification_resource(merchant, trade, in_progress, "PROCESSING"),
                self._clock,
            ),
            label=event[0],
        )

    # -- /_sim -------------------------------------------------------------------------------

    def sim_accounts(self, request: Request) -> Response:
        return accounts_response(self.accounts())

    def sim_orphans(self, request: Request) -> Response:
        return orphan_response(
            request, self.book, accounts=self._by_account, tz=SHANGHAI, currencies=(CURRENCY,)
        )

    def sim_trades(self, request: Request) -> Response:
        """Debug view: every trade (of ``?account=``), its WeChat Pay state, its refunds and
        every notification with its attempts."""
        account = request.args.get("account")
        data = []
        for trade in self.book.trades(account):
            merchant = self._by_account[trade.account]
            refunds = self.book.refunds_of(trade.account, trade.out_trade_no)
            data.append(
                {
                    **trade.view(),
                    "mchid": merchant.mchid,
                    "trade_state": self._trade_state(trade, refunds),
                    "code_url": code_url(trade.pay_token),
                    "notifications": self.deliverer.history(
                        ("trade", trade.account, trade.out_trade_no)
                    ),
                    "refunds": [
                        {
                            **refund.view(),
                            "refund_status": REFUND_STATUS[refund.status],
                            "notifications": self.deliverer.history(
                                ("refund", refund.account, refund.out_refund_no)
                            ),
                        }
                        for refund in refunds
                    ],
                }
            )
        return json_response({"object": "list", "data": data})

    # -- helpers -----------------------------------------------------------------------------

    def _transaction(self, merchant: MerchantAccount, trade: Trade) -> dict[str, Any]:
        refunds = self.book.refunds_of(trade.account, trade.out_trade_no)
        return transaction_resource(merchant, trade, self._trade_state(trade, refunds))

    def _trade_state(self, trade: Trade, refunds: Sequence[Refund]) -> str:
        with self._lock:
            closed = (trade.account, trade.out_trade_no) in self._merchant_closed
        refunded = any(refund.status is not RefundStatus.FAILED for refund in refunds)
        return trade_state(trade, refunded=refunded, merchant_closed=closed)

    def _trade_by_id(self, merchant: MerchantAccount, transaction_id: str) -> Trade | None:
        for trade in self.book.trades(merchant.account):
            if trade.transaction_id == transaction_id:
                return trade
        return None


def _answer(
    status: int,
    body: dict[str, Any] | None,
    merchant: MerchantAccount | None = None,
    now: datetime | None = None,
) -> Response:
    """A JSON answer (or an empty 204), signed by WeChat Pay when the merchant is known."""
    payload = b"" if body is None else compact_json(body)
    response = Response(payload, status=status)
    if body is None:
        response.headers.pop("Content-Type", None)
    else:
        response.headers["Content-Type"] = "application/json; charset=utf-8"
    response.headers["Request-ID"] = secrets.token_hex(16).upper()
    if merchant is not None and now is not None:
        response.headers.update(signature_headers(merchant, payload, now))
    return response


def _request_target(request: Request) -> str:
    """The path and query exactly as the client sent them: what the signature covers."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw.startswith("/"):
        return raw
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


def _check_mchid_query(merchant: MerchantAccount, request: Request) -> None:
    mchid = request.args.get("mchid")
    if not mchid:
        raise param_error(
            "输入源“/query/mchid”映射到字段校验失败, 此字段为必填项",
            field="mchid",
            location="query",
        )
    if mchid != merchant.mchid:
        raise param_error(
            "mchid 与 Authorization 中的商户号不一致", field="mchid", location="query"
        )


def _order_not_exist() -> WechatPayError:
    return WechatPayError(404, "ORDER_NOT_EXIST", "订单不存在")


def _refund_refused(exc: TradeError) -> WechatPayError:
    match exc.code:
        case TradeErrorCode.TRADE_NOT_FOUND:
            return WechatPayError(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        case TradeErrorCode.TRADE_NOT_PAID:
            return invalid_request("订单未支付, 不能退款 (the trade is not paid)")
        case TradeErrorCode.REFUND_PARAMS_MISMATCH:
            return invalid_request(
                "同一 out_refund_no 的退款请求参数不一致 (another amount or trade)"
            )
        case TradeErrorCode.REFUND_EXCEEDS_PAID:
            return invalid_request("申请退款金额超过订单可退金额")
        case _:
            return WechatPayError(500, "SYSTEM_ERROR", f"系统异常 ({exc.message})")
