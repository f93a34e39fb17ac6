"""Which URLs paycore will call or send a buyer to (paycore.http_urls)."""

from __future__ import annotations

import pytest

from paycore.http_urls import check_http_url, is_http_url

GOOD = [
    "https://shop.example/webhooks",
    "http://127.0.0.1:8000/webhooks",
    "https://shop.example:8443/hooks?token=abc&x=%20y",
    "https://[2001:db8::1]:443/hook",
    "https://xn--6qq79v.example/hook",
    "https://shop.example/hook#fragment",
]

BAD = {
    "leading blank": " https://shop.example/hook",
    "trailing blank": "https://shop.example/hook ",
    "space inside": "https://shop.example/my hook",
    "CR/LF": "https://shop.example/hook\r\nX-Injected: 1",
    "LF": "https://shop.example/hook\n",
    "tab": "https://shop.example/\thook",
    "NUL": "https://shop.example/\x00",
    "DEL": "https://shop.example/\x7f",
    "non-ASCII path": "https://shop.example/hoök",
    "non-ASCII host": "https://商店.example/hook",
    "port too big": "https://shop.example:99999/hook",
    "port 0": "https://shop.example:0/hook",
    "port not a number": "https://shop.example:abc/hook",
    "empty port host": "https://:8443/hook",
    "no host": "https:///hook",
    "relative": "/webhooks",
    "ftp": "ftp://shop.example/hook",
    "file": "file:///etc/passwd",
    "javascript": "javascript:alert(1)",
    "credentials": "https://user:pass@shop.example/hook",
    "bad host": "https://shop_example!/hook",
    "bad IPv6": "https://[zz::1]/hook",
    "unbalanced bracket": "https://[::1/hook",
    "too long": "https://shop.example/" + "a" * 2100,
}


@pytest.mark.parametrize("url", GOOD)
def test_requestable_urls_are_accepted(url: str) -> None:
    assert check_http_url(url) == url
    assert is_http_url(url)


@pytest.mark.parametrize("case", sorted(BAD))
def test_urls_no_request_can_carry_are_refused(case: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        check_http_url(BAD[case])
    assert not is_http_url(BAD[case])
