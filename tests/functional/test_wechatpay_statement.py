"""fetch_statement against the WeChat Pay simulator: the ALL trade bill of a Beijing day,
downloaded gzip over real HTTP, its SHA1 checked on the plain file, parsed into neutral lines
(fen, fees, Beijing times in UTC) with the statement switches and an orphan payment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta

import pytest
import requests

from local_runtime.simulators.wechatpay import WechatPaySimulator
from paycore.channels.base import (
    ChannelPaymentStatus,
    ChannelRefundStatus,
    StatementLine,
    StatementLineKind,
)
from paycore.channels.wechatpay import adapter as wechatpay_adapter
from paycore.errors import ChannelRejected, ChannelUnavailable
from tests.functional.wechatpay_support import (
    beijing_today,
    credentials,
    gateway,
    order,
    pay,
    receivers,
    refund,
    start_simulator,
)
from tests.simulators.receiver import NotificationReceiver

__all__ = ["receivers"]  # a fixture

ACCOUNT = "wx-bill"


@pytest.fixture(scope="module")
def simulator() -> Iterator[WechatPaySimulator]:
    running = start_simulator(ACCOUNT)
    yield running
    running.stop()


def _pay(
    wechat: WechatPaySimulator, receiver: NotificationReceiver, amount: int, **switches: object
) -> str:
    adapter = gateway(wechat, ACCOUNT)
    created = adapter.create_order(order(receiver.url, amount=amount, simulate=switches or None))
    pay(wechat, str(created.next_action.code_url))
    return created.out_trade_no


def _by_reference(lines: tuple[StatementLine, ...]) -> dict[str, StatementLine]:
    found = {line.reference: line for line in lines}
    assert len(found) == len(lines)
    return found


def test_a_day_with_payments_refunds_switches_and_an_orphan(
    simulator: WechatPaySimulator, receivers: Callable[..., NotificationReceiver]
) -> None:
    receiver = receivers()
    day = beijing_today()
    adapter = gateway(simulator, ACCOUNT)
    plain = _pay(simulator, receiver, 1999)
    partly = adapter.refund(refund(plain, 500, receiver.url))
    more = _pay(simulator, receiver, 1000, statement_amount_delta=1)
    omitted = _pay(simulator, receiver, 300, statement="omit")
    reworded = _pay(simulator, receiver, 700, statement_status="CLOSED")
    unpaid = adapter.create_order(order(receiver.url, amount=50)).out_trade_no
    orphan = requests.post(
        f"{simulator.url}/_sim/orphans",
        json={"account": ACCOUNT, "amount": 4321, "currency": "CNY", "date": day.isoformat()},
        timeout=5,
    ).json()

    statement = adapter.fetch_statement(day)

    lines = _by_reference(statement.lines)
    assert set(lines) == {plain, partly.out_refund_no, more, reworded, orphan["out_trade_no"]}
    assert omitted not in lines and unpaid not in lines
    paid = lines[plain]
    assert (paid.kind, paid.amount, paid.currency, paid.fee) == (
        StatementLineKind.PAYMENT,
        1999,
        "CNY",
        12,  # 0.60% of 19.99 yuan, half up: 0.12 yuan
    )
    assert paid.channel_transaction_id == adapter.query_order(plain).channel_transaction_id
    assert (paid.status, paid.channel_status) == (ChannelPaymentStatus.SUCCEEDED, "SUCCESS")
    refunded = lines[partly.out_refund_no]
    assert (refunded.kind, refunded.amount, refunded.fee) == (StatementLineKind.REFUND, 500, -3)
    assert refunded.channel_transaction_id == partly.channel_refund_id
    assert (refunded.status, refunded.channel_status) == (ChannelRefundStatus.SUCCEEDED, "SUCCESS")
    assert (lines[more].amount, lines[more].fee) == (1001, 6)  # statement_amount_delta
    assert (lines[reworded].status, lines[reworded].channel_status) == (
        ChannelPaymentStatus.CLOSED,
        "CLOSED",
    )
    assert lines[orphan["out_trade_no"]].amount == 4321
    assert lines[orphan["out_trade_no"]].occurred_at.startswith(f"{day.isoformat()}T04:00:00")
    for line in statement.lines:
        assert line.occurred_at.endswith("Z")
    # The file is kept exactly as WeChat Pay signed its SHA1 (the plain CSV).
    assert statement.day == day
    assert statement.content_type == "text/csv"
    assert (
        statement.filename == f"wechatpay-{credentials(simulator, ACCOUNT)['mchid']}-{day}-ALL.csv"
    )
    assert statement.content.decode().startswith("交易时间,公众账号ID,商户号")
    assert "\r\n`" in statement.content.decode()


def test_a_bill_that_is_not_the_one_whose_sha1_wechatpay_signed_is_unavailable(
    simulator: WechatPaySimulator,
    receivers: Callable[..., NotificationReceiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _pay(simulator, receivers(), 123)
    adapter = gateway(simulator, ACCOUNT)
    day = beijing_today()
    assert adapter.fetch_statement(day).lines
    gunzip = wechatpay_adapter._gunzip
    # One byte changed on the way (the download itself is not signed).
    monkeypatch.setattr(wechatpay_adapter, "_gunzip", lambda data: gunzip(data) + b" ")

    with pytest.raises(ChannelUnavailable, match="does not match its SHA1"):
        adapter.fetch_statement(day)


def test_a_day_without_trades_has_an_empty_statement(simulator: WechatPaySimulator) -> None:
    statement = gateway(simulator, ACCOUNT).fetch_statement(date(2020, 1, 1))

    assert (statement.lines, statement.content) == ((), b"")


def test_a_future_day_is_rejected(simulator: WechatPaySimulator) -> None:
    with pytest.raises(ChannelRejected, match="PARAM_ERROR"):
        gateway(simulator, ACCOUNT).fetch_statement(beijing_today() + timedelta(days=2))


def test_a_bill_download_url_off_the_api_host_is_never_followed(
    simulator: WechatPaySimulator, receivers: Callable[..., NotificationReceiver]
) -> None:
    _pay(simulator, receivers(), 321)
    adapter = gateway(simulator, ACCOUNT)

    with pytest.raises(ChannelUnavailable, match="not on the API's host"):
        adapter._client.download("http://127.0.0.2:9/v3/billdownload/file?token=x", "t", 1024)
