"""The run's reconciliation report (CSV and HTML) and the finance notification's wording.

One report row per transaction line item: the transaction, the order line item, the documents Amazon issued for
it (invoice for a charge, credit memo for a refund), where their PDFs are, and whether they arrived. Amounts a
document carries as a whole (JP: ``invoiceTotal`` and the ``tax[]`` breakdown by rate) are shown once per
document, on the first row that lists it, so that every amount column adds up; credit memos count negative,
like the refunds they stand for. Those columns only appear when some document of the run carries them.

The modules: ``model`` (the report's data), ``building`` (build_report), ``formatting`` (amounts, windows),
``spreadsheet`` (the CSV), ``page`` (the HTML, from ``templates/``), ``message`` (the SNS subject and body).
"""

from abrecon.reporting.building import build_report
from abrecon.reporting.formatting import describe_window, format_amount, plain_amount, short_window
from abrecon.reporting.message import finance_message, finance_subject
from abrecon.reporting.model import (
    CurrencyTotals,
    Document,
    LineItemLike,
    Outcome,
    Problem,
    Report,
    ReportLine,
    Status,
    TaxAmounts,
)
from abrecon.reporting.page import render_html
from abrecon.reporting.spreadsheet import render_csv

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
