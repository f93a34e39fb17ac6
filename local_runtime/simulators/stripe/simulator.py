"""``StripeSimulator``: a local Stripe (Checkout Sessions, PaymentIntents, Charges, Refunds,
Events and webhooks, Balance Transactions) for the official ``stripe`` SDK::

    sim = StripeSimulator("127.0.0.1", 0, accounts=["stripe-main"])
    sim.start()
    entry = sim.accounts()[0]  # secret_key, webhook_secret, api_base_url, ...
    sim.set_webhook_url(
        "stripe-main",
        "http://127.0.0.1:3000/callbacks/stripe/stripe-main",
        enabled_events=["checkout.session.completed", "refund.updated"],  # default ["*"]
    )
    client = stripe.StripeClient(entry["secret_key"], base_addresses={"api": sim.url})
    sim.stop()

The HTTP surface is in ``api.py``; this class keeps the state beside the trade book (the
accounts' keys, where their events go and which types, the ids that lead to a session, the
idempotency keys, the events) and publishes events. See local_runtime/simulators/README.md,
"Stripe".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from local_runtime.sandbox.orders import Clock, utc_now
from local_runtime.sandbox.scheduler import Scheduler
from local_runtime.simulators.common.delivery import (
    LOCAL_NOTIFY_SCHEDULE,
    NotificationDeliverer,
)
from local_runtime.simulators.common.keys import random_alphanumeric, random_token
from local_runtime.simulators.common.server import SimulatorServer
from local_runtime.simulators.common.switches import Simulate
from local_runtime.simulators.common.trades import (
    Refund,
    RefundStatus,
    StatementLine,
    Trade,
    TradeBook,
    TradeError,
    TradeStatus,
)
from local_runtime.simulators.stripe import objects
from local_runtime.simulators.stripe.api import StripeApi
from local_runtime.simulators.stripe.errors import no_such
from local_runtime.simulators.stripe.events import (
    EventLog,
    EventSpec,
    is_ack,
    make_event,
    webhook_request,
)
from local_runtime.simulators.stripe.idempotency import IdempotencyStore

logger = logging.getLogger(__name__)

CHANNEL = "stripe"
DEFAULT_PORT = 3103
DEFAULT_FEE_RATE_BPS = 290  # 2.90 % of the charge, half up (Stripe's card rate, no fixed part)

RequestRef = tuple[str | None, str | None]  # (request id, idempotency key) behind an event
EVERY_EVENT = "*"  # Stripe's wildcard in a webhook endpoint's enabled_events


@dataclass(frozen=True)
class Credentials:
    secret_key: str
    webhook_secret: str


@dataclass(frozen=True)
class WebhookEndpoint:
    """An account's webhook endpoint: its URL and the event types it is subscribed to (Stripe's
    ``enabled_events``; ``*`` is every type). Stripe POSTs it only those; every event is
    still made and listed (``GET /v1/events``)."""

    url: str
    enabled_events: tuple[str, ...]

    def receives(self, event_type: str) -> bool:
        return EVERY_EVENT in self.enabled_events or event_type in self.enabled_events


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + random_alphanumeric(length)


class StripeSimulator:
    """One local Stripe with several accounts (each its own secret key, webhook secret and
    webhook endpoint). ``start()`` once; ``stop()`` is idempotent and cancels pending webhooks.

    ``webhook_urls`` (account -> URL) says where each account's events are POSTed (every
    type); ``set_webhook_url`` sets or changes it later, with the types the endpoint is
    subscribed to (the local runtime knows its URL only once bound).
    ``clock`` is the simulator's time (object timestamps, expiry, signatures);
    ``fee_rate_bps`` the processing fee its balance transactions show.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        accounts: Sequence[str],
        notify_schedule: Sequence[float] | None = None,
        webhook_urls: Mapping[str, str] | None = None,
        clock: Clock = utc_now,
        fee_rate_bps: int = DEFAULT_FEE_RATE_BPS,
    ) -> None:
        if not accounts or len(set(accounts)) != len(accounts):
            raise ValueError("give one or more distinct account ids")
        if not 0 <= fee_rate_bps <= 10_000:
            raise ValueError("fee_rate_bps is 0..10000")
        self.clock = clock
        self.fee_rate_bps = fee_rate_bps
        self._lock = threading.Lock()
        self._credentials = {
            account: Credentials(random_token("sk_test_", 48), random_token("whsec_", 32))
            for account in accounts
        }
        self._account_by_key = {
            credentials.secret_key: account for account, credentials in self._credentials.items()
        }
        self._endpoints: dict[str, WebhookEndpoint] = {}
        for account, url in (webhook_urls or {}).items():
            self.set_webhook_url(account, url)
        self.book = TradeBook(
            clock=clock,
            new_transaction_id=lambda paid_at: new_id("ch_"),
            new_refund_id=lambda created_at: new_id("re_"),
            on_refund_final=self._refund_final,
        )
        self.deliverer = NotificationDeliverer(
            notify_schedule or LOCAL_NOTIFY_SCHEDULE, name="stripe-webhooks"
        )
        self.events = EventLog()
        self.idempotency = IdempotencyStore()
        self._expiry = Scheduler("stripe-expiry", workers=1)
        self._session_of_payment_intent: dict[str, tuple[str, str]] = {}
        self._trade_of_charge: dict[str, tuple[str, str]] = {}
        self._expiry_published: set[tuple[str, str]] = set()
        self._refund_requests: dict[tuple[str, str], RequestRef] = {}
        self._server = SimulatorServer(
            host,
            port,
            StripeApi(self),
            name="stripe-sim",
            services=(self.book, self.deliverer, self._expiry),
        )

    # -- lifecycle and accounts -------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API base URL (``base_addresses={"api": url}``), e.g. http://127.0.0.1:3103."""
        return self._server.url

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def accounts(self) -> list[dict[str, Any]]:
        """Each account as ``GET /_sim/accounts`` lists it: ``account``, ``channel``,
        ``secret_key``, ``webhook_secret``, ``api_base_url``, ``simulator``."""
        return [
            {
                "account": account,
                "channel": CHANNEL,
                "secret_key": credentials.secret_key,
                "webhook_secret": credentials.webhook_secret,
                "api_base_url": self.url,
                "simulator": True,
            }
            for account, credentials in self._credentials.items()
        ]

    def account_ids(self) -> list[str]:
        return list(self._credentials)

    def secret_key_of(self, account: str) -> str:
        return self._credentials[account].secret_key

    def account_of_key(self, secret_key: str) -> str | None:
        return self._account_by_key.get(secret_key)

    def set_webhook_url(
        self, account: str, url: str | None, enabled_events: Iterable[str] = (EVERY_EVENT,)
    ) -> None:
        """Where the account's events are POSTed from now on (None: nowhere), and which types
        (the endpoint's ``enabled_events``: ``["*"]``, the default, is every type)."""
        if account not in self._credentials:
            raise ValueError(f"no account {account!r} in this simulator")
        if isinstance(enabled_events, str):
            raise ValueError("enabled_events is a list of event types, not one string")
        events = tuple(dict.fromkeys(str(kind) for kind in enabled_events))
        if not events or not all(events):
            raise ValueError("enabled_events names one or more event types (or '*')")
        with self._lock:
            if url is None:
                self._endpoints.pop(account, None)
            else:
                self._endpoints[account] = WebhookEndpoint(url, events)

    def webhook_endpoint(self, account: str) -> WebhookEndpoint | None:
        with self._lock:
            return self._endpoints.get(account)

    def webhook_url(self, account: str) -> str | None:
        endpoint = self.webhook_endpoint(account)
        return endpoint.url if endpoint is not None else None

    def now(self) -> datetime:
        return self.clock()

    def now_seconds(self) -> int:
        return int(self.clock().timestamp())

    # -- finding things -----------------------------------------------------------------------

    def session_trade(self, account: str, session_id: str) -> Trade:
        """The account's session (404 ``resource_missing`` otherwise); publishes its
        expiry when this read is the first to see it expired."""
        try:
            trade = self.book.get(account, session_id)
        except TradeError:
            raise no_such("checkout.session", session_id) from None
        if not objects.is_session(trade):
            raise no_such("checkout.session", session_id)
        self.notice_expiry(trade)
        return trade

    def sessions(self, account: str) -> list[Trade]:
        """The account's sessions, newest first."""
        trades = [trade for trade in self.book.trades(account) if objects.is_session(trade)]
        for trade in trades:
            self.notice_expiry(trade)
        return trades[::-1]

    def register_session(self, trade: Trade) -> None:
        """Remember the session's PaymentIntent id and watch for its expiry."""
        with self._lock:
            self._session_of_payment_intent[trade.extra["payment_intent"]] = (
                trade.account,
                trade.out_trade_no,
            )
        delay = (trade.expires_at - self.now()).total_seconds() + 0.05
        self._expiry.call_later(
            max(delay, 0.0), lambda: self._expire_if_due(trade.account, trade.out_trade_no)
        )

    def payment_intent_trade(self, account: str, payment_intent_id: str) -> Trade:
        """The session behind a PaymentIntent; it exists once the buyer acted."""
        with self._lock:
            where = self._session_of_payment_intent.get(payment_intent_id)
        if where is None or where[0] != account:
            raise no_such("payment_intent", payment_intent_id)
        trade = self.session_trade(*where)
        if objects.buyer_acted(trade) is None:
            raise no_such("payment_intent", payment_intent_id)
        return trade

    def charge_trade(self, account: str, charge_id: str) -> Trade:
        """The paid trade (a session's or an orphan) behind a Charge."""
        with self._lock:
            where = self._trade_of_charge.get(charge_id)
        if where is None:
            for trade in self.book.trades(account):
                if trade.transaction_id == charge_id:
                    where = (trade.account, trade.out_trade_no)
                    with self._lock:
                        self._trade_of_charge[charge_id] = where
                    break
        if where is None or where[0] != account:
            raise no_such("charge", charge_id)
        return self.book.get(*where)

    def refund_of(self, account: str, refund_id: str) -> Refund:
        try:
            return self.book.get_refund(account, refund_id)
        except TradeError:
            raise no_such("refund", refund_id) from None

    def statement(
        self, account: str, first: datetime | None = None, last: datetime | None = None
    ) -> list[StatementLine]:
        """The statement lines (UTC days) between ``first`` and ``last`` (inclusive days),
        or of every day; in time order."""
        lines: list[StatementLine] = []
        for day in self.book.statement_days(account, UTC):
            if (first and day < first.date()) or (last and day > last.date()):
                continue
            lines += self.book.statement_lines(account, day, UTC)
        return lines

    # -- the buyer, expiry, refunds: events -------------------------------------------------

    def buyer_acted(self, trade: Trade) -> None:
        """The buyer paid or declined (``on_change`` of the buyer's page)."""
        if trade.status is TradeStatus.SUCCESS and trade.transaction_id:
            with self._lock:
                self._trade_of_charge[trade.transaction_id] = (trade.account, trade.out_trade_no)
        now = self.now()
        created = EventSpec(
            "payment_intent.created", objects.payment_intent(trade, now, stage="created")
        )
        if trade.status is TradeStatus.SUCCESS:
            specs = [
                created,
                EventSpec("payment_intent.succeeded", objects.payment_intent(trade, now)),
                EventSpec(
                    "checkout.session.completed",
                    objects.checkout_session(trade, now, self.url),
                ),
            ]
        elif trade.status is TradeStatus.DECLINED:
            specs = [
                created,
                EventSpec("payment_intent.payment_failed", objects.payment_intent(trade, now)),
            ]
        else:
            return
        self.publish(trade.account, _session_topic(trade), specs, trade.simulate)

    def notice_expiry(self, trade: Trade, request: RequestRef = (None, None)) -> None:
        """Publish ``checkout.session.expired`` once, when a session is first seen expired
        (expired by the merchant, or past its ``expires_at``)."""
        if objects.session_status(trade, self.now()) != "expired":
            return
        key = (trade.account, trade.out_trade_no)
        with self._lock:
            if key in self._expiry_published:
                return
            self._expiry_published.add(key)
        spec = EventSpec(
            "checkout.session.expired", objects.checkout_session(trade, self.now(), self.url)
        )
        self.publish(trade.account, _session_topic(trade), [spec], trade.simulate, request)

    def _expire_if_due(self, account: str, session_id: str) -> None:
        try:
            self.session_trade(account, session_id)
        except Exception:
            logger.exception("expiry check of %s failed", session_id)

    def note_refund_request(self, account: str, refund_id: str, request: RequestRef) -> None:
        with self._lock:
            self._refund_requests[(account, refund_id)] = request

    def refund_created(self, refund: Refund, trade: Trade) -> None:
        """After ``book.refund`` made a refund that is still pending: ``refund.created``
        (held back under ``notify_reorder``, to arrive after the final one)."""
        if refund.status is not RefundStatus.PROCESSING or trade.simulate.notify_reorder:
            return
        spec = EventSpec("refund.created", objects.refund(refund))
        self.publish(
            refund.account,
            _refund_topic(refund),
            [spec],
            trade.simulate,
            self._refund_request(refund),
        )

    def _refund_final(self, refund: Refund, trade: Trade) -> None:
        """The book's ``on_refund_final``: the refund succeeded or failed, at once or after
        ``refund_delay_seconds``."""
        refund_object = objects.refund(refund)
        if refund.status is RefundStatus.SUCCESS:
            outcome = EventSpec(
                "charge.refunded",
                objects.charge(trade, self.book.refunds_of(trade.account, trade.out_trade_no)),
            )
        else:
            outcome = EventSpec("refund.failed", refund_object)
        if trade.simulate.refund_delay_seconds is None:
            specs = [EventSpec("refund.created", refund_object), outcome]
        else:
            updated = EventSpec("refund.updated", refund_object, {"status": "pending"})
            specs = [updated, outcome]
            if trade.simulate.notify_reorder:  # the held-back refund.created comes last
                pending = EventSpec("refund.created", objects.refund(refund, status="pending"))
                specs.insert(0, pending)
        self.publish(
            refund.account,
            _refund_topic(refund),
            specs,
            trade.simulate,
            self._refund_request(refund),
        )

    def _refund_request(self, refund: Refund) -> RequestRef:
        with self._lock:
            return self._refund_requests.get((refund.account, refund.out_refund_no), (None, None))

    def publish(
        self,
        account: str,
        topic: tuple[str, str, str],
        specs: list[EventSpec],
        switches: Simulate,
        request: RequestRef = (None, None),
    ) -> None:
        """Record the events (``GET /v1/events``) and POST each one the account's endpoint is
        subscribed to, with the trade's notification switches. With ``notify_reorder`` the
        first of several events sent is sent after the last one (the deliverer's stale
        request); a single one is just sent. ``query_only``: nothing is published at all."""
        if switches.query_only or not specs:
            return
        endpoint = self.webhook_endpoint(account)
        created = self.now_seconds()
        events = [
            make_event(
                account,
                spec,
                created=created,
                request_id=request[0],
                idempotency_key=request[1],
                pending_webhooks=1 if endpoint and endpoint.receives(spec.type) else 0,
            )
            for spec in specs
        ]
        for event in events:
            self.events.add(event)
        if endpoint is None:
            return
        events = [event for event in events if endpoint.receives(event.type)]
        if not events:
            return
        secret = self._credentials[account].webhook_secret
        builders = [webhook_request(event, secret, self.now_seconds) for event in events]
        if switches.notify_reorder and len(events) > 1:
            plain = list(zip(events[1:], builders[1:], strict=True))
            stale = builders[0]
        else:
            plain = list(zip(events, builders, strict=True))
            stale = None
        for position, (event, builder) in enumerate(plain):
            last = position == len(plain) - 1
            self.deliverer.deliver(
                topic,
                endpoint.url,
                builder,
                is_ack,
                switches,
                stale_request=stale if last else None,
                label=f"{event.type} {event.id}",
            )

    # -- debug ----------------------------------------------------------------------------------

    def debug_view(self, account: str | None = None) -> dict[str, Any]:
        now = self.now()
        endpoints = {name: self.webhook_endpoint(name) for name in self._credentials}
        trades = []
        for trade in self.book.trades(account):
            view = trade.view()
            if objects.is_session(trade):
                view["stripe_status"] = objects.session_status(trade, now)
                view["webhooks"] = self.deliverer.history(_session_topic(trade))
            view["refunds"] = [
                {**refund.view(), "webhooks": self.deliverer.history(_refund_topic(refund))}
                for refund in self.book.refunds_of(trade.account, trade.out_trade_no)
            ]
            trades.append(view)
        return {
            "object": "list",
            "fee_rate_bps": self.fee_rate_bps,
            "webhook_urls": {name: e.url if e else None for name, e in endpoints.items()},
            "enabled_events": {
                name: list(e.enabled_events) if e else None for name, e in endpoints.items()
            },
            "data": trades,
        }


def _session_topic(trade: Trade) -> tuple[str, str, str]:
    return ("session", trade.account, trade.out_trade_no)


def _refund_topic(refund: Refund) -> tuple[str, str, str]:
    return ("refund", refund.account, refund.out_refund_no)
