"""The domain logic of each state-machine step: a handler parses its input (abrecon.contracts), calls one function
here and returns its output.

One module per stretch of the state machine: ``transactions`` (fetch-transactions, fetch-invoices), ``reports``
(create-report, check-report), ``documents`` (download-document), ``payments`` (check-payments) and ``summary``
(summarize-run); ``common`` holds what the per-invoice steps share. Import the steps from here.
"""

from __future__ import annotations

from abrecon.steps.documents import download_document
from abrecon.steps.payments import check_payments, payment_targets
from abrecon.steps.reports import check_report, create_report
from abrecon.steps.summary import readable_reason, summarize_run
from abrecon.steps.transactions import fetch_invoices, fetch_transactions, line_item_rows, report_targets, targets_of

__all__ = [
    "check_payments",
    "check_report",
    "create_report",
    "download_document",
    "fetch_invoices",
    "fetch_transactions",
    "line_item_rows",
    "payment_targets",
    "readable_reason",
    "report_targets",
    "summarize_run",
    "targets_of",
]
