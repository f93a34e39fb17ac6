"""The notification deliverer against a real local HTTP receiver: retries until the channel's
acknowledgement, gives up after the schedule, and the notification switches of the sandbox."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from local_runtime.sandbox.server import DEFAULT_NOTIFY_SCHEDULE
from local_runtime.simulators.common.delivery import (
    ALIPAY_NOTIFY_SCHEDULE,
    LOCAL_NOTIFY_SCHEDULE,
    STRIPE_NOTIFY_SCHEDULE,
    WECHATPAY_NOTIFY_SCHEDULE,
    NotificationDeliverer,
    RequestBuilder,
)
from local_runtime.simulators.common.switches import Simulate, parse_simulate
from tests.simulators.receiver import NotificationReceiver

FAST = (0.0, 0.05, 0.05, 0.05)
OK = (200, "success")
FAIL = (500, "fail")
DEAD_URL = "http://127.0.0.1:9/nobody-listens"

Receivers = Callable[..., NotificationReceiver]


def alipay_style_ack(status: int, body: bytes) -> bool:
    return status == 200 and body.strip() == b"success"


def numbered_request(name: str = "final") -> RequestBuilder:
    """A request builder that makes a different body each time, as a fresh signature would."""
    counter = itertools.count(1)

    def build() -> tuple[bytes, Mapping[str, str]]:
        number = next(counter)
        return f"{name}-{number}".encode(), {
            "Content-Type": "text/plain",
            "X-Attempt": str(number),
        }

    return build


@pytest.fixture
def deliverer() -> Iterator[NotificationDeliverer]:
    sender = NotificationDeliverer(FAST, timeout=1.0)
    sender.start()
    yield sender
    sender.stop()


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    started: list[NotificationReceiver] = []

    def start(*replies: tuple[int, str], delay: float = 0.0) -> NotificationReceiver:
        started.append(NotificationReceiver(list(replies), delay=delay))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


def deliver(
    deliverer: NotificationDeliverer,
    url: str,
    switches: str | None = None,
    *,
    topic: Any = ("trade", "acct_a", "pay_1"),
    stale: RequestBuilder | None = None,
    build: RequestBuilder | None = None,
    is_ack: Callable[[int, bytes], bool] = alipay_style_ack,
) -> list[str]:
    return deliverer.deliver(
        topic,
        url,
        build or numbered_request(),
        is_ack,
        parse_simulate(switches),
        stale_request=stale,
        label="TRADE_SUCCESS",
    )


def settled_history(
    deliverer: NotificationDeliverer, topic: Any = ("trade", "acct_a", "pay_1")
) -> list[dict[str, Any]]:
    """The history once no delivery is PENDING any more."""
    deadline = time.monotonic() + 3
    while True:
        history = deliverer.history(topic)
        if all(entry["state"] != "PENDING" for entry in history):
            return history
        assert time.monotonic() < deadline, history
        time.sleep(0.01)


# -- retries -----------------------------------------------------------------------------------


def test_a_notification_is_retried_with_a_fresh_request_until_acknowledged(
    deliverer: NotificationDeliverer, receivers: Receivers
) -> None:
    receiver = receivers(FAIL, (200, "not the ack"), OK)

    ids = deliver(deliverer, receiver.url)

    received = receiver.wait_for(3)
    [entry] = settled_history(deliverer)
    assert [r.body for r in received] == [b"final-1", b"final-2", b"final-3"]
    assert [r.headers["X-Attempt"] for r in received] == ["1", "2", "3"]
    assert received[0].headers["Content-Type"] == "text/plain"
    assert entry["notification_id"] == ids[0]
    assert (entry["state"], entry["label"], entry["url"]) == (
        "DELIVERED",
        "TRADE_SUCCESS",
        receiver.url,
    )
    assert [a["http_status"] for a in entry["attempts"]] == [500, 200, 200]
    assert [a["acknowledged"] for a in entry["attempts"]] == [False, False, True]
    assert [a["response"] for a in entry["attempts"]] == ["fail", "not the ack", "success"]
    assert [a["number"] for a in entry["attempts"]] == [1, 2, 3]
    time.sleep(0.15)
    assert len(receiver.received()) == 3  # nothing after the acknowledgement


def test_after_the_last_scheduled_attempt_the_deliverer_gives_up(
    deliverer: NotificationDeliverer, receivers: Receivers
) -> None:
    receiver = receivers(FAIL)

    deliver(deliverer, receiver.url)

    [entry] = settled_history(deliverer)
    assert entry["state"] == "EXHAUSTED"
    assert len(entry["attempts"]) == len(FAST)
    time.sleep(0.15)
    assert len(receiver.received()) == len(FAST)


def test_the_retries_wait_as_the_schedule_says(receivers: Receivers) -> None:
    sender = NotificationDeliverer((0, 0.2, 0.4))
    sender.start()
    receiver = receivers(FAIL)
    try:
        deliver(sender, receiver.url)
        received = receiver.wait_for(3)
    finally:
        sender.stop()

    first_gap, second_gap = received[1].at - received[0].at, received[2].at - received[1].at
    assert 0.2 <= first_gap < 0.35
    assert 0.4 <= second_gap < 0.55


def test_a_transport_failure_is_a_failed_attempt(deliverer: NotificationDeliverer) -> None:
    deliver(deliverer, DEAD_URL)

    [entry] = settled_history(deliverer)
    assert entry["state"] == "EXHAUSTED"
    assert all(a["http_status"] is None for a in entry["attempts"])
    assert entry["attempts"][0]["error"].startswith("connection failed")


def test_a_redirect_is_not_followed(deliverer: NotificationDeliverer, receivers: Receivers) -> None:
    receiver = receivers((302, ""), OK)

    deliver(deliverer, receiver.url)

    [entry] = settled_history(deliverer)
    assert [a["http_status"] for a in entry["attempts"]] == [302, 200]
    assert entry["state"] == "DELIVERED"


def test_a_slow_receiver_times_out_and_is_retried(receivers: Receivers) -> None:
    sender = NotificationDeliverer((0, 0.05), timeout=0.2)
    sender.start()
    receiver = receivers(OK, delay=0.5)
    try:
        deliver(sender, receiver.url)
        [entry] = settled_history(sender)
    finally:
        sender.stop()

    assert entry["state"] == "EXHAUSTED"
    assert [a["error"] for a in entry["attempts"]] == ["timeout", "timeout"]


def test_the_channels_ack_check_decides(
    deliverer: NotificationDeliverer, receivers: Receivers
) -> None:
    receiver = receivers((204, ""))

    deliver(deliverer, receiver.url, is_ack=lambda status, body: status in (200, 204))

    [entry] = settled_history(deliverer)
    assert entry["state"] == "DELIVERED"
    assert len(entry["attempts"]) == 1


def test_a_failing_builder_or_ack_check_is_a_failed_attempt(
    deliverer: NotificationDeliverer, receivers: Receivers
) -> None:
    receiver = receivers(OK)
    builds = itertools.count(1)

    def flaky_build() -> tuple[bytes, Mapping[str, str]]:
        if next(builds) == 1:
            raise RuntimeError("no key")
        return b"body", {}

    def broken_ack(status: int, body: bytes) -> bool:
        raise ValueError("bug")

    deliver(deliverer, receiver.url, build=flaky_build)
    deliver(deliverer, receiver.url, topic="broken", is_ack=broken_ack)

    [flaky] = settled_history(deliverer)
    [broken] = settled_history(deliverer, "broken")
    assert flaky["attempts"][0]["error"] == "request not built: no key"
    assert flaky["state"] == "DELIVERED"
    assert broken["state"] == "EXHAUSTED"


# -- the notification switches -----------------------------------------------------------------


def test_notify_drop_sends_nothing_and_records_it(
    deliverer: NotificationDeliverer, receivers: Receivers
) -> None:
    receiver = receivers(OK)

    deliver(deliverer, receiver.url, '{"notify_drop": true, "notify_duplicate": 3}')
    deliver(
        deliverer,
        receiver.url,
        '{"notify_drop": true, "notify_reorder": true}',
        topic="reordered",
        stale=numbered_request("stale"),
    )

    time.sleep(0.2)
    assert receiver.received() == []
    [dropped] = deliverer.history(("trade", "acct_a", "pay_1"))
    assert (dropped["state"], dropped["attempts"], dropped["copies"]) == ("DROPPED", [], 1)
    both = deliverer.history("reordered")
    assert [(entry["state"], entry["stale"]) for entry in both] == [
        ("DROPPED", False),
        ("DROPPED", True),
    ]


def test_notify_duplicate_sends_independent_copies_each_retried_on_its_own(
    deliverer: NotificationDeliverer, receivers: Receivers
) -> None:
    receiver = receivers(FAIL, OK)  # the first request to arrive fails, then all succeed

    [notification_id] = deliver(deliverer, receiver.url, '{"notify_duplicate": 3}')

    history = settled_history(deliverer)
    received = receiver.received()
    assert len(received) == 4
    assert [(entry["copy"], entry["copies"]) for entry in history] == [(1, 3), (2, 3), (3, 3)]
    assert {entry["notification_id"] for entry in history} == {notification_id}
    assert [entry["state"] for entry in history] == ["DELIVERED"] * 3
    assert sorted(len(entry["attempts"]) for entry in history) == [1, 1, 2]


def test_notify_duplicate_copies_go_out_at_the_same_time(
    deliverer: NotificationDeliverer, receivers: Receivers
) -> None:
    receiver = receivers(OK, delay=0.3)  # a slow receiver: copies in a row would be 0.3 s apart

    deliver(deliverer, receiver.url, '{"notify_duplicate": 3}')

    arrivals = [r.at for r in receiver.wait_for(3)]
    assert max(arrivals) - min(arrivals) < 0.2


def test_notify_reorder_sends_the_stale_request_half_a_second_after_the_final_one(
    deliverer: NotificationDeliverer, receivers: Receivers
) -> None:
    receiver = receivers(OK)

    final_id, stale_id = deliver(
        deliverer, receiver.url, '{"notify_reorder": true}', stale=numbered_request("stale")
    )

    final, stale = receiver.wait_for(2)
    assert (final.body, stale.body) == (b"final-1", b"stale-1")
    assert 0.45 <= stale.at - final.at < 0.7
    history = settled_history(deliverer)
    assert [(e["notification_id"], e["stale"]) for e in history] == [
        (final_id, False),
        (stale_id, True),
    ]
    assert final_id != stale_id


def test_notify_reorder_without_a_stale_request_sends_only_the_final_one(
    deliverer: NotificationDeliverer, receivers: Receivers
) -> None:
    receiver = receivers(OK)

    ids = deliver(deliverer, receiver.url, '{"notify_reorder": true}')

    time.sleep(0.7)
    assert len(ids) == 1
    assert [r.body for r in receiver.received()] == [b"final-1"]


def test_the_stale_request_is_duplicated_and_delayed_like_the_final_one(
    deliverer: NotificationDeliverer, receivers: Receivers
) -> None:
    receiver = receivers(OK)
    started = time.monotonic()

    deliver(
        deliverer,
        receiver.url,
        '{"notify_reorder": true, "notify_duplicate": 2, "notify_delay_seconds": 0.2}',
        stale=numbered_request("stale"),
    )

    received = receiver.wait_for(4)
    finals = [r for r in received if r.body.startswith(b"final")]
    stales = [r for r in received if r.body.startswith(b"stale")]
    assert len(finals) == len(stales) == 2
    assert all(r.at - started >= 0.2 for r in finals)
    assert all(r.at - started >= 0.7 for r in stales)


def test_notify_delay_holds_back_the_first_attempt_only(
    deliverer: NotificationDeliverer, receivers: Receivers
) -> None:
    receiver = receivers(FAIL, OK)
    started = time.monotonic()

    deliver(deliverer, receiver.url, '{"notify_delay_seconds": 0.3}')

    first, second = receiver.wait_for(2)
    assert first.at - started >= 0.3
    assert second.at - first.at < 0.2  # the retry follows the schedule (0.05 s)


def test_the_deliverer_ignores_query_only_which_is_the_callers_to_honour(
    deliverer: NotificationDeliverer, receivers: Receivers
) -> None:
    receiver = receivers(OK)

    deliver(deliverer, receiver.url, '{"query_only": true}')

    assert len(receiver.wait_for(1)) == 1


# -- stop --------------------------------------------------------------------------------------


def test_stop_cancels_what_is_not_sent(receivers: Receivers) -> None:
    sender = NotificationDeliverer((0.3, 0.05))
    sender.start()
    receiver = receivers(OK)
    deliver(sender, receiver.url)

    sender.stop()
    sender.stop()  # idempotent
    deliver(sender, receiver.url, topic="after stop")

    time.sleep(0.5)
    assert receiver.received() == []
    assert [e["state"] for e in sender.history(("trade", "acct_a", "pay_1"))] == ["CANCELLED"]
    assert [e["state"] for e in sender.history("after stop")] == ["CANCELLED"]


def test_stop_ends_the_retries_of_a_failing_notification(receivers: Receivers) -> None:
    sender = NotificationDeliverer((0, 0.2, 0.2))
    sender.start()
    receiver = receivers(FAIL)
    deliver(sender, receiver.url)
    receiver.wait_for(1)

    sender.stop()

    time.sleep(0.4)
    assert len(receiver.received()) == 1
    [entry] = sender.history(("trade", "acct_a", "pay_1"))
    assert entry["state"] == "CANCELLED"


# -- schedules ---------------------------------------------------------------------------------


def test_a_schedule_needs_at_least_one_delay_none_negative() -> None:
    with pytest.raises(ValueError, match="schedule"):
        NotificationDeliverer(())
    with pytest.raises(ValueError, match="schedule"):
        NotificationDeliverer((0, -1))


def test_the_real_channels_schedules_span_what_the_channels_document() -> None:
    hour = 3600
    # Alipay: 8 notifications in about 25 hours (the first at once).
    assert len(ALIPAY_NOTIFY_SCHEDULE) == 8 and ALIPAY_NOTIFY_SCHEDULE[0] == 0
    assert 24 * hour < sum(ALIPAY_NOTIFY_SCHEDULE) < 25 * hour
    # WeChat Pay: 15 retries after the first notification, 24 h 4 min in all.
    assert len(WECHATPAY_NOTIFY_SCHEDULE) == 16 and WECHATPAY_NOTIFY_SCHEDULE[0] == 0
    assert sum(WECHATPAY_NOTIFY_SCHEDULE) == 24 * hour + 4 * 60
    # Stripe: exponential back-off within 3 days.
    retries = STRIPE_NOTIFY_SCHEDULE[1:]
    assert STRIPE_NOTIFY_SCHEDULE[0] == 0
    assert all(later == 2 * earlier for earlier, later in itertools.pairwise(retries))
    assert 2 * 24 * hour < sum(STRIPE_NOTIFY_SCHEDULE) <= 3 * 24 * hour
    # Locally: the sandbox's compressed schedule.
    assert LOCAL_NOTIFY_SCHEDULE == DEFAULT_NOTIFY_SCHEDULE
    assert NotificationDeliverer().schedule == tuple(float(d) for d in DEFAULT_NOTIFY_SCHEDULE)


def test_switches_of_the_sandbox_model_work_too(
    deliverer: NotificationDeliverer, receivers: Receivers
) -> None:
    from local_runtime.sandbox.models import SandboxBehaviour

    receiver = receivers(OK)

    deliverer.deliver(
        "sandbox", receiver.url, numbered_request(), alipay_style_ack, SandboxBehaviour()
    )
    deliverer.deliver("simulate", receiver.url, numbered_request(), alipay_style_ack, Simulate())

    assert len(receiver.wait_for(2)) == 2
