"""download-document: fetch a finished report's document, unpack every PDF in it and store each one, once."""

from __future__ import annotations

import contextlib
import math
from typing import Any

from abrecon.contracts import DownloadDocumentInput, DownloadDocumentOutput
from abrecon.errors import DocumentError, DocumentUrlExpiredError
from abrecon.runtime import Runtime
from abrecon.steps.common import owner_status, rate_limit_slot
from abrecon.storage import InvoiceRecord, InvoiceState, LedgerConflict, StoredObject
from abrecon.unpack import extract_pdfs

# Fresh presigned URLs one invoice's download may ask for after expired ones (each one getReportDocument more).
MAX_URL_REFRESHES = 2


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
    if owner_status(record, request.run_id, rt) == "OWNED_ELSEWHERE":
        return DownloadDocumentOutput(status="OWNED_ELSEWHERE", invoice_number=number)
    refreshes = request.url_refreshes
    reserved: float | None = request.reserved_at
    limit = rt.settings.max_document_bytes
    while True:
        wait, reserved_at = rate_limit_slot("getReportDocument", reserved, rt, number)
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


def _document_failed(rt: Runtime, number: str, run_id: str, exc: DocumentError) -> DocumentError:
    """Count a run whose document of the invoice was broken; after DOCUMENT_RETRY_RUNS runs the failure is final.

    Returns the error to raise (the state machine records it as the invoice's failure, with this reason).
    """
    limit = rt.settings.document_retry_runs

    def decide(record: InvoiceRecord | None) -> dict[str, Any]:
        runs = (record.document_failures if record is not None else 0) + 1
        final = runs >= limit
        return {
            "state": InvoiceState.FAILED,
            "reason": f"broken document ({exc}), {runs} of {limit} runs" + ("; not retried again" if final else ""),
            "terminal": final,
            "document_failures": runs,
            "report_id": record.report_id if record is not None else None,
        }

    written = rt.ledger.update(number, run_id, decide)
    return DocumentError(str(written.reason))
