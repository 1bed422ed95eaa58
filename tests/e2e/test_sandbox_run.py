"""`abrecon sandbox run` end to end: every generated invoice's PDFs are in S3, under the stack's key, unchanged."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from browser import measure_rows, screenshot
from helpers import ROOT, kept_sandbox_run
from pypdf import PdfReader

from abrecon import reporting
from abrecon_sandbox.bench.benchmark import time_over_floor
from abrecon_sandbox.run.options import SandboxOptions
from abrecon_sandbox.run.orchestration import SandboxRun

REQUIRED_FIELDS = {
    "status",
    "lineItems",
    "invoices",
    "documentsStored",
    "failed",
    "pending",
    "s3Keys",
    "elapsedSeconds",
    "stateTransitions",
    "apiCalls",
    "reportKey",
}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, SandboxRun, Path, str]]:
    """One default sandbox run (30 orders), kept open for inspection."""
    workdir = tmp_path_factory.mktemp("sandbox")
    summary_file = workdir / "summary.json"
    options = SandboxOptions(summary_file=summary_file, log_dir=workdir / "logs", export_dir=workdir / "export")
    with kept_sandbox_run(options) as (code, run, out):
        yield code, run, summary_file, out.getvalue()


def _stored_summary(run: SandboxRun) -> dict[str, Any]:
    """The run's summary as summarize-run stored it (runs/<run>/summary.json)."""
    key = run.summary["reportKey"].rsplit("/", 1)[0] + "/summary.json"
    stored: dict[str, Any] = json.loads(
        run.aws.client("s3").get_object(Bucket=run.summary["bucket"], Key=key)["Body"].read()
    )
    return stored


@pytest.mark.e2e
def test_run_succeeds_and_writes_the_summary_contract(sandbox: tuple[int, SandboxRun, Path, str]) -> None:
    code, run, summary_file, printed = sandbox
    assert code == 0, printed
    summary = json.loads(summary_file.read_text())
    assert set(summary) >= REQUIRED_FIELDS
    assert summary["status"] == "SUCCEEDED"
    config = run.emulator.config
    transactions = run.emulator.dataset.transactions_between(config.window_start, config.window_end)
    assert summary["lineItems"] == sum(len(t["transactionLineItems"]) for t in transactions)
    assert summary["invoices"] == len(run.emulator.invoice_numbers())
    assert summary["failed"] == 0 and summary["pending"] == 0
    # The sandbox's audit from the outside: every line item accounted for, nothing duplicated, every object under
    # the stack's key, no secret in a log line, nothing written to disk by any function.
    assert summary["accountedFor"] == summary["lineItems"] and summary["lost"] == 0
    assert summary["audit"] == {"passed": True, "problems": []}
    # IAM enforced as AWS would (iam.py): not one request of a function or the state machine refused.
    assert (summary["accessDenied"], summary["accessDeniedCalls"]) == (0, [])
    assert summary["stateTransitions"] > summary["invoices"] * 4  # every child workflow's states are counted
    assert summary["apiCalls"]["getTransactions"] >= 2  # the data set spans several pages
    assert "> Download each invoice's PDFs" in printed and "execution SUCCEEDED" in printed


@pytest.mark.e2e
def test_the_summary_measures_the_run_against_the_floor(sandbox: tuple[int, SandboxRun, Path, str]) -> None:
    _, _, summary_file, _ = sandbox
    summary = json.loads(summary_file.read_text())
    assert summary["throttled429"] == 0 and summary["deferred"] == 0
    assert summary["duplicates"] == {
        "reports": 0,
        "fatalRetries": 0,
        "unansweredReports": 0,
        "agedRetries": 0,
        "lostAnswersRecovered": 0,
        "objects": 0,
    }
    assert 0 < summary["maxHistoryEvents"] < 25_000 and 0 < summary["maxPayloadBytes"] < 256 * 1024
    assert 0 < summary["floorSeconds"] < summary["elapsedSeconds"]
    measured = summary["timeline"]["measured"]
    assert measured["createReport"][0] <= measured["createReport"][1] <= measured["getReportDocument"][1]
    assert measured["getReportDocument"][1] <= measured["end"] == summary["elapsedSeconds"]
    phases = time_over_floor(summary["timeline"])
    assert sum(phases.values()) == pytest.approx(summary["elapsedSeconds"] - summary["floorSeconds"], abs=0.05)


@pytest.mark.e2e
def test_every_invoice_pdf_is_stored_encrypted_and_byte_identical(sandbox: tuple[int, SandboxRun, Path, str]) -> None:
    _, run, _, _ = sandbox
    stack = run.aws.stack
    assert stack is not None
    s3 = run.aws.client("s3")
    bucket, key_arn = stack.output("DocumentBucket"), stack.output("DocumentKey", "Arn")
    expected = run.emulator.expected_documents()
    assert set(expected) == run.emulator.invoice_numbers()
    stored_keys = set(run.summary["s3Keys"])
    count = 0
    for invoice_number, documents in expected.items():
        for name, content in documents:
            key = f"documents/ATVPDKIKX0DER/{invoice_number}/{name}"
            assert key in stored_keys
            head = s3.head_object(Bucket=bucket, Key=key)
            assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key_arn)
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert body == content
            assert invoice_number in PdfReader(io.BytesIO(body)).pages[0].extract_text()
            count += 1
    assert count == run.summary["documentsStored"] == len(stored_keys)


@pytest.mark.e2e
def test_finance_gets_a_readable_summary(sandbox: tuple[int, SandboxRun, Path, str]) -> None:
    _, run, _, _ = sandbox
    message = run.summary["financeMessage"]
    assert message is not None
    stored = _stored_summary(run)
    invoices, memos = run.summary["invoices"], run.summary["creditMemos"]
    assert message["subject"].endswith(f": {invoices} invoices + {memos} credit memos stored, nothing missing")
    assert message["subject"].startswith("Amazon Business ") and len(message["subject"]) <= 100
    body = message["message"]
    assert (
        f"All done: {invoices} invoices and {memos} credit memos stored ({run.summary['documentsStored']} PDFs)."
        in body
    )
    assert re.search(r"USD: charged [\d,]+\.\d\d, refunded [\d,]+\.\d\d, net [\d,]+\.\d\d", body)
    assert "Needs attention:\n  nothing" in body
    assert f"s3://{run.summary['bucket']}/{run.summary['reportKey']}" in body
    # Subscription filters see the outcome and the counts.
    assert message["attributes"] == {
        "status": "OK",
        "runId": run.summary["executionArn"].rsplit(":", 1)[1],
        "invoices": str(invoices),
        "creditMemos": str(memos),
        "documentsStored": str(run.summary["documentsStored"]),
        "failed": "0",
        "deferred": "0",
        "pending": "0",
        "pastDue": str(run.summary["pastDue"]),
        "pastDueAmount": stored["pastDueAmount"],
    }
    # The past-due figures: how many, their total, the oldest due date (the emulator's mix has some past due).
    assert stored["pastDue"] == run.summary["pastDue"] > 0
    currency = stored["pastDueCurrency"]
    assert Decimal(stored["pastDueAmount"]) == Decimal(stored["pastDueTotals"][currency]) > 0
    total = reporting.format_amount(Decimal(stored["pastDueAmount"]), currency)
    assert f"Past due: {run.summary['pastDue']} invoices, {currency} {total}; " in body
    assert f"the oldest was due {stored['oldestDueDate']}:" in body


@pytest.mark.e2e
def test_export_holds_the_report_and_pdfs_with_working_links(sandbox: tuple[int, SandboxRun, Path, str]) -> None:
    _, run, _, printed = sandbox
    exported = run.summary["exported"]
    csv_rows = list(csv.DictReader(io.StringIO(Path(exported["csv"]).read_text(encoding="utf-8-sig"))))
    lines = [row for row in csv_rows if row["Transaction ID"]]
    assert len(lines) == run.summary["lineItems"] and {row["Status"] for row in lines} == {"STORED"}
    (total,) = [row for row in csv_rows if row["Transaction date (UTC)"] == "TOTAL"]
    assert Decimal(total["Amount"]) == sum(Decimal(row["Amount"]) for row in lines)
    s3 = run.aws.client("s3")
    root = Path(exported["dir"])
    for key in run.summary["s3Keys"]:
        assert (root / key).read_bytes() == s3.get_object(Bucket=run.summary["bucket"], Key=key)["Body"].read()
    html_path = Path(exported["html"])
    links = re.findall(r'href="([^"]+)"', html_path.read_text(encoding="utf-8"))
    assert len(links) == run.summary["lineItems"]
    for link in links:  # every PDF link of the page opens the exported PDF
        assert (html_path.parent / link).resolve().read_bytes().startswith(b"%PDF-"), link
    assert printed.rstrip().splitlines()[-1] == f"report exported: open {html_path}"  # the run ends with it


@pytest.mark.e2e
def test_every_invoice_row_is_visible_in_a_browser(sandbox: tuple[int, SandboxRun, Path, str]) -> None:
    _, run, _, _ = sandbox
    assert run.emulator is not None
    page = Path(run.summary["exported"]["html"])
    width = 1400
    measured = measure_rows(page, width)
    rows = measured["rows"]
    assert len(rows) == run.summary["lineItems"]
    for row in rows:
        assert row["shown"] and row["height"] > 0 and row["width"] > 0, row
        assert row["left"] >= 0 and row["right"] <= width, row  # nothing cut off at the right edge
    assert measured["scrollWidth"] <= width  # no sideways scrolling at a laptop's width
    seen = "\n".join(row["text"] for row in rows)
    for number in run.emulator.invoice_numbers():
        assert number in seen, number
    height = min(int(measured["scrollHeight"]) + 40, 16_000)
    shot = ROOT / "test-artifacts" / "report.png"
    assert screenshot(page, shot, width, height) == (width, height)
    assert shot.stat().st_size > 50_000  # a page of text, not a blank one


@pytest.mark.e2e
def test_every_stored_invoice_has_its_payment_status_and_due_date(sandbox: tuple[int, SandboxRun, Path, str]) -> None:
    """The CSV's two payment columns are filled for every invoice, as the emulator answers; the summary counts them."""
    _, run, summary_file, _ = sandbox
    assert run.emulator is not None
    book = run.emulator.payments
    rows = list(csv.DictReader(io.StringIO(Path(run.summary["exported"]["csv"]).read_text(encoding="utf-8-sig"))))
    seen: dict[str, tuple[str, str]] = {}
    for row in (r for r in rows if r["Transaction ID"] and r["Transaction type"] == "CHARGE"):
        numbers = row["Document number(s)"].split("; ")
        statuses, dues = row["Payment status"].split("; "), row["Due date"].split("; ")
        assert len(statuses) == len(numbers) and all(statuses), row
        seen.update(zip(numbers, zip(statuses, dues, strict=True), strict=True))
    assert set(seen) == run.emulator.invoice_numbers()
    for number, (status, due) in seen.items():
        expected_due = book.due_date(number)
        if expected_due is None:  # not billed by Pay by Invoice: Amazon's ERROR, with its reason
            assert status.startswith("ERROR: PAYMENT_DETAILS_UNAVAILABLE: ") and due == "", (number, status)
        else:
            assert due == expected_due.date().isoformat(), number
            assert status in ("Closed", "Past Due", "Issued", "Payment Processing"), status
    summary = json.loads(summary_file.read_text())
    counts: dict[str, int] = {}
    for status, _ in seen.values():
        counts[status.split(":", 1)[0]] = counts.get(status.split(":", 1)[0], 0) + 1
    assert summary["paymentStatus"] == dict(sorted(counts.items()))
    assert summary["pastDue"] == counts.get("Past Due", 0) > 0
    aging = [r for r in rows if r["Transaction date (UTC)"] == "AGING"]
    assert [r["Currency"] for r in aging] == ["USD"] and "1-30 days past due: " in aging[0]["Reason"]


@pytest.mark.e2e
def test_the_page_shows_past_due_invoices_first(sandbox: tuple[int, SandboxRun, Path, str]) -> None:
    """In headless Chromium: the Past due section comes before everything else, listing each past-due invoice."""
    _, run, summary_file, _ = sandbox
    page = Path(run.summary["exported"]["html"])
    measured = measure_rows(page, 1400)
    sections = measured["sections"]
    assert sections[0]["text"] == "Past due", sections
    assert all(sections[0]["top"] < later["top"] for later in sections[1:])
    past_due = measured["pastDue"]
    assert len(past_due) == json.loads(summary_file.read_text())["pastDue"] > 0
    assert all(row["shown"] and row["top"] < measured["rows"][0]["top"] for row in past_due)
    numbers = {n for n, d in run.emulator.dataset.documents.items() if d.kind == "STANDARD"}
    assert all(any(n in row["text"] for n in numbers) for row in past_due)
    shot = ROOT / "test-artifacts" / "report-past-due.png"
    assert screenshot(page, shot, 1400, 900) == (1400, 900)  # the top of the page, as finance first sees it
