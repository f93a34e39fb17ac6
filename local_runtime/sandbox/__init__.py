"""The sandbox channel: a local stand-in for a redirect payment channel (Alipay, WeChat Pay,
Stripe Checkout) so every payment flow can be tried without credentials.

It is dev tooling that runs beside the backend and is never deployed; paycore talks to it only
over HTTP through ``paycore.channels.sandbox``, exactly as it would talk to a real channel.
See README.md for the HTTP API.
"""

from local_runtime.sandbox.server import SandboxServer

__all__ = ["SandboxServer"]
