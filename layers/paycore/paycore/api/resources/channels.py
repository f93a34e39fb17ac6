"""The channels a payment can use."""

from __future__ import annotations

from typing import Literal

from paycore.api.resources.common import Resource


class Channel(Resource):
    """A channel a payment instrument can name, and what the buyer does there."""

    object: Literal["channel"]
    channel: str
    next_action_type: Literal["redirect", "qr_code"]


class ChannelList(Resource):
    object: Literal["list"]
    data: list[Channel]
    has_more: bool
