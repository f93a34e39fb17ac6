"""The hosted cashier (routes/cashier.py, services/cashier.py) in the API function against moto:
the link on every order, the buyer's page in two languages, the choice that starts the payment
exactly as the API does, resuming a payment in flight, and what a stranger's request gets."""

from __future__ import annotations

import io
import json
import re
import threading
from dataclasses import replace
from typing import Any

import boto3
import pytest
import segno

from local_runtime import dynamodb_transactions
from paycore.clock import now_rfc3339, rfc3339
from paycore.dal.instruments import InstrumentStore
from paycore.dal.trade_store import TradeStore
from paycore.domain.changes import CouponIssue, PaymentSettlement
from paycore.domain.instruments import Coupon, CouponStatus
from tests.functional.conftest import MotoStack
from tests.functional.test_api import Api
from tests.support import FakeContext, rest_event

TOKEN = re.compile(r"^https://api\.example\.test/live/cashier/([A-Za-z0-9_-]{43})$")


class Buyer:
    """A browser on the cashier: the page and the two JSON routes, by the order's link."""

    def __init__(self, api: Api, order: dict[str, Any]) -> None:
        self.api = api
        match = TOKEN.match(order["cashier_url"])
        assert match, order["cashier_url"]
        self.token = match.group(1)

    def _call(
        self, method: str, suffix: str = "", **kwargs: Any
    ) -> tuple[int, str, dict[str, str]]:
        answer = self.api.module.lambda_handler(
            rest_event(
                method,
                f"/cashier/{self.token}{suffix}",
                resource=f"/cashier/{{token}}{suffix}",
                path_parameters={"token": self.token},
                **kwargs,
            ),
            FakeContext(),
        )
        headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
        for name, values in (answer.get("multiValueHeaders") or {}).items():
            headers.setdefault(name.lower(), values[0])
        return answer["statusCode"], answer.get("body") or "", headers

    def page(
        self, language: str = "en", query: dict[str, str] | None = None
    ) -> tuple[int, str, dict[str, str]]:
        return self._call("GET", headers={"Accept-Language": language}, query=query)

    def status(self) -> dict[str, Any]:
        code, body, _ = self._call("GET", "/status")
        assert code == 200, body
        return dict(json.loads(body))

    def choose(self, **choice: Any) -> tuple[int, dict[str, Any]]:
        headers = {"Sec-Fetch-Site": "same-origin", **choice.pop("headers", {})}
        code, body, _ = self._call("POST", "/payments", body=choice, headers=headers)
        return code, json.loads(body)


@pytest.fixture
def api(moto_stack: MotoStack) -> Api:
    return Api()


def _order(api: Api, who: dict[str, str], **extra: Any) -> dict[str, Any]:
    return api.order(who, no=f"C-{threading.get_ident()}-{now_rfc3339()}", **extra)


def _credit(api: Api, who: dict[str, str], buyer_id: str, amount: int) -> None:
    """Credit the buyer's stored balance (CNY) through the API."""
    api.call(
        "POST",
        f"/v1/buyers/{buyer_id}/balance/credits",
        body={"amount": amount, "currency": "CNY"},
        authorizer=who,
    )


def _coupon(
    api: Api, who: dict[str, str], buyer_id: str, amount: int, currency: str = "CNY"
) -> dict[str, Any]:
    """Issue the buyer a coupon through the API."""
    return api.call(
        "POST",
        "/v1/coupons",
        body={"buyer_id": buyer_id, "amount": amount, "currency": currency},
        authorizer=who,
    )[1]


def _texts(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


# -- the link on the order ---------------------------------------------------------------------


def test_every_order_carries_its_own_unguessable_cashier_link_and_its_return_url(
    api: Api,
) -> None:
    who = api.merchant()
    first = api.order(who, no="L-1", return_url="https://tea.example/orders/L-1")
    second = api.order(who, no="L-2")

    tokens = {TOKEN.match(o["cashier_url"]).group(1) for o in (first, second)}  # type: ignore[union-attr]
    assert len(tokens) == 2  # 43 characters of base64url: 256 random bits each
    assert first["return_url"] == "https://tea.example/orders/L-1"
    assert second["return_url"] is None
    _, fetched, _ = api.on_order("GET", first["id"], authorizer=who)
    assert fetched["cashier_url"] == first["cashier_url"]


def test_a_return_url_that_cannot_be_requested_is_422_and_creates_nothing(api: Api) -> None:
    who = api.merchant()
    payload = {"merchant_order_no": "R-1", "amount": 100, "currency": "CNY", "subject": "x"}
    for bad in ("ftp://tea.example/x", "https://tea example/x", "/relative", "https://u:p@h.x/"):
        status, body, _ = api.call(
            "POST", "/v1/orders", body={**payload, "return_url": bad}, authorizer=who
        )
        assert (status, body["code"], body["param"]) == (422, "validation_failed", "return_url")
    assert api.order(who, no="R-1")["merchant_order_no"] == "R-1"  # the number is still free


def test_the_link_is_the_only_thing_stored_about_the_token_in_a_key(
    api: Api, moto_stack: MotoStack
) -> None:
    import boto3

    who = api.merchant()
    buyer = Buyer(api, api.order(who, no="K-1"))
    keys = [
        item["pk"]["S"]
        for item in boto3.client("dynamodb").scan(TableName=moto_stack.trade_table)["Items"]
    ]
    assert not [key for key in keys if buyer.token in key]  # keyed by its digest only
    assert [key for key in keys if key.startswith("CASHIER#")]


# -- the page ----------------------------------------------------------------------------------


def test_the_page_speaks_the_buyers_language_and_shows_merchant_subject_and_amount(
    api: Api,
) -> None:
    who = api.merchant("Tea House 茶馆")
    buyer = Buyer(api, api.order(who, no="P-1"))

    status, zh, headers = buyer.page("zh-CN,zh;q=0.9,en;q=0.8")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert headers["content-language"] == "zh-CN"
    assert '<html lang="zh-CN">' in zh
    text = _texts(zh)
    assert "Tea House 茶馆" in text and "Tea" in text
    assert "¥19.99 CNY" in text
    assert "使用沙箱支付" in text

    _, en, headers = buyer.page("en-US,en;q=0.9")
    assert headers["content-language"] == "en"
    assert "Pay with Sandbox" in _texts(en)

    _, forced, _ = buyer.page("zh-CN", query={"lang": "en"})
    assert "Pay with Sandbox" in _texts(forced)  # lang= overrides Accept-Language
    _, fallback, _ = buyer.page("fr-FR,de;q=0.5")
    assert '<html lang="en">' in fallback


def test_amounts_are_written_per_currency(api: Api) -> None:
    who = api.merchant()
    yen = Buyer(api, api.order(who, no="J-1", amount=1500, currency="JPY"))
    dollars = Buyer(api, api.order(who, no="U-1", amount=123450, currency="USD"))
    assert "¥1,500 JPY" in _texts(yen.page()[1])
    assert "$1,234.50 USD" in _texts(dollars.page()[1])


def test_the_page_is_self_contained_unframeable_and_keeps_its_link_out_of_referers(
    api: Api,
) -> None:
    who = api.merchant()
    buyer = Buyer(api, api.order(who, no="H-1"))
    _, page, headers = buyer.page()
    policy = headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)  # type: ignore[union-attr]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "connect-src 'self'" in policy
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    # Every script and style is inline under this response's nonce; nothing is loaded.
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", page)
    scripts = re.findall(r"<script([^>]*)>", page)
    assert all(f'nonce="{nonce}"' in s or 'type="application/json"' in s for s in scripts)
    assert buyer.page()[2]["content-security-policy"] != policy  # a nonce per response


def test_merchant_text_is_escaped(api: Api) -> None:
    who = api.merchant('<script>alert("n")</script>')
    buyer = Buyer(api, api.order(who, no="X-1", subject="</script><b>x</b>"))
    page = buyer.page()[1]
    assert "<b>x</b>" not in page and '<script>alert("n")' not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def test_a_link_that_leads_nowhere_is_a_small_html_404_and_the_json_routes_say_it_in_problem_json(
    api: Api,
) -> None:
    who = api.merchant()
    buyer = Buyer(api, api.order(who, no="N-1"))
    for token in ("A" * 43, "short", "a b..c", "x" * 500, "漢字" * 20):
        buyer.token = token
        status, page, headers = buyer.page("zh-CN")
        assert status == 404, token
        assert headers["content-type"].startswith("text/html")
        assert "支付链接无效" in page
        status, body, headers = buyer._call("GET", "/status")
        assert status == 404
        assert headers["content-type"] == "application/problem+json"
        assert json.loads(body)["code"] == "cashier_not_found"
        status, body, _ = buyer._call("POST", "/payments", body={"channel": "sandbox"}, headers={})
        assert (status, json.loads(body)["code"]) == (404, "cashier_not_found")


def test_the_page_ignores_what_channels_append_but_the_json_routes_refuse_unknown_parameters(
    api: Api,
) -> None:
    who = api.merchant()
    buyer = Buyer(api, api.order(who, no="Q-1"))
    alipay_return = {"back": "1", "out_trade_no": "pay_x", "sign": "abc", "charset": "utf-8"}
    assert buyer.page(query=alipay_return)[0] == 200
    status, body, _ = buyer._call("GET", "/status", query={"sign": "abc"})
    assert (status, json.loads(body)["code"]) == (422, "validation_failed")


def test_the_buyers_usable_balance_and_coupons_are_offered_and_nothing_else(api: Api) -> None:
    who = api.merchant()
    _credit(api, who, "b-1", 500)
    usable = _coupon(api, who, "b-1", 300)
    dollars = _coupon(api, who, "b-1", 300, currency="USD")
    someone_elses = _coupon(api, who, "b-2", 300)
    expired = Coupon(
        id="cpn_expired1",
        merchant_id=who["merchant_id"],
        buyer_id="b-1",
        amount=100,
        currency="CNY",
        status=CouponStatus.AVAILABLE,
        expires_at="2020-01-01T00:00:00.000Z",
        created_at=now_rfc3339(),
        updated_at=now_rfc3339(),
    )
    InstrumentStore().create_coupon(CouponIssue(expired))

    page = Buyer(api, api.order(who, no="B-1", buyer_id="b-1")).page()[1]
    text = _texts(page)
    assert "Use my balance (¥5.00 available)" in text
    assert f'value="{usable["id"]}"' in page
    for absent in (dollars["id"], someone_elses["id"], expired.id):
        assert absent not in page
    # An order without a buyer offers neither.
    anonymous = Buyer(api, api.order(who, no="B-2")).page()[1]
    assert 'id="use-balance"' not in anonymous and 'name="coupon"' not in anonymous


# -- choosing ----------------------------------------------------------------------------------


def test_choosing_starts_the_payment_as_the_api_would_and_a_second_choice_resumes_it(
    api: Api,
) -> None:
    who = api.merchant()
    order = api.order(who, no="C-1", return_url="https://tea.example/done")
    buyer = Buyer(api, order)

    status, first = buyer.choose(channel="sandbox", lang="zh-CN")
    assert status == 202, first
    assert first["state"] == "paying" and first["resumed"] is False
    payment_id = first["payment"]["id"]
    stored = TradeStore().get_payment(payment_id)
    assert stored is not None
    assert stored.instruments == [{"type": "channel", "channel": "sandbox", "amount": 1999}]
    # The channel brings the buyer back to the cashier page, in the page's language.
    assert stored.return_url == f"{order['cashier_url']}?lang=zh-CN&back=1"
    _, merchant_view, _ = api.on_order("GET", order["id"], authorizer=who)
    assert merchant_view["status"] == "paying"

    status, again = buyer.choose(channel="sandbox")
    assert status == 202
    assert again["resumed"] is True and again["payment"]["id"] == payment_id
    assert buyer.status()["payment"]["id"] == payment_id
    page = buyer.page()[1]
    assert 'data-state="paying"' in page and "Waiting for your payment" in page


def test_two_tabs_choosing_at_once_get_one_payment(api: Api) -> None:
    who = api.merchant()
    _credit(api, who, "b-9", 1000)
    buyer = Buyer(api, api.order(who, no="T-1", buyer_id="b-9"))
    start = threading.Barrier(3)
    answers: list[tuple[int, dict[str, Any]]] = []

    def tab() -> None:
        start.wait()
        answers.append(buyer.choose(channel="sandbox", use_balance=True))

    tabs = [threading.Thread(target=tab) for _ in range(3)]
    # DynamoDB's transactions are atomic under concurrency; moto's are once patched as the
    # local runtime patches them.
    dynamodb_transactions.install()
    try:
        for each in tabs:
            each.start()
        for each in tabs:
            each.join()
    finally:
        dynamodb_transactions.uninstall()

    assert [code for code, _ in answers] == [202, 202, 202], answers
    assert len({answer["payment"]["id"] for _, answer in answers}) == 1
    assert sorted(answer["resumed"] for _, answer in answers) == [False, True, True]
    balance = InstrumentStore().get_balance(who["merchant_id"], "b-9", "CNY")
    assert balance is not None and (balance.available, balance.frozen) == (0, 1000)


def test_balance_and_coupon_first_then_the_channel_for_the_rest(api: Api) -> None:
    who = api.merchant()
    _credit(api, who, "b-3", 700)
    coupon = _coupon(api, who, "b-3", 500)
    buyer = Buyer(api, api.order(who, no="M-1", buyer_id="b-3"))

    status, answer = buyer.choose(channel="sandbox", use_balance=True, coupon_id=coupon["id"])

    assert status == 202, answer
    stored = TradeStore().get_payment(answer["payment"]["id"])
    assert stored is not None
    assert stored.instruments == [
        {"type": "coupon", "coupon_id": coupon["id"], "amount": 500},
        {"type": "balance", "amount": 700},
        {"type": "channel", "channel": "sandbox", "amount": 799},
    ]
    assert api.call("GET", f"/v1/coupons/{coupon['id']}", authorizer=who)[1]["status"] == "locked"


def test_balance_and_coupon_that_cover_the_order_pay_it_at_once_and_the_link_then_says_so(
    api: Api,
) -> None:
    who = api.merchant()
    _credit(api, who, "b-4", 5000)
    coupon = _coupon(api, who, "b-4", 999)
    order = api.order(who, no="F-1", buyer_id="b-4", return_url="https://tea.example/done")
    buyer = Buyer(api, order)

    # The page sent a channel too; the internal instruments leave it nothing, so it is dropped.
    status, answer = buyer.choose(channel="sandbox", use_balance=True, coupon_id=coupon["id"])

    assert status == 202, answer
    assert answer["state"] == "paid" and answer["payment"]["status"] == "succeeded"
    assert api.on_order("GET", order["id"], authorizer=who)[1]["status"] == "paid"
    balance = InstrumentStore().get_balance(who["merchant_id"], "b-4", "CNY")
    assert balance is not None and balance.available == 5000 - 1000
    # Final: the page says so and offers nothing; a choice is refused as the API refuses it.
    status, page, _ = buyer.page()
    assert status == 200 and 'data-state="paid"' in page
    assert "Paid. Thank you!" in page and 'id="choose"' not in page
    assert 'href="https://tea.example/done"' in page
    code, refused = buyer.choose(channel="sandbox")
    assert (code, refused["code"]) == (409, "order_not_payable")


def test_refusals_are_the_apis_and_change_nothing(api: Api) -> None:
    who = api.merchant()
    anonymous = Buyer(api, api.order(who, no="V-1"))
    assert anonymous.choose(use_balance=True, channel="sandbox")[1]["code"] == "buyer_required"
    assert anonymous.choose(channel="paypal")[1]["code"] == "unsupported_channel"
    assert anonymous.choose()[1]["code"] == "instrument_amounts_mismatch"
    code, body = anonymous.choose(channel="sandbox", simulate={"decline": True})
    assert (code, body["code"], body["param"]) == (422, "validation_failed", "simulate")
    assert anonymous.status() == {"object": "cashier_status", "state": "open", "payment": None}

    _credit(api, who, "b-5", 100)
    other = _coupon(api, who, "b-6", 100)
    buyer = Buyer(api, api.order(who, no="V-2", buyer_id="b-5"))
    code, body = buyer.choose(channel="sandbox", coupon_id=other["id"])
    assert (code, body["code"]) == (409, "coupon_unavailable")
    assert buyer.status()["state"] == "open"


def test_a_choice_from_another_site_or_from_a_form_is_refused(api: Api) -> None:
    who = api.merchant()
    buyer = Buyer(api, api.order(who, no="S-1"))
    for site in ("cross-site", "same-site"):
        code, body = buyer.choose(channel="sandbox", headers={"Sec-Fetch-Site": site})
        assert (code, body["code"]) == (403, "cross_site_request")
    code, body, _ = buyer._call(
        "POST",
        "/payments",
        raw_body="channel=sandbox",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (code, json.loads(body)["code"]) == (415, "unsupported_media_type")
    assert buyer.status()["payment"] is None


# -- following a payment -----------------------------------------------------------------------


def _end_payment(payment_id: str, code: str) -> None:
    """The payment fails as the workflow would make it fail (its own settlement path)."""
    store = TradeStore()
    payment = store.get_payment(payment_id)
    assert payment is not None
    order = store.get_order(payment.order_id)
    assert order is not None
    at = now_rfc3339()
    failed = payment.fail(code, "the buyer declined", at)
    assert store.settle_payment(PaymentSettlement.of(failed, order.reopen(payment.id, at), at=at))


def test_after_a_failure_the_page_says_why_and_offers_to_pay_again(api: Api) -> None:
    who = api.merchant()
    buyer = Buyer(api, api.order(who, no="D-1"))
    _, first = buyer.choose(channel="sandbox")
    _end_payment(first["payment"]["id"], "buyer_declined")

    status = buyer.status()
    assert status["state"] == "open"
    assert status["payment"]["status"] == "failed"
    assert status["payment"]["failure_code"] == "buyer_declined"
    page = buyer.page("zh-CN")[1]
    assert 'data-failure-code="buyer_declined"' in page
    assert "上次支付未成功：您取消了付款。" in page  # noqa: RUF001
    assert 'id="choose"' in page

    code, again = buyer.choose(channel="sandbox")
    assert code == 202 and again["resumed"] is False
    assert again["payment"]["id"] != first["payment"]["id"]


def test_a_qr_code_payment_is_drawn_on_the_page(api: Api) -> None:
    who = api.merchant()
    buyer = Buyer(api, api.order(who, no="W-1"))
    _, answer = buyer.choose(channel="sandbox")
    store = TradeStore()
    payment = store.get_payment(answer["payment"]["id"])
    assert payment is not None
    code_url = "weixin://wxpay/bizpayurl?pr=AbC<&>"
    store.save_payment(replace(payment, next_action={"type": "qr_code", "code_url": code_url}))

    page = buyer.page("zh-CN")[1]
    qr = re.search(r'<div id="qr" data-code-url="([^"]+)"><svg[^>]*id="qr-code".*?</svg>', page)
    assert qr, page
    assert qr.group(1) == "weixin://wxpay/bizpayurl?pr=AbC&lt;&amp;&gt;"
    # The code drawn is the code of code_url itself (segno draws the same input the same way).
    drawn = re.search(r' d="([^"]+)"', qr.group(0))
    expected = re.search(r' d="([^"]+)"', segno.make(code_url, error="m").svg_inline())
    assert drawn and expected and drawn.group(1) == expected.group(1)
    assert buyer.status()["payment"]["next_action"] == {"type": "qr_code", "code_url": code_url}


def test_a_closed_or_expired_order_says_so_and_takes_no_payment(api: Api) -> None:
    who = api.merchant()
    closed = api.order(who, no="Z-1")
    api.on_order("POST", closed["id"], "/close", authorizer=who)
    buyer = Buyer(api, closed)
    page = buyer.page()[1]
    assert 'data-state="closed"' in page and "closed and can no longer be paid" in page
    assert buyer.choose(channel="sandbox")[1]["code"] == "order_not_payable"

    store = TradeStore()
    late = api.order(who, no="Z-2")
    stored = store.get_order(late["id"])
    assert stored is not None
    # Its expiry passes (a hand edit of the stored order: the sweep has not closed it yet).
    boto3.client("dynamodb").update_item(
        TableName=store.table,
        Key={"pk": {"S": f"ORDER#{stored.id}"}, "sk": {"S": "ORDER"}},
        UpdateExpression="SET expires_at = :at",
        ExpressionAttributeValues={":at": {"S": rfc3339(stored_time(stored.created_at))}},
    )
    buyer = Buyer(api, late)
    assert "has expired" in buyer.page()[1]
    assert buyer.status()["state"] == "closed"
    assert buyer.choose(channel="sandbox")[1]["code"] == "order_expired"


def stored_time(value: str) -> Any:
    from paycore.clock import parse_rfc3339

    return parse_rfc3339(value)


def test_the_token_never_reaches_a_log(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    who = api.merchant()
    buyer = Buyer(api, api.order(who, no="G-1"))
    stream = io.StringIO()
    handler = api.module.logger.registered_handler
    previous = handler.setStream(stream)
    try:
        buyer.page()
        buyer.status()
        buyer.choose(channel="sandbox")
        buyer.choose(channel="sandbox", headers={"Sec-Fetch-Site": "cross-site"})
        # A line logged while serving a cashier request carries the request's keys.
        api.module.logger.info("probe")
    finally:
        handler.setStream(previous)
    printed = stream.getvalue() + capsys.readouterr().out
    lines = [json.loads(line) for line in printed.splitlines() if line.startswith("{")]
    probe = next(line for line in lines if line.get("message") == "probe")
    assert probe["path_parameters"] == {"token": "<redacted>"}
    assert buyer.token not in printed
