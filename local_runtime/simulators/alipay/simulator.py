"""``AlipaySimulator``: the Alipay open platform (RSA2, ``alipay.trade.page.pay``) on one port.

    simulator = AlipaySimulator("127.0.0.1", 0, accounts=["alipay-primary"])
    simulator.start()
    simulator.url          # http://127.0.0.1:41234; the gateway is {url}/gateway.do
    simulator.accounts()   # what GET /_sim/accounts lists: app_id, keys, gateway_url
    simulator.stop()       # idempotent; cancels pending notifications

The trade book, notification deliverer, server harness, buyer page and ``/_sim`` helpers are
the common kit's; this package adds Alipay's wire protocol (``protocol``), its methods
(``gateway``, ``trade_api``), notifications (``notifications``) and bills (``bills``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from local_runtime.sandbox.orders import Clock, utc_now
from local_runtime.simulators.alipay.accounts import AlipayAccount, new_accounts
from local_runtime.simulators.alipay.gateway import AlipayGateway
from local_runtime.simulators.alipay.notifications import (
    TRADE_CLOSED,
    TRADE_SUCCESS,
    WAIT_BUYER_PAY,
    Buyer,
    form_request,
    is_ack,
    new_notify_id,
    notification_fields,
    trade_status,
)
from local_runtime.simulators.alipay.protocol import SHANGHAI
from local_runtime.simulators.alipay.trade_api import BillDesk, TradeApi
from local_runtime.simulators.common.delivery import (
    ALIPAY_NOTIFY_SCHEDULE,
    NotificationDeliverer,
    RequestBuilder,
)
from local_runtime.simulators.common.keys import random_digits
from local_runtime.simulators.common.server import SimulatorServer
from local_runtime.simulators.common.trades import (
    Refund,
    RefundStatus,
    Trade,
    TradeBook,
    TradeStatus,
)


def alipay_trade_no(paid_at: datetime) -> str:
    """An Alipay trade number: the Beijing date, ``2200`` and 16 digits (28 in all)."""
    return f"{paid_at.astimezone(SHANGHAI):%Y%m%d}2200{random_digits(16, first='1')}"


def alipay_refund_id(created_at: datetime) -> str:
    """Alipay shows no id of its own for a refund; this one only appears in debug views."""
    return f"{created_at.astimezone(SHANGHAI):%Y%m%d}2300{random_digits(16, first='1')}"


class AlipaySimulator:
    """Alipay for ``accounts`` (routing account ids; one app each, with fresh keys).

    ``notify_schedule``: the delays before each notification attempt (Alipay's own by
    default: at once, then 4m, 10m, 10m, 1h, 2h, 6h, 15h); ``clock``: the simulator's time
    (trades, timestamps checked and written, bill links).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        accounts: Sequence[str],
        notify_schedule: Sequence[float] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._clock = clock
        self._accounts = new_accounts(accounts)
        self._by_account = {account.account: account for account in self._accounts}
        self.buyer = Buyer(user_id=random_digits(16, first="2088"), logon_id="sim***@example.com")
        self.book = TradeBook(
            clock=clock,
            new_transaction_id=alipay_trade_no,
            new_refund_id=alipay_refund_id,
            on_refund_final=self._refund_final,
        )
        schedule = ALIPAY_NOTIFY_SCHEDULE if notify_schedule is None else notify_schedule
        self.deliverer = NotificationDeliverer(schedule, name="alipay-notify")
        bills = BillDesk(clock)
        app = AlipayGateway(
            accounts=self._accounts,
            book=self.book,
            api=TradeApi(self.book, self.buyer, clock, bills),
            bills=bills,
            deliverer=self.deliverer,
            clock=clock,
            account_entries=self.accounts,
            on_buyer_change=self._buyer_changed,
        )
        self._server = SimulatorServer(
            host, port, app, name="alipay-simulator", services=(self.book, self.deliverer)
        )

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:3101`` (the gateway is ``{url}/gateway.do``)."""
        return self._server.url

    def start(self) -> None:
        """Serve (once per instance); returns once requests are accepted."""
        self._server.start()

    def stop(self) -> None:
        """Stop serving; pending notifications and refund timers are cancelled (idempotent)."""
        self._server.stop()

    def accounts(self) -> list[dict[str, Any]]:
        """Each account's credentials, exactly as ``GET /_sim/accounts`` lists them."""
        url = self.url
        return [account.entry(url) for account in self._accounts]

    # -- notifications -----------------------------------------------------------------------

    def _buyer_changed(self, trade: Trade) -> None:
        """The buyer paid (TRADE_SUCCESS) or declined (TRADE_CLOSED): notify, unless the
        trade is ``query_only`` or its page.pay call gave no notify_url."""
        url = trade.extra.get("notify_url")
        if trade.simulate.query_only or not url:
            return
        account = self._by_account[trade.account]
        waiting = dataclasses.replace(
            trade,
            status=TradeStatus.WAIT_BUYER_PAY,
            transaction_id=None,
            paid_at=None,
            declined_at=None,
        )
        status = trade_status(trade)
        self.deliverer.deliver(
            _topic(trade),
            url,
            self._request(account, trade, status),
            is_ack,
            trade.simulate,
            stale_request=self._request(account, waiting, WAIT_BUYER_PAY),
            label=status,
        )

    def _refund_final(self, refund: Refund, trade: Trade) -> None:
        """A refund succeeded: Alipay notifies the trade's notify_url (TRADE_SUCCESS after a
        partial refund, TRADE_CLOSED once all of it is refunded). A failed refund changes no
        trade status and is not notified."""
        url = trade.extra.get("notify_url")
        if refund.status is not RefundStatus.SUCCESS or trade.simulate.query_only or not url:
            return
        account = self._by_account[trade.account]
        refunded = trade.amount_refunded
        status = TRADE_CLOSED if refunded >= trade.amount else TRADE_SUCCESS
        self.deliverer.deliver(
            _topic(trade),
            url,
            self._request(account, trade, status, refund=refund, refunded=refunded),
            is_ack,
            trade.simulate,
            stale_request=self._request(account, trade, TRADE_SUCCESS),
            label=f"{status} refund {refund.out_refund_no}",
        )

    def _request(
        self,
        account: AlipayAccount,
        trade: Trade,
        status: str,
        *,
        refund: Refund | None = None,
        refunded: int | None = None,
    ) -> RequestBuilder:
        """One notification: its notify_id is fixed, its notify_time and sign are fresh for
        every attempt."""
        notify_id = new_notify_id()
        return form_request(
            account,
            lambda: notification_fields(
                account,
                trade,
                self.buyer,
                status=status,
                notify_id=notify_id,
                now=self._clock(),
                refund=refund,
                refunded=refunded,
            ),
        )


def _topic(trade: Trade) -> tuple[str, str, str]:
    return ("trade", trade.account, trade.out_trade_no)
