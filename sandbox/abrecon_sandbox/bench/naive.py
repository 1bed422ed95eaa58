"""The naive baseline: Amazon's documented tutorial flow, one line item and one invoice at a time.

Per line item: getInvoiceDetailsByOrderLineItems for that item, then for each invoice number: createReport,
getReport every 15 s until it ends, getReportDocument, download, unpack. No batching, no deduplication, no
parallelism; a 429 is waited out for a minute. Measured against the same emulator at the same speed factor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from abrecon.auth import LwaTokenProvider
from abrecon.client import AmazonBusinessClient
from abrecon.errors import ThrottledError
from abrecon.models import ReportProcessingStatus
from abrecon.unpack import extract_pdfs
from abrecon_sandbox.emulator import Emulator

AMAZON_POLL_SECONDS = 15.0
AMAZON_THROTTLE_PAUSE_SECONDS = 60.0


@dataclass(frozen=True)
class NaiveResult:
    """How long the tutorial flow took and what it fetched."""

    seconds: float
    reports: int
    pdfs: int


def run_naive(emulator: Emulator, speed: float) -> NaiveResult:
    """Run the tutorial flow over the emulator's window; Amazon's waits are divided by speed like the emulator's."""
    config = emulator.config
    tokens = LwaTokenProvider("naive-baseline", emulator.lwa_url, secret_loader=lambda _secret: emulator.credentials)
    client = AmazonBusinessClient(emulator.base_url, tokens)
    started = time.monotonic()
    reports = pdfs = 0
    for transaction in client.iter_transactions(config.window_start, config.window_end):
        for line_item in transaction.transactionLineItems:
            if line_item.key is None:
                continue
            for answer in client.get_invoice_details([line_item.key]):
                for invoice in answer.invoiceDetails:
                    report_id = _create(client, invoice.invoiceNumber, config.profile.marketplace_id, speed)
                    reports += 1
                    while True:
                        time.sleep(AMAZON_POLL_SECONDS / speed)
                        report = client.get_report(report_id)
                        if ReportProcessingStatus(report.processingStatus).is_terminal:
                            break
                    if report.reportDocumentId:
                        document = _document_url(client, report.reportDocumentId, speed)
                        pdfs += len(extract_pdfs(client.download(document, max_bytes=50 * 1024 * 1024)))
    return NaiveResult(seconds=time.monotonic() - started, reports=reports, pdfs=pdfs)


def _create(client: AmazonBusinessClient, invoice_number: str, marketplace_id: str, speed: float) -> str:
    while True:
        try:
            return client.create_report(invoice_number, [marketplace_id])
        except ThrottledError:
            time.sleep(AMAZON_THROTTLE_PAUSE_SECONDS / speed)


def _document_url(client: AmazonBusinessClient, document_id: str, speed: float) -> str:
    while True:
        try:
            return client.get_report_document(document_id).url
        except ThrottledError:
            time.sleep(AMAZON_THROTTLE_PAUSE_SECONDS / speed)
