"""The merchant's request bodies, validated as WeChat Pay does: field names, types (strict:
``"100"`` is not an amount), lengths and patterns from its API reference. Fields the simulator
has no use for (``detail``, ``scene_info``, ``goods_detail`` ...) are accepted and ignored, as
WeChat Pay accepts them. A failure is ``400 PARAM_ERROR`` whose ``detail.field`` is the JSON
pointer of the first faulty field (``/amount/total``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from local_runtime.sandbox.currencies import MAX_AMOUNT
from local_runtime.simulators.wechatpay.errors import WechatPayError, param_error

ATTACH_MAX_LENGTH = 128

_Id32 = Annotated[str, StringConstraints(min_length=1, max_length=32)]
_OutTradeNo = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z_\-|*]{6,32}$")]
_OutRefundNo = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z_\-|*@]{1,64}$")]
_Fen = Annotated[int, Field(ge=1, le=MAX_AMOUNT)]


def _notify_url(value: str | None) -> str | None:
    """An absolute http(s) URL without a query (WeChat Pay: 不能携带参数). WeChat Pay wants
    https on the public internet; the simulator allows http, since it runs on loopback."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http or https URL")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query string (不能携带参数)")
    return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class OrderAmount(_Body):
    total: _Fen
    currency: Literal["CNY"] = "CNY"


class NativeOrderRequest(_Body):
    """``POST /v3/pay/transactions/native``."""

    appid: _Id32
    mchid: _Id32
    description: Annotated[str, StringConstraints(min_length=1, max_length=127)]
    out_trade_no: _OutTradeNo
    time_expire: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    attach: Annotated[str, StringConstraints(min_length=1, max_length=ATTACH_MAX_LENGTH)] | None = (
        None
    )
    notify_url: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    goods_tag: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    support_fapiao: bool | None = None
    amount: OrderAmount
    detail: dict[str, Any] | None = None
    scene_info: dict[str, Any] | None = None
    settle_info: dict[str, Any] | None = None

    @field_validator("notify_url")
    @classmethod
    def _check_notify_url(cls, value: str) -> str | None:
        return _notify_url(value)

    @field_validator("time_expire")
    @classmethod
    def _rfc3339(cls, value: str | None) -> str | None:
        if value is not None:
            parse_time_expire(value)
        return value

    @property
    def expires_at(self) -> datetime | None:
        return None if self.time_expire is None else parse_time_expire(self.time_expire)


class CloseRequest(_Body):
    """``POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close``."""

    mchid: _Id32


class RefundAmount(_Body):
    refund: _Fen
    total: _Fen
    currency: Literal["CNY"]
    from_: list[dict[str, Any]] | None = Field(default=None, alias="from")


class RefundRequest(_Body):
    """``POST /v3/refund/domestic/refunds``: ``transaction_id`` or ``out_trade_no``."""

    transaction_id: _Id32 | None = None
    out_trade_no: _OutTradeNo | None = None
    out_refund_no: _OutRefundNo
    reason: Annotated[str, StringConstraints(min_length=1, max_length=80)] | None = None
    notify_url: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    funds_account: Literal["AVAILABLE", "UNSETTLED"] | None = None
    amount: RefundAmount
    goods_detail: list[dict[str, Any]] | None = None

    @field_validator("notify_url")
    @classmethod
    def _check_notify_url(cls, value: str | None) -> str | None:
        return _notify_url(value)


def parse_time_expire(value: str) -> datetime:
    """RFC 3339 with an offset (``2018-06-08T10:34:56+08:00``); ValueError otherwise."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be RFC 3339, e.g. 2018-06-08T10:34:56+08:00") from None
    if moment.tzinfo is None or "T" not in value:
        raise ValueError("must be RFC 3339 with a time zone, e.g. 2018-06-08T10:34:56+08:00")
    return moment


_Model = TypeVar("_Model", bound=BaseModel)


def parse_body(model: type[_Model], body: bytes) -> _Model:
    """The body as ``model``, or ``400 PARAM_ERROR`` naming the first faulty field."""
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise _param_error(exc) from None


def _param_error(exc: ValidationError) -> WechatPayError:
    error = exc.errors()[0]
    location = [str(part) for part in error["loc"]]
    issue = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "json_invalid":
        return param_error(f"请求体不是合法的JSON: {issue}")
    if not location:
        return param_error(f"请求体必须是JSON对象: {issue}")
    field = "/" + "/".join(location)
    if error["type"] == "missing":
        return param_error(
            f"输入源“/body{field}”映射到字段校验失败, 此字段为必填项",
            field=field,
            issue="required",
        )
    return param_error(f"输入源“/body{field}”映射到字段校验失败: {issue}", field=field, issue=issue)
