"""The domain logic of each state-machine step. Handlers parse input, call one function here, return its output."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from abrecon.errors import BadRequestError, DocumentUrlExpiredError
from abrecon.invoices import fetch_invoice_details
from abrecon.models import InvoiceDetail, OrderLineItemKey, ReportProcessingStatus, Transaction
from abrecon.runtime import Runtime
from abrecon.storage import InvoiceState, StoredObject
from abrecon.unpack import extract_pdfs


class StepModel(BaseModel):
    """Step payloads use the state machine's camelCase names and refuse unknown fields."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    def metrics(self) -> dict[str, float]:
        """Business metrics this output stands for (name -> count); published by the handler."""
        return {}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class RunRequest(StepModel):
    """What starts a run: nothing (a scheduled run looks back `lookbackDays`) or an explicit backfill window."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    window_from: datetime | None = Field(default=None, alias="from")
    window_to: datetime | None = Field(default=None, alias="to")
    lookback_days: int | None = Field(default=None, alias="lookbackDays", ge=1, le=90)
    poll_seconds: int | None = Field(default=None, alias="pollSeconds", ge=1, le=3600)
    max_polls: int | None = Field(default=None, alias="maxPolls", ge=1, le=10_000)

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
    invoice_count: int | None = Field(default=None, alias="invoiceCount")

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
    shipment_id: str = Field(alias="shipmentId")
    asin: str | None = None
    title: str | None = None
    quantity: int | None = None
    amount: Decimal | None = None
    currency: str | None = None

    @property
    def key(self) -> OrderLineItemKey:
        """The triple that identifies the line item to the invoice API."""
        return OrderLineItemKey(
            orderId=self.order_id, orderLineItemId=self.order_line_item_id, shipmentId=self.shipment_id
        )


class ReportTarget(StepModel):
    """One item of the per-invoice Map: the invoice to ask a PDF report for."""

    invoice_number: str = Field(alias="invoiceNumber", min_length=1)
    document_type: Literal["Invoice", "Credits"] | None = Field(default=None, alias="documentType")


class CreateReportInput(StepModel):
    """The Map item's payload for create-report."""

    invoice: ReportTarget
    run_id: str = Field(alias="runId")


class CreateReportOutput(StepModel):
    """The report to poll, or ALREADY_STORED when an earlier run or a parallel execution got there first."""

    status: Literal["REQUESTED", "ALREADY_STORED"]
    report_id: str | None = Field(default=None, alias="reportId")
    polls: int = 0

    def metrics(self) -> dict[str, float]:
        """Reports requested (or found already stored)."""
        return {"ReportsRequested" if self.status == "REQUESTED" else "InvoicesAlreadyStored": 1.0}


class CheckReportInput(StepModel):
    """The Map item's payload for check-report."""

    invoice_number: str = Field(alias="invoiceNumber")
    report_id: str = Field(alias="reportId")
    polls: int = Field(ge=0)
    max_polls: int = Field(alias="maxPolls", ge=1)
    run_id: str = Field(alias="runId")


class CheckReportOutput(StepModel):
    """The report's status (plus DEFERRED when the poll budget ran out) and its document once DONE."""

    status: Literal["IN_QUEUE", "IN_PROGRESS", "DONE", "FATAL", "CANCELLED", "DEFERRED"]
    report_id: str = Field(alias="reportId")
    polls: int
    report_document_id: str | None = Field(default=None, alias="reportDocumentId")

    def metrics(self) -> dict[str, float]:
        """Polls, and reports that ended without a document or were deferred."""
        ended = {"FATAL": "ReportsFailed", "CANCELLED": "ReportsFailed", "DEFERRED": "ReportsDeferred"}
        return {"ReportPolls": 1.0, **({ended[self.status]: 1.0} if self.status in ended else {})}


class DownloadDocumentInput(StepModel):
    """The Map item's payload for download-document."""

    invoice_number: str = Field(alias="invoiceNumber")
    report_document_id: str = Field(alias="reportDocumentId")
    run_id: str = Field(alias="runId")


class DownloadDocumentOutput(StepModel):
    """Where the invoice's PDFs went."""

    invoice_number: str = Field(alias="invoiceNumber")
    s3_keys: list[str] = Field(alias="s3Keys")

    def metrics(self) -> dict[str, float]:
        """Invoices and documents stored."""
        return {"InvoicesStored": 1.0, "DocumentsStored": float(len(self.s3_keys))}


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
    s3_keys: list[str] = Field(alias="s3Keys")
    failures: list[dict[str, str]]
    deferrals: list[dict[str, str]]
    totals: dict[str, str]
    summary_key: str = Field(alias="summaryKey")

    @field_validator("totals")
    @classmethod
    def _sorted_totals(cls, value: dict[str, str]) -> dict[str, str]:
        return dict(sorted(value.items()))


class Notification(StepModel):
    """The SNS message for finance: subject and body, plus the summary it came from."""

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
        }


def _run_key(run_id: str, name: str) -> str:
    return f"runs/{run_id}/{name}"


def fetch_transactions(request: FetchTransactionsInput, rt: Runtime) -> RunContext:
    """Page through getTransactions for the run's window and keep every line item in S3."""
    run = request.request
    if run.window_from and run.window_to:
        start, end = _utc(run.window_from), _utc(run.window_to)
    else:
        end = _utc(request.start_time)
        start = end - timedelta(days=run.lookback_days or rt.settings.lookback_days)
    transactions: list[Transaction] = list(rt.api.iter_transactions(start, end))
    rows = [row for transaction in transactions for row in _line_item_rows(transaction)]
    key = _run_key(request.run_id, "line-items.json")
    rt.store.put_json(key, [row.model_dump(mode="json", by_alias=True) for row in rows])
    return RunContext(
        run_id=request.run_id,
        window_start=start,
        window_end=end,
        poll_seconds=run.poll_seconds or request.default_poll_seconds,
        max_polls=run.max_polls or request.default_max_polls,
        transaction_count=len(transactions),
        line_item_count=len(rows),
        line_items_key=key,
    )


def _line_item_rows(transaction: Transaction) -> list[LineItemRow]:
    rows = []
    for item in transaction.transactionLineItems:
        key = item.key
        if key is None:  # a line item without the triple cannot be matched to an invoice; keep nothing half-known
            continue
        total = item.totalAmount
        rows.append(
            LineItemRow(
                transaction_id=transaction.transactionId,
                transaction_type=transaction.transactionType,
                transaction_date=str(transaction.transactionDate) if transaction.transactionDate else None,
                order_id=key.orderId,
                order_line_item_id=key.orderLineItemId,
                shipment_id=key.shipmentId,
                asin=item.asin,
                title=item.productTitle,
                quantity=item.itemQuantity,
                amount=total.amount if total else None,
                currency=(total.currencyCode or None) if total else None,
            )
        )
    return rows


def fetch_invoices(run: RunContext, rt: Runtime) -> RunContext:
    """Look up the invoices of the run's line items, store each invoice's details, and list the reports to ask for."""
    rows = [LineItemRow.model_validate(r) for r in rt.store.get_json(run.line_items_key)]
    keys = list(dict.fromkeys(row.key for row in rows))
    lookup = fetch_invoice_details(rt.api, keys)
    for number, detail in lookup.invoices.items():
        rt.store.put_json(f"invoice-details/{number}.json", detail.model_dump(mode="json", exclude_none=True))
    matches = {_triple(key): [d.invoiceNumber for d in details] for key, details in lookup.by_line_item.items()}
    rt.store.put_json(_run_key(run.run_id, "matches.json"), matches)
    targets = report_targets(lookup.invoices.values())
    stored = {
        n
        for n, rec in rt.ledger.get_many(t.invoice_number for t in targets).items()
        if rec.state is InvoiceState.STORED
    }
    todo = [t for t in targets if t.invoice_number not in stored]
    invoices_key = _run_key(run.run_id, "invoices.json")
    rt.store.put_json(invoices_key, [t.model_dump(mode="json", by_alias=True) for t in targets])
    rt.store.put_json(
        _run_key(run.run_id, "report-targets.json"), [t.model_dump(mode="json", by_alias=True) for t in todo]
    )
    return run.model_copy(
        update={"invoices_key": _run_key(run.run_id, "report-targets.json"), "invoice_count": len(todo)}
    )


def _triple(key: OrderLineItemKey) -> str:
    return f"{key.orderId}|{key.orderLineItemId}|{key.shipmentId}"


def report_targets(details: Iterable[InvoiceDetail]) -> list[ReportTarget]:
    """One report per invoice: a report with no documentType carries the invoice and its credit memos together.

    A credit memo whose original invoice is not among these details gets a report of its own (documentType Credits).
    """
    all_details = list(details)
    invoices = {d.invoiceNumber for d in all_details if not _is_credit_memo(d)}
    targets = [ReportTarget(invoice_number=n) for n in sorted(invoices)]
    orphans = sorted(
        {d.invoiceNumber for d in all_details if _is_credit_memo(d) and d.associatedInvoiceNumber not in invoices}
        - invoices
    )
    targets += [ReportTarget(invoice_number=n, document_type="Credits") for n in orphans]
    return targets


def _is_credit_memo(detail: InvoiceDetail) -> bool:
    return (detail.invoiceType or "").upper() == "CREDIT_MEMO"


def create_report(request: CreateReportInput, rt: Runtime) -> CreateReportOutput:
    """Ask for the invoice's PDF report once: a reportId already in the ledger is reused, never asked for twice."""
    number = request.invoice.invoice_number
    record = rt.ledger.get(number)
    if record and record.state is InvoiceState.STORED:
        return CreateReportOutput(status="ALREADY_STORED")
    if record and record.report_id and record.state in (InvoiceState.REQUESTED, InvoiceState.DEFERRED):
        return CreateReportOutput(status="REQUESTED", report_id=record.report_id)
    report_id = rt.api.create_report(number, [rt.settings.marketplace_id], document_type=request.invoice.document_type)
    rt.ledger.record_requested(number, report_id, request.run_id)
    return CreateReportOutput(status="REQUESTED", report_id=report_id)


def check_report(request: CheckReportInput, rt: Runtime) -> CheckReportOutput:
    """Poll the report once; record FATAL/CANCELLED as failures and defer the invoice when the poll budget is spent."""
    report = rt.api.get_report(request.report_id)
    status = ReportProcessingStatus(report.processingStatus)
    polls = request.polls + 1
    if status is ReportProcessingStatus.DONE and report.reportDocumentId:
        return CheckReportOutput(
            status="DONE", report_id=request.report_id, polls=polls, report_document_id=report.reportDocumentId
        )
    if status is ReportProcessingStatus.CANCELLED:
        rt.ledger.record_failed(
            request.invoice_number,
            f"report {request.report_id} CANCELLED: Amazon has no document for this invoice",
            request.run_id,
        )
        return CheckReportOutput(status="CANCELLED", report_id=request.report_id, polls=polls)
    if status is ReportProcessingStatus.FATAL or status is ReportProcessingStatus.DONE:
        rt.ledger.record_failed(
            request.invoice_number,
            f"report {request.report_id} ended {status.value} without a document",
            request.run_id,
        )
        return CheckReportOutput(status="FATAL", report_id=request.report_id, polls=polls)
    if polls >= request.max_polls:
        rt.ledger.record_deferred(
            request.invoice_number,
            f"report {request.report_id} still {status.value} after {polls} polls; the next run picks it up",
            request.run_id,
        )
        return CheckReportOutput(status="DEFERRED", report_id=request.report_id, polls=polls)
    return CheckReportOutput(status=status.value, report_id=request.report_id, polls=polls)


def download_document(request: DownloadDocumentInput, rt: Runtime) -> DownloadDocumentOutput:
    """Fetch the report's document at once, unpack every PDF in memory and store each under SSE-KMS."""
    limit = rt.settings.max_document_bytes
    document = rt.api.get_report_document(request.report_document_id)
    try:
        data = rt.api.download(document.url, max_bytes=limit)
    except DocumentUrlExpiredError:
        # The presigned URL lives five minutes; a fresh one costs one more getReportDocument, never a new report.
        document = rt.api.get_report_document(request.report_document_id)
        data = rt.api.download(document.url, max_bytes=limit)
    pdfs = extract_pdfs(data)
    stored: list[StoredObject] = [
        rt.store.put_bytes(
            f"documents/{rt.settings.marketplace_id}/{request.invoice_number}/{pdf.name}",
            pdf.content,
            "application/pdf",
        )
        for pdf in pdfs
    ]
    rt.ledger.record_stored(request.invoice_number, stored, request.run_id)
    return DownloadDocumentOutput(invoice_number=request.invoice_number, s3_keys=[o.key for o in stored])


def summarize_run(run: RunContext, rt: Runtime) -> Notification:
    """Account for every line item and invoice of the run, store the summary, and word it for finance."""
    if run.invoices_key is None:
        raise BadRequestError("summarizeRun", None, None, "the run has no invoice list: fetch-invoices did not run")
    rows = [LineItemRow.model_validate(r) for r in rt.store.get_json(run.line_items_key)]
    matches: dict[str, list[str]] = rt.store.get_json(_run_key(run.run_id, "matches.json"))
    targets = [ReportTarget.model_validate(t) for t in rt.store.get_json(_run_key(run.run_id, "invoices.json"))]
    todo = {t["invoiceNumber"] for t in rt.store.get_json(run.invoices_key)}
    records = rt.ledger.get_many(t.invoice_number for t in targets)
    credit_memos = {n for numbers in matches.values() for n in numbers} - {t.invoice_number for t in targets}
    pending = sum(1 for row in rows if not matches.get(_triple(row.key)))
    failures, deferrals, keys = [], [], []
    for target in targets:
        record = records.get(target.invoice_number)
        if record is None:
            failures.append({"invoiceNumber": target.invoice_number, "reason": "no ledger entry: the step never ran"})
        elif record.state is InvoiceState.STORED:
            if target.invoice_number in todo:
                keys.extend(record.s3_keys)
        elif record.state is InvoiceState.DEFERRED:
            deferrals.append({"invoiceNumber": target.invoice_number, "reason": record.reason or ""})
        else:
            failures.append({"invoiceNumber": target.invoice_number, "reason": record.reason or record.state.value})
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
        already_stored=len(targets) - len(todo),
        documents_stored=len(keys),
        failed=len(failures),
        pending=pending,
        deferred=len(deferrals),
        s3_keys=sorted(keys),
        failures=failures,
        deferrals=deferrals,
        totals={c: str(v) for c, v in totals.items()},
        summary_key=summary_key,
    )
    rt.store.put_json(summary_key, summary.model_dump(mode="json", by_alias=True))
    return Notification(subject=_subject(summary), message=_message(summary, rt.store.bucket), summary=summary)


def _subject(s: RunSummary) -> str:
    status = "needs attention" if s.failed else "complete"
    subject = (
        f"Amazon Business invoices {s.window_start:%Y-%m-%d} to {s.window_end:%Y-%m-%d}: "
        f"{s.documents_stored} documents stored, {status}"
    )
    return subject[:100]  # SNS subjects stop at 100 characters


def _message(s: RunSummary, bucket: str) -> str:
    lines = [
        f"Run {s.run_id}",
        f"Window: {s.window_start.isoformat()} to {s.window_end.isoformat()}",
        f"Transactions: {s.transactions}, line items: {s.line_items}",
        f"Invoices: {s.invoices} ({s.already_stored} already stored earlier), credit memos: {s.credit_memos}",
        f"Documents stored this run: {s.documents_stored}",
        "Totals: " + (", ".join(f"{amount} {currency}" for currency, amount in s.totals.items()) or "none"),
        f"Line items still waiting for an invoice: {s.pending}",
        f"Deferred to the next run: {s.deferred}",
        f"Failed: {s.failed}",
    ]
    lines += [f"  - {f['invoiceNumber']}: {f['reason']}" for f in s.failures[:50]]
    lines += [f"  - deferred {d['invoiceNumber']}: {d['reason']}" for d in s.deferrals[:50]]
    lines.append(f"Summary: s3://{bucket}/{s.summary_key}")
    return "\n".join(lines)
