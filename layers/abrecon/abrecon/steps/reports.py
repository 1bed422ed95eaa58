"""create-report and check-report: ask Amazon for an invoice's PDF report exactly once, and poll it until it ends.

The ledger entry of the invoice is the arbiter between executions working on the same window: every write is
conditional on the version read (abrecon.storage.Ledger), and a reportId is recorded before anything waits.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from aws_lambda_powertools import Logger

from abrecon import lost_reports
from abrecon.contracts import CheckReportInput, CheckReportOutput, CreateReportInput, CreateReportOutput
from abrecon.errors import AnswerLostError, ApiError, NotFoundError
from abrecon.models import REPORT_TYPE_INVOICE_PDF, ReportProcessingStatus
from abrecon.runtime import Runtime
from abrecon.steps.common import owner_status, rate_limit_slot
from abrecon.storage import InvoiceRecord, InvoiceState, StorageError

logger = Logger(child=True)


def create_report(request: CreateReportInput, rt: Runtime) -> CreateReportOutput:
    """Ask for the invoice's PDF report exactly once across all executions, at Amazon's pace.

    The invoice is claimed in the ledger first (conditional write), a reportId already there is reused, a slot in
    the shared createReport bucket is reserved (THROTTLED hands the wait to the state machine), the attempt is
    recorded before the call and the reportId right after it. An answer that never arrived intact is looked for
    with getReports before anyone asks again (lost_reports).
    """
    number = request.invoice.invoice_number
    prepared = rt.ledger.with_retries(number, lambda record: _prepare_request(request, record, rt))
    if isinstance(prepared, CreateReportOutput):
        return prepared
    return _send_request(request, prepared, rt)


def _prepare_request(
    request: CreateReportInput, record: InvoiceRecord | None, rt: Runtime
) -> CreateReportOutput | InvoiceRecord:
    """Everything before the createReport call, on the record as read: the answer when there is nothing to ask for
    (or a wait first), else the record with the attempt written. Its writes raise LedgerConflict when another
    execution moved first; the ledger then reads the record again and this starts over."""
    number = request.invoice.invoice_number
    refusal = owner_status(record, request.run_id, rt)
    if refusal:
        return CreateReportOutput(status=refusal)
    held = request.reserved_at
    if record and record.report_id:
        rt.ledger.write(
            number, record, request.run_id, state=InvoiceState.REQUESTED, report_id=record.report_id, reason=None
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
    if record.lost_answers >= lost_reports.MAX_LOST_ANSWERS:
        raise AnswerLostError(
            "createReport",
            None,
            "AnswersLost",
            f"{record.lost_answers} answers lost in this run; the next run asks",
        )
    wait, reserved_at = rate_limit_slot("createReport", held, rt, number)
    if wait > 0:
        return CreateReportOutput(status="THROTTLED", wait_seconds=math.ceil(wait), reserved_at=reserved_at)
    # The attempt goes to the ledger before the call: if its answer is lost, a retry knows to look first.
    return _claimed(rt, request, record, attempt_at=rt.ledger.now())


def _send_request(request: CreateReportInput, record: InvoiceRecord, rt: Runtime) -> CreateReportOutput:
    """The createReport call itself, once, and its outcome to the ledger (a conflict here is not retried: the
    request may have gone out)."""
    number = request.invoice.invoice_number
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
    wait, reserved_at = rate_limit_slot("getReports", held, rt, number)
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
    return _claimed(rt, request, record, attempt_at=None)


def _claimed(
    rt: Runtime, request: CreateReportInput, record: InvoiceRecord, *, attempt_at: float | None
) -> InvoiceRecord:
    """Keep the invoice claimed, with the createReport attempt about to be sent (in the open index, so other lookups
    see it) or with none."""
    return rt.ledger.write(
        request.invoice.invoice_number,
        record,
        request.run_id,
        state=InvoiceState.CLAIMED,
        reason=None,
        create_attempt_at=attempt_at,
        create_attempt_until=None,
        **({"open_kind": "ATTEMPT"} if attempt_at is not None else {}),
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

    def decide(record: InvoiceRecord | None) -> dict[str, Any] | None:
        if record is not None and (getattr(record, kept) or _taken_over(record, request.run_id)):
            return None  # the invoice had its new report already, or another execution owns it now
        return {
            "state": InvoiceState.REQUESTED,
            "report_id": None,
            "open_kind": "INVOICE",  # if this execution dies during the cool-down, the next run takes the invoice
            "reason": reason,
            kept: [request.report_id],
        }

    record = rt.ledger.update(request.invoice_number, request.run_id, decide)
    return record is not None and request.report_id in getattr(record, kept)


def _taken_over(record: InvoiceRecord | None, run_id: str) -> bool:
    """Whether another execution has taken the invoice over (it then records the outcome, not this one)."""
    return record is not None and record.run_id != run_id and record.state is not InvoiceState.FAILED


def _record(rt: Runtime, request: CheckReportInput, **fields: Any) -> None:
    """Write the invoice's new state unless another execution has taken it over meanwhile."""
    rt.ledger.update(
        request.invoice_number, request.run_id, lambda record: None if _taken_over(record, request.run_id) else fields
    )
