"""One hierarchy of domain errors, each with a stable machine ``code``.

They say what went wrong in domain terms; ``paycore.api.problem`` is the one place that maps
them to HTTP statuses and problem+json bodies.
"""

from __future__ import annotations


class PaycoreError(Exception):
    """Base of every error paycore raises on purpose."""

    code: str = "internal_error"

    def __init__(self, detail: str, *, code: str | None = None, param: str | None = None):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.param = param


class MalformedRequest(PaycoreError):
    """The request cannot be read at all (e.g. the body is not JSON)."""

    code = "malformed_request"


class PayloadTooLarge(PaycoreError):
    """The request body is larger than the API reads."""

    code = "payload_too_large"


class UnsupportedMediaType(PaycoreError):
    """The request body is not JSON."""

    code = "unsupported_media_type"


class ValidationFailed(PaycoreError):
    """The request is readable but a field is wrong."""

    code = "validation_failed"


class Unauthenticated(PaycoreError):
    code = "unauthenticated"


class Forbidden(PaycoreError):
    """The caller may not do this from where it is (a cross-site request to the cashier)."""

    code = "forbidden"


class NotFound(PaycoreError):
    code = "not_found"


class Conflict(PaycoreError):
    """The request is valid but the object's current state does not allow it."""

    code = "conflict"


class IdempotencyKeyReused(PaycoreError):
    code = "idempotency_key_reused"


class IdempotencyInProgress(PaycoreError):
    code = "idempotency_in_progress"


class Throttled(PaycoreError):
    code = "rate_limited"


class ServiceUnavailable(PaycoreError):
    """A dependency we need is down; the request may be retried with the same key."""

    code = "service_unavailable"


class ConcurrentUpdate(PaycoreError):
    """A conditional write lost a race: the item changed since it was read."""

    code = "concurrent_update"


class TryAgain(PaycoreError):
    """Valid, but not possible yet: the same request works shortly (never replayed for an
    Idempotency-Key, unlike a refusal)."""

    code = "try_again"


# Raised by channel adapters. Their class names are matched by the state machine's Catch
# clauses, so they are part of the orchestration contract: do not rename them lightly.
class ChannelError(PaycoreError):
    code = "channel_error"


class ChannelRejected(ChannelError):
    """The channel answered and refused the request: final, do not retry."""

    code = "channel_rejected"


class ChannelUnavailable(ChannelError):
    """No usable answer (timeout, connection error, 5xx): the outcome is unknown."""

    code = "channel_unavailable"


class CallbackRejected(ChannelError):
    """A channel notification failed verification (signature, timestamp, shape)."""

    code = "callback_rejected"
