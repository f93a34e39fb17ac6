"""The URLs paycore will send an HTTP request to, or send a buyer to (webhook endpoints,
``return_url``): absolute http(s) URLs that a client can actually request, checked once.

``urlsplit`` alone accepts what no request can carry: spaces, control characters and CR/LF
(a header-injection vector), a leading blank, a port of 0 or 99999, an empty host. A URL is
accepted only when it is already in the form it will be sent in, so what the merchant sees on
its endpoint is exactly what we call.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
SCHEMES = frozenset({"http", "https"})

# A DNS name (labels of letters, digits and hyphens; punycode included) or an IPv4 literal.
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$"
)


def check_http_url(value: str) -> str:
    """``value`` if it is an absolute http(s) URL that can be requested as written;
    ``ValueError`` saying why not."""
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
    if not all(0x21 <= ord(character) <= 0x7E for character in value):
        raise ValueError(
            "must be printable ASCII without spaces or control characters "
            "(percent-encode the rest, punycode an international host)"
        )
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:  # a port that is not a number 0-65535, an unbalanced bracket
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme not in SCHEMES:
        raise ValueError("must be an absolute http or https URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials")
    if port == 0:
        raise ValueError("must not use port 0")
    host = parts.hostname or ""
    if not host:
        raise ValueError("must name a host")
    if ":" in host:  # an IPv6 literal (in brackets in the URL)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("must name a valid IPv6 address in brackets") from None
    elif not _HOST_NAME.match(host):  # ``hostname`` is lower-cased
        raise ValueError("must name a valid host")
    return value


def is_http_url(value: str) -> bool:
    try:
        check_http_url(value)
    except ValueError:
        return False
    return True
