"""What the fuzz tests share: Hypothesis budgets, a peak-memory meter, and a fake HTTP session.

Budgets (HYPOTHESIS_PROFILE): "ci" by default, sized so the whole fuzz suite stays well under a minute inside
`make test`; "long" (`make fuzz`) runs many more examples with looser deadlines. A deadline turns a slow example
into a failure; pytest-timeout (the marks in the tests) turns a hang into one.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import requests
from hypothesis import HealthCheck, settings
from requests.structures import CaseInsensitiveDict

MIB = 1024 * 1024

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
    print_blob=True,
)
settings.register_profile(
    "long",
    max_examples=5_000,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
FUZZ = settings(settings.get_profile(PROFILE))


def scaled(ci: int) -> int:
    """An example count for a test that needs fewer (slow) or more (cheap) examples than the profile's default."""
    return ci if PROFILE == "ci" else ci * settings.get_profile(PROFILE).max_examples // 150


_T = TypeVar("_T")


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """Measure the peak of Python allocations inside the block, in bytes (the list gets one item at exit)."""
    result: list[int] = []
    started_here = not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    try:
        yield result
    finally:
        _, peak = tracemalloc.get_traced_memory()
        if started_here:
            tracemalloc.stop()
        result.append(max(0, peak - base))


def run_bounded(call: Callable[[], _T], *, input_size: int, headroom: int = 64 * MIB) -> tuple[_T | None, Any]:
    """Run ``call``; return (result, None) or (None, the exception). Fails if its peak memory exceeded
    ``input_size + headroom``."""
    outcome: _T | None = None
    error: BaseException | None = None
    with peak_memory() as peak:
        try:
            outcome = call()
        except Exception as exc:  # the tests look at what came out
            error = exc
    assert peak[0] <= input_size + headroom, f"peak memory {peak[0] / MIB:.1f} MiB for {input_size} input bytes"
    return outcome, error


class FakeSession(requests.Session):
    """A requests.Session whose every request gets the same scripted answer (no network)."""

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.status = status
        self.body = body
        self.answer_headers = dict(headers or {})
        self.calls = 0

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        self.calls += 1
        if self.calls > 50:
            raise AssertionError("more than 50 requests for one call: a retry or paging loop")
        response = requests.Response()
        response.status_code = self.status
        response._content = self.body
        response.headers = CaseInsensitiveDict(self.answer_headers)
        response.reason = "Fuzzed"
        response.url = str(url)
        response.encoding = "utf-8"
        return response
