"""The WeChat Pay channel: API v3, Native pay (扫码支付), direct merchants, WeChat Pay public-key
mode. Split like every channel package: ``client`` (HTTP), ``signing`` (WECHATPAY2-SHA256-RSA2048
and AEAD_AES_256_GCM), ``transformers`` (WeChat Pay's words into ours), ``settings`` (an
account's credentials) and ``adapter`` (the ``ChannelGateway``). Nothing is imported here, so
importing the package costs nothing until the registry asks for the adapter."""
