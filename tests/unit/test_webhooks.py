"""Standard Webhooks signing and sending (paycore.webhooks), and the retry backoff.

Signatures are checked with the reference `standardwebhooks` library, as a merchant would;
sending is checked against a real HTTP server on loopback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from paycore.config import Settings
from paycore.services.notifications import backoff_seconds
from paycore.webhooks import (
    USER_AGENT,
    check_secret,
    new_secret,
    post_webhook,
    sign,
    signed_headers,
)

SECRET = new_secret()
BODY = json.dumps({"id": "evt_1", "object": "event", "type": "order.paid"}).encode()


def _now() -> int:
    return int(time.time())


# -- signing -----------------------------------------------------------------------------------


def _spec_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks formula written out by hand: an oracle independent of the library
    that signs."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_signed_headers_verify_with_the_standardwebhooks_library() -> None:
    headers = signed_headers([SECRET], "evt_1", _now(), BODY)

    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == USER_AGENT
    assert headers["webhook-id"] == "evt_1"


def test_the_signature_is_the_specifications_hmac_of_id_timestamp_and_body() -> None:
    assert sign([SECRET], "evt_1", 1700000000, BODY) == _spec_signature(
        SECRET, "evt_1", 1700000000, BODY
    )


def test_during_a_rotation_each_secret_signs_and_either_one_verifies() -> None:
    old = new_secret()
    headers = signed_headers([SECRET, old], "evt_1", _now(), BODY)

    timestamp = int(headers["webhook-timestamp"])
    assert headers["webhook-signature"].split(" ") == [
        _spec_signature(SECRET, "evt_1", timestamp, BODY),
        _spec_signature(old, "evt_1", timestamp, BODY),
    ]
    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)
    assert Webhook(old).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_there_is_no_unsigned_delivery() -> None:
    with pytest.raises(ValueError, match="no webhook secret"):
        sign([], "evt_1", _now(), BODY)


def test_a_tampered_body_fails_verification() -> None:
    headers = signed_headers([SECRET], "evt_1", _now(), BODY)

    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY.replace(b"order.paid", b"order.closed"), headers)


def test_another_merchants_secret_fails_verification() -> None:
    headers = signed_headers([SECRET], "evt_1", _now(), BODY)

    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_a_signature_older_than_five_minutes_is_refused_so_each_attempt_signs_afresh() -> None:
    headers = signed_headers([SECRET], "evt_1", _now() - 600, BODY)

    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY, headers)


def test_the_signature_covers_id_timestamp_and_body() -> None:
    signature = sign([SECRET], "evt_1", 1700000000, BODY)

    assert signature.startswith("v1,")
    assert signature != sign([SECRET], "evt_2", 1700000000, BODY)
    assert signature != sign([SECRET], "evt_1", 1700000001, BODY)
    assert signature != sign([SECRET], "evt_1", 1700000000, BODY + b" ")


def test_an_unpadded_secret_is_accepted_like_the_reference_library_does() -> None:
    unpadded = SECRET.rstrip("=")

    headers = signed_headers([unpadded], "evt_1", _now(), BODY)

    Webhook(SECRET).verify(BODY, headers)


def test_new_secrets_are_random_32_byte_whsec_secrets() -> None:
    made = {new_secret() for _ in range(20)}

    assert len(made) == 20
    for secret in made:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!"])
def test_an_unusable_secret_is_an_error_not_an_unsigned_delivery(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        check_secret(secret)
    with pytest.raises(ValueError, match="secret"):
        sign([secret], "evt_1", _now(), BODY)


# -- the retry backoff ---------------------------------------------------------------------------


@pytest.mark.parametrize(("attempt", "seconds"), [(1, 30), (2, 60), (3, 300), (4, 300), (50, 300)])
def test_retry_n_waits_schedule_n_minus_1_and_the_last_value_repeats(
    attempt: int, seconds: int
) -> None:
    assert backoff_seconds((30, 60, 300), attempt) == seconds


def test_backoff_refuses_an_empty_schedule_or_attempt_zero() -> None:
    with pytest.raises(ValueError, match="empty"):
        backoff_seconds((), 1)
    with pytest.raises(ValueError, match="from 1"):
        backoff_seconds((30,), 0)


def test_the_default_schedule_retries_for_at_least_three_days_within_sqs_limits() -> None:
    schedule = Settings().webhook_retry_schedule

    assert sum(schedule) >= 3 * 24 * 3600
    assert list(schedule) == sorted(schedule)
    assert max(schedule) <= 12 * 3600  # SQS refuses a longer visibility timeout


def test_the_schedule_is_read_from_the_environment_variable_format() -> None:
    settings = Settings.model_validate({"WEBHOOK_RETRY_SCHEDULE": "1, 2,3"})

    assert settings.webhook_retry_schedule == (1, 2, 3)


# -- sending -------------------------------------------------------------------------------------


@dataclass
class Endpoint:
    """A loopback HTTP endpoint that answers ``status`` after ``delay`` seconds and records
    what it received."""

    status: int = 200
    delay: float = 0.0
    location: str | None = None
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook") -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{path}"


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    state = Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {key.lower(): value for key, value in self.headers.items()}
            state.received.append((self.path, headers, body))
            time.sleep(state.delay)
            self.send_response(state.status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = _answer
        do_GET = _answer

        def log_message(self, *args: Any) -> None:
            pass

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=state.server.serve_forever, daemon=True).start()
    yield state
    state.server.shutdown()
    state.server.server_close()


@pytest.mark.parametrize("status", [200, 202, 204])
def test_a_2xx_answer_is_delivered_and_the_request_verifies(
    endpoint: Endpoint, status: int
) -> None:
    endpoint.status = status

    result = post_webhook(
        endpoint.url(), [SECRET], "evt_1", BODY, timeout=5, allow_private_targets=True
    )

    assert (result.delivered, result.status_code, result.error) == (True, status, None)
    [(_, headers, body)] = endpoint.received
    assert body == BODY
    assert Webhook(SECRET).verify(body, headers) == json.loads(BODY)
    assert headers["user-agent"] == USER_AGENT
    assert headers["content-type"] == "application/json"
    assert abs(int(headers["webhook-timestamp"]) - _now()) <= 5


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_any_other_status_is_a_failure(endpoint: Endpoint, status: int) -> None:
    endpoint.status = status

    result = post_webhook(
        endpoint.url(), [SECRET], "evt_1", BODY, timeout=5, allow_private_targets=True
    )

    assert (result.delivered, result.status_code, result.error) == (False, status, f"HTTP {status}")


def test_a_redirect_is_a_failure_and_is_not_followed(endpoint: Endpoint) -> None:
    endpoint.status = 302
    endpoint.location = endpoint.url("/elsewhere")

    result = post_webhook(
        endpoint.url(), [SECRET], "evt_1", BODY, timeout=5, allow_private_targets=True
    )

    assert (result.delivered, result.status_code) == (False, 302)
    assert [path for path, _, _ in endpoint.received] == ["/hook"]


def test_a_slow_endpoint_times_out(endpoint: Endpoint) -> None:
    endpoint.delay = 1.0

    started = time.monotonic()
    result = post_webhook(
        endpoint.url(), [SECRET], "evt_1", BODY, timeout=0.2, allow_private_targets=True
    )

    assert (result.delivered, result.status_code, result.error) == (False, None, "timeout")
    assert time.monotonic() - started < 1.0


def test_a_refused_connection_is_a_failure() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = post_webhook(
        f"http://127.0.0.1:{port}/hook",
        [SECRET],
        "evt_1",
        BODY,
        timeout=2,
        allow_private_targets=True,
    )

    assert not result.delivered
    assert result.status_code is None
    assert result.error is not None
    assert result.error.startswith("connection error")


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "/relative", "", "http://[::1/x"]
)
def test_only_http_and_https_urls_are_requested(url: str) -> None:
    result = post_webhook(url, [SECRET], "evt_1", BODY, timeout=2, allow_private_targets=True)

    assert (result.delivered, result.error) == (False, "unsupported webhook URL")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next",  # Lambda's runtime API
        "http://169.254.169.254/latest/meta-data/",  # metadata service
        "http://10.0.0.5/hook",
        "http://192.168.1.1/hook",
        "http://[::1]/hook",
        "http://localhost/hook",
        "http://no-such-host.invalid/hook",
    ],
)
def test_private_targets_are_refused_without_a_request(url: str) -> None:
    result = post_webhook(url, [SECRET], "evt_1", BODY, timeout=1)
    assert result.delivered is False
    assert result.error == "webhook URL leads to a private address"


def test_a_private_target_is_refused_before_any_connection(endpoint: Endpoint) -> None:
    result = post_webhook(endpoint.url(), [SECRET], "evt_1", BODY, timeout=2)

    assert result.error == "webhook URL leads to a private address"
    assert endpoint.received == []  # the loopback listener was never reached
