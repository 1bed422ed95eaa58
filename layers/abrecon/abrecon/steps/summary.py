"""summarize-run: account for every line item and invoice of the run, write its report, and word it for finance."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from abrecon import line_items, payment_status, reporting
from abrecon.contracts import LineItemRow, Notification, ReportTarget, RunContext, RunSummary
from abrecon.errors import BadRequestError
from abrecon.run_files import read_details, run_key
from abrecon.runtime import Runtime
from abrecon.storage import InvoiceRecord, InvoiceState

# The flagged invoices the summary lists by name (all of them are in runs/<runId>/checks.json).
MAX_FLAGS_IN_SUMMARY = 100


def summarize_run(run: RunContext, rt: Runtime) -> Notification:
    """Account for every line item and invoice of the run, store the summary, and word it for finance."""
    if run.invoices_key is None:
        raise BadRequestError("summarizeRun", None, None, "the run has no invoice list: fetch-invoices did not run")
    rows = [LineItemRow.model_validate(r) for r in rt.store.get_json(run.line_items_key)]
    matches: dict[str, list[str]] = rt.store.get_json(run_key(run.run_id, "matches.json"))
    targets = [ReportTarget.model_validate(t) for t in rt.store.get_json(run_key(run.run_id, "invoices.json"))]
    todo = {t["invoiceNumber"] for t in rt.store.get_json(run.invoices_key)}
    records = rt.ledger.get_many(t.invoice_number for t in targets)
    # A failure the state machine's Catch recorded carries the Lambda error payload (JSON with a stack trace):
    # the summary, the report and finance's message give the error and its message only.
    records = {n: r.model_copy(update={"reason": readable_reason(r.reason)}) for n, r in records.items()}
    credit_memos = {n for numbers in matches.values() for n in numbers} - {t.invoice_number for t in targets}
    pending = sum(1 for row in rows if not matches.get(line_items.match_key(row)))
    ledger = _account_invoices(targets if run.pdfs_requested else [], records, run.run_id)
    totals: dict[str, Decimal] = {}
    for row in rows:
        if row.amount is not None:
            currency = row.currency or "?"
            totals[currency] = totals.get(currency, Decimal(0)) + row.amount
    summary_key = run_key(run.run_id, "summary.json")
    summary = RunSummary(
        run_id=run.run_id,
        window_start=run.window_start,
        window_end=run.window_end,
        transactions=run.transaction_count,
        line_items=len(rows),
        invoices=len(targets),
        credit_memos=len(credit_memos),
        already_stored=ledger.stored_before,
        documents_stored=len(ledger.keys),
        failed=len(ledger.failures),
        pending=pending,
        deferred=len(ledger.deferrals),
        in_progress_elsewhere=len(ledger.elsewhere),
        carried_over=run.carried_over,
        s3_keys=sorted(ledger.keys),
        failures=ledger.failures,
        deferrals=ledger.deferrals,
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


@dataclass
class _InvoiceAccount:
    """Where the run's invoices ended up in the ledger."""

    failures: list[dict[str, str]] = field(default_factory=list)
    deferrals: list[dict[str, str]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # the documents this run stored
    elsewhere: list[str] = field(default_factory=list)
    stored_before: int = 0


def _account_invoices(targets: list[ReportTarget], records: dict[str, InvoiceRecord], run_id: str) -> _InvoiceAccount:
    """Each invoice's outcome as its ledger entry tells it (no PDFs asked for: no targets, nothing to account)."""
    account = _InvoiceAccount()
    for target in targets:
        record = records.get(target.invoice_number)
        if record is None:
            account.failures.append(
                {"invoiceNumber": target.invoice_number, "reason": "no ledger entry: the step never ran"}
            )
        elif record.state is InvoiceState.STORED:
            if record.run_id == run_id:
                account.keys.extend(record.s3_keys)
            else:
                account.stored_before += 1  # by an earlier run, or by a parallel execution of the same window
        elif record.state is InvoiceState.DEFERRED:
            account.deferrals.append({"invoiceNumber": target.invoice_number, "reason": record.reason or ""})
        elif record.state is InvoiceState.FAILED:
            account.failures.append({"invoiceNumber": target.invoice_number, "reason": record.reason or "failed"})
        elif record.run_id != run_id:
            account.elsewhere.append(target.invoice_number)  # a parallel execution owns it and reports it
        else:
            account.failures.append(
                {
                    "invoiceNumber": target.invoice_number,
                    "reason": f"the run ended with the invoice still {record.state.value}",
                }
            )
    return account


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
    flags: list[dict[str, str]] = rt.store.get_json(run_key(run.run_id, "checks.json"))["flags"]
    return flags[:MAX_FLAGS_IN_SUMMARY]


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
        rt.store.get_json(run_key(run.run_id, "checks.json"))["flags"] if summary.flagged else []
    )
    report = reporting.build_report(
        run_id=run.run_id,
        window_start=run.window_start,
        window_end=run.window_end,
        generated_at=datetime.now(UTC),
        bucket=rt.store.bucket,
        csv_key=run_key(run.run_id, "report.csv"),
        html_key=run_key(run.run_id, "report.html"),
        line_items=rows,
        matches=matches,
        details=read_details(rt.store, (n for numbers in matches.values() for n in numbers)),
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
