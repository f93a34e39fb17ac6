"""The Alipay simulator: the open platform gateway (RSA2, ``alipay.trade.page.pay``) at
``/gateway.do``, its cashier, notifications and daily bills, for local runs and tests.
See local_runtime/simulators/README.md, "Alipay"."""

from local_runtime.simulators.alipay.simulator import AlipaySimulator

__all__ = ["AlipaySimulator"]
