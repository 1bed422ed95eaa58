"""Joining the run's line items, invoice details and ledger entries into its Report."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from abrecon.line_items import match_key
from abrecon.models import InvoiceDetail, Money
from abrecon.payment_status import RunPayments
from abrecon.reporting.model import (
    SEVERITY,
    CurrencyTotals,
    Document,
    LineItemLike,
    Problem,
    Report,
    ReportLine,
    Status,
    TaxAmounts,
)
from abrecon.storage import InvoiceRecord, InvoiceState

_REFUND_TYPES = frozenset({"REFUND", "OVERREFUND"})


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
    original = detail.associatedInvoiceNumber if detail is not None and detail.is_credit_memo else None
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
    memo = detail is not None and detail.is_credit_memo
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
            worst = max(docs, key=lambda d: SEVERITY[d.status])
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
