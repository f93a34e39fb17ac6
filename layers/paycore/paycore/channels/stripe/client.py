"""HTTP to one Stripe account, through the official ``stripe`` library's ``StripeClient``.

The client is built once per gateway: the account's secret key, ``base_addresses={"api":
api_base_url}`` (the local simulator, or Stripe's production API), the HTTP timeout from
``settings.channel_timeout_seconds``, ``max_network_retries=0`` (paycore's state machines do
the retrying, each retry after a status query), and ``requests`` sessions that follow no
redirect (Stripe's API never redirects; a followed POST would turn into a GET), one per thread
as the library keeps them by default (a process may share one gateway between threads).

Error policy, which the payment and refund state machines rely on: anything that leaves the
outcome unknown raises ``ChannelUnavailable`` and the caller must query before doing anything
else: a transport failure or timeout (``APIConnectionError``), a 5xx, a 409
``idempotency_key_in_use`` or a body that is not Stripe's (``APIError``), a 429
(``RateLimitError``), and an ``IdempotencyError`` (the key was used with other parameters, so
an earlier attempt may have done something). A 4xx in Stripe's error envelope is Stripe's
refusal: it is raised as ``Refused`` for the adapter to read (a 404 of a retrieve means "no
such object"; an ``expire`` of a session that is not open is answered by retrieving it;
anything else is ``ChannelRejected``). No exception of the library leaves this module.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar, cast

import requests
import stripe

from paycore.channels.stripe.settings import StripeSettings
from paycore.errors import ChannelUnavailable

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


class Refused(Exception):
    """Stripe answered the request with a refusal in its error envelope (4xx)."""

    def __init__(
        self,
        http_status: int,
        error_type: str | None,
        code: str | None,
        message: str,
        param: str | None = None,
    ) -> None:
        super().__init__(f"HTTP {http_status} {error_type or ''} {code or ''}: {message}")
        self.http_status = http_status
        self.error_type = error_type
        self.code = code
        self.message = message
        self.param = param


class ThreadSessions:
    """What ``stripe.RequestsClient`` takes as its ``session``: a ``requests`` session per
    thread, each following no redirect (a 3xx raises ``TooManyRedirects``, which the library
    turns into ``APIConnectionError``: an unknown outcome)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def current(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.max_redirects = 0
            self._local.session = session
        return session

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        return self.current().request(*args, **kwargs)

    def close(self) -> None:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is not None:
            session.close()


class StripeApi:
    """The ``StripeClient`` of one account, and the one place its errors are read."""

    def __init__(self, settings: StripeSettings, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError("the HTTP timeout must be positive")
        self.base_url = settings.api_base_url
        self.timeout = timeout
        sessions = cast(requests.Session, ThreadSessions())
        self.client = stripe.StripeClient(
            settings.secret_key.get_secret_value(),
            base_addresses={"api": settings.api_base_url},
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout, session=sessions),
        )

    def __repr__(self) -> str:  # never shows the key
        return f"StripeApi(base_url={self.base_url!r}, timeout={self.timeout})"

    def call(self, reference: str, what: str, send: Callable[[], _T]) -> _T:
        """``send()`` (one call of the library) with the error policy above. ``reference``
        (our payment or refund id) and ``what`` name the call in logs and errors."""
        try:
            return send()
        except stripe.IdempotencyError as exc:
            self.unavailable(
                reference, f"{what}: the idempotency key was used otherwise ({exc.code})"
            )
        except stripe.AuthenticationError as exc:
            # Its message quotes part of the key: say only what happened.
            raise Refused(
                exc.http_status or 401,
                "authentication_error",
                None,
                "Stripe refused the account's API key",
            ) from None
        except (stripe.InvalidRequestError, stripe.CardError, stripe.PermissionError) as exc:
            status = exc.http_status
            if status is None or status >= 500 or status in _RETRYABLE_4XX:
                self.unavailable(reference, f"{what} answered HTTP {status}")
            error = exc.error
            raise Refused(
                status,
                getattr(error, "type", None),
                exc.code,
                exc.user_message or "Stripe refused the request",
                getattr(error, "param", None),
            ) from None
        except stripe.StripeError as exc:  # connection, timeout, 5xx, 409, 429, not Stripe's body
            self.unavailable(
                reference, f"{what} failed: {type(exc).__name__} (HTTP {exc.http_status})"
            )
        except (OSError, ValueError) as exc:
            self.unavailable(reference, f"{what} failed: {type(exc).__name__}")

    def get_raw(self, reference: str, path: str, params: dict[str, Any]) -> tuple[str, Any]:
        """A GET whose exact answer we keep: (the body as Stripe sent it, its JSON)."""
        response = self.call(
            reference, f"GET {path}", lambda: self.client.raw_request("get", path, **params)
        )
        body, data = getattr(response, "body", None), getattr(response, "data", None)
        if not isinstance(body, str):
            self.unavailable(reference, f"GET {path}: no body")
        return body, data

    def unavailable(self, reference: str, reason: str) -> NoReturn:
        logger.warning("stripe channel unavailable for %s: %s", reference, reason)
        raise ChannelUnavailable(f"stripe channel: {reason}")
