"""How long the current Lambda invocation may still work: its remaining time less a safety margin.

Lambda stops a function at its Timeout, and a retry starts again from the step's input: every loop and every wait
inside a function is bounded by the invocation's own remaining time (the context's
`get_remaining_time_in_millis()`), never by a constant. The margin covers what still has to happen after the
last check: one more request with its in-function pacing wait and read timeout, and storing the work done.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# Lambda's longest Timeout: the budget of a step called outside Lambda (tests, scripts) with no context to ask.
LAMBDA_MAXIMUM_SECONDS = 900.0


class TimeBudget:
    """Seconds left for work in this invocation: remaining time minus margin_seconds."""

    def __init__(self, remaining_millis: Callable[[], int], margin_seconds: float) -> None:
        self._remaining_millis = remaining_millis
        self.margin_seconds = margin_seconds

    @classmethod
    def lambda_maximum(cls, margin_seconds: float) -> TimeBudget:
        """A budget counting down from Lambda's 900 s maximum from now (no invocation ever has more)."""
        deadline = time.monotonic() + LAMBDA_MAXIMUM_SECONDS
        return cls(lambda: int(max(0.0, deadline - time.monotonic()) * 1000), margin_seconds)

    def seconds_left(self) -> float:
        """Seconds of work left before the margin; negative once it is spent."""
        return self._remaining_millis() / 1000 - self.margin_seconds

    def exhausted(self) -> bool:
        """Whether the invocation must stop starting new work and hand over what it has."""
        return self.seconds_left() <= 0
