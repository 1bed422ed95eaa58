"""Regression tests for what the fault matrix (tests/faults) found, each failing without its fix.

The steps run in-process against moto (resources from template.yaml) with the real ledger, bucket and pacer; the
Amazon Business side is a stub where a failure must be chosen, and S3 faults come from the sandbox's router.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, function_environment

from abrecon import contracts, steps
from abrecon.errors import ServerError
from abrecon.models import Report, ReportDocument
from abrecon.pacing import Limit, Pacer
from abrecon.runtime import Runtime, get_runtime
from abrecon.storage import DocumentStore, InvoiceState
from abrecon_sandbox.aws.faults import S3WriteFaults
from abrecon_sandbox.aws.local_aws import LocalAws

ASL = ROOT / "statemachine" / "reconcile.asl.json"
PDF = b"%PDF-1.4\n% invoice\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def rt(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """The runtime a function of the stack builds, in this process."""
    with function_environment(local_aws, monkeypatch, "CreateReportFunction"):
        yield get_runtime()


class FlakyReports:
    """createReport that fails with a 5xx once, then answers; getReportDocument/download that serve one PDF."""

    def __init__(self) -> None:
        self.calls = 0

    def warm_up(self) -> None:
        """Nothing to warm up."""

    def create_report(self, number: str, marketplace_ids: Any, **_: Any) -> str:
        self.calls += 1
        if self.calls == 1:
            raise ServerError("createReport", 503, "ServiceUnavailable", "try again")
        return f"{number}-R{self.calls}"

    def get_report(self, report_id: str) -> Report:
        return Report(reportId=report_id, processingStatus="DONE", reportDocumentId="DOC-" + report_id)  # type: ignore[arg-type]

    def get_report_document(self, document_id: str) -> ReportDocument:
        self.calls += 1
        if self.calls == 1:
            raise ServerError("getReportDocument", 503, "ServiceUnavailable", "try again")
        return ReportDocument(reportDocumentId=document_id, url="https://example.invalid/doc")

    def download(self, url: str, *, max_bytes: int) -> bytes:
        return PDF


def _starved_pacer(rt: Runtime, operation: str) -> Pacer:
    """A pacer whose bucket for the operation is empty: a new reservation is minutes away."""
    pacer = Pacer(rt.ledger.table, {operation: Limit(rate=0.001, burst=1)})
    pacer.reserve(operation)  # the one token is gone
    return pacer


def test_a_retried_create_report_does_not_reuse_the_slot_its_failed_attempt_spent(rt: Runtime) -> None:
    """The state machine retries a failed step with the same input, reservedAt included: the slot it names was
    spent by the failed attempt's request, so the retry must reserve a new one (here: wait for it)."""
    api = FlakyReports()
    r = dataclasses.replace(rt, api=api, pacer=_starved_pacer(rt, "createReport"))  # type: ignore[arg-type]
    request = contracts.CreateReportInput(
        invoice=contracts.ReportTarget(invoice_number="SLOT-1"), run_id="run-a", reserved_at=r.ledger.now() - 1
    )
    with pytest.raises(ServerError):
        steps.create_report(request, r)  # the slot's request went out and failed
    again = steps.create_report(request, r)  # the ASL's Retry: the very same input
    assert (again.status, api.calls) == ("THROTTLED", 1)
    assert again.reserved_at is not None and again.reserved_at > r.ledger.now() + 60
    record = r.ledger.get("SLOT-1")
    assert record is not None and record.state is not InvoiceState.REQUESTED


def test_a_retried_download_does_not_reuse_the_slot_its_failed_attempt_spent(rt: Runtime) -> None:
    api = FlakyReports()
    r = dataclasses.replace(rt, api=api, pacer=_starved_pacer(rt, "getReportDocument"))  # type: ignore[arg-type]
    request = contracts.DownloadDocumentInput(
        invoice_number="SLOT-2", report_document_id="DOC-SLOT-2", run_id="run-a", reserved_at=r.ledger.now() - 1
    )
    with pytest.raises(ServerError):
        steps.download_document(request, r)
    again = steps.download_document(request, r)
    assert (again.status, api.calls) == ("THROTTLED", 1)


def test_an_unused_slot_is_used_once_waited_for(rt: Runtime) -> None:
    """The normal path: THROTTLED, the state machine waits, the same slot is then used (no second wait)."""
    api = FlakyReports()
    api.calls = 1  # no failure this time
    r = dataclasses.replace(rt, api=api)  # type: ignore[arg-type]
    request = contracts.CreateReportInput(
        invoice=contracts.ReportTarget(invoice_number="SLOT-3"), run_id="run-a", reserved_at=r.ledger.now() - 1
    )
    assert steps.create_report(request, r).status == "REQUESTED"


def test_a_write_answered_500_after_it_landed_leaves_one_version(local_aws: LocalAws) -> None:
    """S3 may store an object and still answer 500; the SDK retries the PUT. A document must not get a second
    version from that (the fault matrix's s3-write-failure found `duplicates.objects` 1)."""
    assert local_aws.stack is not None and local_aws.router is not None
    bucket = local_aws.stack.output("DocumentBucket")
    store = DocumentStore(local_aws.client("s3"), bucket, local_aws.stack.output("DocumentKey", "Arn"))
    faults = S3WriteFaults(seed=1, invoice_numbers=["AFTER-1"])
    faults.plan = {"AFTER-1": "after-write"}
    key = "documents/ATVPDKIKX0DER/AFTER-1/Invoice_AFTER-1.pdf"
    local_aws.router.s3_faults = faults
    try:
        stored = store.put_bytes_once(key, PDF, "application/pdf")
    finally:
        local_aws.router.s3_faults = None
    assert dict(faults.injected) == {"s3-after-write": 1}
    versions = local_aws.client("s3").list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
    assert len(versions) == 1 and stored.sha256 == hashlib.sha256(PDF).hexdigest()
    assert local_aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read() == PDF
    # Stored again (a retried step): still one version.
    store.put_bytes_once(key, PDF, "application/pdf")
    assert len(local_aws.client("s3").list_object_versions(Bucket=bucket, Prefix=key)["Versions"]) == 1


def test_a_killed_or_timed_out_lambda_is_retried_by_every_task() -> None:
    """A Lambda process that dies mid-invocation (Runtime.ExitError; Lambda.Unknown in Step Functions' terms)
    or times out (Sandbox.Timedout) is retried: every step is idempotent. The fault matrix's handler-crash found
    invoices failed in the first run for it."""
    definition = json.loads(Path(ASL).read_text())
    tasks: list[tuple[str, dict[str, Any]]] = []

    def collect(states: dict[str, Any]) -> None:
        for name, state in states.items():
            if state.get("Type") == "Task" and state.get("Resource") == "arn:aws:states:::lambda:invoke":
                tasks.append((name, state))
            if "ItemProcessor" in state:
                collect(state["ItemProcessor"]["States"])

    collect(definition["States"])
    assert len(tasks) >= 6
    for name, state in tasks:
        retried = {error for rule in state.get("Retry", []) for error in rule["ErrorEquals"]}
        assert {"Runtime.ExitError", "Sandbox.Timedout", "Lambda.Unknown"} <= retried, name


def test_finance_reads_a_failure_recorded_by_the_state_machine_without_its_stack_trace(rt: Runtime) -> None:
    """ "Record invoice failure" writes "<error>: <the Lambda error payload>", stack trace included; the fault
    matrix's s3-write-failure showed finance a 3 KB traceback with the code's file paths as the reason."""
    run_id = "reason-run"
    row = {
        "transactionId": "T-1",
        "transactionType": "CHARGE",
        "transactionDate": "2026-11-20T10:00:00Z",
        "orderId": "O-1",
        "orderLineItemId": "L-1",
        "shipmentId": "S-1",
        "amount": "10.00",
        "currency": "USD",
    }
    rt.store.put_json(f"runs/{run_id}/line-items.json", [row])
    rt.store.put_json(f"runs/{run_id}/matches.json", {"O-1|L-1|S-1": ["REASON-1"]})
    rt.store.put_json(f"runs/{run_id}/invoices.json", [{"invoiceNumber": "REASON-1"}])
    rt.store.put_json(f"runs/{run_id}/report-targets.json", [{"invoiceNumber": "REASON-1"}])
    rt.store.put_json("invoice-details/REASON-1.json", {"invoiceNumber": "REASON-1", "invoiceDate": "2026-11-20"})
    payload = {
        "errorType": "StorageError",
        "errorMessage": "could not write s3://bucket/documents/REASON-1/Invoice.pdf: InternalError",
        "stackTrace": ["Traceback (most recent call last):\n", '  File "/var/task/abrecon/storage.py", line 52\n'],
    }
    rt.ledger.write("REASON-1", None, run_id, state=InvoiceState.FAILED, reason=f"StorageError: {json.dumps(payload)}")
    run = contracts.RunContext(
        run_id=run_id,
        window_start=datetime(2026, 11, 14, tzinfo=UTC),
        window_end=datetime(2026, 11, 21, tzinfo=UTC),
        poll_seconds=1,
        max_polls=5,
        transaction_count=1,
        line_item_count=1,
        line_items_key=f"runs/{run_id}/line-items.json",
        invoices_key=f"runs/{run_id}/report-targets.json",
        invoice_count=1,
    )
    note = steps.summarize_run(run, rt)
    readable = "StorageError: could not write s3://bucket/documents/REASON-1/Invoice.pdf: InternalError"
    stored = rt.store.get_json(note.summary.summary_key)  # the lists stay in summary.json
    assert stored["failures"] == [{"invoiceNumber": "REASON-1", "reason": readable}]
    assert stored["lineItemStates"] == note.summary.line_item_states == {"FAILED": 1}
    report = rt.store._s3.get_object(Bucket=rt.store.bucket, Key=f"runs/{run_id}/report.csv")["Body"].read()
    for text in (note.message, report.decode("utf-8-sig")):
        assert "REASON-1" in text and "Traceback" not in text and "stackTrace" not in text
    assert readable in note.message


@pytest.mark.parametrize(
    "reason",
    [None, "", "report 42 CANCELLED: Amazon has no document", "States.Timeout: {not json", 'X: {"no": "message"}'],
)
def test_other_reasons_are_left_as_they_are(reason: str | None) -> None:
    assert steps.readable_reason(reason) == reason


def test_a_rerun_takes_a_transiently_failed_invoice_back_with_its_report(rt: Runtime) -> None:
    """An invoice the state machine recorded FAILED after its report was asked for (the S3 outage of the fault
    matrix's s3-write-failure) is taken up by the next run with the same reportId: no second report."""
    api = FlakyReports()
    r = dataclasses.replace(rt, api=api, pacer=Pacer(rt.ledger.table, {}))  # type: ignore[arg-type]
    r.ledger.write("OUTAGE-1", None, "run-a", state=InvoiceState.REQUESTED, report_id="OUTAGE-1-R0")
    record = r.ledger.get("OUTAGE-1")
    # What "Record invoice failure" leaves: state FAILED with the reason, the reportId untouched, not terminal.
    r.ledger.write("OUTAGE-1", record, "run-a", state=InvoiceState.FAILED, reason="StorageError: S3 unavailable")
    out = steps.create_report(
        contracts.CreateReportInput(invoice=contracts.ReportTarget(invoice_number="OUTAGE-1"), run_id="run-b"), r
    )
    assert (out.status, out.report_id, api.calls) == ("REQUESTED", "OUTAGE-1-R0", 0)
    api.calls = 1  # the stub's one failure is spent: the download goes through
    stored = steps.download_document(
        contracts.DownloadDocumentInput(
            invoice_number="OUTAGE-1", report_document_id="DOC-OUTAGE-1-R0", run_id="run-b"
        ),
        r,
    )
    assert stored.status == "STORED"
    record = r.ledger.get("OUTAGE-1")
    assert record is not None and (record.state, record.report_id) == (InvoiceState.STORED, "OUTAGE-1-R0")
