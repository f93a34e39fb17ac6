"""Local simulators of the real payment channels (Alipay, WeChat Pay v3, Stripe).

Development tooling, never deployed: each speaks its channel's wire protocol closely enough
that the channel's Python SDK works against it unchanged except for its base URL. The shared
pieces (switches, trade book, notification delivery, HTTP harness, buyer pages, keys) are in
``local_runtime.simulators.common``; see README.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

# Each channel's simulator class, imported on first use: channel -> (module, class name).
_CLASSES = {
    "alipay": ("local_runtime.simulators.alipay", "AlipaySimulator"),
    "wechatpay": ("local_runtime.simulators.wechatpay", "WechatPaySimulator"),
    "stripe": ("local_runtime.simulators.stripe", "StripeSimulator"),
}


def _factory(module: str, name: str) -> Callable[..., Any]:
    def create(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    return create


# channel -> factory(host, port, *, accounts, notify_schedule) of its simulator.
SIMULATORS: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {channel: _factory(module, name) for channel, (module, name) in _CLASSES.items()}
)
