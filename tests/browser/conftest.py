"""The browser suite: the hosted cashier driven by a real headless Chromium (Debian's
``chromium``, through Playwright), against a local runtime of its own, as a buyer would use it.

The browser may reach loopback only: every request to another host is aborted and recorded,
and each test fails if one was attempted. Each flow saves screenshots under
``.paycore/screenshots/`` (git-ignored) and prints where, for a person to look at.

A missing browser is a failure, never a skip: ``make test`` installs Debian's ``chromium``
when ``/usr/bin/chromium`` is missing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Route, sync_playwright

from local_runtime.profile import LocalProfile
from local_runtime.runtime import LocalRuntime
from tests.support import ROOT

CHROMIUM = Path("/usr/bin/chromium")
# As the brief for this suite gives them: headless, and nothing Chromium would fetch by itself.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / ".paycore" / "screenshots"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


@pytest.fixture(scope="package")
def runtime() -> Iterator[LocalRuntime]:
    profile = LocalProfile.free_ports(
        callback_wait_seconds=4,
        channel_query_interval_seconds=1,
        webhook_retry_schedule="1,1",
        webhook_max_attempts=2,
        sandbox_notify_schedule=(0.0, 0.5, 1.0, 2.0),
        channel_timeout_seconds=2,
    )
    with LocalRuntime(profile=profile) as started:
        yield started


# -- the merchant's side: its API key and the shop page return_url points at ----------------


class Shop:
    """The merchant's web shop: the page the cashier returns the buyer to (``return_url``)."""

    def __init__(self) -> None:
        self.visits: list[str] = []
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                shop.visits.append(self.path)
                body = b"<!doctype html><title>Tea Shop</title><h1 id=thanks>Thank you!</h1>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Merchant:
    api_url: str
    api_key: str
    shop: Shop
    session: requests.Session = field(default_factory=requests.Session)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.session.request(
            method,
            self.api_url + path,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=30,
            **kwargs,
        )
        assert answer.status_code < 300, answer.text
        return answer.json()

    def order(
        self, no: str, amount: int = 1999, currency: str = "CNY", **extra: Any
    ) -> dict[str, Any]:
        payload = {
            "merchant_order_no": no,
            "amount": amount,
            "currency": currency,
            "subject": "Green tea 绿茶",
            "return_url": f"{self.shop.url}/orders/{no}",
            **extra,
        }
        return dict(self.call("POST", "/v1/orders", json=payload))


@pytest.fixture(scope="package")
def merchant(runtime: LocalRuntime) -> Iterator[Merchant]:
    answer = requests.post(
        runtime.api_url + "/v1/merchants",
        json={"name": "Tea House 茶馆", "webhook_url": None},
        headers={"Authorization": f"Bearer {runtime.admin_token}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    shop = Shop()
    yield Merchant(runtime.api_url, answer.json()["api_key"], shop)
    shop.stop()


# -- the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install "
            "chromium); the browser suite never skips"
        )
    with sync_playwright() as playwright:
        launched = _launch(playwright)
        yield launched
        launched.close()


def _launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@dataclass
class Buyer:
    """One buyer's browser (a context): its pages, and what it tried to reach off loopback."""

    context: BrowserContext
    blocked: list[str]
    errors: list[str]

    def open(self, url: str) -> Page:
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"console {message.type}: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        page.goto(url)
        return page


@pytest.fixture
def buyer_in(browser: Browser) -> Iterator[Callable[[str], Buyer]]:
    """``buyer_in("zh-CN")``: a fresh browser context in that language (Accept-Language)."""
    made: list[Buyer] = []

    def make(locale: str) -> Buyer:
        context = browser.new_context(locale=locale, viewport={"width": 480, "height": 900})
        buyer = Buyer(context, [], [])

        def guard(route: Route) -> None:
            host = urlsplit(route.request.url).hostname or ""
            if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
                route.continue_()
            else:
                buyer.blocked.append(route.request.url)
                route.abort("blockedbyclient")

        context.route("**/*", guard)
        made.append(buyer)
        return buyer

    yield make
    for buyer in made:
        buyer.context.close()
    for buyer in made:
        assert buyer.blocked == [], f"the browser tried to leave loopback: {buyer.blocked}"
        assert buyer.errors == [], f"the pages reported errors: {buyer.errors}"


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """Save the page as .paycore/screenshots/<test>-<name>.png and print where."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        with capture.global_and_fixture_disabled():
            print(f"\nscreenshot: {path}", flush=True)
        return path

    return take
