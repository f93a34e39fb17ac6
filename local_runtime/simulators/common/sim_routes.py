"""The simulators' own endpoints, the same on every channel (no authentication, local only):

- ``GET /_sim/accounts`` -> ``{"object": "list", "data": [...]}``: ``accounts_response``;
- ``POST /_sim/orphans {"account", "amount", "currency", "date"}`` -> ``201`` with the new
  paid trade paycore never created (it shows in that day's statement): ``orphan_response``.
  Errors are ``{"code", "message", "param"}`` with ``400 INVALID_PARAMETER`` or
  ``404 ACCOUNT_NOT_FOUND``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date, tzinfo
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.wrappers import Request, Response

from local_runtime.sandbox.app import json_response
from local_runtime.sandbox.currencies import CURRENCY_EXPONENTS, MAX_AMOUNT
from local_runtime.sandbox.orders import rfc3339
from local_runtime.simulators.common.trades import TradeBook


class OrphanRequest(BaseModel):
    """``POST /_sim/orphans``: a paid trade of ``amount`` (minor units) on ``date``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    account: Annotated[str, Field(min_length=1, max_length=64)]
    amount: Annotated[int, Field(gt=0, le=MAX_AMOUNT)]
    currency: str
    date: date


def accounts_response(entries: Sequence[Mapping[str, Any]]) -> Response:
    """``GET /_sim/accounts``: each account's entry as the channel builds it."""
    return json_response({"object": "list", "data": [dict(entry) for entry in entries]})


def orphan_response(
    request: Request,
    book: TradeBook,
    *,
    accounts: Collection[str],
    tz: tzinfo,
    currencies: Collection[str] = tuple(CURRENCY_EXPONENTS),
) -> Response:
    """``POST /_sim/orphans``: add the orphan to ``book`` (paid at noon of ``date`` in the
    channel's time zone ``tz``) for one of ``accounts`` in one of ``currencies``."""
    try:
        orphan = OrphanRequest.model_validate_json(request.get_data(cache=True))
    except ValidationError as exc:
        error = exc.errors()[0]
        param = ".".join(str(part) for part in error["loc"]) or None
        message = str(error["msg"]).removeprefix("Value error, ")
        body = {"code": "INVALID_PARAMETER", "message": message, "param": param}
        return json_response(body, 400)
    if orphan.currency not in currencies:
        message = f"must be one of {', '.join(sorted(currencies))}"
        return json_response(
            {"code": "INVALID_PARAMETER", "message": message, "param": "currency"}, 400
        )
    if orphan.account not in accounts:
        message = f"no account {orphan.account!r} here"
        return json_response(
            {"code": "ACCOUNT_NOT_FOUND", "message": message, "param": "account"}, 404
        )
    trade = book.add_orphan(orphan.account, orphan.amount, orphan.currency, orphan.date, tz=tz)
    return json_response(
        {
            "object": "orphan",
            "account": trade.account,
            "out_trade_no": trade.out_trade_no,
            "transaction_id": trade.transaction_id,
            "amount": trade.amount,
            "currency": trade.currency,
            "date": orphan.date.isoformat(),
            "paid_at": rfc3339(trade.paid_at),
        },
        201,
    )
