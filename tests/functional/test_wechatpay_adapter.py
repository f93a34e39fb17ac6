"""The WeChat Pay adapter against the WeChat Pay simulator, every verb over real HTTP: create and
its QR code, the buyer paying or declining on the simulator's scan page, query, close, expiry,
refunds, the notifications the simulator really sends (captured raw by a local receiver) and
the acknowledgement, what a notification must be to be believed, and answers that cannot be
trusted. The misbehaviour switches are in test_wechatpay_switches.py, the bill in
test_wechatpay_statement.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import requests

from local_runtime.simulators.wechatpay import WechatPaySimulator
from paycore import clock
from paycore.channels.base import (
    ChannelPaymentState,
    ChannelPaymentStatus,
    ChannelRefundState,
    ChannelRefundStatus,
    NextActionType,
)
from paycore.errors import CallbackRejected, ChannelRejected, ChannelUnavailable
from tests.functional.wechatpay_support import (
    QUIET,
    credentials,
    envelope,
    gateway,
    new_id,
    order,
    pay,
    receivers,
    refund,
    scan,
    start_simulator,
    trade_view,
)
from tests.simulators.receiver import NotificationReceiver

__all__ = ["receivers"]  # a fixture

MAIN, OTHER = "wx-main", "wx-other"
Receivers = Callable[..., NotificationReceiver]


@pytest.fixture(scope="module")
def simulator() -> Iterator[WechatPaySimulator]:
    running = start_simulator(MAIN, OTHER)
    yield running
    running.stop()


@pytest.fixture
def receiver(receivers: Receivers) -> NotificationReceiver:
    return receivers()


def _paid(simulator: WechatPaySimulator, receiver: NotificationReceiver, amount: int = 1999) -> str:
    """A Native order the buyer paid; its out_trade_no (the payment notification received)."""
    wechat = gateway(simulator, MAIN)
    created = wechat.create_order(order(receiver.url, amount=amount))
    assert created.next_action.code_url is not None
    pay(simulator, created.next_action.code_url)
    receiver.wait_for(1)
    return created.out_trade_no


# -- create and the buyer --------------------------------------------------------------------------


def test_create_answers_a_qr_code_and_the_order_exists_at_once(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, MAIN)
    asked = order(receiver.url)

    created = wechat.create_order(asked)
    again = wechat.create_order(asked)
    state = wechat.query_order(asked.out_trade_no)

    assert wechat.next_action_type is NextActionType.QR_CODE
    assert created.next_action.type is NextActionType.QR_CODE
    assert created.next_action.resource() == {
        "type": "qr_code",
        "code_url": created.next_action.code_url,
    }
    assert str(created.next_action.code_url).startswith("weixin://wxpay/bizpayurl?pr=")
    assert created.out_trade_no == created.channel_order_id == asked.out_trade_no
    assert again == created  # WeChat Pay deduplicates on out_trade_no: the same code_url
    # Native: the order exists before the buyer scans it (never NOT_FOUND once created).
    assert state.status is ChannelPaymentStatus.PENDING
    assert (state.amount, state.currency, state.channel_transaction_id) == (1999, "CNY", None)
    view = trade_view(simulator, MAIN, asked.out_trade_no)
    assert view["trade_state"] == "NOTPAY"
    assert view["code_url"] == created.next_action.code_url
    assert view["amount"] == 1999
    assert view["extra"]["attach"] is None  # no switches: nothing in attach
    assert view["extra"]["notify_url"] == receiver.url
    assert view["expires_at"][:19] == asked.expires_at[:19]  # time_expire, sent in Beijing time


def test_the_buyer_scans_the_code_url_and_pays(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, MAIN)
    created = wechat.create_order(order(receiver.url, amount=2345))
    page = requests.get(
        f"{simulator.url}/scan", params={"code_url": created.next_action.code_url}, timeout=5
    )
    assert page.status_code == 200 and "23.45" in page.text

    pay(simulator, str(created.next_action.code_url))
    state = wechat.query_order(created.out_trade_no)

    assert state.status is ChannelPaymentStatus.SUCCEEDED
    assert (state.amount, state.currency) == (2345, "CNY")
    assert state.channel_transaction_id is not None
    assert state.channel_transaction_id.startswith("4200")


def test_another_amount_for_the_same_out_trade_no_is_rejected(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, MAIN)
    asked = order(receiver.url)
    wechat.create_order(asked)

    with pytest.raises(ChannelRejected, match="INVALID_REQUEST"):
        wechat.create_order(order(receiver.url, out_trade_no=asked.out_trade_no, amount=2000))


def test_creating_a_paid_order_again_adopts_nothing_and_leaves_the_query_to_tell(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    """ORDERPAID to a create is no refusal: the order exists and is paid; the caller queries."""
    wechat = gateway(simulator, MAIN)
    asked = order(receiver.url)
    pay(simulator, str(wechat.create_order(asked).next_action.code_url))

    with pytest.raises(ChannelUnavailable):
        wechat.create_order(asked)
    assert wechat.query_order(asked.out_trade_no).status is ChannelPaymentStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"currency": "USD"}, "CNY only"), ({"expires_in": -60}, "PARAM_ERROR")],
)
def test_a_create_wechatpay_cannot_take_is_rejected(
    simulator: WechatPaySimulator,
    receiver: NotificationReceiver,
    changes: dict[str, object],
    message: str,
) -> None:
    with pytest.raises(ChannelRejected, match=message):
        gateway(simulator, MAIN).create_order(order(receiver.url, **changes))  # type: ignore[arg-type]


def test_a_long_subject_is_cut_to_wechatpays_description_limit(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    asked = order(receiver.url, subject="绿茶" * 100)
    gateway(simulator, MAIN).create_order(asked)

    subject = trade_view(simulator, MAIN, asked.out_trade_no)["subject"]
    assert subject == "绿茶" * 21  # 127 UTF-8 bytes hold 42 whole characters of 3 bytes


def test_a_declined_payment_is_learnt_only_by_query(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, MAIN)
    created = wechat.create_order(order(receiver.url, simulate={"decline": True}))
    assert scan(simulator, str(created.next_action.code_url), "pay").json()["status"] == "DECLINED"

    time.sleep(QUIET)
    state = wechat.query_order(created.out_trade_no)

    assert receiver.received() == []  # WeChat Pay notifies successful payments only
    assert trade_view(simulator, MAIN, created.out_trade_no)["trade_state"] == "PAYERROR"
    assert state.status is ChannelPaymentStatus.FAILED
    assert state.failure_code == "payment_declined"
    assert state.failure_message is not None and "PAYERROR" in state.failure_message


def test_an_unknown_order_is_not_found(simulator: WechatPaySimulator) -> None:
    state = gateway(simulator, MAIN).query_order(new_id())
    assert state.status is ChannelPaymentStatus.NOT_FOUND


def test_an_order_of_another_merchant_is_not_found_here(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    asked = order(receiver.url)
    gateway(simulator, OTHER).create_order(asked)

    assert gateway(simulator, MAIN).query_order(asked.out_trade_no).status is (
        ChannelPaymentStatus.NOT_FOUND
    )


# -- close and expiry ------------------------------------------------------------------------------


def test_close_an_unpaid_order_then_it_cannot_be_paid(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, MAIN)
    created = wechat.create_order(order(receiver.url))

    closed = wechat.close_order(created.out_trade_no, created.channel_order_id)
    again = wechat.close_order(created.out_trade_no)
    buyer = scan(simulator, str(created.next_action.code_url), "pay")

    assert closed.status is again.status is ChannelPaymentStatus.CLOSED
    assert buyer.status_code != 200
    assert wechat.query_order(created.out_trade_no).status is ChannelPaymentStatus.CLOSED
    with pytest.raises(ChannelRejected, match="ORDER_CLOSED"):
        wechat.create_order(order(receiver.url, out_trade_no=created.out_trade_no))


def test_closing_a_paid_order_answers_it_paid_with_its_amount(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    out_trade_no = _paid(simulator, receiver, amount=888)

    state = gateway(simulator, MAIN).close_order(out_trade_no)

    assert state.status is ChannelPaymentStatus.SUCCEEDED
    assert (state.amount, state.currency) == (888, "CNY")
    assert state.channel_transaction_id is not None


def test_closing_an_unknown_order_is_not_found(simulator: WechatPaySimulator) -> None:
    state = gateway(simulator, MAIN).close_order(new_id())
    assert state.status is ChannelPaymentStatus.NOT_FOUND


def test_an_expired_order_stays_notpay_until_it_is_closed(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, MAIN)
    created = wechat.create_order(order(receiver.url, expires_in=1.5))
    time.sleep(2.6)  # time_expire is whole seconds

    buyer = scan(simulator, str(created.next_action.code_url), "pay")
    expired = wechat.query_order(created.out_trade_no)
    closed = wechat.close_order(created.out_trade_no)

    assert buyer.status_code != 200  # the buyer can no longer pay
    assert expired.status is ChannelPaymentStatus.PENDING  # NOTPAY, as at WeChat Pay
    assert closed.status is ChannelPaymentStatus.CLOSED
    assert wechat.query_order(created.out_trade_no).status is ChannelPaymentStatus.CLOSED


# -- refunds ---------------------------------------------------------------------------------------


def test_partial_refunds_repeated_and_idempotent_on_out_refund_no(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, MAIN)
    out_trade_no = _paid(simulator, receiver)

    first = wechat.refund(refund(out_trade_no, 500, receiver.url))
    retried = wechat.refund(
        refund(out_trade_no, 500, receiver.url, out_refund_no=first.out_refund_no)
    )
    second = wechat.refund(refund(out_trade_no, 1000, receiver.url))
    after = wechat.query_order(out_trade_no)

    assert first.status is second.status is ChannelRefundStatus.SUCCEEDED
    assert (first.amount, first.currency, second.amount) == (500, "CNY", 1000)
    assert retried == first  # the same refund, not a second one
    assert first.channel_refund_id != second.channel_refund_id
    # A paid order with refunds is REFUND at WeChat Pay: still a succeeded payment for us.
    assert trade_view(simulator, MAIN, out_trade_no)["trade_state"] == "REFUND"
    assert (after.status, after.amount) == (ChannelPaymentStatus.SUCCEEDED, 1999)
    assert len(trade_view(simulator, MAIN, out_trade_no)["refunds"]) == 2
    with pytest.raises(ChannelRejected, match="INVALID_REQUEST"):  # 500 + 1000 + 500 > 1999
        wechat.refund(refund(out_trade_no, 500, receiver.url))
    with pytest.raises(ChannelRejected, match="INVALID_REQUEST"):  # the same number, more
        wechat.refund(refund(out_trade_no, 499, receiver.url, out_refund_no=first.out_refund_no))
    last = wechat.refund(refund(out_trade_no, 499, receiver.url))
    assert last.status is ChannelRefundStatus.SUCCEEDED


def test_query_refund(simulator: WechatPaySimulator, receiver: NotificationReceiver) -> None:
    wechat = gateway(simulator, MAIN)
    out_trade_no = _paid(simulator, receiver)
    made = wechat.refund(refund(out_trade_no, 700, receiver.url))

    found = wechat.query_refund(out_trade_no, made.out_refund_no)
    missing = wechat.query_refund(out_trade_no, new_id("rfd"))

    assert found == made
    assert missing.status is ChannelRefundStatus.NOT_FOUND
    with pytest.raises(ChannelUnavailable, match="another refund"):
        wechat.query_refund(new_id(), made.out_refund_no)


def test_refunding_an_unpaid_or_unknown_order_is_rejected(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> None:
    wechat = gateway(simulator, MAIN)
    unpaid = wechat.create_order(order(receiver.url))

    with pytest.raises(ChannelRejected, match="INVALID_REQUEST"):
        wechat.refund(refund(unpaid.out_trade_no, 100, receiver.url))
    with pytest.raises(ChannelRejected, match="no order"):
        wechat.refund(refund(new_id(), 100, receiver.url))
    with pytest.raises(ChannelRejected, match="CNY only"):
        wechat.refund(refund(unpaid.out_trade_no, 100, receiver.url, currency="JPY"))


# -- notifications as the simulator sends them -----------------------------------------------------


def test_payment_and_refund_notifications_parse_and_the_ack_stops_the_retries(
    simulator: WechatPaySimulator, receivers: Receivers
) -> None:
    wechat = gateway(simulator, MAIN)
    ack = wechat.acknowledge()
    receiver = receivers([(ack.status_code, ack.body)])
    out_trade_no = _paid(simulator, receiver)
    made = wechat.refund(refund(out_trade_no, 300, receiver.url))
    payment_note, refund_note = receiver.wait_for(2)

    paid = wechat.parse_notification(payment_note.body, payment_note.headers)
    refunded = wechat.parse_notification(refund_note.body, refund_note.headers)

    assert (ack.status_code, ack.body) == (204, "")
    assert isinstance(paid, ChannelPaymentState)
    assert paid == ChannelPaymentState(
        out_trade_no=out_trade_no,
        status=ChannelPaymentStatus.SUCCEEDED,
        amount=1999,
        currency="CNY",
        channel_order_id=out_trade_no,
        channel_transaction_id=wechat.query_order(out_trade_no).channel_transaction_id,
        notification_id=envelope(payment_note)["id"],
    )
    assert envelope(payment_note)["event_type"] == "TRANSACTION.SUCCESS"
    assert isinstance(refunded, ChannelRefundState)
    assert refunded.status is ChannelRefundStatus.SUCCEEDED
    assert (refunded.out_refund_no, refunded.out_trade_no) == (made.out_refund_no, out_trade_no)
    assert (refunded.amount, refunded.currency) == (300, "CNY")
    assert refunded.channel_refund_id == made.channel_refund_id
    assert refunded.notification_id == envelope(refund_note)["id"]
    time.sleep(QUIET)
    assert len(receiver.received()) == 2  # acknowledged at once: no retry
    deliveries = trade_view(simulator, MAIN, out_trade_no)["notifications"]
    assert [d["state"] for d in deliveries] == ["DELIVERED"]


def test_an_unacknowledged_notification_is_retried_with_the_same_id(
    simulator: WechatPaySimulator, receivers: Receivers
) -> None:
    receiver = receivers([(500, "FAIL"), (204, "")])
    wechat = gateway(simulator, MAIN)
    _paid(simulator, receiver)
    first, second = receiver.wait_for(2)

    states = [wechat.parse_notification(r.body, r.headers) for r in (first, second)]

    assert states[0] == states[1]  # the notification id is the key to deduplicate on
    assert states[0].notification_id == envelope(first)["id"] == envelope(second)["id"]
    assert first.headers["Wechatpay-Nonce"] != second.headers["Wechatpay-Nonce"]


@pytest.fixture
def captured(
    simulator: WechatPaySimulator, receiver: NotificationReceiver
) -> tuple[bytes, dict[str, str]]:
    """A payment notification exactly as the simulator sent it to wx-main's endpoint."""
    _paid(simulator, receiver)
    (note,) = receiver.received()
    return note.body, note.headers


def test_a_notification_for_another_account_is_rejected(
    simulator: WechatPaySimulator, captured: tuple[bytes, dict[str, str]]
) -> None:
    body, headers = captured
    gateway(simulator, MAIN).parse_notification(body, headers)

    with pytest.raises(CallbackRejected, match="key id"):
        gateway(simulator, OTHER).parse_notification(body, headers)


def test_a_notification_signed_for_another_account_is_rejected(
    simulator: WechatPaySimulator, receivers: Receivers, captured: tuple[bytes, dict[str, str]]
) -> None:
    """wx-other's genuine signature, relabelled with wx-main's key id, on wx-other's body."""
    other_receiver = receivers()
    other = gateway(simulator, OTHER)
    created = other.create_order(order(other_receiver.url))
    pay(simulator, str(created.next_action.code_url))
    (note,) = other_receiver.wait_for(1)
    headers = {**note.headers, "Wechatpay-Serial": captured[1]["Wechatpay-Serial"]}

    with pytest.raises(CallbackRejected, match="does not match"):
        gateway(simulator, MAIN).parse_notification(note.body, headers)


def test_a_forged_notification_is_rejected(
    simulator: WechatPaySimulator, captured: tuple[bytes, dict[str, str]]
) -> None:
    """A real signature on another body: WeChat Pay signed the other bytes, not these."""
    body, headers = captured
    forged = body.replace(b'"event_type":"TRANSACTION.SUCCESS"', b'"event_type":"TRANSACTION.FAKE"')
    assert forged != body

    with pytest.raises(CallbackRejected, match="does not match"):
        gateway(simulator, MAIN).parse_notification(forged, headers)


def test_an_unsigned_notification_is_rejected(
    simulator: WechatPaySimulator, captured: tuple[bytes, dict[str, str]]
) -> None:
    body, headers = captured
    unsigned = {k: v for k, v in headers.items() if k.lower() != "wechatpay-signature"}

    with pytest.raises(CallbackRejected, match="missing"):
        gateway(simulator, MAIN).parse_notification(body, unsigned)


@pytest.mark.parametrize("minutes", [6, -6])
def test_a_stale_notification_is_rejected(
    simulator: WechatPaySimulator,
    captured: tuple[bytes, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    minutes: int,
) -> None:
    """Our clock 6 minutes after (a replay) or before the signature: refused."""
    body, headers = captured
    wechat = gateway(simulator, MAIN)
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + timedelta(minutes=minutes))

    with pytest.raises(CallbackRejected, match="stale"):
        wechat.parse_notification(body, headers)


def test_a_tampered_notification_is_rejected(
    simulator: WechatPaySimulator, captured: tuple[bytes, dict[str, str]]
) -> None:
    body, headers = captured
    position = body.index(b'"ciphertext":"') + 20
    tampered = body[:position] + (b"A" if body[position : position + 1] != b"A" else b"B")
    tampered += body[position + 1 :]

    with pytest.raises(CallbackRejected):
        gateway(simulator, MAIN).parse_notification(tampered, headers)


# -- answers that cannot be trusted ----------------------------------------------------------------


def test_an_answer_signed_with_another_key_is_never_believed(
    simulator: WechatPaySimulator,
) -> None:
    """Expecting wx-other's WeChat Pay key, wx-main's genuine ORDER_NOT_EXIST proves nothing."""
    other = credentials(simulator, OTHER)
    wechat = gateway(
        simulator,
        MAIN,
        wechatpay_public_key=other["wechatpay_public_key"],
        wechatpay_public_key_id=other["wechatpay_public_key_id"],
    )

    with pytest.raises(ChannelUnavailable, match="does not verify"):
        wechat.query_order(new_id())


def test_a_request_signed_with_another_merchant_key_is_unavailable_not_not_found(
    simulator: WechatPaySimulator,
) -> None:
    other = credentials(simulator, OTHER)
    wechat = gateway(simulator, MAIN, merchant_private_key=other["merchant_private_key"])

    with pytest.raises(ChannelUnavailable):  # WeChat Pay's unsigned 401 SIGN_ERROR
        wechat.query_order(new_id())


def test_a_channel_that_does_not_answer_is_unavailable(simulator: WechatPaySimulator) -> None:
    wechat = gateway(simulator, MAIN, api_base_url="http://127.0.0.1:9", timeout=1.0)

    with pytest.raises(ChannelUnavailable, match="failed"):
        wechat.query_order(new_id())
    with pytest.raises(ChannelUnavailable):
        wechat.close_order(new_id())
    with pytest.raises(ChannelUnavailable):
        wechat.query_refund(new_id(), new_id("rfd"))
