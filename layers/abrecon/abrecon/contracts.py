"""What the state machine passes between its states (statemachine/reconcile.asl.json): each step's input and output.

The field aliases are the ASL's JSONPath names (``$.runId``, ``$.invoice.invoiceNumber``, ...): a renamed alias
breaks the state machine, so they change only together with the ASL. Handlers parse their event into one of these
and return another (abrecon.handler); the logic is in abrecon.steps.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from abrecon.models import OrderLineItemKey, as_utc
from abrecon.payment_status import metric_name
from abrecon.storage import line_item_pk


class StepModel(BaseModel):
    """Step payloads use the state machine's camelCase names and refuse unknown fields."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    def metrics(self) -> dict[str, float]:
        """Business metrics this output stands for (name -> count); published by the handler."""
        return {}


# The template's MaxPolls MaxValue: a poll is 9 history events of the invoice's child execution (Wait, the
# check-report Task, Choice) and a report that ends FATAL gets one retry with a fresh poll count, so a child needs
# at most 2 x 1000 x 9 = 18,000 events for polling, with margin under Step Functions' 25,000.
MAX_POLLS = 1000


class RunRequest(StepModel):
    """What starts a run: nothing (a scheduled run looks back `lookbackDays`) or an explicit backfill window."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    window_from: datetime | None = Field(default=None, alias="from")
    window_to: datetime | None = Field(default=None, alias="to")
    lookback_days: int | None = Field(default=None, alias="lookbackDays", ge=1, le=90)
    poll_seconds: int | None = Field(default=None, alias="pollSeconds", ge=1, le=3600)
    max_polls: int | None = Field(default=None, alias="maxPolls", ge=1, le=MAX_POLLS)

    @model_validator(mode="after")
    def _window_is_ordered(self) -> RunRequest:
        if (self.window_from is None) != (self.window_to is None):
            raise ValueError("a backfill needs both 'from' and 'to'")
        if self.window_from and self.window_to and as_utc(self.window_from) >= as_utc(self.window_to):
            raise ValueError("'from' must be before 'to'")
        return self


class FetchTransactionsInput(StepModel):
    """The state machine's first payload: the execution's own input plus its name, start time and defaults."""

    request: RunRequest
    run_id: str = Field(alias="runId", min_length=1, max_length=80)
    start_time: datetime = Field(alias="startTime")
    default_poll_seconds: int = Field(alias="defaultPollSeconds", ge=1)
    default_max_polls: int = Field(alias="defaultMaxPolls", ge=1)
    resume: RunContext | None = None  # the run so far, when the previous call stopped at its time budget


class RunContext(StepModel):
    """What every later run-level step receives: the run's window, its lists in S3 and its counts."""

    run_id: str = Field(alias="runId")
    window_start: datetime = Field(alias="windowStart")
    window_end: datetime = Field(alias="windowEnd")
    poll_seconds: int = Field(alias="pollSeconds")
    max_polls: int = Field(alias="maxPolls")
    transaction_count: int = Field(alias="transactionCount")
    line_item_count: int = Field(alias="lineItemCount")
    line_items_key: str = Field(alias="lineItemsKey")
    invoices_key: str | None = Field(default=None, alias="invoicesKey")
    # fetch-invoices' progress in S3 while its lookup takes more than one invocation (invoicesKey is null until done)
    invoice_lookup_key: str | None = Field(default=None, alias="invoiceLookupKey")
    invoice_count: int | None = Field(default=None, alias="invoiceCount")
    carried_over: int = Field(default=0, alias="carriedOver")
    next_page_token: str | None = Field(default=None, alias="nextPageToken")
    pdfs_requested: bool = Field(default=True, alias="pdfsRequested")
    checked: int = 0  # invoices whose JP tax-qualified data was checked (runs/<runId>/checks.json)
    flagged: int = 0  # of those, the ones that do not add up
    # Check payment status's progress (payments.PaymentsProgress), or the {Error, Cause} its Catch put there.
    payments: dict[str, Any] | None = None

    def metrics(self) -> dict[str, float]:
        """Line items fetched, and reports to ask for once the invoices are known."""
        if self.invoice_count is None:
            return {"LineItemsFetched": float(self.line_item_count)}
        return {"ReportsToRequest": float(self.invoice_count)}


class LineItemRow(StepModel):
    """One transaction line item as the run keeps it (the reconciliation report's row)."""

    transaction_id: str = Field(alias="transactionId")
    transaction_type: str | None = Field(default=None, alias="transactionType")
    transaction_date: str | None = Field(default=None, alias="transactionDate")
    order_id: str = Field(alias="orderId")
    order_line_item_id: str = Field(alias="orderLineItemId")
    shipment_id: str | None = Field(default=None, alias="shipmentId")  # None: Amazon lists no shipment yet
    asin: str | None = None
    title: str | None = None
    quantity: int | None = None
    amount: Decimal | None = None
    currency: str | None = None

    @property
    def key(self) -> OrderLineItemKey | None:
        """The triple that identifies the line item to the invoice API; None without a shipment."""
        if not (self.order_id and self.order_line_item_id and self.shipment_id):
            return None
        return OrderLineItemKey(
            orderId=self.order_id, orderLineItemId=self.order_line_item_id, shipmentId=self.shipment_id
        )

    @property
    def ledger_pk(self) -> str:
        """The line item's ledger key: the triple, or the order and line item while Amazon lists no shipment."""
        return line_item_pk(self.order_id, self.order_line_item_id, self.shipment_id)


class ReportTarget(StepModel):
    """One item of the per-invoice Map: the invoice to ask a PDF report for."""

    invoice_number: str = Field(alias="invoiceNumber", min_length=1)
    document_type: Literal["Invoice", "Credits"] | None = Field(default=None, alias="documentType")


class CreateReportInput(StepModel):
    """The Map item's payload for create-report; reservedAt carries a rate-limit slot reserved by an earlier call."""

    invoice: ReportTarget
    run_id: str = Field(alias="runId")
    reserved_at: float | None = Field(default=None, alias="reservedAt")


Owner = Literal["ALREADY_STORED", "ALREADY_FAILED", "OWNED_ELSEWHERE"]


class CreateReportOutput(StepModel):
    """The report to poll; THROTTLED with the seconds to wait for the reserved slot; or why there is nothing to do."""

    status: Literal["REQUESTED", "THROTTLED", "ALREADY_STORED", "ALREADY_FAILED", "OWNED_ELSEWHERE"]
    report_id: str | None = Field(default=None, alias="reportId")
    polls: int = 0
    wait_seconds: int = Field(default=0, alias="waitSeconds")
    reserved_at: float | None = Field(default=None, alias="reservedAt")

    def metrics(self) -> dict[str, float]:
        """Reports requested, throttle waits, and invoices another run or an earlier one took care of."""
        names = {
            "REQUESTED": "ReportsRequested",
            "THROTTLED": "ThrottleWaits",
            "ALREADY_STORED": "InvoicesAlreadyStored",
            "ALREADY_FAILED": "InvoicesAlreadyFailed",
            "OWNED_ELSEWHERE": "InvoicesOwnedElsewhere",
        }
        return {names[self.status]: 1.0}


class CheckReportInput(StepModel):
    """The Map item's payload for check-report."""

    invoice_number: str = Field(alias="invoiceNumber")
    report_id: str = Field(alias="reportId")
    polls: int = Field(ge=0)
    max_polls: int = Field(alias="maxPolls", ge=1)
    run_id: str = Field(alias="runId")


class CheckReportOutput(StepModel):
    """The report's status (plus DEFERRED when the poll budget ran out) and its document once DONE."""

    status: Literal["IN_QUEUE", "IN_PROGRESS", "DONE", "FATAL", "CANCELLED", "DEFERRED", "RETRY", "EXPIRED"]
    report_id: str = Field(alias="reportId")
    polls: int
    report_document_id: str | None = Field(default=None, alias="reportDocumentId")
    # RETRY: the report ended FATAL for the first time; wait this long, then ask for one new report.
    retry_seconds: int = Field(default=0, alias="retrySeconds")

    def metrics(self) -> dict[str, float]:
        """Polls, and reports that ended without a document or were deferred."""
        ended = {
            **dict.fromkeys(("FATAL", "CANCELLED", "EXPIRED"), "ReportsFailed"),
            "DEFERRED": "ReportsDeferred",
            "RETRY": "ReportsRetriedAfterFatal",
        }
        return {"ReportPolls": 1.0, **({ended[self.status]: 1.0} if self.status in ended else {})}


class DownloadDocumentInput(StepModel):
    """The Map item's payload for download-document; reservedAt as for create-report."""

    invoice_number: str = Field(alias="invoiceNumber")
    report_document_id: str = Field(alias="reportDocumentId")
    run_id: str = Field(alias="runId")
    reserved_at: float | None = Field(default=None, alias="reservedAt")
    # Fresh presigned URLs asked for so far after expired ones (each one getReportDocument more); capped.
    url_refreshes: int = Field(default=0, alias="urlRefreshes", ge=0)


class DownloadDocumentOutput(StepModel):
    """Where the invoice's PDFs went, or THROTTLED with the seconds to wait for the reserved getReportDocument slot."""

    status: Literal["STORED", "THROTTLED", "OWNED_ELSEWHERE"]
    invoice_number: str = Field(alias="invoiceNumber")
    s3_keys: list[str] = Field(default_factory=list, alias="s3Keys")
    wait_seconds: int = Field(default=0, alias="waitSeconds")
    reserved_at: float | None = Field(default=None, alias="reservedAt")
    url_refreshes: int = Field(default=0, alias="urlRefreshes")

    def metrics(self) -> dict[str, float]:
        """Invoices and documents stored, or a throttle wait."""
        if self.status == "STORED":
            return {"InvoicesStored": 1.0, "DocumentsStored": float(len(self.s3_keys))}
        return {"ThrottleWaits": 1.0} if self.status == "THROTTLED" else {}


class RunSummary(StepModel):
    """The run's outcome: what finance is told and what the sandbox checks."""

    run_id: str = Field(alias="runId")
    window_start: datetime = Field(alias="windowStart")
    window_end: datetime = Field(alias="windowEnd")
    transactions: int
    line_items: int = Field(alias="lineItems")
    invoices: int
    credit_memos: int = Field(alias="creditMemos")
    already_stored: int = Field(alias="alreadyStored")
    documents_stored: int = Field(alias="documentsStored")
    failed: int
    pending: int
    deferred: int
    in_progress_elsewhere: int = Field(alias="inProgressElsewhere")
    carried_over: int = Field(alias="carriedOver")
    s3_keys: list[str] = Field(alias="s3Keys")
    failures: list[dict[str, str]]
    deferrals: list[dict[str, str]]
    totals: dict[str, str]
    summary_key: str = Field(alias="summaryKey")
    pdfs_requested: bool = Field(default=True, alias="pdfsRequested")
    # JP tax-qualified invoice checks: invoices checked, flagged, and why (the first MAX_FLAGS_IN_SUMMARY).
    checked: int = 0
    flagged: int = 0
    flags: list[dict[str, str]] = Field(default_factory=list)
    # The reconciliation report (CSV and its HTML rendering) and the run at a glance (reporting.Outcome).
    report_key: str | None = Field(default=None, alias="reportKey")
    report_html_key: str | None = Field(default=None, alias="reportHtmlKey")
    outcome: str = "OK"
    # Every line item by its status in the report (reporting.Status: STORED, NO_INVOICE_YET, NOT_SHIPPED, DEFERRED,
    # FAILED, REQUESTED, NOT_REQUESTED): what each one of them came to, so nothing can go missing unnoticed.
    line_item_states: dict[str, int] = Field(default_factory=dict, alias="lineItemStates")
    # Payment status (payment_status.RunPayments): invoices Amazon says are past due, their total in
    # pastDueCurrency (the currency most of them are in; pastDueTotals has every currency), and invoices by status.
    past_due: int = Field(default=0, alias="pastDue")
    past_due_amount: str = Field(default="0", alias="pastDueAmount")
    past_due_currency: str | None = Field(default=None, alias="pastDueCurrency")
    past_due_totals: dict[str, str] = Field(default_factory=dict, alias="pastDueTotals")
    oldest_due_date: str | None = Field(default=None, alias="oldestDueDate")
    payment_status: dict[str, int] = Field(default_factory=dict, alias="paymentStatus")

    @field_validator("totals")
    @classmethod
    def _sorted_totals(cls, value: dict[str, str]) -> dict[str, str]:
        return dict(sorted(value.items()))

    def counts_only(self) -> RunSummary:
        """The summary without its per-invoice lists, which grow with the run: state payloads must not (256 KiB)."""
        return self.model_copy(update={"s3_keys": [], "failures": [], "deferrals": [], "flags": []})


class Notification(StepModel):
    """The SNS message for finance: subject and body, plus the summary's counts (its lists are in summaryKey)."""

    subject: str
    message: str
    summary: RunSummary

    def metrics(self) -> dict[str, float]:
        """The run's outcome, for the alarms."""
        s = self.summary
        return {
            "RunInvoicesFailed": float(s.failed),
            "RunInvoicesDeferred": float(s.deferred),
            "RunLineItemsPending": float(s.pending),
            "RunDocumentsStored": float(s.documents_stored),
            "RunInvoicesFlagged": float(s.flagged),
            "RunInvoicesPastDue": float(s.past_due),
        }


class PaymentsProgress(StepModel):
    """check-payments' output, kept in the run's ``payments``: how far the run got through its list of invoices to
    ask about; `statuses` counts this invocation's answers (the metrics)."""

    targets_key: str = Field(alias="targetsKey")
    total: int = Field(ge=0)
    done: int = Field(ge=0)
    more: bool
    statuses: dict[str, int] = Field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Answers by payment status (PaymentsClosed, PaymentsPastDue, ...; PaymentsError for ERROR)."""
        counts: Counter[str] = Counter()
        for status, n in self.statuses.items():
            counts[metric_name(status)] += n
        return {name: float(n) for name, n in counts.items()}


FetchTransactionsInput.model_rebuild()  # it refers to RunContext, defined after it
