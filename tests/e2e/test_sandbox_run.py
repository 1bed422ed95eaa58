"""`abrecon sandbox run` end to end: every generated invoice's PDFs are in S3, under the stack's key, unchanged."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypdf import PdfReader

from abrecon_sandbox.run import SandboxOptions, SandboxRun, run_sandbox

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
}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, SandboxRun, Path, str]]:
    """One default sandbox run (30 orders), kept open for inspection."""
    workdir = tmp_path_factory.mktemp("sandbox")
    summary_file = workdir / "summary.json"
    out = io.StringIO()
    kept: list[SandboxRun] = []
    code = run_sandbox(SandboxOptions(summary_file=summary_file, log_dir=workdir / "logs"), out=out, keep=kept)
    run = kept[0]
    try:
        yield code, run, summary_file, out.getvalue()
    finally:
        run.aws.stop()
        run.emulator.stop()


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
    assert summary["stateTransitions"] > summary["invoices"] * 4  # every child workflow's states are counted
    assert summary["apiCalls"]["getTransactions"] >= 2  # the data set spans several pages
    assert "> Download each invoice's PDFs" in printed and "execution SUCCEEDED" in printed


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
    assert f"{run.summary['documentsStored']} documents stored" in message["subject"]
    assert "Failed: 0" in message["message"]
