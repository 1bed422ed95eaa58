"""HTTP helpers shared by auth and client: endpoint checks, retry policy, backoff."""

from __future__ import annotations

import ipaddress
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from urllib3.util import parse_url

from abrecon.errors import ConfigurationError

__all__ = ["RetryPolicy", "is_loopback_host", "parse_retry_after", "require_secure_url"]


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_secure_url(url: str, what: str) -> None:
    """Refuse anything but https, except plain http to a loopback host (the local emulator).

    ``what`` names the setting in the error message; the URL itself is not repeated because
    a presigned URL carries a signature.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise ConfigurationError(f"{what} is not a valid URL") from None
    if not host:
        raise ConfigurationError(f"{what} has no host")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and is_loopback_host(host) and _connects_to_loopback(url):
        return
    raise ConfigurationError(f"{what} must use https (plain http is allowed for loopback hosts only)")


def _connects_to_loopback(url: str) -> bool:
    # requests connects to the host urllib3 parses, which urlsplit can disagree with: in
    # "http://evil.example\\@127.0.0.1/" urlsplit sees 127.0.0.1, urllib3 (and so requests) evil.example.
    try:
        host = parse_url(url).host
    except ValueError:  # urllib3's LocationParseError is a ValueError
        return False
    return host is not None and is_loopback_host(host)


@dataclass(frozen=True)
class RetryPolicy:
    """Retry budget: ``max_attempts`` requests in all, full-jitter exponential backoff capped at
    ``max_delay`` seconds; a Retry-After header (seconds) is honoured, also capped at ``max_delay``."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        # Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^n)], which spreads
        # concurrent clients apart better than a fixed or equal-jitter backoff.
        ceiling = min(self.max_delay, self.base_delay * (2.0 ** min(attempt - 1, 30)))
        return random.uniform(0.0, ceiling)  # noqa: S311  # nosec B311 # jitter, not cryptography


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds, or None if absent or not a number (HTTP dates are ignored)."""
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value
