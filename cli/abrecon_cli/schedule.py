"""When an EventBridge Scheduler schedule fires next: its cron(), rate() and at() expressions, in its time zone.

AWS's cron has six fields (minutes hours day-of-month month day-of-week year), numbers day-of-week 1-7 from
Sunday, and wants `?` in one of the two day fields: the common cron libraries read five fields, a sixth as
seconds, and Sunday as 0, so this is a narrow parser of its own. It knows `*`, `?`, numbers, names (JAN-DEC,
SUN-SAT), ranges, lists and steps; `L`, `W` and `#` are refused as not computed (the schedule still runs).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["ScheduleExpressionError", "next_run"]

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
_SEARCH_DAYS = 366 * 8  # a cron that matches nothing in eight years (29 February on a Monday ...) never runs


class ScheduleExpressionError(ValueError):
    """The expression or time zone cannot be read, or uses what this parser does not compute (L, W, #)."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0  # the number of names[0]


_FIELDS = (
    _Field("minutes", 0, 59),
    _Field("hours", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTHS, 1),
    _Field("day-of-week", 1, 7, _DAYS, 1),
    _Field("year", 1970, 2199),
)


def _number(text: str, spec: _Field) -> int:
    upper = text.upper()
    if upper in spec.names:
        return spec.names.index(upper) + spec.name_base
    if not text.isdigit():
        raise ScheduleExpressionError(f"{spec.name}: {text!r} is not a number" + (" or name" if spec.names else ""))
    value = int(text)
    if not spec.low <= value <= spec.high:
        raise ScheduleExpressionError(f"{spec.name}: {value} is outside {spec.low}-{spec.high}")
    return value


def _values(text: str, spec: _Field) -> frozenset[int] | None:
    """The values a field allows; None for `*` or `?` (any)."""
    if text in ("*", "?"):
        return None
    atoms = re.split(r"[,/-]", text.upper())
    if "#" in text or any(re.search(r"[LW]", atom) and atom not in spec.names for atom in atoms):
        raise ScheduleExpressionError(f"{spec.name}: {text!r} uses L, W or # (not computed here)")
    allowed: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ScheduleExpressionError(f"{spec.name}: step {step_text!r} is not a positive number")
        if base == "*":
            first, last = spec.low, spec.high
        elif "-" in base:
            start, end = base.split("-", 1)
            first, last = _number(start, spec), _number(end, spec)
            if first > last:
                raise ScheduleExpressionError(f"{spec.name}: range {base!r} runs backwards")
        else:
            first = _number(base, spec)
            last = spec.high if step else first
        allowed.update(range(first, last + 1, step or 1))
    return frozenset(allowed)


@dataclass(frozen=True)
class _Cron:
    minutes: list[int]
    hours: list[int]
    days: frozenset[int] | None
    months: frozenset[int] | None
    weekdays: frozenset[int] | None  # 1 = Sunday
    years: frozenset[int] | None

    def matches(self, day: date) -> bool:
        weekday = day.isoweekday() % 7 + 1  # ISO Monday=1..Sunday=7 -> AWS Sunday=1..Saturday=7
        return (
            (self.days is None or day.day in self.days)
            and (self.months is None or day.month in self.months)
            and (self.weekdays is None or weekday in self.weekdays)
            and (self.years is None or day.year in self.years)
        )


def _cron(body: str) -> _Cron:
    fields = body.split()
    if len(fields) != 6:
        raise ScheduleExpressionError(
            f"cron() needs 6 fields (minutes hours day-of-month month day-of-week year), not {len(fields)}"
        )
    if "?" not in (fields[2], fields[4]):
        raise ScheduleExpressionError("cron(): day-of-month or day-of-week must be '?'")
    values = [_values(text, spec) for text, spec in zip(fields, _FIELDS, strict=True)]
    minutes, hours = (
        sorted(range(spec.low, spec.high + 1) if allowed is None else allowed)
        for allowed, spec in zip(values[:2], _FIELDS[:2], strict=True)
    )
    return _Cron(minutes, hours, values[2], values[3], values[4], values[5])


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleExpressionError(f"unknown time zone {name!r}") from None


def next_run(expression: str, time_zone: str, now: datetime, anchor: datetime | None = None) -> datetime | None:
    """The first time after `now` the schedule fires, in its time zone; None when it never fires again.

    `anchor` is when a rate() schedule started counting (its StartDate, else its creation). A local time that
    a daylight-saving change skips or repeats is read as zoneinfo does (the earlier of two).
    """
    zone = _zone(time_zone)
    match = re.fullmatch(r"\s*(cron|rate|at)\((.*)\)\s*", expression)
    if not match:
        raise ScheduleExpressionError(f"{expression!r} is not cron(...), rate(...) or at(...)")
    kind, body = match.groups()
    if kind == "at":
        return _next_at(body, zone, now)
    if kind == "rate":
        return _next_rate(body, zone, now, anchor)
    return _next_cron(body, zone, now)


def _next_at(body: str, zone: ZoneInfo, now: datetime) -> datetime | None:
    """at(yyyy-mm-ddThh:mm:ss): that one time, if it is still ahead."""
    try:
        when = datetime.fromisoformat(body.strip()).replace(tzinfo=zone)
    except ValueError:
        raise ScheduleExpressionError(f"at({body}): not yyyy-mm-ddThh:mm:ss") from None
    return when if when > now.astimezone(zone) else None


def _next_rate(body: str, zone: ZoneInfo, now: datetime, anchor: datetime | None) -> datetime:
    """rate(N minutes|hours|days): the next whole period after the anchor."""
    parts = body.split()
    if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) < 1 or parts[1] not in _RATE_UNITS:
        raise ScheduleExpressionError(f"rate({body}): not 'N minutes|hours|days'")
    period = int(parts[0]) * _RATE_UNITS[parts[1]]
    local_now = now.astimezone(zone)
    start = (anchor or now).astimezone(zone)
    if start > local_now:
        return start
    periods = math.floor((local_now - start).total_seconds() / period) + 1
    return start + timedelta(seconds=periods * period)


def _next_cron(body: str, zone: ZoneInfo, now: datetime) -> datetime | None:
    """cron(...): the first matching minute after now, looked for over _SEARCH_DAYS days."""
    cron = _cron(body)
    day = now.astimezone(zone).date()
    for _ in range(_SEARCH_DAYS):
        if cron.matches(day):
            for hour in cron.hours:
                for minute in cron.minutes:
                    candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                    if candidate.astimezone(UTC) > now.astimezone(UTC):
                        return candidate
        day += timedelta(days=1)
    return None
