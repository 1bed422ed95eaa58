"""Amazon's clock inside a sandbox Lambda worker: the time a function would have used at Amazon's real pace.

`--speed K` makes Amazon's waits K times shorter: the emulator refills its rate-limit buckets K times faster and the
pipeline's pacing rates are multiplied by K (report latencies and the URLs' lifetime, divided by K, are waited for
outside Lambda, in Wait states). A function's Timeout, and its context's remaining time, must count such a wait at
what it would have taken at Amazon, while everything else takes what it takes here. The rule:

    amazon_elapsed = wall + (K - 1) * waited

where `waited` is the wall time the worker spent in the pacer's waits for a rate-limit token (abrecon.pacing's
`Pacer.before_request` sleeping until its reserved token: 2 s a getTransactions page at Amazon, 2/K s here).
Overlapping waits of several threads count once. Everything else counts once, at its own wall time: CPU, the local
AWS (moto), the emulator's own answer time, and the sleeps whose length the speed factor does not change (the
client's backoff after a 429 or a 5xx, contention jitter). Multiplying those would charge the sandbox's slowness
(two shared cores, servers in Python) to the function K times over: at x200, 10 ms of emulator work per call would
become 2 Amazon seconds. Not counted at Amazon's pace: the emulator's injected `slow` answers (delayed 1-3 s / K);
a run with that fault profile sees them K times shorter than Amazon would.

The worker measures this in its own process (the only place that sees its sleeps), reports it through the
context's `get_remaining_time_in_millis()`, and ends an invocation that runs out (see lambda_worker.py).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

SPEED_ENV = "SANDBOX_SPEED"
# The one in-function wait whose length the speed factor shrinks: the pacer sleeping until its reserved token.
PACED_WAIT_FUNCTION = "before_request"
PACED_WAIT_FILE = "abrecon/pacing.py"


@dataclass(frozen=True)
class Mark:
    """A moment on both clocks: monotonic wall time and the waited total at that time."""

    wall: float
    waited: float


class AmazonClock:
    """Wall time plus (speed - 1) times the time spent waiting on what the speed factor shrinks."""

    def __init__(self, speed: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._waiters = 0
        self._since = 0.0
        self._waited = 0.0

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Count the enclosed wall time as a sped-up wait (once, however many threads wait at the same time)."""
        with self._lock:
            if self._waiters == 0:
                self._since = self._monotonic()
            self._waiters += 1
        try:
            yield
        finally:
            with self._lock:
                self._waiters -= 1
                if self._waiters == 0:
                    self._waited += self._monotonic() - self._since

    def mark(self) -> Mark:
        """The current moment, to measure an invocation from."""
        with self._lock:
            now = self._monotonic()
            waited = self._waited + (now - self._since if self._waiters else 0.0)
        return Mark(wall=now, waited=waited)

    def elapsed(self, since: Mark) -> float:
        """Amazon seconds since `since`."""
        now = self.mark()
        return (now.wall - since.wall) + (self.speed - 1.0) * (now.waited - since.waited)

    def install(self) -> None:
        """Count the pacer's waits for a rate-limit token (time.sleep called from `before_request` in
        abrecon/pacing.py) as sped-up waits. Call before the handler's modules are imported: the pacer binds
        time.sleep as a default argument at import."""
        original_sleep = time.sleep

        def sleep(seconds: Any) -> None:
            caller = sys._getframe(1).f_code
            if caller.co_name == PACED_WAIT_FUNCTION and caller.co_filename.endswith(PACED_WAIT_FILE):
                with self.waiting():
                    original_sleep(seconds)
            else:
                original_sleep(seconds)

        time.sleep = sleep
