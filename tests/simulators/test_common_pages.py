"""The buyer's page helpers and the ``/_sim/...`` helpers, served by a small channel app over
real HTTP: what the buyer sees, the choice as JSON or as a form, the orphans endpoint."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from werkzeug.exceptions import NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from local_runtime.simulators.common.pages import buyer_choice, buyer_page
from local_runtime.simulators.common.server import SimulatorServer
from local_runtime.simulators.common.sim_routes import accounts_response, orphan_response
from local_runtime.simulators.common.switches import parse_simulate
from local_runtime.simulators.common.trades import Trade, TradeBook, TradeStatus

SHANGHAI = ZoneInfo("Asia/Shanghai")
ACCOUNTS: list[dict[str, Any]] = [
    {"account": "acct_a", "channel": "demo", "secret_key": "sk_a", "simulator": True},
    {"account": "acct_b", "channel": "demo", "secret_key": "sk_b", "simulator": True},
]

_ROUTES = Map(
    [
        Rule("/pay/<token>", methods=["GET"], endpoint="page"),
        Rule("/pay/<token>", methods=["POST"], endpoint="choice"),
        Rule("/cashier/<token>", methods=["GET"], endpoint="cashier"),
        Rule("/_sim/accounts", methods=["GET"], endpoint="accounts"),
        Rule("/_sim/orphans", methods=["POST"], endpoint="orphans"),
    ]
)


class DemoChannel:
    """A channel app that routes its buyer page and /_sim endpoints to the kit's helpers."""

    def __init__(self) -> None:
        self.book = TradeBook()
        self.changes: list[Trade] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            endpoint, args = _ROUTES.bind_to_environ(environ).match()
        except NotFound:
            response = Response("no route", status=404)
        else:
            response = self.dispatch(str(endpoint), request, args)
        body: Iterable[bytes] = response(environ, start_response)
        return body

    def dispatch(self, endpoint: str, request: Request, args: dict[str, str]) -> Response:
        match endpoint:
            case "page":
                return buyer_page(self.book, args["token"], channel="Demo")
            case "cashier":
                action = f"/pay/{args['token']}"
                return buyer_page(self.book, args["token"], channel="Demo", action_url=action)
            case "choice":
                return buyer_choice(
                    request,
                    self.book,
                    args["token"],
                    channel="Demo",
                    return_url=lambda trade: trade.extra.get("return_url"),
                    on_change=self.changes.append,
                )
            case "accounts":
                return accounts_response(ACCOUNTS)
            case _:
                return orphan_response(
                    request,
                    self.book,
                    accounts=[entry["account"] for entry in ACCOUNTS],
                    tz=SHANGHAI,
                    currencies=("CNY",),
                )


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[DemoChannel, str]]:
    channel = DemoChannel()
    server = SimulatorServer("127.0.0.1", 0, channel, services=(channel.book,))
    server.start()
    yield channel, server.url
    server.stop()


def new_trade(
    channel: DemoChannel,
    out_trade_no: str,
    *,
    amount: int = 1999,
    currency: str = "CNY",
    subject: str = "Green tea",
    simulate: str | None = None,
    **extra: Any,
) -> Trade:
    trade, _ = channel.book.create(
        "acct_a",
        out_trade_no,
        amount=amount,
        currency=currency,
        subject=subject,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        simulate=parse_simulate(simulate),
        extra=extra,
    )
    return trade


# -- the page ----------------------------------------------------------------------------------


def test_the_page_shows_subject_amount_and_the_two_buttons(demo: tuple[DemoChannel, str]) -> None:
    channel, url = demo
    trade = new_trade(channel, "page_1", subject="Tea <b>&</b> cups")

    page = requests.get(f"{url}/pay/{trade.pay_token}", timeout=5)

    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Tea &lt;b&gt;&amp;&lt;/b&gt; cups" in page.text
    assert "<b>&</b>" not in page.text
    assert '<p class="amount" id="amount">19.99 CNY</p>' in page.text
    assert '<form method="post">' in page.text  # posts back to the page itself
    assert 'name="action" value="pay"' in page.text
    assert 'name="action" value="decline"' in page.text
    assert 'data-status="WAIT_BUYER_PAY"' in page.text
    assert "Demo simulator" in page.text


def test_the_amount_is_shown_in_the_currencys_units(demo: tuple[DemoChannel, str]) -> None:
    channel, url = demo
    yen = new_trade(channel, "page_jpy", amount=1500, currency="JPY")
    dollars = new_trade(channel, "page_usd", amount=123456, currency="USD")

    assert ">1,500 JPY<" in requests.get(f"{url}/pay/{yen.pay_token}", timeout=5).text
    assert ">1,234.56 USD<" in requests.get(f"{url}/pay/{dollars.pay_token}", timeout=5).text


def test_the_form_may_post_elsewhere(demo: tuple[DemoChannel, str]) -> None:
    channel, url = demo
    trade = new_trade(channel, "page_cashier")

    page = requests.get(f"{url}/cashier/{trade.pay_token}", timeout=5)

    assert f'<form method="post" action="/pay/{trade.pay_token}">' in page.text


def test_a_final_trade_shows_its_state_without_buttons(demo: tuple[DemoChannel, str]) -> None:
    channel, url = demo
    trade = new_trade(channel, "page_closed")
    channel.book.close("acct_a", "page_closed")

    page = requests.get(f"{url}/pay/{trade.pay_token}", timeout=5)

    assert 'data-status="CLOSED"' in page.text
    assert "closed" in page.text
    assert "<form" not in page.text


def test_an_unknown_link_is_a_404_page(demo: tuple[DemoChannel, str]) -> None:
    _, url = demo

    page = requests.get(f"{url}/pay/no-such-token", timeout=5)

    assert page.status_code == 404
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Payment link not found" in page.text


# -- the choice as JSON ------------------------------------------------------------------------


def test_a_json_pay_answers_json_and_changes_the_trade_once(
    demo: tuple[DemoChannel, str],
) -> None:
    channel, url = demo
    trade = new_trade(channel, "json_pay")
    before = len(channel.changes)

    first = requests.post(f"{url}/pay/{trade.pay_token}", json={"action": "pay"}, timeout=5)
    again = requests.post(f"{url}/pay/{trade.pay_token}", json={"action": "pay"}, timeout=5)

    assert first.status_code == again.status_code == 200
    assert first.json() == {"status": "SUCCESS", "out_trade_no": "json_pay"}
    assert again.json() == first.json()
    assert [t.out_trade_no for t in channel.changes[before:]] == ["json_pay"]
    assert channel.changes[-1].status is TradeStatus.SUCCESS
    assert channel.book.get("acct_a", "json_pay").status is TradeStatus.SUCCESS


def test_a_refused_json_choice_is_a_json_error(demo: tuple[DemoChannel, str]) -> None:
    channel, url = demo
    trade = new_trade(channel, "json_refused")
    requests.post(f"{url}/pay/{trade.pay_token}", json={"action": "pay"}, timeout=5)

    refused = requests.post(f"{url}/pay/{trade.pay_token}", json={"action": "decline"}, timeout=5)

    assert refused.status_code == 409
    body = refused.json()
    assert (body["code"], body["status"]) == ("TRADE_PAID", "SUCCESS")
    assert body["message"]


@pytest.mark.parametrize(
    "body",
    [json.dumps({"action": "refund"}), json.dumps({"action": 1}), json.dumps(["pay"]), "pay"],
)
def test_a_json_choice_must_say_pay_or_decline(demo: tuple[DemoChannel, str], body: str) -> None:
    channel, url = demo
    trade = new_trade(channel, f"json_bad_{secrets.token_hex(4)}")

    refused = requests.post(
        f"{url}/pay/{trade.pay_token}",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=5,
    )

    assert refused.status_code == 400
    assert refused.json() == {
        "code": "INVALID_PARAMETER",
        "message": "action must be 'pay' or 'decline'",
        "param": "action",
    }
    assert channel.book.get("acct_a", trade.out_trade_no).status is TradeStatus.WAIT_BUYER_PAY


def test_decline_turns_the_pay_button_into_a_decline(demo: tuple[DemoChannel, str]) -> None:
    channel, url = demo
    trade = new_trade(channel, "json_decline_switch", simulate='{"decline": true}')

    answer = requests.post(f"{url}/pay/{trade.pay_token}", json={"action": "pay"}, timeout=5)

    assert answer.json()["status"] == "DECLINED"


# -- the choice as a form ----------------------------------------------------------------------


def test_a_form_choice_goes_back_to_the_return_url_unchanged(
    demo: tuple[DemoChannel, str],
) -> None:
    channel, url = demo
    back = "https://shop.example/orders/42?from=sim"
    trade = new_trade(channel, "form_return", return_url=back)

    answer = requests.post(
        f"{url}/pay/{trade.pay_token}", data={"action": "pay"}, allow_redirects=False, timeout=5
    )

    assert answer.status_code == 303
    assert answer.headers["Location"] == back
    assert channel.book.get("acct_a", "form_return").status is TradeStatus.SUCCESS


def test_a_form_choice_without_return_url_shows_the_result(
    demo: tuple[DemoChannel, str],
) -> None:
    channel, url = demo
    trade = new_trade(channel, "form_result")

    answer = requests.post(f"{url}/pay/{trade.pay_token}", data={"action": "decline"}, timeout=5)

    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert 'data-status="DECLINED"' in answer.text
    assert "You declined this payment." in answer.text


def test_a_refused_form_choice_is_an_html_page_with_the_status(
    demo: tuple[DemoChannel, str],
) -> None:
    channel, url = demo
    trade = new_trade(channel, "form_refused")
    channel.book.close("acct_a", "form_refused")

    closed = requests.post(f"{url}/pay/{trade.pay_token}", data={"action": "pay"}, timeout=5)
    wrong = requests.post(f"{url}/pay/{trade.pay_token}", data={"action": "steal"}, timeout=5)

    assert closed.status_code == 409
    assert closed.headers["Content-Type"].startswith("text/html")
    assert "the trade is closed" in closed.text
    assert wrong.status_code == 400
    assert "action must be" in wrong.text


# -- /_sim endpoints ---------------------------------------------------------------------------


def test_the_accounts_are_listed(demo: tuple[DemoChannel, str]) -> None:
    _, url = demo

    listing = requests.get(f"{url}/_sim/accounts", timeout=5)

    assert listing.status_code == 200
    assert listing.json() == {"object": "list", "data": ACCOUNTS}


def test_an_orphan_lands_in_that_days_statement(demo: tuple[DemoChannel, str]) -> None:
    channel, url = demo

    answer = requests.post(
        f"{url}/_sim/orphans",
        json={"account": "acct_b", "amount": 8800, "currency": "CNY", "date": "2030-02-03"},
        timeout=5,
    )

    assert answer.status_code == 201
    orphan = answer.json()
    assert orphan["object"] == "orphan"
    assert (orphan["account"], orphan["amount"], orphan["currency"], orphan["date"]) == (
        "acct_b",
        8800,
        "CNY",
        "2030-02-03",
    )
    assert orphan["paid_at"] == "2030-02-03T04:00:00.000Z"  # noon in Shanghai
    [line] = channel.book.statement_lines("acct_b", date(2030, 2, 3), SHANGHAI)
    assert line.trade.out_trade_no == orphan["out_trade_no"]
    assert line.trade.transaction_id == orphan["transaction_id"]
    assert line.trade.orphan


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"account": "acct_a", "amount": "1", "currency": "CNY", "date": "2030-02-03"}, 400, "INVALID_PARAMETER", "amount"),
        ({"account": "acct_a", "amount": 0, "currency": "CNY", "date": "2030-02-03"}, 400, "INVALID_PARAMETER", "amount"),
        ({"account": "acct_a", "amount": 1, "currency": "USD", "date": "2030-02-03"}, 400, "INVALID_PARAMETER", "currency"),
        ({"account": "acct_a", "amount": 1, "currency": "CNY", "date": "03/02/2030"}, 400, "INVALID_PARAMETER", "date"),
        ({"account": "acct_a", "amount": 1, "currency": "CNY"}, 400, "INVALID_PARAMETER", "date"),
        ({"account": "acct_a", "amount": 1, "currency": "CNY", "date": "2030-02-03", "x": 1}, 400, "INVALID_PARAMETER", "x"),
        ({"account": "acct_z", "amount": 1, "currency": "CNY", "date": "2030-02-03"}, 404, "ACCOUNT_NOT_FOUND", "account"),
    ],
)  # fmt: skip
def test_a_wrong_orphan_is_refused(
    demo: tuple[DemoChannel, str], body: dict[str, Any], status: int, code: str, param: str
) -> None:
    channel, url = demo
    before = len(channel.book.trades())

    answer = requests.post(f"{url}/_sim/orphans", json=body, timeout=5)

    assert answer.status_code == status
    assert (answer.json()["code"], answer.json()["param"]) == (code, param)
    assert len(channel.book.trades()) == before
