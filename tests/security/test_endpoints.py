"""Plain HTTP only to loopback, for every URL abrecon sends a request to: the API endpoint, the LWA endpoint (it
carries the client secret) and the presigned download URL (it comes from Amazon's answer, so it is input).

tests/unit covers the everyday cases per module; this checks hostile hosts through all three doors, and through
requests itself: a URL is accepted only if the host requests would really connect to is a loopback host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from abrecon.auth import LwaTokenProvider
from abrecon.client import AmazonBusinessClient
from abrecon.errors import ConfigurationError

CREDENTIALS = {"client_id": "id", "client_secret": "amzn1.oa2-cs.v1.SECRET", "refresh_token": "Atzr|REFRESH"}
HTTPS_API = "https://na.business-api.amazon.com"


class Sent(Exception):
    """Raised instead of sending: carries the URL requests prepared, i.e. the host it would connect to."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class _NoNetwork(HTTPAdapter):
    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        raise Sent(request.url or "")


def session() -> requests.Session:
    s = requests.Session()
    s.mount("http://", _NoNetwork())
    s.mount("https://", _NoNetwork())
    return s


class _Tokens:
    def access_token(self) -> str:
        return "Atza|TOKEN"

    def invalidate(self, refused: str | None = None) -> None:
        pass


def via_api_endpoint(url: str) -> None:
    AmazonBusinessClient(url, _Tokens(), session=session(), sleep=lambda _s: None).get_report("R1")


def via_lwa_endpoint(url: str) -> None:
    provider = LwaTokenProvider("abrecon/lwa", url, session=session(), secret_loader=lambda _sid: dict(CREDENTIALS))
    provider.access_token()


def via_download_url(url: str) -> None:
    client = AmazonBusinessClient(HTTPS_API, _Tokens(), session=session(), sleep=lambda _s: None)
    client.download(url, max_bytes=1000)


DOORS: dict[str, Callable[[str], None]] = {
    "api-endpoint": via_api_endpoint,
    "lwa-endpoint": via_lwa_endpoint,
    "download-url": via_download_url,
}

REFUSED = [
    "http://localhost.evil.example/x",  # a loopback name as a prefix of another host
    "http://127.0.0.1.evil.example/x",
    "http://evil.example\\@127.0.0.1/x",  # urlsplit reads host 127.0.0.1; requests connects to evil.example
    "http://127.0.0.1\\@evil.example/x",  # the other way round: ambiguous, refused
    "http://localhost:80@evil.example/x",  # userinfo that looks like a host
    "http://evil.example#@127.0.0.1/x",
    "http://evil.example?@127.0.0.1/x",
    "http://0.0.0.0/x",  # "this host" is not loopback
    "http://[::]/x",
    "HTTP://evil.example/x",
    "ws://127.0.0.1/x",
    "https:/evil.example/x",  # no authority at all
    "//127.0.0.1/x",
]

ACCEPTED = [
    ("http://127.0.0.1:8080/x", "127.0.0.1"),
    ("http://127.3.4.5/x", "127.3.4.5"),
    ("http://localhost:8080/x", "localhost"),
    ("http://LOCALHOST:8080/x", "localhost"),
    ("http://[::1]:8080/x", "[::1]"),
    ("https://na.business-api.amazon.com/x", "na.business-api.amazon.com"),
    ("https://d34o8swod1owfl.cloudfront.net/doc?X-Amz-Signature=abc", "d34o8swod1owfl.cloudfront.net"),
]


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("url", REFUSED)
def test_non_https_non_loopback_urls_are_refused_before_any_request(door: str, url: str) -> None:
    try:
        DOORS[door](url)
    except ConfigurationError as exc:
        assert "X-Amz-Signature" not in str(exc)
    except Sent as sent:
        pytest.fail(f"{door}: {url!r} was accepted and sent to {sent.url!r}")
    else:
        pytest.fail(f"{door}: {url!r} was accepted")


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(("url", "host"), ACCEPTED)
def test_https_and_loopback_urls_go_where_they_say(door: str, url: str, host: str) -> None:
    with pytest.raises(Sent) as sent:
        DOORS[door](url)
    if door == "download-url":
        assert sent.value.url.split("/")[2].rsplit(":", 1)[0].lower() in (host, host.strip("[]"))
    else:
        assert f"//{host}" in sent.value.url.lower()
