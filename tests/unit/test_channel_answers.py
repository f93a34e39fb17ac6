"""The answer checks every channel adapter shares (paycore.channels.answers)."""

from __future__ import annotations

from typing import NoReturn

import pytest

from paycore.channels.alipay.adapter import AlipayGateway
from paycore.channels.answers import AnswerChecks
from paycore.channels.base import ChannelRefundState, ChannelRefundStatus
from paycore.channels.reading import Unreadable
from paycore.channels.sandbox.adapter import SandboxGateway
from paycore.channels.stripe.adapter import StripeGateway
from paycore.channels.wechatpay.adapter import WechatPayGateway
from paycore.errors import ChannelUnavailable


class _Checks(AnswerChecks):
    def __init__(self) -> None:
        self.told: list[tuple[str, str]] = []

    def _unavailable(self, reference: str, reason: str) -> NoReturn:
        self.told.append((reference, reason))
        raise ChannelUnavailable(reason)


def _unreadable(body: object) -> str:
    raise Unreadable(f"bad {body}")


@pytest.mark.parametrize(
    "gateway", [SandboxGateway, WechatPayGateway, StripeGateway, AlipayGateway]
)
def test_every_adapter_tells_its_own_client(gateway: type[AnswerChecks]) -> None:
    assert issubclass(gateway, AnswerChecks)
    assert gateway._unavailable is not AnswerChecks._unavailable


def test_readable_reads() -> None:
    assert _Checks()._readable(str.upper, "abc", "ref") == "ABC"


def test_an_unreadable_answer_leaves_the_outcome_unknown() -> None:
    checks = _Checks()
    with pytest.raises(ChannelUnavailable):
        checks._readable(_unreadable, "x", "ref")
    assert checks.told == [("ref", "unreadable answer: bad x")]


def test_the_same_refund_passes() -> None:
    checks = _Checks()
    state = ChannelRefundState("rfd_1", "pay_1", ChannelRefundStatus.PENDING)
    checks._check_same_refund("pay_1", "rfd_1", state)
    assert checks.told == []


@pytest.mark.parametrize(
    ("out_trade_no", "out_refund_no"), [("pay_2", "rfd_1"), ("pay_1", "rfd_2")]
)
def test_an_answer_about_another_refund_leaves_the_outcome_unknown(
    out_trade_no: str, out_refund_no: str
) -> None:
    checks = _Checks()
    state = ChannelRefundState("rfd_1", "pay_1", ChannelRefundStatus.SUCCEEDED)
    with pytest.raises(ChannelUnavailable):
        checks._check_same_refund(out_trade_no, out_refund_no, state)
    assert checks.told == [(out_refund_no, "the answer is about another refund (rfd_1 of pay_1)")]
