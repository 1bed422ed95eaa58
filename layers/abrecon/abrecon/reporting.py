"""The run's reconciliation report (CSV and HTML) and the finance notification's wording. Pure functions only.

One report row per transaction line item: the transaction, the order line item, the documents Amazon issued for
it (invoice for a charge, credit memo for a refund), where their PDFs are, and whether they arrived. Amounts a
document carries as a whole (JP: ``invoiceTotal`` and the ``tax[]`` breakdown by rate) are shown once per
document, on the first row that lists it, so that every amount column adds up; credit memos count negative,
like the refunds they stand for. Those columns only appear when some document of the run carries them.
"""

from __future__ import annotations

import csv
import html
import io
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from abrecon.line_items import match_key
from abrecon.models import InvoiceDetail, Money
from abrecon.payment_status import (
    AGING_BUCKETS,
    STATUS_ERROR,
    PaymentRecord,
    RunPayments,
    join_statuses,
    status_text,
)
from abrecon.storage import InvoiceRecord, InvoiceState

__all__ = [
    "CurrencyTotals",
    "Document",
    "LineItemLike",
    "Outcome",
    "Problem",
    "Report",
    "ReportLine",
    "Status",
    "TaxAmounts",
    "build_report",
    "describe_window",
    "finance_message",
    "finance_subject",
    "format_amount",
    "plain_amount",
    "render_csv",
    "render_html",
    "short_window",
]

SNS_SUBJECT_LIMIT = 100
MESSAGE_LIST_LIMIT = 20
# ISO 4217 currencies without minor units that Amazon Business bills in (or might).
_ZERO_DECIMAL = frozenset({"JPY", "KRW", "CLP", "VND", "ISK"})
_REFUND_TYPES = frozenset({"REFUND", "OVERREFUND"})
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class LineItemLike(Protocol):
    """A transaction line item as the run keeps it (``abrecon.steps.LineItemRow``)."""

    transaction_id: str
    transaction_type: str | None
    transaction_date: str | None
    order_id: str
    order_line_item_id: str
    shipment_id: str | None
    asin: str | None
    title: str | None
    quantity: int | None
    amount: Decimal | None
    currency: str | None


class Status(StrEnum):
    """Where a line item's documents stand; the worst of its documents' states."""

    STORED = "STORED"
    NOT_REQUESTED = "NOT_REQUESTED"  # the stack asks for no PDFs (RequestPdfs false): invoice data only
    NO_INVOICE_YET = "NO_INVOICE_YET"
    NOT_SHIPPED = "NOT_SHIPPED"  # Amazon lists the line item without a shipment: no invoice can exist yet
    REQUESTED = "REQUESTED"
    DEFERRED = "DEFERRED"
    FAILED = "FAILED"

    @property
    def label(self) -> str:
        """How a person reads it."""
        return {
            Status.STORED: "Stored",
            Status.NOT_REQUESTED: "PDF not requested",
            Status.NO_INVOICE_YET: "No invoice yet",
            Status.NOT_SHIPPED: "Not shipped yet",
            Status.REQUESTED: "Not stored yet",
            Status.DEFERRED: "Deferred",
            Status.FAILED: "Failed",
        }[self]


_SEVERITY = {
    Status.STORED: 0,
    Status.NOT_REQUESTED: 0,
    Status.NO_INVOICE_YET: 1,
    Status.NOT_SHIPPED: 1,
    Status.REQUESTED: 2,
    Status.DEFERRED: 3,
    Status.FAILED: 4,
}


class Outcome(StrEnum):
    """The run at a glance; the finance message's `status` attribute."""

    OK = "OK"  # every document stored, every line item has its invoice
    INCOMPLETE = "INCOMPLETE"  # nothing wrong, but some documents come with a later run
    ACTION_NEEDED = "ACTION_NEEDED"  # an invoice could not be stored, or failed the JP checks: someone has to look


@dataclass(frozen=True)
class TaxAmounts:
    """One rate's amounts: without tax, the tax, with tax."""

    taxable: Decimal = Decimal(0)
    tax: Decimal = Decimal(0)
    total: Decimal = Decimal(0)

    def __add__(self, other: TaxAmounts) -> TaxAmounts:
        return TaxAmounts(self.taxable + other.taxable, self.tax + other.tax, self.total + other.total)


@dataclass(frozen=True)
class Document:
    """An invoice or credit memo as the report shows it."""

    number: str
    is_credit_memo: bool
    date: date | None
    currency: str | None
    total: Decimal | None  # signed: credit memos negative
    tax: Mapping[Decimal, TaxAmounts]  # by rate, signed
    status: Status
    reason: str
    s3_keys: tuple[str, ...]
    stored_earlier: bool
    check: str | None = None  # JP tax-qualified invoice check: None not checked, "" passed, else why it failed
    payment: PaymentRecord | None = None  # Amazon's payment status and due date (invoices only)

    @property
    def kind(self) -> str:
        """Invoice or Credit memo."""
        return "Credit memo" if self.is_credit_memo else "Invoice"


@dataclass(frozen=True)
class ReportLine:
    """One row: a transaction line item and its documents."""

    transaction_id: str
    transaction_type: str
    transaction_date: datetime | None
    transaction_date_text: str
    order_id: str
    order_line_item_id: str
    shipment_id: str
    asin: str
    title: str
    quantity: int | None
    amount: Decimal | None
    currency: str
    documents: tuple[Document, ...]
    status: Status
    reason: str
    document_total: Decimal | None  # the documents first listed on this row
    tax: Mapping[Decimal, TaxAmounts]  # the documents first listed on this row, by rate


@dataclass
class CurrencyTotals:
    """The report's totals in one currency."""

    currency: str
    line_items: int = 0
    charged: Decimal = Decimal(0)
    refunded: Decimal = Decimal(0)  # negative
    document_total: Decimal | None = None
    tax: dict[Decimal, TaxAmounts] = field(default_factory=dict)
    statuses: Counter[Status] = field(default_factory=Counter)
    amount_with_documents: Decimal = Decimal(0)
    every_document_has_a_total: bool = True

    @property
    def net(self) -> Decimal:
        """Charged plus refunded."""
        return self.charged + self.refunded

    @property
    def difference(self) -> Decimal | None:
        """Charged minus invoiced, over line items that have documents; None where documents carry no totals."""
        if self.document_total is None or not self.every_document_has_a_total:
            return None
        return self.amount_with_documents - self.document_total


@dataclass(frozen=True)
class Problem:
    """An invoice (or credit memo with its own report) that failed or was deferred, with the reason."""

    invoice_number: str
    reason: str


@dataclass(frozen=True)
class Report:
    """Everything the CSV, the HTML page and the finance message show."""

    run_id: str
    window_start: datetime
    window_end: datetime
    generated_at: datetime
    bucket: str
    csv_key: str
    html_key: str
    lines: tuple[ReportLine, ...]
    documents: Mapping[str, Document]
    tax_rates: tuple[Decimal, ...]
    has_document_totals: bool
    totals: tuple[CurrencyTotals, ...]
    failures: tuple[Problem, ...]
    deferrals: tuple[Problem, ...]
    checked: int = 0  # JP: invoices whose tax-qualified data was checked
    flags: tuple[Problem, ...] = ()  # JP: invoices that failed the checks, with why
    pdfs_requested: bool = True
    payments: RunPayments | None = None  # None: the run asked no payment status (the columns are left out)

    @property
    def pending_lines(self) -> int:
        """Line items Amazon has issued no document for yet (not shipped ones included)."""
        return sum(1 for line in self.lines if line.status in (Status.NO_INVOICE_YET, Status.NOT_SHIPPED))

    @property
    def unshipped_lines(self) -> int:
        """Line items Amazon lists without a shipment yet."""
        return sum(1 for line in self.lines if line.status is Status.NOT_SHIPPED)

    @property
    def outcome(self) -> Outcome:
        """OK, INCOMPLETE (deferred or waiting for an invoice) or ACTION_NEEDED (failures)."""
        if self.failures or self.flags:
            return Outcome.ACTION_NEEDED
        if self.deferrals or self.pending_lines:
            return Outcome.INCOMPLETE
        return Outcome.OK

    def count(self, *, credit_memos: bool, status: Status | None = None, stored_earlier: bool | None = None) -> int:
        """Documents of one kind, optionally in one status and stored by this or an earlier run."""
        return sum(
            1
            for d in self.documents.values()
            if d.is_credit_memo == credit_memos
            and (status is None or d.status is status)
            and (stored_earlier is None or d.stored_earlier == stored_earlier)
        )

    @property
    def pdfs_stored(self) -> int:
        """PDFs stored by this run."""
        keys = {
            k for d in self.documents.values() if d.status is Status.STORED and not d.stored_earlier for k in d.s3_keys
        }
        return len(keys)


# --- building ----------------------------------------------------------------------------------------------------


def _is_credit_memo(detail: InvoiceDetail | None) -> bool:
    return detail is not None and (detail.invoiceType or "").upper() == "CREDIT_MEMO"


def _signed(value: Decimal, negative: bool) -> Decimal:
    return -value if negative else value


def _money(value: Money | None) -> Decimal:
    return value.amount if value is not None else Decimal(0)


def _document_tax(detail: InvoiceDetail, negative: bool) -> dict[Decimal, TaxAmounts]:
    by_rate: dict[Decimal, TaxAmounts] = {}
    for line in detail.tax:
        if line.rate is None:
            continue
        taxable, tax = _money(line.exclusiveTotal), _money(line.amount)
        total = _money(line.inclusiveTotal) if line.inclusiveTotal is not None else taxable + tax
        amounts = TaxAmounts(_signed(taxable, negative), _signed(tax, negative), _signed(total, negative))
        rate = line.rate.normalize()
        by_rate[rate] = by_rate.get(rate, TaxAmounts()) + amounts
    return by_rate


def _report_target(number: str, detail: InvoiceDetail | None, targets: Collection[str]) -> str:
    """The invoice whose report carries this document: a credit memo comes with its invoice's report."""
    if number in targets:
        return number
    original = detail.associatedInvoiceNumber if detail is not None and _is_credit_memo(detail) else None
    return original if original is not None and original in targets else number


def _keys_of(number: str, record_keys: Sequence[str]) -> tuple[str, ...]:
    """The PDFs of one document among its report's: those whose file name carries its number, else all of them."""
    own = tuple(k for k in record_keys if number in k.rsplit("/", 1)[-1])
    return own or tuple(record_keys)


def _document(
    number: str,
    detail: InvoiceDetail | None,
    run_id: str,
    targets: Collection[str],
    records: Mapping[str, InvoiceRecord],
    requested_this_run: Collection[str],
    pdfs_requested: bool,
) -> Document:
    memo = _is_credit_memo(detail)
    target = _report_target(number, detail, targets)
    record = records.get(target)
    via = "" if target == number else f" (delivered with invoice {target})"
    keys: tuple[str, ...] = ()
    stored_earlier = False
    if record is None and not pdfs_requested:
        status, reason = Status.NOT_REQUESTED, "PDFs are not requested (RequestPdfs is false)"
    elif record is None:
        status, reason = Status.FAILED, f"no ledger entry{via}: the PDF step never ran"
    elif record.state is InvoiceState.STORED:
        status, keys = Status.STORED, _keys_of(number, record.s3_keys)
        stored_earlier = target not in requested_this_run
        reason = f"stored by an earlier run ({record.run_id or 'unknown'})" if stored_earlier else ""
    elif record.state is InvoiceState.DEFERRED:
        status, reason = Status.DEFERRED, (record.reason or "deferred to the next run") + via
    elif record.state is InvoiceState.FAILED:
        status, reason = Status.FAILED, (record.reason or "failed") + via
    elif record.run_id and record.run_id != run_id:
        status = Status.REQUESTED
        reason = f"another execution ({record.run_id}) is fetching it{via}; its report shows the outcome"
    else:
        status = Status.REQUESTED
        reason = f"the run ended with the report {record.report_id or ''} still {record.state.value}{via}"
    total = detail.invoiceTotal if detail is not None else None
    return Document(
        number=number,
        is_credit_memo=memo,
        date=detail.invoiceDate.date() if detail is not None else None,
        currency=detail.currencyCode if detail is not None else None,
        total=_signed(total, memo) if total is not None else None,
        tax=_document_tax(detail, memo) if detail is not None else {},
        status=status,
        reason=reason,
        s3_keys=keys,
        stored_earlier=stored_earlier,
    )


def _parse_date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _line_documents(line: LineItemLike, numbers: Sequence[str], documents: Mapping[str, Document]) -> list[Document]:
    """A charge's invoices, a refund's credit memos; all of the line item's documents when that leaves none."""
    docs = [documents[n] for n in numbers]
    refund = (line.transaction_type or "").upper() in _REFUND_TYPES
    chosen = [d for d in docs if d.is_credit_memo == refund]
    return chosen or docs


def build_report(
    *,
    run_id: str,
    window_start: datetime,
    window_end: datetime,
    generated_at: datetime,
    bucket: str,
    csv_key: str,
    html_key: str,
    line_items: Iterable[LineItemLike],
    matches: Mapping[str, Sequence[str]],
    details: Mapping[str, InvoiceDetail],
    records: Mapping[str, InvoiceRecord],
    targets: Collection[str],
    requested_this_run: Collection[str],
    failures: Iterable[Mapping[str, str]],
    deferrals: Iterable[Mapping[str, str]],
    checked: int = 0,
    flags: Iterable[Mapping[str, str]] = (),
    pdfs_requested: bool = True,
    payments: RunPayments | None = None,
) -> Report:
    """Join line items, invoice details and the ledger into the run's report.

    ``matches``: "orderId|orderLineItemId|shipmentId" -> document numbers; ``records``: ledger entries of the
    report targets; ``targets``: invoices (and orphan credit memos) a report is due for; ``requested_this_run``:
    the targets this run asked a report for (the others were stored by an earlier run); ``failures`` and
    ``deferrals``: the run summary's ({"invoiceNumber", "reason"}), so the report and the summary agree.
    ``checked`` and ``flags`` (JP): how many invoices the tax-qualified checks saw, and every one they flagged.
    """
    targets, requested_this_run = frozenset(targets), frozenset(requested_this_run)  # looked up per document
    numbers = sorted({n for found in matches.values() for n in found})
    flagged = _as_problems(flags)
    reasons = {f.invoice_number: f.reason for f in flagged}
    documents = {
        n: replace(
            _document(n, details.get(n), run_id, targets, records, requested_this_run, pdfs_requested),
            check=reasons.get(n, "") if checked else None,
            payment=payments.records.get(n) if payments is not None else None,
        )
        for n in numbers
    }
    items = sorted(
        line_items,
        key=lambda i: (
            i.transaction_date or "",
            i.transaction_id,
            i.order_id,
            i.order_line_item_id,
            i.shipment_id or "",
        ),
    )
    seen: set[str] = set()
    lines: list[ReportLine] = []
    for item in items:
        docs = _line_documents(item, matches.get(match_key(item), []), documents)
        first = [d for d in docs if d.number not in seen]
        seen.update(d.number for d in first)
        tax: dict[Decimal, TaxAmounts] = {}
        for doc in first:
            for rate, amounts in doc.tax.items():
                tax[rate] = tax.get(rate, TaxAmounts()) + amounts
        totals = [d.total for d in first if d.total is not None]
        if docs:
            worst = max(docs, key=lambda d: _SEVERITY[d.status])
            status = worst.status
            reason = "; ".join(dict.fromkeys(d.reason for d in docs if d.reason and d.status is status))
        elif not item.shipment_id:
            status = Status.NOT_SHIPPED
            reason = (
                "Amazon lists no shipment for this line item yet (ordered, not shipped): its invoice is issued "
                "when it ships, and a later run matches it"
            )
        else:
            status = Status.NO_INVOICE_YET
            reason = "Amazon has issued no invoice for this line item yet; it is issued when the item ships"
        when = _parse_date(item.transaction_date)
        lines.append(
            ReportLine(
                transaction_id=item.transaction_id,
                transaction_type=item.transaction_type or "",
                transaction_date=when,
                transaction_date_text=when.strftime("%Y-%m-%d %H:%M:%S") if when else (item.transaction_date or ""),
                order_id=item.order_id,
                order_line_item_id=item.order_line_item_id,
                shipment_id=item.shipment_id or "",
                asin=item.asin or "",
                title=item.title or "",
                quantity=item.quantity,
                amount=item.amount,
                currency=item.currency or "",
                documents=tuple(docs),
                status=status,
                reason=reason,
                document_total=sum(totals, Decimal(0)) if totals else None,
                tax=tax,
            )
        )
    rates = sorted({rate for d in documents.values() for rate in d.tax}, reverse=True)
    return Report(
        run_id=run_id,
        window_start=window_start,
        window_end=window_end,
        generated_at=generated_at,
        bucket=bucket,
        csv_key=csv_key,
        html_key=html_key,
        lines=tuple(lines),
        documents=documents,
        tax_rates=tuple(rates),
        has_document_totals=any(d.total is not None for d in documents.values()),
        totals=_totals(lines),
        failures=_as_problems(failures),
        deferrals=_as_problems(deferrals),
        checked=checked,
        flags=flagged,
        pdfs_requested=pdfs_requested,
        payments=payments,
    )


def _as_problems(items: Iterable[Mapping[str, str]]) -> tuple[Problem, ...]:
    return tuple(Problem(i["invoiceNumber"], i.get("reason", "")) for i in items)


def _totals(lines: Iterable[ReportLine]) -> tuple[CurrencyTotals, ...]:
    by_currency: dict[str, CurrencyTotals] = {}
    for line in lines:
        currency = line.currency or (line.documents[0].currency if line.documents else None) or "?"
        totals = by_currency.setdefault(currency, CurrencyTotals(currency))
        totals.line_items += 1
        totals.statuses[line.status] += 1
        if line.amount is not None:
            if line.amount < 0:
                totals.refunded += line.amount
            else:
                totals.charged += line.amount
            if line.documents:
                totals.amount_with_documents += line.amount
        if line.documents and any(d.total is None for d in line.documents):
            totals.every_document_has_a_total = False
        if line.document_total is not None:
            totals.document_total = (totals.document_total or Decimal(0)) + line.document_total
        for rate, amounts in line.tax.items():
            totals.tax[rate] = totals.tax.get(rate, TaxAmounts()) + amounts
    return tuple(by_currency[c] for c in sorted(by_currency))


# --- formatting --------------------------------------------------------------------------------------------------


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


def _rate_text(rate: Decimal) -> str:
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


def _safe_cell(text: str) -> str:
    """Text a spreadsheet would run as a formula gets a leading apostrophe (CSV injection)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


# --- CSV -----------------------------------------------------------------------------------------------------------


def _csv_header(report: Report) -> list[str]:
    header = [
        "Transaction date (UTC)",
        "Transaction ID",
        "Transaction type",
        "Order ID",
        "Order line item ID",
        "Shipment ID",
        "ASIN",
        "Title",
        "Quantity",
        "Amount",
        "Currency",
        "Document number(s)",
        "Document type(s)",
        "Document date(s)",
    ]
    if report.payments is not None:
        header += ["Payment status", "Due date"]
    if report.has_document_totals:
        header.append("Document total")
    for rate in report.tax_rates:
        pct = _rate_text(rate)
        header += [f"Taxable at {pct} (excl. tax)", f"Tax at {pct}", f"Total at {pct} (incl. tax)"]
    if report.checked:
        header.append("Tax invoice check (JP)")
    return [*header, "Status", "Reason", "Document S3 key(s)"]


def _check_text(documents: Sequence[Document]) -> str:
    """OK when every checked document passed; else the flagged ones with why."""
    flagged = [f"{d.number}: {d.check}" for d in documents if d.check]
    if flagged:
        return "FLAGGED " + "; ".join(flagged)
    return "OK" if any(d.check is not None for d in documents) else ""


def _document_columns(
    report: Report, currency: str, total: Decimal | None, tax: Mapping[Decimal, TaxAmounts]
) -> list[str]:
    cells = [plain_amount(total, currency)] if report.has_document_totals else []
    for rate in report.tax_rates:
        amounts = tax.get(rate)
        cells += (
            [
                plain_amount(amounts.taxable, currency),
                plain_amount(amounts.tax, currency),
                plain_amount(amounts.total, currency),
            ]
            if amounts
            else ["", "", ""]
        )
    return cells


def render_csv(report: Report) -> bytes:
    """The report as CSV (UTF-8 with a byte order mark, so spreadsheets read Japanese titles right).

    One row per line item, then an empty row, then one TOTAL row per currency.
    """
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_csv_header(report))
    for line in report.lines:
        docs = line.documents
        writer.writerow(
            [
                line.transaction_date_text,
                _safe_cell(line.transaction_id),
                _safe_cell(line.transaction_type),
                _safe_cell(line.order_id),
                _safe_cell(line.order_line_item_id),
                _safe_cell(line.shipment_id),
                _safe_cell(line.asin),
                _safe_cell(line.title),
                "" if line.quantity is None else str(line.quantity),
                plain_amount(line.amount, line.currency),
                line.currency,
                _safe_cell("; ".join(d.number for d in docs)),
                "; ".join(d.kind for d in docs),
                "; ".join(d.date.isoformat() if d.date else "" for d in docs),
                *(map(_safe_cell, join_statuses([d.payment for d in docs])) if report.payments is not None else ()),
                *_document_columns(report, line.currency, line.document_total, line.tax),
                *([_safe_cell(_check_text(docs))] if report.checked else []),
                line.status.value,
                _safe_cell(line.reason),
                _safe_cell("; ".join(_s3_uri(report.bucket, k) for d in docs for k in d.s3_keys)),
            ]
        )
    width = len(_csv_header(report))
    writer.writerow([""] * width)
    for totals in report.totals:
        counts = ", ".join(
            f"{n} {s.label.lower()}" for s, n in sorted(totals.statuses.items(), key=lambda x: _SEVERITY[x[0]])
        )
        note = f"{totals.line_items} line items: {counts}"
        if totals.difference is not None:
            note += f"; charged minus invoiced: {plain_amount(totals.difference, totals.currency)}"
        row = ["TOTAL", "", "", "", "", "", "", "", "", plain_amount(totals.net, totals.currency), totals.currency]
        row += ["", "", "", *[""] * 2 * (report.payments is not None)]
        row += _document_columns(report, totals.currency, totals.document_total, totals.tax)
        row += [""] * bool(report.checked) + ["", note, ""]
        writer.writerow(row)
    for currency, note in _aging_csv_notes(report):
        writer.writerow(["AGING", *[""] * 9, currency, *[""] * (width - 13), note, ""])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# --- HTML ----------------------------------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --head: #f6f8fa;
  --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK JP", sans-serif;
  color: var(--ink); margin: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.meta, .note { color: var(--muted); margin: 0 0 8px; }
.glance { display: flex; flex-wrap: wrap; gap: 8px 24px; margin: 16px 0; padding: 0; list-style: none; }
.glance li { min-width: 120px; }
.glance b { display: block; font-size: 20px; }
.outcome { font-weight: 600; padding: 8px 12px; border-left: 4px solid var(--ok); background: var(--head); }
.outcome.INCOMPLETE { border-color: var(--warn); }
.outcome.ACTION_NEEDED { border-color: var(--bad); }
table { border-collapse: collapse; width: 100%; }
table.totals { width: auto; min-width: 50%; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 6px; text-align: left; vertical-align: top; }
thead th { background: var(--head); position: sticky; top: 0; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
table.lines { font-size: 13px; }
table.lines th, table.lines td { padding: 4px 5px; }
td.item { min-width: 12em; }
td.state { min-width: 9em; }
tfoot td { font-weight: 600; border-top: 2px solid var(--ink); }
.small { color: var(--muted); font-size: 12px; overflow-wrap: anywhere; }
.nowrap { white-space: nowrap; }
.status { font-weight: 600; white-space: nowrap; }
.STORED .status { color: var(--ok); }
.NO_INVOICE_YET .status, .NOT_SHIPPED .status, .DEFERRED .status, .REQUESTED .status { color: var(--warn); }
.FAILED .status, .flagged { color: var(--bad); }
tr.FAILED { background: #ffebe9; }
.pastdue { color: var(--bad); font-weight: 600; }
section.pastdue-section { border-left: 4px solid var(--bad); padding: 0 12px 8px; margin: 16px 0; }
section.pastdue-section.none { border-color: var(--ok); }
ul.problems { margin: 0; padding-left: 20px; }
footer { margin-top: 24px; color: var(--muted); font-size: 12px; }
@media print {
  @page { size: A4 landscape; margin: 10mm; }
  body { margin: 0; font-size: 9pt; }
  thead { display: table-header-group; }
  tfoot { display: table-row-group; }  /* the totals once, at the end: not on every page like a page subtotal */
  thead th { position: static; }
  tr { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _relative_href(report_key: str, key: str) -> str:
    """A link from the report to a PDF that works wherever the bucket's layout is mirrored (sync, export)."""
    depth = report_key.count("/")
    return "../" * depth + key


def _glance(report: Report) -> str:
    items = [
        ("Line items", str(len(report.lines))),
        ("Invoices arrived", str(report.count(credit_memos=False, status=Status.STORED, stored_earlier=False))),
        ("Credit memos arrived", str(report.count(credit_memos=True, status=Status.STORED, stored_earlier=False))),
        ("Stored earlier", str(sum(1 for d in report.documents.values() if d.stored_earlier))),
        ("Failed", str(len(report.failures))),
        ("Deferred", str(len(report.deferrals))),
        ("No invoice yet", str(report.pending_lines)),
    ]
    if report.checked:
        items.append(("Flagged by the JP checks", f"{len(report.flags)} of {report.checked}"))
    return '<ul class="glance">' + "".join(f"<li><b>{_e(v)}</b>{_e(k)}</li>" for k, v in items) + "</ul>"


def _totals_table(report: Report) -> str:
    head = ["Currency", "Line items", "Charged", "Refunded", "Net"]
    if report.has_document_totals:
        head += ["Invoiced (documents)", "Charged minus invoiced"]
    for rate in report.tax_rates:
        head += [f"Taxable at {_rate_text(rate)}", f"Tax at {_rate_text(rate)}"]
    rows = []
    for t in report.totals:
        cells = [f"<td>{_e(t.currency)}</td>", f'<td class="num">{t.line_items}</td>']
        cells += [f'<td class="num">{_e(format_amount(v, t.currency))}</td>' for v in (t.charged, t.refunded, t.net)]
        if report.has_document_totals:
            cells.append(f'<td class="num">{_e(format_amount(t.document_total, t.currency))}</td>')
            diff = t.difference
            cells.append(f'<td class="num">{_e(format_amount(diff, t.currency)) if diff is not None else "n/a"}</td>')
        for rate in report.tax_rates:
            amounts = t.tax.get(rate, TaxAmounts())
            cells += [
                f'<td class="num">{_e(format_amount(amounts.taxable, t.currency))}</td>',
                f'<td class="num">{_e(format_amount(amounts.tax, t.currency))}</td>',
            ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    numeric = {i for i in range(1, len(head))}
    header = "".join(f"<th{' class=num' if i in numeric else ''}>{_e(h)}</th>" for i, h in enumerate(head))
    return f'<table class="totals"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _attention(report: Report) -> str:
    parts = []
    if report.failures:
        items = "".join(f"<li><b>{_e(p.invoice_number)}</b>: {_e(p.reason)}</li>" for p in report.failures)
        parts.append(f"<p>Failed, someone should look at these:</p><ul class=problems>{items}</ul>")
    if report.deferrals:
        items = "".join(f"<li><b>{_e(p.invoice_number)}</b>: {_e(p.reason)}</li>" for p in report.deferrals)
        parts.append(
            "<p>Deferred, Amazon is still preparing the PDF; the next run fetches it:</p>"
            f"<ul class=problems>{items}</ul>"
        )
    if report.flags:
        items = "".join(f"<li><b>{_e(p.invoice_number)}</b>: {_e(p.reason)}</li>" for p in report.flags)
        parts.append(
            "<p>Flagged by the tax-qualified invoice checks (JP); ask the seller for a corrected invoice before "
            f"claiming its input tax:</p><ul class=problems>{items}</ul>"
        )
    if report.pending_lines:
        parts.append(
            f"<p>{report.pending_lines} line item(s) have no invoice yet: Amazon issues the invoice when the item "
            "ships, and a later run picks it up.</p>"
        )
    if not report.pdfs_requested:
        parts.append(
            "<p>PDFs are not requested by this stack (RequestPdfs is false): invoice data and checks only.</p>"
        )
    return "".join(parts) or "<p>Nothing needs attention.</p>"


def _dated(document: Document) -> str:
    return f" &middot; {_e(document.date.isoformat())}" if document.date else ""


def _lines_table(report: Report) -> str:
    head = ["<th>Date (UTC) / transaction</th>", "<th>Order / line item / shipment</th>", "<th>Item</th>"]
    head += ['<th class="num">Qty</th>', '<th class="num">Amount</th>', "<th>Document(s)</th>"]
    if report.has_document_totals:
        head.append('<th class="num">Document total</th>')
    for rate in report.tax_rates:
        head += [
            f'<th class="num">{_e(_rate_text(rate))} taxable</th>',
            f'<th class="num">{_e(_rate_text(rate))} tax</th>',
        ]
    head.append("<th>Status</th>")
    body = []
    for n, line in enumerate(report.lines, start=1):
        docs = "".join(
            "<div>"
            + (
                f'<a href="{_e(_relative_href(report.html_key, d.s3_keys[0]))}">{_e(d.number)}</a>'
                if d.s3_keys
                else _e(d.number)
            )
            + f'<div class="small nowrap">{_e(d.kind)}{_dated(d)}</div>{_payment_note(d)}</div>'
            for d in line.documents
        )
        cells = [
            f'<td class="nowrap">{_e(line.transaction_date_text[:16])}'
            f'<div class="small">{_e(line.transaction_type.title())} &middot; {_e(line.transaction_id)}</div></td>',
            f'<td class="nowrap">{_e(line.order_id)}<div class="small">{_e(line.order_line_item_id)} / '
            f"{_e(line.shipment_id)}</div></td>",
            f'<td class="item">{_e(line.title)}<div class="small">{_e(line.asin)}</div></td>',
            f'<td class="num">{"" if line.quantity is None else line.quantity}</td>',
            f'<td class="num">{_e(format_amount(line.amount, line.currency))} {_e(line.currency)}</td>',
            f"<td>{docs or '<span class=small>none yet</span>'}</td>",
        ]
        if report.has_document_totals:
            cells.append(f'<td class="num">{_e(format_amount(line.document_total, line.currency))}</td>')
        for rate in report.tax_rates:
            amounts = line.tax.get(rate)
            cells += (
                [
                    f'<td class="num">{_e(format_amount(amounts.taxable, line.currency))}</td>',
                    f'<td class="num">{_e(format_amount(amounts.tax, line.currency))}</td>',
                ]
                if amounts
                else ['<td class="num"></td>', '<td class="num"></td>']
            )
        reason = f'<div class="small">{_e(line.reason)}</div>' if line.reason else ""
        check = _check_text(line.documents) if report.checked else ""
        if check.startswith("FLAGGED"):  # the reasons are listed under Needs attention (and in the CSV)
            reason += '<div class="small flagged">JP check: FLAGGED (see Needs attention)</div>'
        elif check:
            reason += f'<div class="small nowrap">JP check: {_e(check)}</div>'

        cells.append(f'<td class="state"><span class="status">{_e(line.status.label)}</span>{reason}</td>')
        body.append(f'<tr id="line-{n}" class="line {line.status.value}">' + "".join(cells) + "</tr>")
    foot = []
    for t in report.totals:
        cells = [f'<td colspan="4">Total {_e(t.currency)} ({t.line_items} line items)</td>']
        cells.append(f'<td class="num">{_e(format_amount(t.net, t.currency))} {_e(t.currency)}</td><td></td>')
        if report.has_document_totals:
            cells.append(f'<td class="num">{_e(format_amount(t.document_total, t.currency))}</td>')
        for rate in report.tax_rates:
            amounts = t.tax.get(rate, TaxAmounts())
            cells += [
                f'<td class="num">{_e(format_amount(amounts.taxable, t.currency))}</td>',
                f'<td class="num">{_e(format_amount(amounts.tax, t.currency))}</td>',
            ]
        cells.append("<td></td>")
        foot.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<table class="lines"><thead><tr>{"".join(head)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody><tfoot>{''.join(foot)}</tfoot></table>"
    )


_OUTCOME_TEXT = {
    Outcome.OK: "Everything is here: every document of this period is stored.",
    Outcome.INCOMPLETE: "Nothing failed, but some documents are still to come with a later run.",
}


def _outcome_text(report: Report) -> str:
    if report.outcome is not Outcome.ACTION_NEEDED:
        return _OUTCOME_TEXT[report.outcome]
    return f"Action needed: {_trouble(report)} (see below)."


def render_html(report: Report) -> bytes:
    """The report as one self-contained HTML page: no scripts, no external assets, printable (A4 landscape)."""
    window = describe_window(report.window_start, report.window_end)
    title = f"Amazon Business reconciliation, {window}"
    document_note = (
        " Document totals and tax by rate are shown once per document, on its first line item, so each column adds"
        " up; credit memos count negative."
        if report.has_document_totals or report.tax_rates
        else ""
    )
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>Amazon Business reconciliation</h1>
<p class="meta">{_e(window)} &middot; run {_e(report.run_id)} &middot; generated
{_e(report.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"))}</p>
</header>
{_past_due_section(report)}
<p class="outcome {report.outcome.value}">{_e(_outcome_text(report))}</p>
{_glance(report)}
<h2>Totals</h2>
{_totals_table(report)}
<h2>Needs attention</h2>
{_attention(report)}
<h2>Line items</h2>
<p class="note">One row per transaction line item: the invoice for a charge, the credit memo for a refund.
Amounts are as Amazon charged them, refunds negative.{document_note}</p>
{_lines_table(report)}
<footer>
<p>Spreadsheet: {_e(_s3_uri(report.bucket, report.csv_key))}<br>
This page: {_e(_s3_uri(report.bucket, report.html_key))}<br>
PDFs: {_e(_s3_uri(report.bucket, "documents/"))} (links work in a copy of the bucket, e.g. after aws s3 sync)</p>
</footer>
</body>
</html>
"""
    return page.encode("utf-8")


# --- the finance notification ------------------------------------------------------------------------------------


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _arrived(report: Report) -> tuple[int, int, str]:
    """Invoices and credit memos that arrived with this run, and the verb for them."""
    if not report.pdfs_requested:  # invoice data only: what Amazon listed
        return report.count(credit_memos=False), report.count(credit_memos=True), "found (PDFs not requested)"
    invoices = report.count(credit_memos=False, status=Status.STORED, stored_earlier=False)
    memos = report.count(credit_memos=True, status=Status.STORED, stored_earlier=False)
    return invoices, memos, "stored"


def _trouble(report: Report) -> str:
    parts = []
    if report.failures:
        parts.append(f"{_plural(len(report.failures), 'invoice')} failed")
    if report.flags:
        parts.append(f"{_plural(len(report.flags), 'invoice')} flagged by JP tax checks")
    return ", ".join(parts)


def finance_subject(report: Report) -> str:
    """The SNS subject: ASCII, at most 100 characters, the outcome first; less important parts go when it is long."""
    window = short_window(report.window_start, report.window_end)
    invoices, memos, verb = _arrived(report)
    verb = verb.split(" (")[0]
    arrived = _plural(invoices, "invoice") + (f" + {_plural(memos, 'credit memo')}" if memos else "") + f" {verb}"
    head = f"Amazon Business {window}"
    if report.outcome is Outcome.ACTION_NEEDED:
        head = f"ACTION NEEDED: {head}"
        candidates = [f"{head}: {_trouble(report)}; {arrived}", f"{head}: {_trouble(report)}"]
    elif report.outcome is Outcome.INCOMPLETE:
        to_follow = len(report.deferrals) + report.pending_lines
        candidates = [f"{head}: {arrived}, {to_follow} to follow", f"{head}: {to_follow} to follow"]
    else:
        candidates = [f"{head}: {arrived}, nothing missing", f"{head}: all {invoices + memos} stored"]
    for text in map(_ascii, candidates):
        if len(text) <= SNS_SUBJECT_LIMIT:
            return text
    return candidates[-1][: SNS_SUBJECT_LIMIT - 3] + "..."


def _listed(problems: Sequence[Problem]) -> list[str]:
    lines = [f"    - {p.invoice_number}: {p.reason}" for p in problems[:MESSAGE_LIST_LIMIT]]
    if len(problems) > MESSAGE_LIST_LIMIT:
        lines.append(f"    ... and {len(problems) - MESSAGE_LIST_LIMIT} more (see the report)")
    return lines


def finance_message(report: Report, *, summary_key: str) -> str:
    """The SNS message body: plain text a person reads at a glance, most important first."""
    invoices, memos, verb = _arrived(report)
    earlier = sum(1 for d in report.documents.values() if d.stored_earlier)
    lines = [f"Amazon Business invoices for {describe_window(report.window_start, report.window_end)}", ""]
    arrived = f"{_plural(invoices, 'invoice')} and {_plural(memos, 'credit memo')} {verb}"
    if report.pdfs_requested:
        arrived += f" ({_plural(report.pdfs_stored, 'PDF')})"
    headline = {
        Outcome.OK: f"All done: {arrived}.",
        Outcome.INCOMPLETE: f"{arrived}. Nothing failed; some documents follow with a later run.",
        Outcome.ACTION_NEEDED: f"Action needed: {_trouble(report)}. {arrived[0].upper()}{arrived[1:]}.",
    }[report.outcome]
    lines += [headline, ""]
    if earlier:
        lines += [f"{_plural(earlier, 'document')} of this period had been stored by earlier runs already.", ""]
    lines.append(f"Purchases in this period ({_plural(len(report.lines), 'line item')}):")
    for t in report.totals:
        lines.append(
            f"  {t.currency}: charged {format_amount(t.charged, t.currency)}, refunded "
            f"{format_amount(-t.refunded, t.currency)}, net {format_amount(t.net, t.currency)}"
        )
        if t.tax:
            taxes = ", ".join(
                f"{_rate_text(rate)}: {format_amount(a.tax, t.currency)} on {format_amount(a.taxable, t.currency)}"
                for rate, a in sorted(t.tax.items(), reverse=True)
            )
            lines.append(f"  {t.currency} tax by rate: {taxes}")
        if t.difference:
            lines.append(
                f"  {t.currency}: charged and invoiced differ by {format_amount(t.difference, t.currency)}; "
                "see the report"
            )
    if not report.totals:
        lines.append("  none")
    lines += _payment_lines(report)
    lines += ["", "Needs attention:"]
    if report.failures:
        lines.append(f"  Failed ({len(report.failures)}), someone should look:")
        lines += _listed(report.failures)
    if report.flags:
        lines.append(
            f"  Flagged by the tax-qualified invoice checks (JP) ({len(report.flags)} of {report.checked} checked); "
            "ask the seller for a corrected invoice before claiming its input tax:"
        )
        lines += _listed(report.flags)
    if report.deferrals:
        lines.append(f"  Deferred to the next run ({len(report.deferrals)}), Amazon is still preparing the PDF:")
        lines += _listed(report.deferrals)
    if report.pending_lines:
        unshipped = f", {report.unshipped_lines} of them not shipped yet" if report.unshipped_lines else ""
        lines.append(
            f"  {_plural(report.pending_lines, 'line item')} without an invoice yet{unshipped} (Amazon issues it "
            "when the item ships; a later run picks it up)"
        )
    if report.outcome is Outcome.OK:
        lines.append("  nothing" + (f" ({report.checked} JP tax invoices checked, all fine)" if report.checked else ""))
    lines += [
        "",
        "The report:",
        f"  Spreadsheet (CSV): {_s3_uri(report.bucket, report.csv_key)}",
        f"  Web page (HTML):   {_s3_uri(report.bucket, report.html_key)}",
        f"  PDFs:              {_s3_uri(report.bucket, 'documents/')}",
        "  One invoice's PDF: abrecon invoices get INVOICE-NUMBER --out invoice.pdf",
        "",
        f"Run {report.run_id}; summary data: {_s3_uri(report.bucket, summary_key)}",
    ]
    return "\n".join(lines)


# --- payment status and due dates (getBatchInvoicePaymentDetails) ------------------------------------------------


def _aging_text(aging_amounts: Mapping[str, Decimal], currency: str, amount: Callable[..., str] = plain_amount) -> str:
    return "; ".join(f"{bucket}: {amount(aging_amounts[bucket], currency)}" for bucket in AGING_BUCKETS)


def _aging_csv_notes(report: Report) -> list[tuple[str, str]]:
    """(currency, "Not yet due: ...; 1-30 days past due: ...") per currency, for the CSV's AGING rows."""
    if report.payments is None:
        return []
    as_of = report.payments.today.isoformat()
    return [
        (a.currency, f"unpaid invoices as of {as_of}: {_aging_text(a.amounts, a.currency)}")
        for a in report.payments.aging
    ]


def _payment_note(document: Document) -> str:
    """The invoice's payment status and due date under its number in the HTML rows."""
    record = document.payment
    if record is None:
        return ""
    due = f", due {record.due_date.isoformat()}" if record.due_date else ""
    css = "small pastdue" if record.is_past_due else "small"  # wraps: an ERROR's reason can be long
    return f'<div class="{css}">{_e(status_text(record))}{_e(due)}</div>'


def _past_due_section(report: Report) -> str:
    """The page's first section: every invoice Amazon says is past due, oldest first, and the aging per currency."""
    payments = report.payments
    if payments is None:
        return ""
    overdue = payments.past_due
    parts = []
    if overdue.count:
        totals = ", ".join(f"{format_amount(v, c)} {c}" for c, v in overdue.totals.items())
        oldest = overdue.oldest_due_date
        parts.append(
            f"<p><b>{_e(_plural(overdue.count, 'invoice'))} past due</b>"
            + (f", {_e(totals)}" if totals else "")
            + (f"; the oldest was due {_e(oldest.isoformat())}" if oldest else "")
            + ".</p>"
        )
        rows = []
        for r in overdue.records:
            days = r.days_past_due(payments.today)
            rows.append(
                f'<tr class="pastdue-row" id="pastdue-{_e(r.invoice_number)}"><td>{_e(r.invoice_number)}</td>'
                f"<td>{_e(r.invoice_date.isoformat() if r.invoice_date else '')}</td>"
                f'<td class="pastdue">{_e(r.due_date.isoformat() if r.due_date else "")}</td>'
                f'<td class="num">{"" if days is None else days}</td>'
                f'<td class="num">{_e(format_amount(r.amount, r.currency))} {_e(r.currency or "")}</td>'
                f'<td class="small">{_e("this run" if r.run_id == report.run_id else "")}</td></tr>'
            )
        head = "<th>Invoice</th><th>Invoice date</th><th>Due date</th><th class=num>Days past due</th>"
        head += "<th class=num>Amount</th><th></th>"
        parts.append(
            f'<table class="totals pastdue-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        )
    else:
        parts.append("<p>No invoice is past due.</p>")
    errors = sum(1 for r in payments.records.values() if r.status == STATUS_ERROR)
    if errors:
        parts.append(
            f"<p>Amazon could not give the payment status of {_e(_plural(errors, 'invoice'))} (the reason is in "
            "their rows); the next run asks again.</p>"
        )
    if payments.failure:
        parts.append(f"<p>Payment status was not checked completely: {_e(payments.failure)}</p>")
    aging = payments.aging
    if aging:
        head = "<th>Currency</th>" + "".join(f"<th class=num>{_e(b)}</th>" for b in AGING_BUCKETS)
        head += "<th class=num>Unpaid in all</th>"
        rows = [
            f"<tr><td>{_e(a.currency)}</td>"
            + "".join(
                f'<td class="num">{_e(format_amount(a.amounts[b], a.currency))}'
                f'<div class="small">{_plural(a.counts[b], "invoice")}</div></td>'
                for b in AGING_BUCKETS
            )
            + f'<td class="num">{_e(format_amount(a.total, a.currency))}</td></tr>'
            for a in aging
        ]
        parts.append(
            f"<p class=note>Unpaid invoices by days past their due date, as of {_e(payments.today.isoformat())}:</p>"
            f'<table class="totals aging"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        )
    css = "pastdue-section" if overdue.count else "pastdue-section none"
    return f'<section class="{css}" id="past-due"><h2>Past due</h2>{"".join(parts)}</section>'


def _payment_lines(report: Report) -> list[str]:
    """The finance message's payment paragraph: how many invoices are past due, their total, the oldest due date."""
    payments = report.payments
    if payments is None:
        return []
    overdue = payments.past_due
    if not overdue.count:
        lines = ["", "Past due: none."]
    else:
        totals = ", ".join(f"{c} {format_amount(v, c)}" for c, v in overdue.totals.items()) or "amount unknown"
        oldest = overdue.oldest_due_date
        lines = [
            "",
            f"Past due: {_plural(overdue.count, 'invoice')}, {totals}"
            + (f"; the oldest was due {oldest.isoformat()}" if oldest else "")
            + ":",
        ]
        lines += _listed(
            [
                Problem(
                    r.invoice_number,
                    f"due {r.due_date.isoformat() if r.due_date else '?'}, "
                    f"{r.currency or ''} {format_amount(r.amount, r.currency) or 'amount unknown'}".replace("  ", " "),
                )
                for r in overdue.records
            ]
        )
    for a in payments.aging:
        lines.append(f"  {a.currency} unpaid by days past due: {_aging_text(a.amounts, a.currency, format_amount)}")
    errors = sum(1 for r in payments.records.values() if r.status == STATUS_ERROR)
    if errors:
        lines.append(
            f"  Payment status unavailable for {_plural(errors, 'invoice')} (see the report); asked again next run"
        )
    if payments.failure:
        lines.append(f"  Payment status was not checked completely: {payments.failure}")
    return lines
