"""Finding the report a lost createReport answer made, so that nobody asks Amazon for a second one.

createReport is not safe to repeat: a 5xx after processing, a dropped connection or a cut-off body leaves a
report at Amazon whose id nobody knows. Before asking again, the invoice's attempt (recorded in the ledger before
the call) is looked up with getReports (GET_AB_INVOICE_PDF, created since the attempt):

- where Amazon echoes ``reportOptions`` (its tutorial shows them; the model does not define them), the report
  whose ``invoiceId`` (and ``documentType``) is the invoice's is the one;
- otherwise by creation time: exactly one report created in the attempt's window that no invoice has recorded
  (ledger markers ``REPORT#<id>``), while no other invoice's unanswered attempt overlaps the window;
- anything else (none, several, an answer that cannot be judged) identifies nothing: ask again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from abrecon.models import REPORT_TYPE_INVOICE_PDF, Report

# Amazon's clock and ours may differ a little: the window an attempt's report can carry as its createdTime.
CREATED_TIME_MARGIN_SECONDS = 1.0
# A report another invoice's createReport made and got the answer for is in the ledger this long after the answer
# came: a lookup waits so long after the lost attempt, so such a report is never taken for the lost one.
SETTLE_SECONDS = 2.0
# One page: Amazon's createReport limit (15 at once, then one a minute) puts far fewer reports in a window.
PAGE_SIZE = 100
# Lost createReport answers an execution accepts for one invoice before it records the invoice failed (the next
# run tries again): a createReport that never answers must not loop for the whole run.
MAX_LOST_ANSWERS = 3

Match = Literal["OPTIONS", "TIME"]


@dataclass(frozen=True)
class Attempt:
    """A createReport whose answer was lost: sent at ``start`` (epoch seconds), answer lost by ``end``."""

    start: float
    end: float

    @classmethod
    def of(cls, start: Decimal, end: Decimal | None, now: float) -> Attempt:
        """The recorded attempt; one whose caller died before noting the loss ends now."""
        return cls(float(start), float(end) if end is not None else now)

    def since(self) -> datetime:
        """createdSince for getReports."""
        return datetime.fromtimestamp(self.start - CREATED_TIME_MARGIN_SECONDS, UTC)

    def covers(self, created: datetime) -> bool:
        """Whether a report created at ``created`` can be this attempt's."""
        low = datetime.fromtimestamp(self.start - CREATED_TIME_MARGIN_SECONDS, UTC)
        high = datetime.fromtimestamp(self.end + CREATED_TIME_MARGIN_SECONDS, UTC)
        return low <= created <= high

    def overlaps(self, other: Attempt) -> bool:
        """Whether two attempts' windows (margins included) overlap."""
        margin = 2 * CREATED_TIME_MARGIN_SECONDS
        return self.start - margin <= other.end and other.start - margin <= self.end

    def settles_in(self, now: float) -> float:
        """Seconds until a lookup may judge this attempt (SETTLE_SECONDS after its end)."""
        return max(0.0, self.end + SETTLE_SECONDS - now)


@dataclass(frozen=True)
class Found:
    """The lost attempt's report, and how it was recognised."""

    report_id: str
    match: Match


def identify(
    reports: list[Report],
    *,
    invoice_number: str,
    document_type: str | None,
    attempt: Attempt,
    known: set[str],
    others_overlap: bool,
    complete: bool,
) -> Found | None:
    """The report the attempt made, or None when the answer does not identify one.

    ``known``: reportIds some invoice has recorded (this one's earlier reports included). ``others_overlap``: another
    invoice's unanswered attempt overlaps this one's window. ``complete``: the answer holds every report since the
    attempt (no further page).
    """
    ours = [r for r in reports if r.reportType in (None, REPORT_TYPE_INVOICE_PDF) and r.reportId not in known]
    if any(_options(r) is not None for r in reports):
        for report in ours:  # Amazon labels its reports: only the invoice's own can be the one
            options = _options(report)
            if (
                options is not None
                and options.get("invoiceId") == invoice_number
                and options.get("documentType") == document_type
            ):
                return Found(report.reportId, "OPTIONS")
        return None
    if others_overlap or not complete or any(r.createdTime is None for r in ours):
        return None
    in_window = [r for r in ours if r.createdTime is not None and attempt.covers(r.createdTime)]
    return Found(in_window[0].reportId, "TIME") if len(in_window) == 1 else None


def _options(report: Report) -> dict[str, Any] | None:
    options = report.reportOptions
    return options if isinstance(options, dict) and "invoiceId" in options else None


def overlapping_attempts(items: list[dict[str, Any]], invoice_number: str, attempt: Attempt, now: float) -> bool:
    """Whether another invoice's unanswered attempt (ledger items of the "ATTEMPT" open index) overlaps."""
    for item in items:
        if item.get("invoiceNumber") == invoice_number or item.get("createAttemptAt") is None:
            continue
        other = Attempt.of(Decimal(str(item["createAttemptAt"])), _decimal(item.get("createAttemptUntil")), now)
        if attempt.overlaps(other):
            return True
    return False


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
