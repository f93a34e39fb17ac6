"""The channel gateway: one adapter per payment channel behind ``ChannelGateway``."""
