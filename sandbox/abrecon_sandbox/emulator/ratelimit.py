"""Token buckets with Amazon's published usage plans, and per-operation call counters."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class UsagePlan:
    """A published rate (requests per second) and burst; ``header`` is what x-amzn-RateLimit-Limit says."""

    rate: float
    burst: int
    header: str


PUBLISHED_PLANS: dict[str, UsagePlan] = {
    "getTransactions": UsagePlan(0.5, 10, "0.5"),
    "getInvoiceDetailsByOrderLineItems": UsagePlan(2.0, 10, "2.0"),
    "createReport": UsagePlan(1 / 60, 15, "0.0167"),
    "getReport": UsagePlan(2.0, 15, "2.0"),
    "getReportDocument": UsagePlan(1 / 60, 15, "0.0167"),
    "getBatchInvoicePaymentDetails": UsagePlan(2.0, 10, "2.0"),
}


class TokenBucket:
    """Starts full with ``burst`` tokens and refills ``rate`` tokens per second."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_take(self) -> bool:
        """Take one token if there is one (not thread-safe; RateLimiter locks)."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def empty(self) -> None:
        """Drop every token (fault injection)."""
        self._refill()
        self._tokens = 0.0

    def seconds_until_token(self) -> float:
        """How long until one token is available."""
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate


class RateLimiter:
    """One bucket per operation, refill rates multiplied by ``speed``; counts calls and 429s."""

    def __init__(
        self, plans: dict[str, UsagePlan] | None = None, speed: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.plans = dict(PUBLISHED_PLANS if plans is None else plans)
        self._buckets = {op: TokenBucket(p.rate * speed, p.burst, clock) for op, p in self.plans.items()}
        self._clock = clock
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self._first_last: dict[str, tuple[float, float]] = {}
        self.throttled: Counter[str] = Counter()

    def count_call(self, operation: str) -> None:
        """Record one HTTP request for ``operation``."""
        now = self._clock()
        with self._lock:
            self.calls[operation] += 1
            first, _last = self._first_last.get(operation, (now, now))
            self._first_last[operation] = (first, now)

    def count_throttled(self, operation: str) -> None:
        """Record one 429 that did not come from a bucket (fault injection)."""
        with self._lock:
            self.throttled[operation] += 1

    def admit(self, operation: str) -> tuple[bool, float]:
        """(admitted, seconds until the next token); a refusal is counted as a 429."""
        bucket = self._buckets.get(operation)
        if bucket is None:
            return True, 0.0
        with self._lock:
            if bucket.try_take():
                return True, 0.0
            self.throttled[operation] += 1
            return False, bucket.seconds_until_token()

    def drain(self, operation: str) -> None:
        """Empty a bucket (for tests and fault injection)."""
        with self._lock:
            self._buckets[operation].empty()

    def call_times(self) -> dict[str, tuple[float, float]]:
        """(first, last) clock reading of the requests per operation: where a run's time went."""
        with self._lock:
            return dict(self._first_last)

    def snapshot(self) -> tuple[dict[str, int], dict[str, int]]:
        """Copies of (calls, throttled) per operation."""
        with self._lock:
            return dict(self.calls), dict(self.throttled)
