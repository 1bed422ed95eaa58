"""The floor: the earliest a run could finish given Amazon's rate limits and the reports' actual latencies.

    floor = T_pages + T_batches + max_j D_j, where
    T_pages   = when the last getTransactions page may be sent (bucket rate r_t, burst b_t, starting full),
    T_batches = the same for the getInvoiceDetailsByOrderLineItems batches (r_i, b_i), after the pages,
    C_i       = when the i-th report may be created: the createReport bucket (r_c, b_c) in creation order,
    R_i       = C_i + L_i, with L_i the latency the emulator actually gave that report,
    D_j       = the earliest getReportDocument token at or after R_j, reports taken in order of R (r_d, b_d).
Every request costs no time and every poll sees DONE the instant it happens: no pipeline can beat this.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from abrecon.pacing import Limit


@dataclass
class _Bucket:
    """A token bucket that starts full at time 0 and grants tokens at the earliest possible moment."""

    rate: float
    burst: int
    tokens: float = -1.0
    at: float = 0.0

    def take(self, ready: float) -> float:
        """The earliest time >= ready at which a token is free; takes it."""
        if self.tokens < 0:
            self.tokens = float(self.burst)
        t = max(ready, self.at)
        available = min(float(self.burst), self.tokens + (t - self.at) * self.rate)
        if available < 1.0:
            t += (1.0 - available) / self.rate
            available = 1.0
        self.tokens, self.at = available - 1.0, t
        return t


def _serial(count: int, limit: Limit, start: float) -> float:
    bucket = _Bucket(limit.rate, limit.burst)
    finish = start
    for _ in range(count):
        finish = bucket.take(start)
    return finish


def floor_timeline(
    pages: int, batches: int, latencies_in_creation_order: Iterable[float], limits: dict[str, Limit]
) -> dict[str, float]:
    """When, at the earliest, the last page, the last invoice batch, the last createReport and the last
    getReportDocument could be sent (seconds from the start); the last of them is the floor."""
    pages_done = _serial(pages, limits["getTransactions"], 0.0)
    batches_done = _serial(batches, limits["getInvoiceDetailsByOrderLineItems"], pages_done)
    create = _Bucket(limits["createReport"].rate, limits["createReport"].burst)
    created = [create.take(batches_done) + latency for latency in latencies_in_creation_order]
    last_create = create.at if created else batches_done
    documents = _Bucket(limits["getReportDocument"].rate, limits["getReportDocument"].burst)
    last_document = max((documents.take(r) for r in sorted(created)), default=batches_done)
    return {
        "getTransactions": pages_done,
        "getInvoiceDetailsByOrderLineItems": batches_done,
        "createReport": last_create,
        "getReportDocument": last_document,
    }


def floor_seconds(
    pages: int, batches: int, latencies_in_creation_order: Iterable[float], limits: dict[str, Limit]
) -> float:
    """The floor for a run with this many pages, invoice batches and report latencies (all in sandbox seconds)."""
    return floor_timeline(pages, batches, latencies_in_creation_order, limits)["getReportDocument"]
