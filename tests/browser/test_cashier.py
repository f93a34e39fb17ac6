"""The hosted cashier in a real headless Chromium: the buyer opens the order's cashier_url,
chooses, pays (or declines) on the sandbox's page, comes back, and lands on the merchant's
return_url; the merchant's API shows the same story."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from playwright.sync_api import Page, expect

from local_runtime.runtime import LocalRuntime
from tests.browser.conftest import Buyer, Merchant
from tests.support import eventually

Screenshot = Callable[[Page, str], Path]
BuyerIn = Callable[[str], Buyer]
WAIT_MS = 20_000


def _no(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _pay_at_the_sandbox(page: Page, runtime: LocalRuntime, action: str) -> None:
    """The buyer is on the sandbox's payment page and presses Pay or Decline."""
    page.wait_for_url(f"{runtime.sandbox_url}/**", timeout=WAIT_MS)
    page.get_by_role("button", name=action).click()


def test_the_guard_records_and_blocks_every_request_off_loopback(buyer_in: BuyerIn) -> None:
    """The check every test ends with can fail: a page that loads from elsewhere is caught."""
    buyer = buyer_in("en-US")
    page = buyer.open("data:text/html,<img src='https://cdn.example.com/logo.png'>")
    page.wait_for_load_state("load")
    assert buyer.blocked == ["https://cdn.example.com/logo.png"]
    buyer.blocked.clear()
    buyer.errors.clear()  # the aborted image is reported as a failed load


def test_the_page_speaks_chinese_and_english_with_name_subject_and_amount(
    merchant: Merchant, buyer_in: BuyerIn, screenshot: Screenshot
) -> None:
    order = merchant.order(_no("LANG"))

    page = buyer_in("zh-CN").open(order["cashier_url"])
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#merchant")).to_have_text("Tea House 茶馆")
    expect(page.locator("#subject")).to_have_text("Green tea 绿茶")
    expect(page.locator("#amount")).to_have_text("¥19.99 CNY")
    expect(page.get_by_role("button", name="使用沙箱支付")).to_be_visible()
    screenshot(page, "zh-CN")

    page = buyer_in("en-US").open(order["cashier_url"])
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#amount")).to_have_text("¥19.99 CNY")
    expect(page.get_by_role("button", name="Pay with Sandbox")).to_be_visible()
    page.locator("#language").click()  # the switch keeps the buyer's choice in the link
    expect(page.get_by_role("button", name="使用沙箱支付")).to_be_visible()
    screenshot(page, "en-switched-to-zh")


def test_pay_with_the_sandbox_and_come_back_to_the_merchant(
    runtime: LocalRuntime,
    merchant: Merchant,
    buyer_in: BuyerIn,
    screenshot: Screenshot,
) -> None:
    no = _no("PAY")
    order = merchant.order(no)
    page = buyer_in("en-US").open(order["cashier_url"])
    screenshot(page, "1-choose")

    page.get_by_role("button", name="Pay with Sandbox").click()
    _pay_at_the_sandbox(page, runtime, "Pay")

    page.wait_for_url(order["return_url"], timeout=WAIT_MS)
    expect(page.locator("#thanks")).to_be_visible()
    screenshot(page, "2-back-at-the-shop")
    assert merchant.shop.visits.count(f"/orders/{no}") == 1
    paid = merchant.call("GET", f"/v1/orders/{order['id']}")
    assert (paid["status"], paid["amount_paid"]) == ("paid", 1999)

    # The link now only says so, and offers nothing.
    page = buyer_in("en-US").open(order["cashier_url"])
    expect(page.locator("#outcome")).to_have_text("Paid. Thank you!")
    expect(page.locator("#choose")).to_have_count(0)
    screenshot(page, "3-link-after-payment")


def test_pay_with_alipay_in_chinese_and_come_back_through_its_signed_return(
    runtime: LocalRuntime,
    merchant: Merchant,
    buyer_in: BuyerIn,
    screenshot: Screenshot,
) -> None:
    no = _no("ALI")
    order = merchant.order(no)
    page = buyer_in("zh-CN").open(order["cashier_url"])
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))

    page.get_by_role("button", name="使用支付宝支付").click()
    page.wait_for_url(f"{runtime.simulator_urls['alipay']}/**", timeout=WAIT_MS)
    screenshot(page, "1-at-alipay")
    page.get_by_role("button", name="Pay").click()

    page.wait_for_url(order["return_url"], timeout=WAIT_MS)
    # Alipay brought the buyer back to the cashier with its signed return parameters.
    back = [url for url in visited if url.startswith(order["cashier_url"] + "?")]
    assert back and "back=1" in back[0] and "sign=" in back[0] and "out_trade_no=pay_" in back[0]
    assert merchant.call("GET", f"/v1/orders/{order['id']}")["status"] == "paid"


def test_a_qr_code_is_drawn_scanned_and_followed_to_the_merchant(
    runtime: LocalRuntime,
    merchant: Merchant,
    buyer_in: BuyerIn,
    screenshot: Screenshot,
) -> None:
    order = merchant.order(_no("QR"))
    buyer = buyer_in("zh-CN")
    page = buyer.open(order["cashier_url"])

    page.get_by_role("button", name="使用微信支付").click()
    qr = page.locator("#qr")
    expect(qr.locator("svg#qr-code")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#waiting")).to_be_visible()
    code_url = qr.get_attribute("data-code-url")
    assert code_url and code_url.startswith("weixin://wxpay/bizpayurl?pr="), code_url
    screenshot(page, "1-qr-code")

    # The buyer's phone scans the code (a second tab plays the phone) and pays.
    scan = f"{runtime.simulator_urls['wechatpay']}/scan?{urlencode({'code_url': code_url})}"
    phone = buyer.open(scan)
    phone.get_by_role("button", name="Pay").click()

    # The cashier page, left as it was, follows the payment to the merchant.
    page.wait_for_url(order["return_url"], timeout=WAIT_MS)
    assert merchant.call("GET", f"/v1/orders/{order['id']}")["status"] == "paid"


def test_a_card_payment_with_stripe_in_dollars(
    runtime: LocalRuntime,
    merchant: Merchant,
    buyer_in: BuyerIn,
    screenshot: Screenshot,
) -> None:
    order = merchant.order(_no("USD"), amount=123450, currency="USD")
    page = buyer_in("en-US").open(order["cashier_url"])
    expect(page.locator("#amount")).to_have_text("$1,234.50 USD")
    # Routing offers what takes dollars: the yuan-only Alipay and WeChat Pay accounts do not.
    expect(page.get_by_role("button", name="Pay with Alipay")).to_have_count(0)
    screenshot(page, "1-choose")

    page.get_by_role("button", name="Pay with card (Stripe)").click()
    page.wait_for_url(f"{runtime.simulator_urls['stripe']}/**", timeout=WAIT_MS)
    page.get_by_role("button", name="Pay").click()

    page.wait_for_url(order["return_url"], timeout=WAIT_MS)
    paid = merchant.call("GET", f"/v1/orders/{order['id']}")
    assert (paid["status"], paid["amount_paid"]) == ("paid", 123450)


def test_a_combined_payment_balance_coupon_and_the_sandbox_for_the_rest(
    runtime: LocalRuntime,
    merchant: Merchant,
    buyer_in: BuyerIn,
    screenshot: Screenshot,
) -> None:
    buyer_id = _no("buyer")
    merchant.call(
        "POST",
        f"/v1/buyers/{buyer_id}/balance/credits",
        json={"amount": 500, "currency": "CNY"},
    )
    coupon = merchant.call(
        "POST", "/v1/coupons", json={"buyer_id": buyer_id, "amount": 300, "currency": "CNY"}
    )
    order = merchant.order(_no("MIX"), buyer_id=buyer_id)
    page = buyer_in("zh-CN").open(order["cashier_url"])

    page.get_by_label("使用余额").check()
    page.get_by_label("¥3.00 优惠券").check()
    expect(page.locator("#rest")).to_have_text("还需通过支付渠道支付：¥11.99")  # noqa: RUF001
    expect(page.locator("#pay-internal")).to_be_hidden()  # they do not cover the order
    screenshot(page, "1-balance-and-coupon")
    page.get_by_role("button", name="使用沙箱支付").click()
    page.wait_for_url(f"{runtime.sandbox_url}/**", timeout=WAIT_MS)
    expect(page.locator("#amount")).to_contain_text("11.99")  # the channel takes the rest
    page.get_by_role("button", name="Pay").click()

    page.wait_for_url(order["return_url"], timeout=WAIT_MS)
    payment = merchant.call("GET", f"/v1/orders/{order['id']}")
    assert payment["status"] == "paid"
    balance = merchant.call("GET", f"/v1/buyers/{buyer_id}/balance", params={"currency": "CNY"})
    assert (balance["available"], balance["frozen"]) == (0, 0)
    assert merchant.call("GET", f"/v1/coupons/{coupon['id']}")["status"] == "used"


def test_a_decline_says_why_and_the_buyer_pays_again(
    runtime: LocalRuntime,
    merchant: Merchant,
    buyer_in: BuyerIn,
    screenshot: Screenshot,
) -> None:
    order = merchant.order(_no("DEC"))
    page = buyer_in("en-US").open(order["cashier_url"])

    page.get_by_role("button", name="Pay with Sandbox").click()
    _pay_at_the_sandbox(page, runtime, "Decline")

    # Back on the cashier, which follows the payment until it has failed.
    expect(page.locator("#failure")).to_have_attribute(
        "data-failure-code", "buyer_declined", timeout=WAIT_MS
    )
    expect(page.locator("#failure")).to_contain_text("you declined it")
    screenshot(page, "1-declined")

    page.get_by_role("button", name="Pay with Sandbox").click()
    _pay_at_the_sandbox(page, runtime, "Pay")
    page.wait_for_url(order["return_url"], timeout=WAIT_MS)
    assert merchant.call("GET", f"/v1/orders/{order['id']}")["status"] == "paid"


def test_a_second_tab_resumes_the_payment_in_flight(
    runtime: LocalRuntime,
    merchant: Merchant,
    buyer_in: BuyerIn,
    screenshot: Screenshot,
) -> None:
    order = merchant.order(_no("TAB"))
    buyer = buyer_in("en-US")
    first = buyer.open(order["cashier_url"])
    second = buyer.open(order["cashier_url"])  # opened before the choice: it still offers it

    first.get_by_role("button", name="Pay with Sandbox").click()
    first.wait_for_url(f"{runtime.sandbox_url}/**", timeout=WAIT_MS)
    second.get_by_role("button", name="Pay with Sandbox").click()
    second.wait_for_url(f"{runtime.sandbox_url}/**", timeout=WAIT_MS)
    assert second.url == first.url  # the same channel order: the payment was not doubled

    again = buyer.open(order["cashier_url"])  # the link, while the payment is in flight
    expect(again.locator("#state")).to_have_attribute("data-state", "paying")
    expect(again.locator("#continue")).to_have_attribute("href", first.url)
    screenshot(again, "in-flight")

    first.get_by_role("button", name="Pay").click()
    first.wait_for_url(order["return_url"], timeout=WAIT_MS)
    # The page left open on the payment in flight follows it to the merchant too.
    again.wait_for_url(order["return_url"], timeout=WAIT_MS)
    status = eventually(lambda: merchant.call("GET", f"/v1/orders/{order['id']}"))
    assert status["status"] == "paid"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/cashier/[A-Za-z0-9_-]{43}", order["cashier_url"])
