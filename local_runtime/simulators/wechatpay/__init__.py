"""The local WeChat Pay API v3 simulator (Native pay, WeChat Pay public-key mode): development
tooling that the ``wechatpayv3`` SDK works against unchanged except for its base URL. See the
simulators README, "WeChat Pay"."""

from local_runtime.simulators.wechatpay.simulator import WechatPaySimulator

__all__ = ["WechatPaySimulator"]
