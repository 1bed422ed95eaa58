"""How the report writes amounts, tax rates, windows and counts, shared by the CSV, the HTML page and the message."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from abrecon.payment_status import AGING_BUCKETS, STATUS_ERROR, RunPayments
from abrecon.reporting.model import Document

# ISO 4217 currencies without minor units that Amazon Business bills in (or might).
_ZERO_DECIMAL = frozenset({"JPY", "KRW", "CLP", "VND", "ISK"})


def _places(currency: str | None) -> int:
    return 0 if (currency or "").upper() in _ZERO_DECIMAL else 2


def plain_amount(value: Decimal | None, currency: str | None) -> str:
    """An amount for a spreadsheet: no grouping, the currency's minor units ("12.50", "882"), never rounded away."""
    if value is None:
        return ""
    quantum = Decimal(1).scaleb(-_places(currency))
    exact = value.quantize(quantum)
    return str(exact) if exact == value else str(value.normalize())


def format_amount(value: Decimal | None, currency: str | None) -> str:
    """An amount for a person: grouped digits in the currency's minor units ("12,345.50", "1,882")."""
    if value is None:
        return ""
    places = _places(currency)
    if value != value.quantize(Decimal(1).scaleb(-places)):
        places = max(places, -int(value.normalize().as_tuple().exponent))
    return format(value, f",.{places}f")


def rate_text(rate: Decimal) -> str:
    """A tax rate as a percentage: "10%", "8%"."""
    percent = (rate * 100).normalize()
    return f"{percent:f}%"


def describe_window(start: datetime, end: datetime) -> str:
    """The run's window as a person says it: whole days inclusive ("1 Oct 2026 to 31 Oct 2026"), else to the minute."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    midnight = all(t.time() == datetime.min.time() for t in (start, end))
    if midnight:
        last = end - timedelta(days=1)
        if last.date() == start.date():
            return f"{start:%-d %b %Y} (UTC)"
        return f"{start:%-d %b %Y} to {last:%-d %b %Y} (UTC)"
    return f"{start:%-d %b %Y %H:%M} to {end:%-d %b %Y %H:%M} (UTC)"


def short_window(start: datetime, end: datetime) -> str:
    """The window's days, compact and ASCII, for a subject line: "14-20 Nov 2026", "28 Oct-3 Nov 2026"."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    first = start.date()
    last = (end - timedelta(microseconds=1)).date() if end.time() == datetime.min.time() else end.date()
    last = max(first, last)
    if first == last:
        return f"{first:%-d %b %Y}"
    if (first.year, first.month) == (last.year, last.month):
        return f"{first:%-d}-{last:%-d %b %Y}"
    if first.year == last.year:
        return f"{first:%-d %b}-{last:%-d %b %Y}"
    return f"{first:%-d %b %Y}-{last:%-d %b %Y}"


def s3_uri(bucket: str, key: str) -> str:
    """Where an object of the report's bucket is, as the AWS CLI takes it."""
    return f"s3://{bucket}/{key}"


def plural(n: int, one: str, many: str | None = None) -> str:
    """A count with its noun: "1 invoice", "2 invoices"."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def check_text(documents: Sequence[Document]) -> str:
    """OK when every checked document passed; else the flagged ones with why."""
    flagged = [f"{d.number}: {d.check}" for d in documents if d.check]
    if flagged:
        return "FLAGGED " + "; ".join(flagged)
    return "OK" if any(d.check is not None for d in documents) else ""


def aging_text(aging_amounts: Mapping[str, Decimal], currency: str, amount: Callable[..., str] = plain_amount) -> str:
    """Unpaid amounts by days past due: "Not yet due: 12.50; 1-30 days past due: 0.00; ..."."""
    return "; ".join(f"{bucket}: {amount(aging_amounts[bucket], currency)}" for bucket in AGING_BUCKETS)


def payment_errors(payments: RunPayments) -> int:
    """Invoices whose payment status Amazon could not give (the next run asks again)."""
    return sum(1 for r in payments.records.values() if r.status == STATUS_ERROR)
