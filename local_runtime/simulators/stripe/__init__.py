"""A local Stripe: Checkout Sessions, PaymentIntents, Charges, Refunds, Events and webhooks,
Balance Transactions, closely enough that the official ``stripe`` SDK works against it with
only its base URL changed. See local_runtime/simulators/README.md, "Stripe"."""

from local_runtime.simulators.stripe.simulator import (
    DEFAULT_FEE_RATE_BPS,
    DEFAULT_PORT,
    StripeSimulator,
)

__all__ = ["DEFAULT_FEE_RATE_BPS", "DEFAULT_PORT", "StripeSimulator"]
