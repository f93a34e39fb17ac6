"""The Stripe channel: paycore's integration with Stripe Checkout Sessions, split like every
channel package: ``client`` (the official ``stripe`` library's ``StripeClient``), ``signing``
(``Stripe-Signature`` through the library's own verification), ``transformers`` (Stripe's
words into ours), ``settings`` (an account's credentials) and ``adapter`` (the
``ChannelGateway``). Nothing is imported here, so importing the package costs nothing (and
loads no ``stripe``) until the registry asks for the adapter."""
