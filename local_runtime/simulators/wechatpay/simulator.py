"""``WechatPaySimulator``: WeChat Pay API v3 (Native pay, public-key mode) on one local port.

    simulator = WechatPaySimulator("127.0.0.1", 0, accounts=["wechatpay-main"])
    simulator.start()
    simulator.url          # e.g. http://127.0.0.1:41234, the merchant's API base URL
    simulator.accounts()   # what GET /_sim/accounts lists: each account's credentials
    simulator.stop()       # idempotent; pending notifications are cancelled

Credentials are made fresh per instance. An instance starts once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from local_runtime.sandbox.orders import Clock, utc_now
from local_runtime.simulators.common.delivery import (
    WECHATPAY_NOTIFY_SCHEDULE,
    NotificationDeliverer,
)
from local_runtime.simulators.common.server import SimulatorServer
from local_runtime.simulators.wechatpay.app import WechatPayApp
from local_runtime.simulators.wechatpay.merchants import new_merchant_accounts


class WechatPaySimulator:
    """One HTTP server for ``accounts`` (routing account ids, each its own merchant).

    ``notify_schedule``: the delays in seconds before notification attempt 1, 2, ...
    (default WeChat Pay's own: at once, then 15s, 15s, 30s, 3m, ... 6h; tests pass a short
    one). ``clock`` (aware UTC datetimes) is the simulator's time: signatures, expiry, bills.
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
        merchants = new_merchant_accounts(accounts)
        deliverer = NotificationDeliverer(
            WECHATPAY_NOTIFY_SCHEDULE if notify_schedule is None else notify_schedule,
            name="wechatpay-notify",
        )
        self._app = WechatPayApp(
            merchants, clock=clock, deliverer=deliverer, base_url=lambda: self.url
        )
        self._server = SimulatorServer(
            host,
            port,
            self._app,
            name="wechatpay-sim",
            services=(self._app.book, self._app.deliverer),
        )

    @property
    def url(self) -> str:
        """The API base URL (``_core._gate_way`` of the SDK), e.g. ``http://127.0.0.1:3102``."""
        return self._server.url

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> None:
        """Serve; returns once requests are accepted (once per instance)."""
        self._server.start()

    def stop(self) -> None:
        """Cancel pending notifications and refund timers, end create stalls, stop serving
        (idempotent)."""
        self._server.stop()

    def accounts(self) -> list[dict[str, Any]]:
        """Exactly what ``GET /_sim/accounts`` lists in ``data`` (needs ``start()``)."""
        return self._app.accounts()
