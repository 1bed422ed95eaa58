"""Amazon's clock inside a sandbox Lambda worker: the time a function would have used at Amazon's real pace.

`--speed K` makes Amazon's waits K times shorter: the emulator refills its rate-limit buckets K times faster and the
pipeline's pacing rates (AB_API_RATE_LIMITS) are multiplied by K; report latencies and the URLs' lifetime, divided
by K, are waited for outside Lambda, in Wait states. Inside a function the one wait that the speed factor shrinks
is pacing: the pacer (abrecon.pacing) holding a request until the account's rate limit has a token. So a
function's Timeout, and its context's remaining time, are counted as

    amazon_elapsed = (wall - paced) + rate_limited

- `wall`: the invocation's wall time. CPU, the local AWS (moto), the emulator's answers, the client's backoff
  sleeps and jitter count once, at their own length: --speed does not change them, and multiplying them would
  charge the sandbox's own slowness (two shared cores, servers in Python) to the function K times over.
- `paced`: the wall time spent inside the pacer (`Pacer.before_request`: its reservation in the shared bucket and
  its sped-up wait), taken out and replaced by
- `rate_limited`: what Amazon's rate limit makes those requests wait at Amazon's rate. The worker keeps, per
  invocation, a token bucket per paced operation at Amazon's rate and burst (AB_API_RATE_LIMITS divided by K),
  full when the invocation starts, on this clock: a getTransactions page costs 2 Amazon seconds at 0.5 requests a
  second once the burst is spent, whether the sandbox's own bucket made it wait or the sandbox was too slow to
  reach its sped-up limit (then no real wait happens at all: counting only the real waits times K would let a
  function page for free).

Operations the pipeline paces through the state machine (createReport, getReportDocument: `STEP_PACED`) never
wait inside a function and are not counted. Known limits: the per-invocation bucket does not see other invocations
taking from the shared one (many check-report invocations contending for getReport: their real, sped-up waits are
replaced by none), and the emulator's injected `slow` answers (1-3 s divided by K) count once, not K times.

The worker measures all this in its own process, reports it through the context's `get_remaining_time_in_millis()`,
and ends an invocation that runs out (see lambda_worker.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

SPEED_ENV = "SANDBOX_SPEED"
RATE_LIMITS_ENV = "AB_API_RATE_LIMITS"  # the function's own setting (abrecon.settings), sped up by the sandbox


@dataclass(frozen=True)
class Mark:
    """A moment on the clock's counters: wall time, time inside the pacer, Amazon's rate-limit waits so far."""

    wall: float
    paced: float
    rate_limited: float


@dataclass
class _Bucket:
    rate: float
    burst: float
    tokens: float
    at: float  # Amazon seconds since the invocation started


class AmazonClock:
    """Wall time with the pacer's waits replaced by what Amazon's rate limits would have made them."""

    def __init__(
        self,
        speed: float,
        amazon_limits: Mapping[str, tuple[float, int]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._limits = dict(amazon_limits or {})  # operation -> (requests a second at Amazon, burst)
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._pacing = 0
        self._since = 0.0
        self._paced = 0.0
        self._rate_limited = 0.0
        self._start = Mark(monotonic(), 0.0, 0.0)
        self._buckets: dict[str, _Bucket] = {}

    def start_invocation(self) -> Mark:
        """A new invocation: Amazon's buckets start full. Returns the mark to measure it from."""
        with self._lock:
            self._start = self.mark()
            self._buckets = {
                op: _Bucket(rate, float(burst), float(burst), 0.0) for op, (rate, burst) in self._limits.items()
            }
            return self._start

    def mark(self) -> Mark:
        """The current moment."""
        with self._lock:
            now = self._monotonic()
            paced = self._paced + (now - self._since if self._pacing else 0.0)
            return Mark(wall=now, paced=paced, rate_limited=self._rate_limited)

    def elapsed(self, since: Mark) -> float:
        """Amazon seconds since `since`."""
        now = self.mark()
        return (now.wall - since.wall) - (now.paced - since.paced) + (now.rate_limited - since.rate_limited)

    @contextmanager
    def pacing(self, operation: str) -> Iterator[None]:
        """One paced request: its time inside the pacer is replaced by the wait of Amazon's bucket for it (several
        threads pacing at the same time count their pacer time once)."""
        with self._lock:
            bucket = self._buckets.get(operation)
            if bucket is not None:
                now = self.elapsed(self._start)
                tokens = min(bucket.burst, bucket.tokens + max(0.0, now - bucket.at) * bucket.rate)
                at = max(now, bucket.at)
                if tokens < 1.0:
                    wait = (1.0 - tokens) / bucket.rate
                    self._rate_limited += max(0.0, at + wait - now)
                    at, tokens = at + wait, 1.0
                bucket.tokens, bucket.at = tokens - 1.0, at
            if self._pacing == 0:
                self._since = self._monotonic()
            self._pacing += 1
        try:
            yield
        finally:
            with self._lock:
                self._pacing -= 1
                if self._pacing == 0:
                    self._paced += self._monotonic() - self._since

    def install(self, pacer_class: Any, step_paced: frozenset[str]) -> None:
        """Route every Pacer.before_request of this process through `pacing` (the step-paced operations, which
        never wait inside a function, excepted). Call before the first invocation builds its runtime."""
        original = pacer_class.before_request
        clock = self

        def before_request(pacer: Any, operation: str) -> None:
            if operation in step_paced:
                original(pacer, operation)
                return
            with clock.pacing(operation):
                original(pacer, operation)

        pacer_class.before_request = before_request


def amazon_limits(text: str, speed: float) -> dict[str, tuple[float, int]]:
    """AB_API_RATE_LIMITS as the sandbox sped it up ("op=rate/burst,..."), at Amazon's rates: each divided by speed."""
    from abrecon.pacing import parse_limits  # the function's own parser; imported once the handler is

    return {operation: (limit.rate / speed, limit.burst) for operation, limit in parse_limits(text).items()}
