"""The Alipay channel: paycore's integration with the Alipay open platform in public-key mode
(RSA2), computer-website payment (``alipay.trade.page.pay``), split like every channel package:
``client`` (HTTP to the gateway), ``signing`` (RSA2), ``transformers`` (Alipay's words, times,
amounts and bill into ours), ``settings`` (an account's credentials) and ``adapter`` (the
``ChannelGateway``). Nothing is imported here, so importing the package costs nothing until the
registry asks for the adapter."""
