"""Following an execution: what it is doing, as one line with a progress bar over the invoices."""

from __future__ import annotations

from dataclasses import dataclass

BAR_WIDTH = 30


def format_duration(seconds: float) -> str:
    """12s, 3m05s, 1h02m."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """[#########.....................] for done of total (an empty bar while the total is unknown)."""
    filled = 0 if total <= 0 else min(width, done * width // total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


@dataclass(frozen=True)
class Progress:
    """One look at an execution."""

    status: str  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
    state: str  # the state it entered last
    elapsed_seconds: float
    total: int | None = None  # invoices in the Distributed Map, once it runs
    succeeded: int = 0
    failed: int = 0
    running: int = 0

    def line(self) -> str:
        """The one line a person watches."""
        head = f"{format_duration(self.elapsed_seconds):>7}  {self.status:<9}"
        if self.total is None:
            return f"{head} {bar(0, 0)}  {self.state}"
        done = self.succeeded + self.failed
        percent = 100 * done // self.total if self.total else 100
        counts = f"{done}/{self.total} invoices {percent:3d}%"
        extra = f"{self.running} running" + (f", {self.failed} failed" if self.failed else "")
        return f"{head} {bar(done, self.total)} {counts} ({extra})  {self.state}"
