"""The report's data: one row per transaction line item, its documents, where they stand, the totals per currency."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from abrecon.payment_status import PaymentRecord, RunPayments


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


# How bad a status is: a line item shows its worst document's, and the totals list them mildest first.
SEVERITY = {
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
    def documents_stored_earlier(self) -> int:
        """Documents of this period that earlier runs had stored already."""
        return sum(1 for d in self.documents.values() if d.stored_earlier)

    @property
    def pdfs_stored(self) -> int:
        """PDFs stored by this run."""
        keys = {
            k for d in self.documents.values() if d.status is Status.STORED and not d.stored_earlier for k in d.s3_keys
        }
        return len(keys)
