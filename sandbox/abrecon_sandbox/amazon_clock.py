"""Amazon's clock inside a sandbox Lambda worker: the time a function would have used at Amazon's real pace.

`--speed K` makes every wait K times shorter: the emulator refills its rate-limit buckets K times faster, the
pacing rates are multiplied by K, report latencies and the presigned URLs' lifetime are divided by K. A function's
Timeout (and its context's remaining time) must be counted against what that wait would have taken at Amazon,
while the rest (CPU, calls to the local AWS, a cold start) takes what it takes here. The rule:

    amazon_elapsed = wall + (K - 1) * waited

where `waited` is the wall time during which at least one thread of the worker was waiting on something the speed
factor shrinks: sleeping (`time.sleep`: the pacer's waits for a rate-limit token, the client's backoff after a
429 or a 5xx, jittered retries), or waiting for an answer from Amazon Business (every HTTP request made with
`requests`: the emulator, LWA, the presigned downloads; the AWS SDK does not use it, so moto's answers are not
multiplied). Overlapping waits of several threads count once. CPU work and the local AWS count at their own
wall time, once: they are not shrunk by the speed factor, so multiplying them would charge the sandbox's own
slowness (two shared cores, moto in Python) to the function. A function that pages through getTransactions at
0.5 requests a second thus spends 2 Amazon seconds a page whatever the speed, as it would at Amazon.

The worker measures this in its own process (the only place that sees its sleeps), reports it through the
context's `get_remaining_time_in_millis()`, and ends an invocation that runs out (see lambda_worker.py).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

SPEED_ENV = "SANDBOX_SPEED"


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
        """Count every time.sleep and every HTTP request made with requests in this process as a wait.

        Call before the handler's modules are imported: defaults such as `sleep=time.sleep` bind at import.
        """
        original_sleep = time.sleep

        def sleep(seconds: Any) -> None:
            with self.waiting():
                original_sleep(seconds)

        time.sleep = sleep
        import requests.adapters  # the handler imports it anyway; the worker itself stays light until now

        original_send = requests.adapters.HTTPAdapter.send

        @functools.wraps(original_send)
        def send(adapter: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            with self.waiting():
                return original_send(adapter, request, *args, **kwargs)

        requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign,assignment]
