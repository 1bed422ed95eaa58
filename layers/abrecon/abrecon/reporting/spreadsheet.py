"""The report as CSV, for a spreadsheet: the standard library's csv writer, with text that could run as a formula
defused."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from decimal import Decimal

from abrecon.payment_status import join_statuses
from abrecon.reporting.formatting import aging_text, check_text, plain_amount, rate_text, s3_uri
from abrecon.reporting.model import SEVERITY, Report, TaxAmounts

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _safe_cell(text: str) -> str:
    """Text a spreadsheet would run as a formula gets a leading apostrophe (CSV injection)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


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
        pct = rate_text(rate)
        header += [f"Taxable at {pct} (excl. tax)", f"Tax at {pct}", f"Total at {pct} (incl. tax)"]
    if report.checked:
        header.append("Tax invoice check (JP)")
    return [*header, "Status", "Reason", "Document S3 key(s)"]


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
                *([_safe_cell(check_text(docs))] if report.checked else []),
                line.status.value,
                _safe_cell(line.reason),
                _safe_cell("; ".join(s3_uri(report.bucket, k) for d in docs for k in d.s3_keys)),
            ]
        )
    width = len(_csv_header(report))
    writer.writerow([""] * width)
    for totals in report.totals:
        counts = ", ".join(
            f"{n} {s.label.lower()}" for s, n in sorted(totals.statuses.items(), key=lambda x: SEVERITY[x[0]])
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


def _aging_csv_notes(report: Report) -> list[tuple[str, str]]:
    """(currency, "Not yet due: ...; 1-30 days past due: ...") per currency, for the CSV's AGING rows."""
    if report.payments is None:
        return []
    as_of = report.payments.today.isoformat()
    return [
        (a.currency, f"unpaid invoices as of {as_of}: {aging_text(a.amounts, a.currency)}")
        for a in report.payments.aging
    ]
