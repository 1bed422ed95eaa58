"""What Amazon says about paying each invoice: the ledger's payment entries, past-due figures and the aging.

One ledger entry per invoice (`PAYMENT#<invoiceNumber>`), apart from the invoice's PDF entry so that writing a
payment status never touches the version and ownership protocol of the PDF steps. An entry whose invoice is not
Closed carries `openKind` "PAYMENT", so later runs find it in the sparse `open` index and ask again. Everything
here but the two ledger functions is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from abrecon.models import PaymentStatus
from abrecon.storage import DocumentStore, Ledger

OPEN_KIND = "PAYMENT"
# Not one of Amazon's statuses: the invoice's result was ERROR (or the call for its batch failed).
STATUS_ERROR = "ERROR"
AGING_BUCKETS = (
    "Not yet due",
    "1-30 days past due",
    "31-60 days past due",
    "61-90 days past due",
    "Over 90 days past due",
)
# The dashboard's metric per status (a metric name has no spaces).
STATUS_METRICS = {
    PaymentStatus.CLOSED.value: "PaymentsClosed",
    PaymentStatus.PAST_DUE.value: "PaymentsPastDue",
    PaymentStatus.ISSUED.value: "PaymentsIssued",
    PaymentStatus.PAYMENT_PROCESSING.value: "PaymentsProcessing",
    STATUS_ERROR: "PaymentsError",
}
OTHER_STATUS_METRIC = "PaymentsOtherStatus"


def payment_pk(invoice_number: str) -> str:
    """The ledger key of an invoice's payment entry."""
    return f"PAYMENT#{invoice_number}"


class PaymentRecord(BaseModel):
    """An invoice's payment entry: Amazon's status and due date as last asked, or ERROR with Amazon's reason.

    ``amount`` and ``currency`` are the invoice's (its invoiceTotal, else the charges Amazon linked to it), kept
    so that later runs can total past-due invoices they did not fetch themselves.
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    invoice_number: str = Field(alias="invoiceNumber", min_length=1)
    invoice_date: date | None = Field(default=None, alias="invoiceDate")
    amount: Decimal | None = None
    currency: str | None = None
    status: str = Field(min_length=1)
    due_date: date | None = Field(default=None, alias="dueDate")
    checked_at: datetime = Field(alias="checkedAt")
    reason: str | None = None
    run_id: str | None = Field(default=None, alias="runId")

    @field_validator("invoice_date", "due_date", mode="before")
    @classmethod
    def _date_part(cls, value: Any) -> Any:
        # Amazon's dueDate is a date-time ("2025-06-07T23:59:59Z"): the day is what finance pays by.
        if isinstance(value, str) and "T" in value:
            return value.split("T", 1)[0]
        if isinstance(value, datetime):
            return value.date()
        return value

    @property
    def is_open(self) -> bool:
        """Not paid and closed yet (an ERROR counts as open: the next run asks again)."""
        return self.status != PaymentStatus.CLOSED

    @property
    def is_past_due(self) -> bool:
        """Amazon says Past Due."""
        return self.status == PaymentStatus.PAST_DUE

    def days_past_due(self, today: date) -> int | None:
        """Days since the due date (0 or less: not yet due); None without a due date."""
        return (today - self.due_date).days if self.due_date is not None else None

    def as_item(self) -> dict[str, Any]:
        """The ledger entry; open entries carry the sparse index's key."""
        item: dict[str, Any] = {
            "pk": payment_pk(self.invoice_number),
            **{k: v for k, v in self.model_dump(mode="json", by_alias=True).items() if v is not None},
        }
        if self.amount is not None:
            item["amount"] = self.amount  # a number in DynamoDB, not its text
        if self.is_open:
            item["openKind"] = OPEN_KIND
        return item


def read_payments(ledger: Ledger, invoice_numbers: Iterable[str]) -> dict[str, PaymentRecord]:
    """The payment entries of these invoices (invoices never asked about are left out)."""
    records = (PaymentRecord.model_validate(item) for item in ledger.get_items(map(payment_pk, invoice_numbers)))
    return {r.invoice_number: r for r in records}


def open_payments(ledger: Ledger) -> list[PaymentRecord]:
    """Every invoice whose payment entry is not Closed, from the sparse index."""
    return [PaymentRecord.model_validate(item) for item in ledger.open_items(OPEN_KIND)]


def write_payments(ledger: Ledger, records: Iterable[PaymentRecord]) -> None:
    """Record each invoice's payment entry (replacing the one before)."""
    ledger.put_items(r.as_item() for r in records)


def metric_name(status: str) -> str:
    """The dashboard metric that counts answers in this status."""
    return STATUS_METRICS.get(status, OTHER_STATUS_METRIC)


def aging_bucket(days_past_due: int) -> str:
    """The aging column a number of days past due falls in (0 or less: not yet due)."""
    if days_past_due <= 0:
        return AGING_BUCKETS[0]
    if days_past_due <= 30:
        return AGING_BUCKETS[1]
    if days_past_due <= 60:
        return AGING_BUCKETS[2]
    if days_past_due <= 90:
        return AGING_BUCKETS[3]
    return AGING_BUCKETS[4]


@dataclass
class CurrencyAging:
    """Unpaid invoices of one currency by how far past their due date they are."""

    currency: str
    amounts: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(AGING_BUCKETS, Decimal(0)))
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(AGING_BUCKETS, 0))
    without_amount: int = 0  # invoices counted whose amount is unknown

    @property
    def total(self) -> Decimal:
        """Every bucket together."""
        return sum(self.amounts.values(), Decimal(0))


def aging(records: Iterable[PaymentRecord], today: date) -> tuple[CurrencyAging, ...]:
    """Aging totals per currency over the open invoices with a known status and due date, relative to today."""
    by_currency: dict[str, CurrencyAging] = {}
    for record in records:
        days = record.days_past_due(today)
        if not record.is_open or record.status == STATUS_ERROR or days is None:
            continue
        currency = record.currency or "?"
        totals = by_currency.setdefault(currency, CurrencyAging(currency))
        bucket = aging_bucket(days)
        totals.counts[bucket] += 1
        if record.amount is None:
            totals.without_amount += 1
        else:
            totals.amounts[bucket] += record.amount
    return tuple(by_currency[c] for c in sorted(by_currency))


@dataclass(frozen=True)
class PastDue:
    """The past-due invoices (oldest due date first) and their totals per currency."""

    records: tuple[PaymentRecord, ...]
    totals: Mapping[str, Decimal]

    @property
    def count(self) -> int:
        """How many invoices Amazon says are past due."""
        return len(self.records)

    @property
    def oldest_due_date(self) -> date | None:
        """The earliest due date among them."""
        dates = [r.due_date for r in self.records if r.due_date is not None]
        return min(dates) if dates else None

    @property
    def main_currency(self) -> str | None:
        """The currency with the most past-due invoices (the only one, for an account billed in one currency)."""
        counts: dict[str, int] = {}
        for r in self.records:
            counts[r.currency or "?"] = counts.get(r.currency or "?", 0) + 1
        return min(counts, key=lambda c: (-counts[c], c)) if counts else None


def past_due(records: Iterable[PaymentRecord]) -> PastDue:
    """The invoices Amazon says are past due, oldest due date first, with their totals per currency."""
    chosen = sorted((r for r in records if r.is_past_due), key=lambda r: (r.due_date or date.max, r.invoice_number))
    totals: dict[str, Decimal] = {}
    for r in chosen:
        if r.amount is not None:
            totals[r.currency or "?"] = totals.get(r.currency or "?", Decimal(0)) + r.amount
    return PastDue(tuple(chosen), dict(sorted(totals.items())))


@dataclass(frozen=True)
class RunPayments:
    """What the run's report shows about payments: every invoice it asked about, and why some were not."""

    records: Mapping[str, PaymentRecord]
    today: date
    failure: str | None = None  # the step failed and the run went on without (some of) the answers

    @property
    def past_due(self) -> PastDue:
        """The past-due invoices among them."""
        return past_due(self.records.values())

    @property
    def aging(self) -> tuple[CurrencyAging, ...]:
        """Aging totals per currency."""
        return aging(self.records.values(), self.today)

    def status_counts(self) -> dict[str, int]:
        """Invoices by payment status (ERROR included), sorted by status."""
        counts: dict[str, int] = {}
        for r in self.records.values():
            counts[r.status] = counts.get(r.status, 0) + 1
        return dict(sorted(counts.items()))


def run_payments(
    store: DocumentStore,
    ledger: Ledger,
    progress: Mapping[str, Any],
    numbers: Iterable[str],
    failure: str | None = None,
    today: date | None = None,
) -> RunPayments:
    """The payment entries a run's report shows: its documents' and every invoice on its list (`targetsKey`).

    ``progress`` is what Check payment status left in the run (its progress, or the Catch's {Error, Cause});
    ``failure`` says why the answers may be incomplete.
    """
    wanted = set(numbers)
    key = progress.get("targetsKey")
    if isinstance(key, str):
        wanted.update(t["invoiceNumber"] for t in store.get_json(key))
    if progress.get("more") and failure is None:
        failure = "the run went on before every invoice was asked about"
    return RunPayments(read_payments(ledger, wanted), today or datetime.now(UTC).date(), failure)


def status_text(record: PaymentRecord | None) -> str:
    """The payment status as the report shows it: Amazon's word, or ERROR with Amazon's reason."""
    if record is None:
        return ""
    if record.status == STATUS_ERROR:
        return f"ERROR: {record.reason}" if record.reason else STATUS_ERROR
    return record.status


def join_statuses(records: Sequence[PaymentRecord | None]) -> tuple[str, str]:
    """(payment status, due date) cells of a report row listing these invoices' payment entries."""
    shown = [r for r in records if r is not None]
    statuses = "; ".join(status_text(r) for r in shown)
    due = "; ".join(r.due_date.isoformat() if r.due_date else "" for r in shown)
    return statuses, due if any(r.due_date for r in shown) else ""
