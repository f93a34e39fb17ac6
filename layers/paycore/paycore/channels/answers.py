"""What every channel adapter checks of a channel's answer before it believes it.

An answer that cannot be read, or that is about another refund than the one asked about, does
not tell the outcome: the adapter raises ``ChannelUnavailable`` (through its client's
``unavailable``, which logs it in the channel's words) and the caller asks again later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from paycore.channels.base import ChannelRefundState
from paycore.channels.reading import Unreadable

_T = TypeVar("_T")


class AnswerChecks:
    """A base of the channel adapters: ``_unavailable`` is their client's."""

    def _unavailable(self, reference: str, reason: str) -> NoReturn:
        """Log and raise ``ChannelUnavailable`` about ``reference`` (the channel's client)."""
        raise NotImplementedError

    def _readable(self, read: Callable[[Any], _T], body: Any, reference: str) -> _T:
        """``read(body)``, or ChannelUnavailable when an answer is not what we expect."""
        try:
            return read(body)
        except Unreadable as exc:
            self._unavailable(reference, f"unreadable answer: {exc}")

    def _check_same_refund(
        self, out_trade_no: str, out_refund_no: str, state: ChannelRefundState
    ) -> None:
        if (state.out_trade_no, state.out_refund_no) != (out_trade_no, out_refund_no):
            self._unavailable(
                out_refund_no,
                f"the answer is about another refund ({state.out_refund_no} of "
                f"{state.out_trade_no})",
            )
