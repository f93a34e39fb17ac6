"""Local simulators of the real payment channels (Alipay, WeChat Pay v3, Stripe).

Development tooling, never deployed: each speaks its channel's wire protocol closely enough
that the channel's Python SDK works against it unchanged except for its base URL. The shared
pieces (switches, trade book, notification delivery, HTTP harness, buyer pages, keys) are in
``local_runtime.simulators.common``; see README.md.
"""
