"""The benchmark's floor, worked by hand on small cases (sandbox/abrecon_sandbox/floor.py)."""

from __future__ import annotations

import pytest

from abrecon.pacing import Limit
from abrecon_sandbox.bench.floor import floor_seconds, floor_timeline

FAST = Limit(rate=100.0, burst=100)


def limits(create: Limit, document: Limit, pages: Limit = FAST, batches: Limit = FAST) -> dict[str, Limit]:
    return {
        "getTransactions": pages,
        "getInvoiceDetailsByOrderLineItems": batches,
        "createReport": create,
        "getReportDocument": document,
    }


def test_reports_are_created_at_the_bucket_pace_and_downloaded_when_ready() -> None:
    # Burst 2 at one a second: created at 0, 0, 1, 2; ready 0.5 later; the document bucket keeps up.
    timeline = floor_timeline(0, 0, [0.5] * 4, limits(Limit(1.0, 2), Limit(1.0, 2)))
    assert timeline == {
        "getTransactions": 0.0,
        "getInvoiceDetailsByOrderLineItems": 0.0,
        "createReport": 2.0,
        "getReportDocument": 2.5,
    }


def test_the_document_bucket_can_be_the_bottleneck() -> None:
    # All three created at once and ready together: the documents go out one a second.
    assert floor_seconds(0, 0, [1.0] * 3, limits(Limit(1.0, 3), Limit(1.0, 1))) == pytest.approx(3.0)


def test_a_slow_report_sets_the_floor_and_pages_come_first() -> None:
    # 3 pages at one a second with burst 1 end at 2 s; batches are instant; the one report takes 10 s.
    timeline = floor_timeline(3, 1, [10.0], limits(Limit(1.0, 1), Limit(1.0, 1), pages=Limit(1.0, 1)))
    assert timeline["getTransactions"] == pytest.approx(2.0)
    assert timeline["createReport"] == pytest.approx(2.0)
    assert timeline["getReportDocument"] == pytest.approx(12.0)


def test_no_reports_ends_after_the_invoice_details() -> None:
    assert floor_seconds(2, 2, [], limits(Limit(1.0, 1), Limit(1.0, 1), batches=Limit(1.0, 1))) == pytest.approx(1.0)
