"""The sandbox channel: paycore's integration with its own local redirect channel (dev tooling,
local_runtime/sandbox), split like every channel package: ``client`` (HTTP), ``signing``,
``transformers`` (the sandbox's words into ours), ``settings`` (an account's credentials) and
``adapter`` (the ``ChannelGateway``). Nothing is imported here, so importing the package costs
nothing until the registry asks for the adapter."""
