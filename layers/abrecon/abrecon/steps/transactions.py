"""fetch-transactions and fetch-invoices: what Amazon lists for the run's window, and the reports to ask for.

fetch-transactions keeps every transaction line item of the window in S3 (runs/<runId>/line-items.json);
fetch-invoices looks up their invoices, stores each document's details, records every line item's state in the
ledger and lists the invoices whose PDF report to ask for. Both take more than one invocation for a large window.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from pydantic import Field

from abrecon import line_items
from abrecon.contracts import FetchTransactionsInput, LineItemRow, ReportTarget, RunContext, StepModel
from abrecon.invoices import BATCH_SIZE as INVOICE_BATCH_SIZE
from abrecon.invoices import fetch_invoice_details
from abrecon.jp_checks import InvoiceChecks, check_invoices
from abrecon.models import InvoiceDetail, OrderLineItemKey, Transaction, as_utc
from abrecon.run_files import details_key, run_key
from abrecon.runtime import Runtime
from abrecon.storage import InvoiceState, LineItemState


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
        start, end = as_utc(run.window_from), as_utc(run.window_to)
    else:
        end = as_utc(request.start_time)
        start = end - timedelta(days=run.lookback_days or rt.settings.lookback_days)
    key = run_key(request.run_id, "line-items.json")
    rows = [LineItemRow.model_validate(r) for r in rt.store.get_json(key)] if request.resume else []
    transactions = request.resume.transaction_count if request.resume else 0
    page_token = request.resume.next_page_token if request.resume else None
    seen = {row.transaction_id for row in rows}
    next_token: str | None = None
    for page in rt.api.iter_transaction_pages(start, end, page_token):
        # A transaction listed again (pages repeat while the feed changes) is counted once and is one row each.
        transactions += len({t.transactionId for t in page.transactions} - seen)
        seen.update(t.transactionId for t in page.transactions)
        rows += [row for t in page.transactions for row in line_item_rows(t)]
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


def line_item_rows(transaction: Transaction) -> list[LineItemRow]:
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
    progress_key = run_key(run.run_id, "invoice-lookup.json")
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
            progress.matches[key.triple] = [d.invoiceNumber for d in details]
        for number, detail in lookup.invoices.items():
            if number in seen:
                continue  # first seen wins, as within one lookup
            seen.add(number)
            found[number] = detail
            if detail.is_credit_memo:
                progress.credit_memos[number] = detail.associatedInvoiceNumber
            else:
                progress.invoices.append(number)
        progress.keys_done += len(batch)
    rt.store.put_json_many(
        {details_key(number): detail.model_dump(mode="json", exclude_none=True) for number, detail in found.items()}
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
    rt.store.put_json(run_key(run.run_id, "checks.json"), _checks_json(checks, rt.settings.region))
    # A line item listed without a shipment has the documents of its order line item's shipments, once known.
    matches = line_items.with_shipmentless_matches(progress.matches, rows)
    rt.store.put_json(run_key(run.run_id, "matches.json"), matches)
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
    invoices_key = run_key(run.run_id, "invoices.json")
    rt.store.put_json(invoices_key, [t.model_dump(mode="json", by_alias=True) for t in targets])
    rt.store.put_json(
        run_key(run.run_id, "report-targets.json"), [t.model_dump(mode="json", by_alias=True) for t in todo]
    )
    return run.model_copy(
        update={
            "invoices_key": run_key(run.run_id, "report-targets.json"),
            "invoice_count": len(todo),
            "line_item_count": len(rows),
            "carried_over": progress.carried_over,
            "pdfs_requested": rt.settings.request_pdfs,
            "checked": checks.checked,
            "flagged": checks.flagged,
        }
    )


def _line_item_state(row: LineItemRow, matches: dict[str, list[str]]) -> LineItemState:
    if matches.get(line_items.match_key(row)):
        return LineItemState.INVOICED
    return LineItemState.PENDING if row.shipment_id else LineItemState.NOT_SHIPPED


def _checks_json(checks: InvoiceChecks, region: str) -> dict[str, object]:
    return {"region": region, "checked": checks.checked, "flagged": checks.flagged, **checks.model_dump(by_alias=True)}


def report_targets(details: Iterable[InvoiceDetail]) -> list[ReportTarget]:
    """One report per invoice: a report with no documentType carries the invoice and its credit memos together.

    A credit memo whose original invoice is not among these details gets a report of its own (documentType Credits).
    """
    all_details = list(details)
    invoices = {d.invoiceNumber for d in all_details if not d.is_credit_memo}
    memos = {d.invoiceNumber: d.associatedInvoiceNumber for d in all_details if d.is_credit_memo}
    return targets_of(invoices, memos)


def targets_of(invoices: set[str], credit_memos: dict[str, str | None]) -> list[ReportTarget]:
    """report_targets from invoice numbers and credit memo numbers (each with its original invoice's number)."""
    targets = [ReportTarget(invoice_number=n) for n in sorted(invoices)]
    orphans = sorted({n for n, original in credit_memos.items() if original not in invoices} - invoices)
    targets += [ReportTarget(invoice_number=n, document_type="Credits") for n in orphans]
    return targets
