"""The operator CLI's pure parts: the progress line `abrecon watch` draws, and how --from/--to read."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from abrecon_cli.errors import UsageError
from abrecon_cli.ops import _bound, _window
from abrecon_cli.progress import Progress, bar, format_duration


def test_bar_fills_with_the_share_done() -> None:
    assert bar(0, 40) == "[" + "." * 30 + "]"
    assert bar(20, 40) == "[" + "#" * 15 + "." * 15 + "]"
    assert bar(40, 40) == "[" + "#" * 30 + "]"
    assert bar(3, 0) == "[" + "." * 30 + "]"  # total not known yet


@pytest.mark.parametrize(("seconds", "text"), [(5, "5s"), (65, "1m05s"), (3725, "1h02m"), (-1, "0s")])
def test_durations_read_short(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_progress_line_shows_invoices_done_running_failed_and_the_state() -> None:
    line = Progress("RUNNING", "Download each invoice's PDFs", 65, total=40, succeeded=18, failed=2, running=5).line()
    assert line == (
        "  1m05s  RUNNING   [###############...............] 20/40 invoices  50% (5 running, 2 failed)"
        "  Download each invoice's PDFs"
    )
    before = Progress("RUNNING", "Fetch transactions", 3).line()
    assert before.endswith("[" + "." * 30 + "]  Fetch transactions")


def test_a_bare_date_is_a_whole_day_and_to_names_the_last_day() -> None:
    start, end = _window(_bound("2026-10-01"), _bound("2026-10-31"))
    assert (start, end) == (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    start, end = _window(_bound("2026-10-01T09:00:00+09:00"), _bound("2026-10-02T00:00:00"))
    assert (start, end) == (datetime(2026, 10, 1, 0, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC))


def test_a_window_that_ends_before_it_starts_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="must be before --to"):
        _window(_bound("2026-10-31"), _bound("2026-10-01"))
    with pytest.raises(argparse.ArgumentTypeError, match="not a date"):
        _bound("last tuesday")
