"""Requests API Gateway refuses before any route (and so before any function) get the API's
gateway response, as problem+json, from the local runtime too (local_runtime/apigateway.py)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from local_runtime.runtime import LocalRuntime
from tests.e2e.conftest import Merchant

PROBLEM = b"application/problem+json"


def _send(runtime: LocalRuntime, raw: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    """Send raw bytes (what no well-behaved client library would send) and read the answer."""
    address = urlsplit(runtime.api_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(raw)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, json.loads(body)


def _request(path: bytes, *headers: bytes, body: bytes = b"", method: bytes = b"GET") -> bytes:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: paycore.test", *headers]
    if body:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@pytest.fixture
def key(onboard: Callable[..., Merchant]) -> bytes:
    return b"Authorization: Bearer " + onboard().api_key.encode()


CASES = {
    "a bare CR in a header": (_request(b"/v1/orders", b"X-Note: a\rb"), 400, "bad_request"),
    "a NUL in a header": (_request(b"/v1/orders", b"X-Note: a\x00b"), 400, "bad_request"),
    "an encoded NUL in the path": (_request(b"/v1/orders/ord_%00"), 400, "bad_request"),
    "an encoded CR LF in the path": (_request(b"/v1/orders/a%0d%0aX:%20y"), 400, "bad_request"),
    "an encoded control in the path": (_request(b"/health%01"), 400, "bad_request"),
    "headers over 10,240 bytes": (
        _request(b"/v1/orders", b"X-Big: " + b"a" * 11_000),
        413,
        "payload_too_large",
    ),
    "a header line over 64 KiB": (
        _request(b"/v1/orders", b"X-Big: " + b"a" * 70_000),
        413,
        "payload_too_large",
    ),
    "a body over 10 MiB": (
        b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10485761\r\nConnection: close\r\n\r\n{",
        413,
        "payload_too_large",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_front_door_refuses_as_api_gateway_does(
    runtime: LocalRuntime, key: bytes, case: str
) -> None:
    raw, status, code = CASES[case]
    # With a valid key, so the refusal cannot be the authorizer's.
    raw = raw.replace(b"Host: paycore.test", b"Host: paycore.test\r\n" + key, 1)
    answered, headers, body = _send(runtime, raw)
    assert answered == status, (case, body)
    assert headers["content-type"].encode() == PROBLEM
    assert body["status"] == status
    assert body["code"] == code


def test_what_the_front_door_lets_through_still_works(runtime: LocalRuntime, key: bytes) -> None:
    status, _, body = _send(runtime, _request(b"/v1/orders", key, b"X-Tab: a\tb"))
    assert status == 200, body
    assert body["object"] == "list"
