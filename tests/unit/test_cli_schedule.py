"""The next run of an EventBridge Scheduler expression, as `abrecon doctor` shows it."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from abrecon_cli.schedule import ScheduleExpressionError, next_run

NOW = datetime(2026, 12, 1, 22, 30, tzinfo=UTC)  # a Tuesday


def test_the_templates_default_runs_at_six_the_next_morning_in_utc() -> None:
    assert next_run("cron(0 6 * * ? *)", "UTC", NOW) == datetime(2026, 12, 2, 6, 0, tzinfo=ZoneInfo("UTC"))


def test_a_cron_is_read_in_the_schedules_time_zone() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    # 22:30 UTC is 07:30 on 2 December in Tokyo: today's 06:00 there has passed.
    assert next_run("cron(0 6 * * ? *)", "Asia/Tokyo", NOW) == datetime(2026, 12, 3, 6, 0, tzinfo=tokyo)
    # New York is 17:30 on 1 December: 18:00 the same evening.
    new_york = next_run("cron(0 18 * * ? *)", "America/New_York", NOW)
    assert new_york == datetime(2026, 12, 1, 18, 0, tzinfo=ZoneInfo("America/New_York"))
    assert new_york is not None and new_york.astimezone(UTC) == datetime(2026, 12, 1, 23, 0, tzinfo=UTC)


def test_day_of_week_counts_from_sunday_as_aws_does() -> None:
    # 2 is Monday in AWS's numbering (1 = Sunday), not Tuesday as in five-field cron.
    assert next_run("cron(0 6 ? * 2 *)", "UTC", NOW) == datetime(2026, 12, 7, 6, 0, tzinfo=ZoneInfo("UTC"))
    assert next_run("cron(0 6 ? * MON-FRI *)", "UTC", NOW) == datetime(2026, 12, 2, 6, 0, tzinfo=ZoneInfo("UTC"))
    assert next_run("cron(0 6 ? * SUN *)", "UTC", NOW) == datetime(2026, 12, 6, 6, 0, tzinfo=ZoneInfo("UTC"))


def test_lists_ranges_steps_months_and_years() -> None:
    utc = ZoneInfo("UTC")
    assert next_run("cron(*/20 23 * * ? *)", "UTC", NOW) == datetime(2026, 12, 1, 23, 0, tzinfo=utc)
    assert next_run("cron(15,45 22 * * ? *)", "UTC", NOW) == datetime(2026, 12, 1, 22, 45, tzinfo=utc)
    assert next_run("cron(0 6 1 JAN ? *)", "UTC", NOW) == datetime(2027, 1, 1, 6, 0, tzinfo=utc)
    assert next_run("cron(0 6 1 1-3 ? 2028)", "UTC", NOW) == datetime(2028, 1, 1, 6, 0, tzinfo=utc)
    assert next_run("cron(0 6 1 JUL ? *)", "UTC", NOW) == datetime(2027, 7, 1, 6, 0, tzinfo=utc)
    assert next_run("cron(0 6 * * ? 2020)", "UTC", NOW) is None  # only in the past: never again


def test_rate_counts_from_its_start_and_at_runs_once() -> None:
    created = datetime(2026, 12, 1, 20, 10, tzinfo=UTC)
    assert next_run("rate(1 hour)", "UTC", NOW, anchor=created) == datetime(2026, 12, 1, 23, 10, tzinfo=UTC)
    assert next_run("rate(5 minutes)", "UTC", NOW, anchor=created) == datetime(2026, 12, 1, 22, 35, tzinfo=UTC)
    later = datetime(2026, 12, 5, tzinfo=UTC)
    assert next_run("rate(1 day)", "UTC", NOW, anchor=later) == later
    assert next_run("at(2026-12-24T09:00:00)", "Europe/Berlin", NOW) == datetime(
        2026, 12, 24, 9, 0, tzinfo=ZoneInfo("Europe/Berlin")
    )
    assert next_run("at(2026-11-24T09:00:00)", "UTC", NOW) is None


@pytest.mark.parametrize(
    ("expression", "zone", "complaint"),
    [
        ("cron(0 6 * * *)", "UTC", "needs 6 fields"),
        ("cron(0 6 * * * *)", "UTC", "must be '?'"),
        ("cron(0 25 * * ? *)", "UTC", "hours: 25 is outside 0-23"),
        ("cron(0 6 L * ? *)", "UTC", "L, W or #"),
        ("cron(0 6 ? * 2#1 *)", "UTC", "L, W or #"),
        ("cron(0 6 ? * FOO *)", "UTC", "not a number or name"),
        ("cron(0 6 5-1 * ? *)", "UTC", "runs backwards"),
        ("cron(0/0 6 * * ? *)", "UTC", "positive number"),
        ("rate(0 days)", "UTC", "not 'N minutes"),
        ("rate(2 weeks)", "UTC", "not 'N minutes"),
        ("at(tomorrow)", "UTC", "yyyy-mm-dd"),
        ("every day", "UTC", "not cron"),
        ("cron(0 6 * * ? *)", "Mars/Olympus", "unknown time zone"),
    ],
)
def test_what_it_cannot_read_is_a_clear_error(expression: str, zone: str, complaint: str) -> None:
    with pytest.raises(ScheduleExpressionError, match=complaint.replace("(", r"\(").replace("?", r"\?")):
        next_run(expression, zone, NOW)
