"""The domain logic of each state-machine step. Handlers parse input, call one function here, return its output."""

from __future__ import annotations

import contextlib
import json
import math
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from abrecon import line_items, lost_reports, payment_status, reporting
from abrecon.errors import (
    AnswerLostError,
    ApiError,
    BadRequestError,
    DocumentError,
    DocumentUrlExpiredError,
    NotFoundError,
)
from abrecon.invoices import BATCH_SIZE as INVOICE_BATCH_SIZE
from abrecon.invoices import fetch_invoice_details
from abrecon.jp_checks import InvoiceChecks, check_invoices
from abrecon.models import (
    REPORT_TYPE_INVOICE_PDF,
    InvoiceDetail,
    OrderLineItemKey,
    ReportProcessingStatus,
    Transaction,
)
from abrecon.runtime import Runtime
from abrecon.storage import (
    InvoiceRecord,
    InvoiceState,
    LedgerConflict,
    LineItemState,
    StorageError,
    StoredObject,
    line_item_pk,
)
from abrecon.unpack import extract_pdfs

logger = Logger(child=True)


class StepModel(BaseModel):
    """Step payloads use the state machine's camelCase names and refuse unknown fields."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    def metrics(self) -> dict[str, float]:
        """Business metrics this output stands for (name -> count); published by the handler."""
        return {}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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
        if self.window_from and self.window_to and _utc(self.window_from) >= _utc(self.window_to):
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
            "FATAL": "ReportsFailed",
            "CANCELLED": "ReportsFailed",
            "EXPIRED": "ReportsFailed",
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


def _run_key(run_id: str, name: str) -> str:
    return f"runs/{run_id}/{name}"


def _details_key(invoice_number: str) -> str:
    return f"invoice-details/{invoice_number}.json"


def fetch_transactions(request: FetchTransactionsInput, rt: Runtime) -> RunContext:
    """Page through getTransactions for the run's window and keep every line item in S3.

    A window too large for one invocation stops when the invocation's time budget (its remaining time less the
    margin, rt.budget) is spent and returns the next page token; the state machine calls again with the run so far
    (`resume`) until no token is left.
    """
    run = request.request
    if request.resume is not None:
        start, end = request.resume.window_start, request.resume.window_end
    elif run.window_from and run.window_to:
        start, end = _utc(run.window_from), _utc(run.window_to)
    else:
        end = _utc(request.start_time)
        start = end - timedelta(days=run.lookback_days or rt.settings.lookback_days)
    key = _run_key(request.run_id, "line-items.json")
    rows = [LineItemRow.model_validate(r) for r in rt.store.get_json(key)] if request.resume else []
    transactions = request.resume.transaction_count if request.resume else 0
    page_token = request.resume.next_page_token if request.resume else None
    seen = {row.transaction_id for row in rows}
    next_token: str | None = None
    for page in rt.api.iter_transaction_pages(start, end, page_token):
        # A transaction listed again (pages repeat while the feed changes) is counted once and is one row each.
        transactions += len({t.transactionId for t in page.transactions} - seen)
        seen.update(t.transactionId for t in page.transactions)
        rows += [row for t in page.transactions for row in _line_item_rows(t)]
        if page.nextPageToken and rt.budget.exhausted():
            next_token = page.nextPageToken
            break
    rows = line_items.distinct(rows)
    rt.store.put_json(key, [row.model_dump(mode="json", by_alias=True) for row in rows])
    return RunContext(
        run_id=request.run_id,
        window_start=start,
        window_end=end,
        poll_seconds=request.resume.poll_seconds
        if request.resume
        else run.poll_seconds or request.default_poll_seconds,
        max_polls=request.resume.max_polls if request.resume else run.max_polls or request.default_max_polls,
        transaction_count=transactions,
        line_item_count=len(rows),
        line_items_key=key,
        next_page_token=next_token,
    )


def _line_item_rows(transaction: Transaction) -> list[LineItemRow]:
    """Every line item of the transaction; one without a shipmentId (ordered, not shipped yet) too: finance
    reconciles against everything Amazon lists, and a later run matches its invoice once it has shipped."""
    rows = []
    for item in transaction.transactionLineItems:
        total = item.totalAmount
        rows.append(
            LineItemRow(
                transaction_id=transaction.transactionId,
                transaction_type=transaction.transactionType,
                transaction_date=str(transaction.transactionDate) if transaction.transactionDate else None,
                order_id=item.orderId or "",
                order_line_item_id=item.orderLineItemId or "",
                shipment_id=item.shipmentId or None,
                asin=item.asin,
                title=item.productTitle,
                quantity=item.itemQuantity,
                amount=total.amount if total else None,
                currency=(total.currencyCode or None) if total else None,
            )
        )
    return rows


class InvoiceLookupProgress(StepModel):
    """fetch-invoices' state between its invocations, kept in S3 (runs/<runId>/invoice-lookup.json).

    keysDone line items of the run's list (line-items.json, carried-over items included) have been asked about;
    matches: line item triple -> its invoice numbers; creditMemos: credit memo number -> its original invoice;
    invoices: the standard invoices' numbers; checked/flags: the JP checks of the invoices seen so far.
    """

    keys_done: int = Field(default=0, alias="keysDone", ge=0)
    carried_over: int = Field(default=0, alias="carriedOver", ge=0)
    matches: dict[str, list[str]] = Field(default_factory=dict)
    invoices: list[str] = Field(default_factory=list)
    credit_memos: dict[str, str | None] = Field(default_factory=dict, alias="creditMemos")
    checked: int = 0
    flags: list[dict[str, str]] = Field(default_factory=list)
    # Kept open without a shipment by an earlier run and listed with it in this one: closed as SHIPPED at the end.
    shipped: list[LineItemRow] = Field(default_factory=list)


def fetch_invoices(run: RunContext, rt: Runtime) -> RunContext:
    """Look up the invoices of the run's line items, store each invoice's details, and list the reports to ask for.

    Line items still waiting for an invoice from earlier runs are asked about again, and invoices an earlier run
    deferred are polled again; every line item's state goes to the ledger. A run too large for one invocation
    stops when the invocation's time budget is spent, keeps its progress in S3 and returns without invoicesKey;
    the state machine calls again with the same payload until the lookup is complete (a repeated invocation
    carries on from the stored progress: the same answers, stored under the same keys).
    """
    progress_key = _run_key(run.run_id, "invoice-lookup.json")
    rows = [LineItemRow.model_validate(r) for r in rt.store.get_json(run.line_items_key)]
    if run.invoice_lookup_key:
        progress = InvoiceLookupProgress.model_validate(rt.store.get_json(progress_key))
    else:
        in_window = {row.ledger_pk for row in rows}
        carried = [LineItemRow.model_validate(item["row"]) for item in rt.ledger.open_items("LINE")]
        carried = list({row.ledger_pk: row for row in carried if row.ledger_pk not in in_window}.values())
        # Kept open without a shipment by an earlier run, and now listed with it: the same line item, closed.
        carried, shipped = line_items.shipped_elsewhere(carried, rows)
        if carried:
            rows += carried
            rt.store.put_json(run.line_items_key, [row.model_dump(mode="json", by_alias=True) for row in rows])
        progress = InvoiceLookupProgress(carried_over=len(carried), shipped=shipped)
    keys = list(dict.fromkeys(row.key for row in rows if row.key is not None))
    asked = _look_up_invoices(keys, progress, rt)
    # Listing the targets writes every line item to the ledger: after a full invocation of lookups it gets one of
    # its own rather than the margin's leftovers.
    if progress.keys_done < len(keys) or (asked and rt.budget.exhausted()):
        rt.store.put_json(progress_key, progress.model_dump(mode="json", by_alias=True))
        return run.model_copy(update={"invoice_lookup_key": progress_key, "invoices_key": None})
    return _list_report_targets(run, rt, rows, progress)


def _look_up_invoices(keys: list[OrderLineItemKey], progress: InvoiceLookupProgress, rt: Runtime) -> bool:
    """Ask about the keys from progress.keysDone on, a batch at a time, until done or the time budget is spent
    (one batch at least, so that every invocation makes progress). Whether any was asked about."""
    seen = set(progress.invoices) | set(progress.credit_memos)
    found: dict[str, InvoiceDetail] = {}
    started_at = progress.keys_done
    while progress.keys_done < len(keys):
        if progress.keys_done > started_at and rt.budget.exhausted():
            break
        batch = keys[progress.keys_done : progress.keys_done + INVOICE_BATCH_SIZE]
        lookup = fetch_invoice_details(rt.api, batch)
        for key, details in lookup.by_line_item.items():
            progress.matches[_triple(key)] = [d.invoiceNumber for d in details]
        for number, detail in lookup.invoices.items():
            if number in seen:
                continue  # first seen wins, as within one lookup
            seen.add(number)
            found[number] = detail
            if _is_credit_memo(detail):
                progress.credit_memos[number] = detail.associatedInvoiceNumber
            else:
                progress.invoices.append(number)
        progress.keys_done += len(batch)
    rt.store.put_json_many(
        {_details_key(number): detail.model_dump(mode="json", exclude_none=True) for number, detail in found.items()}
    )
    if rt.settings.region == "JP":  # JP invoices are tax-qualified invoices: registration numbers, tax arithmetic
        checks = check_invoices(found.values())
        progress.checked += checks.checked
        progress.flags += [flag.model_dump(mode="json", by_alias=True) for flag in checks.flags]
    return progress.keys_done > started_at


def _list_report_targets(
    run: RunContext, rt: Runtime, rows: list[LineItemRow], progress: InvoiceLookupProgress
) -> RunContext:
    """The lookup is complete: store its checks and matches, each line item's state, and the reports to ask for."""
    checks = InvoiceChecks.model_validate(
        {"checked": progress.checked, "flags": sorted(progress.flags, key=lambda f: f["invoiceNumber"])}
    )
    rt.store.put_json(_run_key(run.run_id, "checks.json"), _checks_json(checks, rt.settings.region))
    # A line item listed without a shipment has the documents of its order line item's shipments, once known.
    matches = line_items.with_shipmentless_matches(progress.matches, rows)
    rt.store.put_json(_run_key(run.run_id, "matches.json"), matches)
    rt.ledger.put_line_items(
        [
            (
                row.ledger_pk,
                _line_item_state(row, matches),
                {
                    "row": row.model_dump(mode="json", by_alias=True),
                    "invoiceNumbers": matches.get(line_items.match_key(row), []),
                },
            )
            for row in rows
        ]
        + [
            (row.ledger_pk, LineItemState.SHIPPED, {"row": row.model_dump(mode="json", by_alias=True)})
            for row in progress.shipped
        ],
        run.run_id,
    )
    targets = targets_of(set(progress.invoices), progress.credit_memos)
    known = {t.invoice_number for t in targets}
    targets += [
        ReportTarget(invoice_number=item["invoiceNumber"])
        for item in rt.ledger.open_items("INVOICE")
        if item["invoiceNumber"] not in known
    ]
    stored = {
        n
        for n, rec in rt.ledger.get_many(t.invoice_number for t in targets).items()
        if rec.state is InvoiceState.STORED
    }
    todo = [t for t in targets if t.invoice_number not in stored]
    if not rt.settings.request_pdfs:
        todo = []  # REQUEST_PDFS=false: invoice data and checks only, no report is asked for
    invoices_key = _run_key(run.run_id, "invoices.json")
    rt.store.put_json(invoices_key, [t.model_dump(mode="json", by_alias=True) for t in targets])
    rt.store.put_json(
        _run_key(run.run_id, "report-targets.json"), [t.model_dump(mode="json", by_alias=True) for t in todo]
    )
    return run.model_copy(
        update={
            "invoices_key": _run_key(run.run_id, "report-targets.json"),
            "invoice_count": len(todo),
            "line_item_count": len(rows),
            "carried_over": progress.carried_over,
            "pdfs_requested": rt.settings.request_pdfs,
            "checked": checks.checked,
            "flagged": checks.flagged,
        }
    )


MAX_FLAGS_IN_SUMMARY = 100


def _line_item_state(row: LineItemRow, matches: dict[str, list[str]]) -> LineItemState:
    if matches.get(line_items.match_key(row)):
        return LineItemState.INVOICED
    return LineItemState.PENDING if row.shipment_id else LineItemState.NOT_SHIPPED


def _checks_json(checks: InvoiceChecks, region: str) -> dict[str, object]:
    return {"region": region, "checked": checks.checked, "flagged": checks.flagged, **checks.model_dump(by_alias=True)}


def readable_reason(reason: str | None) -> str | None:
    """A ledger reason as people read it: "<error>: <Lambda error payload JSON>" (what "Record invoice failure"
    writes for a function's error) becomes "<error>: <errorMessage>", without the payload's stack trace."""
    error, separator, cause = (reason or "").partition(": ")
    if not separator or not cause.startswith("{"):
        return reason
    try:
        payload = json.loads(cause)
    except ValueError:
        return reason
    message = payload.get("errorMessage") if isinstance(payload, dict) else None
    return f"{error}: {message}" if isinstance(message, str) and message else reason


def _triple(key: OrderLineItemKey) -> str:
    return f"{key.orderId}|{key.orderLineItemId}|{key.shipmentId}"


def report_targets(details: Iterable[InvoiceDetail]) -> list[ReportTarget]:
    """One report per invoice: a report with no documentType carries the invoice and its credit memos together.

    A credit memo whose original invoice is not among these details gets a report of its own (documentType Credits).
    """
    all_details = list(details)
    invoices = {d.invoiceNumber for d in all_details if not _is_credit_memo(d)}
    memos = {d.invoiceNumber: d.associatedInvoiceNumber for d in all_details if _is_credit_memo(d)}
    return targets_of(invoices, memos)


def targets_of(invoices: set[str], credit_memos: dict[str, str | None]) -> list[ReportTarget]:
    """report_targets from invoice numbers and credit memo numbers (each with its original invoice's number)."""
    targets = [ReportTarget(invoice_number=n) for n in sorted(invoices)]
    orphans = sorted({n for n, original in credit_memos.items() if original not in invoices} - invoices)
    targets += [ReportTarget(invoice_number=n, document_type="Credits") for n in orphans]
    return targets


def _is_credit_memo(detail: InvoiceDetail) -> bool:
    return (detail.invoiceType or "").upper() == "CREDIT_MEMO"


def _slot(operation: str, reserved_at: float | None, rt: Runtime, holder: str = "") -> tuple[float, float]:
    """The rate-limit slot to use: (seconds still to wait, the moment it opens); reserves one if none is held.

    A held slot that is open is spent here, once: a step the state machine retries (same input, same slot) after
    its request went out gets a new slot instead of sending a second request on the first one's.
    """
    spent = (
        reserved_at is not None
        and reserved_at <= rt.ledger.now()
        and not rt.pacer.spend(operation, reserved_at, holder)
    )
    if spent:
        logger.info("rate-limit slot already spent by an earlier attempt", extra={"operation": operation})
        reserved_at = None
    if reserved_at is None:
        rt.api.warm_up()  # a cold start's token exchange must not sit between the reservation and the request
        reserved_at = rt.pacer.reserve(operation)
        logger.info("reserved a rate-limit slot", extra={"operation": operation, "opensAt": reserved_at})
    return max(0.0, reserved_at - rt.ledger.now()), reserved_at


def _owner_status(record: InvoiceRecord | None, run_id: str, rt: Runtime) -> Owner | None:
    """Why this execution must leave the invoice alone, if it must."""
    if record is None:
        return None
    if record.state is InvoiceState.STORED:
        return "ALREADY_STORED"
    if record.state is InvoiceState.FAILED and record.terminal:
        return "ALREADY_FAILED"
    if record.owned_by_other(run_id, rt.ledger.now(), rt.settings.claim_stale_seconds):
        if rt.executions is not None and rt.executions.has_ended(record.run_id):
            logger.info("taking over an invoice whose execution has ended", extra={"claimedBy": record.run_id})
            return None
        return "OWNED_ELSEWHERE"
    return None


def create_report(request: CreateReportInput, rt: Runtime) -> CreateReportOutput:
    """Ask for the invoice's PDF report exactly once across all executions, at Amazon's pace.

    The invoice is claimed in the ledger first (conditional write), a reportId already there is reused, a slot in
    the shared createReport bucket is reserved (THROTTLED hands the wait to the state machine), the attempt is
    recorded before the call and the reportId right after it. An answer that never arrived intact is looked for
    with getReports before anyone asks again (lost_reports).
    """
    number = request.invoice.invoice_number
    for _attempt in range(3):
        record = rt.ledger.get(number)
        refusal = _owner_status(record, request.run_id, rt)
        if refusal:
            return CreateReportOutput(status=refusal)
        held = request.reserved_at
        try:
            if record and record.report_id:
                rt.ledger.write(
                    number,
                    record,
                    request.run_id,
                    state=InvoiceState.REQUESTED,
                    report_id=record.report_id,
                    reason=None,
                )
                return CreateReportOutput(status="REQUESTED", report_id=record.report_id)
            if record is None or record.state is not InvoiceState.CLAIMED or record.run_id != request.run_id:
                taken_over = {} if record is not None and record.run_id == request.run_id else {"lost_answers": 0}
                record = rt.ledger.write(
                    number,
                    record,
                    request.run_id,
                    state=InvoiceState.CLAIMED,
                    reason=None,
                    **_open_attempt(record),
                    **taken_over,
                )
            if record.create_attempt_at is not None:
                looked = _look_for_lost_report(request, record, rt)
                if isinstance(looked, CreateReportOutput):
                    return looked
                record, held = looked, None  # nothing identified: ask again, on a createReport slot of its own
        except LedgerConflict:
            continue  # another execution moved first: look again
        if record.lost_answers >= lost_reports.MAX_LOST_ANSWERS:
            raise AnswerLostError(
                "createReport",
                None,
                "AnswersLost",
                f"{record.lost_answers} answers lost in this run; the next run asks",
            )
        wait, reserved_at = _slot("createReport", held, rt, number)
        if wait > 0:
            return CreateReportOutput(status="THROTTLED", wait_seconds=math.ceil(wait), reserved_at=reserved_at)
        try:  # the attempt goes to the ledger before the call: if its answer is lost, a retry knows to look first
            record = rt.ledger.write(
                number,
                record,
                request.run_id,
                state=InvoiceState.CLAIMED,
                reason=None,
                create_attempt_at=rt.ledger.now(),
                create_attempt_until=None,
                open_kind="ATTEMPT",
            )
        except LedgerConflict:
            continue
        try:
            report_id = rt.api.create_report(
                number, [rt.settings.marketplace_id], document_type=request.invoice.document_type
            )
        except AnswerLostError as exc:
            record = rt.ledger.write(
                number,
                record,
                request.run_id,
                state=InvoiceState.CLAIMED,
                reason=f"createReport: {exc}",
                create_attempt_until=rt.ledger.now(),
                lost_answers=record.lost_answers + 1,
                open_kind="ATTEMPT",
            )
            logger.warning("createReport answer lost; looking for its report before asking again", extra={"error": exc})
            looked = _look_for_lost_report(request.model_copy(update={"reserved_at": None}), record, rt, at_once=False)
            if isinstance(looked, CreateReportOutput):  # not at_once: the lookup is always a step of its own
                return looked
            raise StorageError(f"invoice {number}: the lost report's lookup did not wait for its own step") from exc
        except BaseException as exc:
            # Amazon refused it (ApiError: 429 after retries, 4xx), so no report was made and the attempt is cleared;
            # for anything else whether the request went out is unknown: the attempt stays for the next try to look.
            # Either way the claim goes back, so the state machine's retry (or the next run) can go on at once.
            unsent = {"create_attempt_at": None, "create_attempt_until": None}
            rt.ledger.write(
                number,
                record,
                request.run_id,
                state=InvoiceState.FAILED,
                reason=f"createReport: {exc}",
                **(unsent if isinstance(exc, ApiError) else {"open_kind": "ATTEMPT"}),
            )
            raise
        _record_report_id(rt, number, record, request.run_id, report_id)
        return CreateReportOutput(status="REQUESTED", report_id=report_id)
    raise StorageError(f"invoice {number}: the ledger entry kept changing under three attempts")


def _open_attempt(record: InvoiceRecord | None) -> dict[str, str]:
    """Keep an unanswered createReport attempt in the open index (other lookups must see it) across a write."""
    return {"open_kind": "ATTEMPT"} if record is not None and record.create_attempt_at is not None else {}


def _record_report_id(rt: Runtime, number: str, record: InvoiceRecord, run_id: str, report_id: str) -> None:
    """The invoice's reportId to the ledger (its marker first: other lookups must know the report is taken)."""
    rt.ledger.remember_report(report_id, number)
    rt.ledger.write(
        number,
        record,
        run_id,
        state=InvoiceState.REQUESTED,
        report_id=report_id,
        reason=None,
        create_attempt_at=None,
        create_attempt_until=None,
    )


def _look_for_lost_report(
    request: CreateReportInput, record: InvoiceRecord, rt: Runtime, *, at_once: bool = True
) -> CreateReportOutput | InvoiceRecord:
    """Find the report of the invoice's unanswered createReport with getReports, at getReports' own pace.

    REQUESTED with the report found; THROTTLED while the lookup waits for its getReports slot (or for reports of
    other invoices answered meanwhile to reach the ledger; not at_once: always, so the lookup is a step of its
    own); or the record with the attempt cleared: ask again.
    """
    number = request.invoice.invoice_number
    if record.create_attempt_at is None:  # only an attempt the ledger recorded before the call can be looked for
        raise StorageError(f"invoice {number}: no createReport attempt recorded to look for")
    now = rt.ledger.now()
    attempt = lost_reports.Attempt.of(record.create_attempt_at, record.create_attempt_until, now)
    # A slot reserved before the attempt was the createReport slot it used; a later one is this lookup's.
    held = request.reserved_at if request.reserved_at is not None and request.reserved_at > attempt.start else None
    wait, reserved_at = _slot("getReports", held, rt, number)
    wait = max(wait, attempt.settles_in(now), 0.0 if at_once else 1.0)
    if wait > 0:
        return CreateReportOutput(status="THROTTLED", wait_seconds=math.ceil(wait), reserved_at=reserved_at)
    page = rt.api.get_reports(
        [REPORT_TYPE_INVOICE_PDF], created_since=attempt.since(), page_size=lost_reports.PAGE_SIZE
    )
    known = set(rt.ledger.known_reports(r.reportId for r in page.reports))
    known |= {*record.fatal_report_ids, *record.expired_report_ids}
    found = lost_reports.identify(
        page.reports,
        invoice_number=number,
        document_type=request.invoice.document_type,
        attempt=attempt,
        known=known,
        others_overlap=lost_reports.overlapping_attempts(rt.ledger.open_items("ATTEMPT"), number, attempt, now),
        complete=page.nextToken is None,
    )
    # Found by time only: the marker is written first-come, so two lookups can never take the same report.
    if found is not None and (
        found.match == "OPTIONS" or rt.ledger.remember_report(found.report_id, number, only_if_new=True)
    ):
        logger.info("found the report of a lost createReport answer", extra={"reportId": found.report_id})
        _record_report_id(rt, number, record, request.run_id, found.report_id)
        return CreateReportOutput(status="REQUESTED", report_id=found.report_id)
    logger.warning("the report of a lost createReport answer is not identifiable; asking again")
    return rt.ledger.write(
        number,
        record,
        request.run_id,
        state=InvoiceState.CLAIMED,
        reason=None,
        create_attempt_at=None,
        create_attempt_until=None,
    )


def _failed_for_good(
    rt: Runtime, request: CheckReportInput, polls: int, status: Literal["EXPIRED", "CANCELLED", "FATAL"], reason: str
) -> CheckReportOutput:
    """Record the invoice FAILED for good with reason (no later run asks again); the check's answer with status."""
    _record(rt, request, state=InvoiceState.FAILED, terminal=True, reason=reason)
    return CheckReportOutput(status=status, report_id=request.report_id, polls=polls)


def check_report(request: CheckReportInput, rt: Runtime) -> CheckReportOutput:
    """Poll the report once; record FATAL/CANCELLED as failures and defer the invoice when the poll budget is spent.

    A report Amazon no longer serves (404: past its 30/90 days, e.g. deferred too long) earns one new report.
    """
    polls = request.polls + 1
    try:
        report = rt.api.get_report(request.report_id)
    except NotFoundError:
        reason = f"report {request.report_id} no longer served by Amazon (404); one new report"
        if _one_new_report(request, rt, "expired_report_ids", reason):
            return CheckReportOutput(status="RETRY", report_id=request.report_id, polls=polls, retry_seconds=1)
        reason = f"report {request.report_id} no longer served by Amazon (404), after one new report"
        return _failed_for_good(rt, request, polls, "EXPIRED", reason)
    status = ReportProcessingStatus(report.processingStatus)
    if status is ReportProcessingStatus.DONE and report.reportDocumentId:
        return CheckReportOutput(
            status="DONE", report_id=request.report_id, polls=polls, report_document_id=report.reportDocumentId
        )
    if status is ReportProcessingStatus.CANCELLED:
        reason = f"report {request.report_id} CANCELLED: Amazon has no document for this invoice"
        return _failed_for_good(rt, request, polls, "CANCELLED", reason)
    if status is ReportProcessingStatus.FATAL and _retry_after_fatal(request, rt):
        return CheckReportOutput(
            status="RETRY", report_id=request.report_id, polls=polls, retry_seconds=rt.settings.fatal_retry_seconds
        )
    if status is ReportProcessingStatus.FATAL or status is ReportProcessingStatus.DONE:
        fatal = status is ReportProcessingStatus.FATAL
        retried = " (after one retry: an earlier report ended FATAL too)" if fatal else ""
        reason = f"report {request.report_id} ended {status.value} without a document{retried}"
        return _failed_for_good(rt, request, polls, "FATAL", reason)
    if polls >= request.max_polls:
        _record(
            rt,
            request,
            state=InvoiceState.DEFERRED,
            open_kind="INVOICE",
            report_id=request.report_id,
            reason=f"report {request.report_id} still {status.value} after {polls} polls; the next run polls it",
        )
        return CheckReportOutput(status="DEFERRED", report_id=request.report_id, polls=polls)
    return CheckReportOutput(status=status.value, report_id=request.report_id, polls=polls)


def _retry_after_fatal(request: CheckReportInput, rt: Runtime) -> bool:
    """Whether this FATAL report earns its invoice one new report (FATAL is sometimes a hidden frequency limit)."""
    reason = f"report {request.report_id} ended FATAL; one new report after a cool-down"
    return _one_new_report(request, rt, "fatal_report_ids", reason)


def _one_new_report(
    request: CheckReportInput, rt: Runtime, kept: Literal["fatal_report_ids", "expired_report_ids"], reason: str
) -> bool:
    """Whether this report earns its invoice one new report, once per invoice and kind, ever.

    The reportId goes to the ledger's list ``kept`` and the invoice's reportId is cleared, so create-report asks
    for a new one (and records it before any wait). A repeated invocation for the same report answers the same; a
    second such report is a failure.
    """
    for _attempt in range(3):
        record = rt.ledger.get(request.invoice_number)
        earlier: list[str] = getattr(record, kept) if record is not None else []
        if earlier:
            return request.report_id in earlier
        if record is not None and record.run_id != request.run_id and record.state is not InvoiceState.FAILED:
            return False  # another execution owns the invoice now
        try:
            rt.ledger.write(
                request.invoice_number,
                record,
                request.run_id,
                state=InvoiceState.REQUESTED,
                report_id=None,
                open_kind="INVOICE",  # if this execution dies during the cool-down, the next run takes the invoice
                reason=reason,
                **{kept: [request.report_id]},
            )
            return True
        except LedgerConflict:
            continue
    raise StorageError(f"invoice {request.invoice_number}: the ledger entry kept changing under three attempts")


def _record(rt: Runtime, request: CheckReportInput, **fields: Any) -> None:
    """Write the invoice's new state unless another execution has taken it over meanwhile."""
    for _attempt in range(3):
        record = rt.ledger.get(request.invoice_number)
        if record is not None and record.run_id != request.run_id and record.state is not InvoiceState.FAILED:
            return  # not ours any more: the owner records the outcome
        try:
            rt.ledger.write(request.invoice_number, record, request.run_id, **fields)
            return
        except LedgerConflict:
            continue
    raise StorageError(f"invoice {request.invoice_number}: the ledger entry kept changing under three attempts")


def download_document(request: DownloadDocumentInput, rt: Runtime) -> DownloadDocumentOutput:
    """Fetch the report's document at once, unpack every PDF in memory and store each under SSE-KMS, once.

    An expired presigned URL costs one more getReportDocument (never a new report): at once if its slot is open,
    else THROTTLED hands the wait for the slot to the state machine (no Lambda sleeps for a rate-limit slot), at
    most MAX_URL_REFRESHES times per invoice.
    """
    number = request.invoice_number
    record = rt.ledger.get(number)
    if record is not None and record.state is InvoiceState.STORED:
        return DownloadDocumentOutput(status="STORED", invoice_number=number, s3_keys=record.s3_keys)
    if _owner_status(record, request.run_id, rt) == "OWNED_ELSEWHERE":
        return DownloadDocumentOutput(status="OWNED_ELSEWHERE", invoice_number=number)
    refreshes = request.url_refreshes
    reserved: float | None = request.reserved_at
    limit = rt.settings.max_document_bytes
    while True:
        wait, reserved_at = _slot("getReportDocument", reserved, rt, number)
        if wait > 0:
            return DownloadDocumentOutput(
                status="THROTTLED",
                invoice_number=number,
                wait_seconds=math.ceil(wait),
                reserved_at=reserved_at,
                url_refreshes=refreshes,
            )
        document = rt.api.get_report_document(request.report_document_id)
        try:
            data = rt.api.download(document.url, max_bytes=limit)
            break
        except DocumentUrlExpiredError:
            # The presigned URL lives five minutes; a fresh one costs one more getReportDocument.
            if refreshes >= MAX_URL_REFRESHES:
                raise
            refreshes += 1
            reserved = None
    try:
        pdfs = extract_pdfs(data)
    except DocumentError as exc:
        raise _document_failed(rt, number, request.run_id, exc) from exc
    stored: list[StoredObject] = [
        rt.store.put_bytes_once(
            f"documents/{rt.settings.marketplace_id}/{number}/{pdf.name}", pdf.content, "application/pdf"
        )
        for pdf in pdfs
    ]
    # On a conflict someone else recorded it meanwhile; the objects are the same bytes under the same keys.
    with contextlib.suppress(LedgerConflict):
        rt.ledger.write(
            number,
            record,
            request.run_id,
            state=InvoiceState.STORED,
            s3_keys=[o.key for o in stored],
            sha256=[o.sha256 for o in stored],
            reason=None,
        )
    return DownloadDocumentOutput(status="STORED", invoice_number=number, s3_keys=[o.key for o in stored])


MAX_URL_REFRESHES = 2


def _document_failed(rt: Runtime, number: str, run_id: str, exc: DocumentError) -> DocumentError:
    """Count a run whose document of the invoice was broken; after DOCUMENT_RETRY_RUNS runs the failure is final.

    Returns the error to raise (the state machine records it as the invoice's failure, with this reason).
    """
    limit = rt.settings.document_retry_runs
    for _attempt in range(3):
        record = rt.ledger.get(number)
        runs = (record.document_failures if record is not None else 0) + 1
        final = runs >= limit
        reason = f"broken document ({exc}), {runs} of {limit} runs" + ("; not retried again" if final else "")
        try:
            rt.ledger.write(
                number,
                record,
                run_id,
                state=InvoiceState.FAILED,
                reason=reason,
                terminal=final,
                document_failures=runs,
                report_id=record.report_id if record is not None else None,
            )
        except LedgerConflict:
            continue
        return DocumentError(reason)
    raise StorageError(f"invoice {number}: the ledger entry kept changing under three attempts")


def summarize_run(run: RunContext, rt: Runtime) -> Notification:
    """Account for every line item and invoice of the run, store the summary, and word it for finance."""
    if run.invoices_key is None:
        raise BadRequestError("summarizeRun", None, None, "the run has no invoice list: fetch-invoices did not run")
    rows = [LineItemRow.model_validate(r) for r in rt.store.get_json(run.line_items_key)]
    matches: dict[str, list[str]] = rt.store.get_json(_run_key(run.run_id, "matches.json"))
    targets = [ReportTarget.model_validate(t) for t in rt.store.get_json(_run_key(run.run_id, "invoices.json"))]
    todo = {t["invoiceNumber"] for t in rt.store.get_json(run.invoices_key)}
    records = rt.ledger.get_many(t.invoice_number for t in targets)
    # A failure the state machine's Catch recorded carries the Lambda error payload (JSON with a stack trace):
    # the summary, the report and finance's message give the error and its message only.
    records = {n: r.model_copy(update={"reason": readable_reason(r.reason)}) for n, r in records.items()}
    credit_memos = {n for numbers in matches.values() for n in numbers} - {t.invoice_number for t in targets}
    pending = sum(1 for row in rows if not matches.get(line_items.match_key(row)))
    failures, deferrals, keys, elsewhere = [], [], [], []
    stored_before = 0
    for target in targets if run.pdfs_requested else []:  # no PDFs asked for: nothing in the ledger to account
        record = records.get(target.invoice_number)
        if record is None:
            failures.append({"invoiceNumber": target.invoice_number, "reason": "no ledger entry: the step never ran"})
        elif record.state is InvoiceState.STORED:
            if record.run_id == run.run_id:
                keys.extend(record.s3_keys)
            else:
                stored_before += 1  # by an earlier run, or by a parallel execution of the same window
        elif record.state is InvoiceState.DEFERRED:
            deferrals.append({"invoiceNumber": target.invoice_number, "reason": record.reason or ""})
        elif record.state is InvoiceState.FAILED:
            failures.append({"invoiceNumber": target.invoice_number, "reason": record.reason or "failed"})
        elif record.run_id != run.run_id:
            elsewhere.append(target.invoice_number)  # a parallel execution owns it and reports it
        else:
            failures.append(
                {
                    "invoiceNumber": target.invoice_number,
                    "reason": f"the run ended with the invoice still {record.state.value}",
                }
            )
    totals: dict[str, Decimal] = {}
    for row in rows:
        if row.amount is not None:
            currency = row.currency or "?"
            totals[currency] = totals.get(currency, Decimal(0)) + row.amount
    summary_key = _run_key(run.run_id, "summary.json")
    summary = RunSummary(
        run_id=run.run_id,
        window_start=run.window_start,
        window_end=run.window_end,
        transactions=run.transaction_count,
        line_items=len(rows),
        invoices=len(targets),
        credit_memos=len(credit_memos),
        already_stored=stored_before,
        documents_stored=len(keys),
        failed=len(failures),
        pending=pending,
        deferred=len(deferrals),
        in_progress_elsewhere=len(elsewhere),
        carried_over=run.carried_over,
        s3_keys=sorted(keys),
        failures=failures,
        deferrals=deferrals,
        totals={c: str(v) for c, v in totals.items()},
        summary_key=summary_key,
        pdfs_requested=run.pdfs_requested,
        checked=run.checked,
        flagged=run.flagged,
        flags=_summary_flags(run, rt),
    )
    payments = _run_payments(run, rt, matches)
    report = _write_report(
        run, rt, rows, matches, [t.invoice_number for t in targets], todo, records, summary, payments
    )
    summary = summary.model_copy(
        update={
            **(_payment_figures(payments) if payments is not None else {}),
            "report_key": report.csv_key,
            "report_html_key": report.html_key,
            "outcome": report.outcome.value,
            "line_item_states": dict(sorted(Counter(line.status.value for line in report.lines).items())),
        }
    )
    rt.store.put_json(summary_key, summary.model_dump(mode="json", by_alias=True))
    return Notification(
        subject=reporting.finance_subject(report),
        message=reporting.finance_message(report, summary_key=summary_key),
        summary=summary.counts_only(),
    )


def _run_payments(run: RunContext, rt: Runtime, matches: dict[str, list[str]]) -> payment_status.RunPayments | None:
    """The payment entries of the run's invoices and of the earlier unpaid ones it asked about; None if not asked."""
    progress = run.payments
    if progress is None:
        return None
    failed = f"{progress.get('Error')}: {progress.get('Cause', '')}" if "Error" in progress else None
    return payment_status.run_payments(
        rt.store, rt.ledger, progress, (n for numbers in matches.values() for n in numbers), readable_reason(failed)
    )


def _payment_figures(payments: payment_status.RunPayments) -> dict[str, Any]:
    overdue = payments.past_due
    currency = overdue.main_currency
    oldest = overdue.oldest_due_date
    return {
        "past_due": overdue.count,
        "past_due_amount": format(overdue.totals.get(currency or "", Decimal(0)), "f"),
        "past_due_currency": currency,
        "past_due_totals": {c: str(v) for c, v in overdue.totals.items()},
        "oldest_due_date": oldest.isoformat() if oldest else None,
        "payment_status": payments.status_counts(),
    }


def _summary_flags(run: RunContext, rt: Runtime) -> list[dict[str, str]]:
    """The first flagged invoices with their reasons (all of them are in runs/<runId>/checks.json)."""
    if not run.flagged:
        return []
    flags: list[dict[str, str]] = rt.store.get_json(_run_key(run.run_id, "checks.json"))["flags"]
    return flags[:MAX_FLAGS_IN_SUMMARY]


def _read_details(rt: Runtime, numbers: Iterable[str]) -> dict[str, InvoiceDetail]:
    """Every document's details as fetch-invoices stored them."""
    wanted = sorted(set(numbers))
    documents = rt.store.get_json_many(_details_key(n) for n in wanted)
    return {n: InvoiceDetail.model_validate(documents[_details_key(n)]) for n in wanted}


def _write_report(
    run: RunContext,
    rt: Runtime,
    rows: list[LineItemRow],
    matches: dict[str, list[str]],
    targets: list[str],
    requested_this_run: set[str],
    records: dict[str, InvoiceRecord],
    summary: RunSummary,
    payments: payment_status.RunPayments | None = None,
) -> reporting.Report:
    """Build the run's reconciliation report and store it as CSV and HTML next to the summary."""
    flags: list[dict[str, str]] = (
        rt.store.get_json(_run_key(run.run_id, "checks.json"))["flags"] if summary.flagged else []
    )
    report = reporting.build_report(
        run_id=run.run_id,
        window_start=run.window_start,
        window_end=run.window_end,
        generated_at=datetime.now(UTC),
        bucket=rt.store.bucket,
        csv_key=_run_key(run.run_id, "report.csv"),
        html_key=_run_key(run.run_id, "report.html"),
        line_items=rows,
        matches=matches,
        details=_read_details(rt, (n for numbers in matches.values() for n in numbers)),
        records=records,
        targets=targets,
        requested_this_run=requested_this_run,
        failures=summary.failures,
        deferrals=summary.deferrals,
        checked=summary.checked,
        flags=flags,
        pdfs_requested=summary.pdfs_requested,
        payments=payments,
    )
    rt.store.put_bytes(report.csv_key, reporting.render_csv(report), "text/csv; charset=utf-8")
    rt.store.put_bytes(report.html_key, reporting.render_html(report), "text/html; charset=utf-8")
    return report


FetchTransactionsInput.model_rebuild()  # it refers to RunContext, defined after it
