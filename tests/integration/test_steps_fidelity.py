"""Steps against Amazon's report outcomes and the JP data set: FATAL retried once, CANCELLED recorded, the JP
tax-qualified checks stored and summarised, and REQUEST_PDFS=false asking for no report.

The steps run in-process against moto (resources from template.yaml) with the real ledger, bucket and pacer;
the Amazon Business side is the JP emulator, or a stub where a report's outcome must be chosen.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from helpers import function_environment

from abrecon import contracts, steps
from abrecon.errors import DocumentUrlExpiredError
from abrecon.models import Report, ReportDocument
from abrecon.runtime import Runtime, get_runtime
from abrecon.storage import InvoiceState
from abrecon_sandbox.aws.local_aws import LocalAws
from abrecon_sandbox.emulator import Emulator, EmulatorConfig

BROKEN = 3


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """The JP data set (overrides the NA one of tests/conftest.py for this module), a few invoices broken."""
    config = EmulatorConfig(
        region="JP",
        seed=13,
        orders=8,
        speed=600.0,
        report_latency_seconds=(0.0, 30.0),
        jp_inconsistent_invoices=BROKEN,
    )
    with Emulator(config) as emu:
        yield emu


@pytest.fixture
def rt(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """The runtime a function of the stack builds, in this process."""
    with function_environment(local_aws, monkeypatch, "FetchInvoicesFunction"):
        yield get_runtime()


def _with(rt: Runtime, **settings: Any) -> Runtime:
    return dataclasses.replace(rt, settings=rt.settings.model_copy(update=settings))


def _fetch(emulator: Emulator, rt: Runtime, run_id: str) -> contracts.RunContext:
    config = emulator.config
    request = contracts.FetchTransactionsInput(
        request=contracts.RunRequest.model_validate({"from": config.window_start, "to": config.window_end}),
        run_id=run_id,
        start_time=datetime.now(UTC),
        default_poll_seconds=1,
        default_max_polls=5,
    )
    return steps.fetch_invoices(steps.fetch_transactions(request, rt), rt)


# --- JP tax-qualified invoice checks in the run ------------------------------------------------------


def test_jp_run_checks_every_invoice_and_reports_the_flags(emulator: Emulator, rt: Runtime) -> None:
    jp = _with(rt, region="JP", request_pdfs=False)
    run = _fetch(emulator, jp, "jp-checks")
    broken = emulator.deliberate_inconsistencies()
    assert len(broken) == BROKEN
    details = {n for numbers in jp.store.get_json("runs/jp-checks/matches.json").values() for n in numbers}
    assert run.checked == len(details) > BROKEN  # invoices and credit memos alike
    assert run.flagged == BROKEN
    checks = jp.store.get_json("runs/jp-checks/checks.json")
    assert checks["region"] == "JP" and checks["checked"] == run.checked
    assert {f["invoiceNumber"]: bool(f["reason"]) for f in checks["flags"]} == dict.fromkeys(broken, True)

    note = steps.summarize_run(run, jp)
    summary = note.summary
    assert (summary.checked, summary.flagged) == (run.checked, BROKEN)
    stored = jp.store.get_json(summary.summary_key)  # the per-invoice lists stay in summary.json
    assert {f["invoiceNumber"] for f in stored["flags"]} == set(broken)
    assert all(number in note.message for number in broken)  # finance sees which invoices and why
    dumped = summary.model_dump(by_alias=True)
    assert {"checked", "flagged", "flags", "pdfsRequested"} <= set(dumped)


def test_request_pdfs_false_stores_data_and_checks_but_asks_for_no_report(emulator: Emulator, rt: Runtime) -> None:
    jp = _with(rt, region="JP", request_pdfs=False)
    reports_before = emulator.stats()["apiCalls"].get("createReport", 0)
    run = _fetch(emulator, jp, "no-pdfs")
    assert run.pdfs_requested is False and run.invoice_count == 0
    assert run.invoices_key is not None and jp.store.get_json(run.invoices_key) == []
    for number in {n for numbers in jp.store.get_json("runs/no-pdfs/matches.json").values() for n in numbers}:
        assert jp.store.get_json(f"invoice-details/{number}.json")["invoiceNumber"] == number
    summary = steps.summarize_run(run, jp).summary
    assert summary.pdfs_requested is False
    assert (summary.failed, summary.documents_stored, summary.already_stored) == (0, 0, 0)
    assert summary.invoices > 0  # found and stored as data, just not as PDFs
    assert emulator.stats()["apiCalls"].get("createReport", 0) == reports_before


def test_checks_are_for_jp_only(emulator: Emulator, rt: Runtime) -> None:
    run = _fetch(emulator, _with(rt, region="NA"), "na-checks")
    assert (run.checked, run.flagged) == (0, 0)
    assert rt.store.get_json("runs/na-checks/checks.json")["checked"] == 0
    assert run.pdfs_requested is True and run.invoice_count


# --- FATAL retried once, CANCELLED recorded ------------------------------------------------------------


class StubReports:
    """createReport and getReport with chosen outcomes: report ids <invoice>-R1, -R2, ..."""

    def __init__(self, outcomes: list[str]) -> None:
        self.outcomes = outcomes
        self.created: list[str] = []

    def warm_up(self) -> None:
        """The client's token warm-up before a paced call: nothing to do here."""

    def create_report(self, number: str, marketplace_ids: Any, **_: Any) -> str:
        self.created.append(f"{number}-R{len(self.created) + 1}")
        return self.created[-1]

    def get_report(self, report_id: str) -> Report:
        status = self.outcomes[self.created.index(report_id)]
        document = "DOC-" + report_id if status == "DONE" else None
        return Report(reportId=report_id, processingStatus=status, reportDocumentId=document)  # type: ignore[arg-type]


def _request(rt: Runtime, number: str, run_id: str) -> contracts.CreateReportOutput:
    return steps.create_report(
        contracts.CreateReportInput(invoice=contracts.ReportTarget(invoice_number=number), run_id=run_id), rt
    )


def _check(rt: Runtime, number: str, report_id: str, run_id: str) -> contracts.CheckReportOutput:
    return steps.check_report(
        contracts.CheckReportInput(invoice_number=number, report_id=report_id, polls=0, max_polls=5, run_id=run_id), rt
    )


def test_fatal_gets_one_new_report_after_a_cool_down_then_is_recorded(rt: Runtime) -> None:
    api = StubReports(["FATAL", "FATAL"])
    r = dataclasses.replace(_with(rt, fatal_retry_seconds=7), api=api)
    first = _request(r, "FATAL-1", "run-a")
    assert (first.status, first.report_id) == ("REQUESTED", "FATAL-1-R1")

    out = _check(r, "FATAL-1", "FATAL-1-R1", "run-a")
    assert (out.status, out.retry_seconds) == ("RETRY", 7)
    record = r.ledger.get("FATAL-1")
    assert record is not None
    assert (record.state, record.report_id, record.fatal_report_ids) == (InvoiceState.REQUESTED, None, ["FATAL-1-R1"])
    # The same poll again (a retried Lambda invocation) answers the same and grants nothing more.
    assert _check(r, "FATAL-1", "FATAL-1-R1", "run-a").status == "RETRY"

    # After the cool-down the item workflow starts over: one new report, its id in the ledger before any wait.
    second = _request(r, "FATAL-1", "run-a")
    assert (second.status, second.report_id) == ("REQUESTED", "FATAL-1-R2")
    record = r.ledger.get("FATAL-1")
    assert record is not None and record.report_id == "FATAL-1-R2"

    out = _check(r, "FATAL-1", "FATAL-1-R2", "run-a")
    assert out.status == "FATAL"
    record = r.ledger.get("FATAL-1")
    assert record is not None and record.state is InvoiceState.FAILED and record.terminal
    assert record.reason is not None and "FATAL-1-R2" in record.reason and "retry" in record.reason
    # Never a third report, in this run or a later one.
    assert _request(r, "FATAL-1", "run-b").status == "ALREADY_FAILED"
    assert api.created == ["FATAL-1-R1", "FATAL-1-R2"]


def test_fatal_then_done_downloads_the_new_report(rt: Runtime) -> None:
    api = StubReports(["FATAL", "DONE"])
    r = dataclasses.replace(rt, api=api)
    _request(r, "FATAL-2", "run-a")
    assert _check(r, "FATAL-2", "FATAL-2-R1", "run-a").status == "RETRY"
    assert _request(r, "FATAL-2", "run-a").report_id == "FATAL-2-R2"
    done = _check(r, "FATAL-2", "FATAL-2-R2", "run-a")
    assert (done.status, done.report_document_id) == ("DONE", "DOC-FATAL-2-R2")


def test_cancelled_means_no_data_and_is_recorded_without_a_retry(rt: Runtime) -> None:
    api = StubReports(["CANCELLED"])
    r = dataclasses.replace(rt, api=api)
    _request(r, "CANCEL-1", "run-a")
    assert _check(r, "CANCEL-1", "CANCEL-1-R1", "run-a").status == "CANCELLED"
    record = r.ledger.get("CANCEL-1")
    assert record is not None and record.state is InvoiceState.FAILED
    assert record.reason is not None and "no document" in record.reason
    assert _request(r, "CANCEL-1", "run-b").status == "ALREADY_FAILED"
    assert api.created == ["CANCEL-1-R1"]


# --- the download: a fresh URL on expiry, unpacking by magic bytes whatever the label says ----------------

PDF_A = b"%PDF-1.4\n% invoice\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PDF_B = b"%PDF-1.4\n% credit memo\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _zip(*entries: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


class StubDocuments:
    """getReportDocument hands out URL 1, 2, ...; the download of the first URL can be refused as expired."""

    def __init__(self, payload: bytes, label: str | None, expire_first: bool = False) -> None:
        self.payload, self.label, self.expire_first = payload, label, expire_first
        self.urls: list[str] = []
        self.downloaded: list[str] = []

    def warm_up(self) -> None:
        """The client's token warm-up before a paced call: nothing to do here."""

    def get_report_document(self, report_document_id: str) -> ReportDocument:
        self.urls.append(f"https://downloads.example/{report_document_id}?X-Amz-Signature={len(self.urls) + 1}")
        return ReportDocument(reportDocumentId=report_document_id, url=self.urls[-1], compressionAlgorithm=self.label)

    def download(self, url: str, *, max_bytes: int) -> bytes:
        self.downloaded.append(url)
        if self.expire_first and len(self.downloaded) == 1:
            raise DocumentUrlExpiredError("download refused with HTTP 403: presigned URL probably expired", 403)
        return self.payload

    def create_report(self, *args: Any, **kwargs: Any) -> str:
        raise AssertionError("an expired URL never costs a new report")


def _download(rt: Runtime, number: str) -> contracts.DownloadDocumentOutput:
    return steps.download_document(
        contracts.DownloadDocumentInput(invoice_number=number, report_document_id=f"DOC-{number}", run_id="dl-run"), rt
    )


def _stored(rt: Runtime, keys: list[str]) -> list[bytes]:
    s3 = boto3.client("s3")
    return [s3.get_object(Bucket=rt.store.bucket, Key=key)["Body"].read() for key in sorted(keys)]


def test_expired_presigned_url_gets_a_fresh_one_from_get_report_document(rt: Runtime) -> None:
    api = StubDocuments(gzip.compress(_zip(("a.pdf", PDF_A))), "GZIP", expire_first=True)
    out = _download(dataclasses.replace(rt, api=api), "EXPIRED-1")
    assert out.status == "STORED" and len(out.s3_keys) == 1
    assert api.downloaded == api.urls and len(api.urls) == 2  # the second, fresh URL was used
    assert _stored(rt, out.s3_keys) == [PDF_A]


@pytest.mark.parametrize(
    ("label", "payload"),
    [
        ("GZIP", _zip(("a.pdf", PDF_A), ("b.pdf", PDF_B))),  # labelled gzip, is a bare zip
        (None, gzip.compress(_zip(("a.pdf", PDF_A), ("b.pdf", PDF_B)))),  # label missing, is gzip then zip
        ("GZIP", gzip.compress(gzip.compress(_zip(("a.pdf", PDF_A), ("b.pdf", PDF_B))))),  # Content-Encoding mixup
    ],
    ids=["labelled-gzip-but-zip", "label-missing", "gzip-twice"],
)
def test_document_is_unpacked_by_magic_bytes_and_every_pdf_of_the_zip_stored(
    rt: Runtime, label: str | None, payload: bytes
) -> None:
    number = f"LABEL-{label}-{len(payload)}"
    out = _download(dataclasses.replace(rt, api=StubDocuments(payload, label)), number)
    assert [key.rsplit("/", 1)[1] for key in sorted(out.s3_keys)] == ["a.pdf", "b.pdf"]
    assert _stored(rt, out.s3_keys) == [PDF_A, PDF_B]
    record = rt.ledger.get(number)
    assert record is not None and record.state is InvoiceState.STORED and len(record.sha256) == 2
