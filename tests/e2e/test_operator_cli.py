"""The operator CLI against a "deployed" stack: the sandbox's moto, found through a CloudFormation stack's Outputs.

`abrecon start` starts a real execution of the real state machine (against the Amazon Business emulator),
`abrecon watch` follows it to the end, and `abrecon invoices list/get` read what it stored, exactly as they
would against AWS: the sandbox registers a CloudFormation stack named like the template's whose Outputs are
its resources' physical ids, and boto3 reaches moto through AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from abrecon_cli.main import main
from abrecon_sandbox.aws.local_aws import CREDENTIALS, LocalAws
from abrecon_sandbox.aws.stack import REGION
from abrecon_sandbox.emulator import Emulator

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def backfill(local_aws: LocalAws, emulator: Emulator) -> Iterator[dict[str, str]]:
    """`abrecon start` then `abrecon watch` for the emulator's whole window; their output and exit codes."""
    patch = pytest.MonkeyPatch()
    patch.delenv("ABRECON_STACK", raising=False)
    for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": local_aws.endpoint_url, "AWS_REGION": REGION}.items():
        patch.setenv(name, value)
    config = emulator.config
    start, end = config.window_start - timedelta(seconds=1), config.window_end + timedelta(seconds=1)
    try:
        started = io.StringIO()
        with contextlib.redirect_stdout(started):
            start_code = main(["start", "--from", start.isoformat(), "--to", end.isoformat(), "--poll-seconds", "1"])
        arn = re.search(r"execution\s+(arn:\S+)", started.getvalue())
        assert arn, started.getvalue()
        watched = io.StringIO()
        with contextlib.redirect_stdout(watched):
            watch_code = main(["watch", arn.group(1), "--interval", "0.5", "--timeout", "300"])
        yield {
            "start": started.getvalue(),
            "startCode": str(start_code),
            "arn": arn.group(1),
            "watch": watched.getvalue(),
            "watchCode": str(watch_code),
        }
    finally:
        patch.undo()


def test_start_starts_a_backfill_named_after_its_window(backfill: dict[str, str], local_aws: LocalAws) -> None:
    assert backfill["startCode"] == "0", backfill["start"]
    assert backfill["start"].startswith("Started backfill-")
    assert "console    https://us-east-1.console.aws.amazon.com/states/home" in backfill["start"]
    sfn = local_aws.client("stepfunctions")
    described = sfn.describe_execution(executionArn=backfill["arn"])
    assert described["name"].startswith("backfill-") and ":" not in described["name"]
    run_input = json.loads(described["input"])
    assert set(run_input) == {"from", "to", "pollSeconds"} and run_input["pollSeconds"] == 1


def test_watch_follows_the_run_with_a_progress_bar_to_its_report(
    backfill: dict[str, str], emulator: Emulator, local_aws: LocalAws
) -> None:
    assert backfill["watchCode"] == "0", backfill["watch"]
    lines = backfill["watch"].splitlines()
    bars = [line for line in lines if re.search(r"\[[#.]{30}\]", line)]
    assert len(bars) >= 2  # it showed the run moving, one line per change (not a terminal here)
    invoices = len(emulator.invoice_numbers())
    assert any(f"/{invoices} invoices" in line for line in bars), bars  # the Distributed Map's item counts
    assert "The run SUCCEEDED in" in backfill["watch"]
    assert local_aws.stack is not None
    bucket = local_aws.stack.output("DocumentBucket")
    assert re.search(rf"report\s+s3://{bucket}/runs/backfill-[^/]+/report.html", backfill["watch"])


def test_invoices_list_shows_every_stored_invoice(
    backfill: dict[str, str], emulator: Emulator, operator_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["invoices", "list", "--json"]) == 0
    listed = {item["invoiceNumber"]: item for item in json.loads(capsys.readouterr().out)}
    for number in emulator.invoice_numbers():
        assert listed[number]["state"] == "STORED" and listed[number]["pdfs"] >= 1
        assert listed[number]["type"] == "invoice" and listed[number]["invoiceDate"]
    memos = [item for item in listed.values() if item["type"] == "credit memo"]
    assert all(item["state"] == "STORED" for item in memos)  # delivered with their invoice's report
    assert main(["invoices", "list"]) == 0
    table = capsys.readouterr().out
    header = ["INVOICE", "TYPE", "DATE", "TOTAL", "STATE", "PDFS", "PAYMENT", "DUE", "NOTE"]
    assert table.splitlines()[0].split() == header
    assert f"{len(emulator.invoice_numbers())} invoices" in table.splitlines()[-1]
    assert main(["invoices", "list", "--from", "2001-01-01", "--to", "2001-12-31", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    dates = sorted(item["invoiceDate"] for item in listed.values())
    assert main(["invoices", "list", "--from", dates[-1], "--json"]) == 0
    assert {item["invoiceDate"] for item in json.loads(capsys.readouterr().out)} == {dates[-1]}


def test_invoices_list_past_due_shows_only_what_amazon_says_is_past_due(
    backfill: dict[str, str], emulator: Emulator, operator_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["invoices", "list", "--json"]) == 0
    everything = {item["invoiceNumber"]: item for item in json.loads(capsys.readouterr().out)}
    for number in emulator.invoice_numbers():  # every invoice was asked about, with Amazon's due date
        due = emulator.payments.due_date(number)
        assert everything[number]["dueDate"] == (due.date().isoformat() if due else ""), number
        assert everything[number]["paymentStatus"], number
    expected = {n for n, item in everything.items() if item["paymentStatus"] == "Past Due"}
    assert expected  # the emulator's mix always has one
    assert main(["invoices", "list", "--past-due", "--json"]) == 0
    assert {item["invoiceNumber"] for item in json.loads(capsys.readouterr().out)} == expected
    assert main(["invoices", "list", "--past-due"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 1 + len(expected) + 1 and all("Past Due" in line for line in table[1:-1])
    assert main(["invoices", "list", "--past-due", "--from", "2001-01-01", "--to", "2001-12-31", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_invoices_get_writes_the_stored_pdf_where_the_user_asked(
    backfill: dict[str, str],
    emulator: Emulator,
    operator_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    expected = emulator.expected_documents()
    number = sorted(emulator.invoice_numbers())[0]
    name, content = next((n, c) for n, c in expected[number] if number in n)
    target = tmp_path / "chosen-name.pdf"
    assert main(["invoices", "get", number, "--out", str(target)]) == 0
    assert target.read_bytes() == content
    assert oct(target.stat().st_mode & 0o777) == "0o600"  # invoices are confidential
    assert str(target) in capsys.readouterr().out
    assert main(["invoices", "get", number, "--out", str(target)]) == 2  # never overwritten silently
    assert "exists; give --force" in capsys.readouterr().err
    assert main(["invoices", "get", number, "--out", str(target), "--force"]) == 0
    folder = tmp_path / "folder"
    folder.mkdir()
    assert main(["invoices", "get", number, "--out", str(folder)]) == 0
    assert (folder / name).read_bytes() == content
    with_memos = [n for n, docs in expected.items() if len(docs) > 1]
    if with_memos:  # a credit memo comes out of its invoice's report, by its own number
        owner = with_memos[0]
        memo_name, memo = next((n, c) for n, c in expected[owner] if owner not in n)
        memo_number = re.sub(r"^CreditMemo_|\.pdf$", "", memo_name)
        assert main(["invoices", "get", memo_number, "--out", str(tmp_path / "memo.pdf")]) == 0
        assert (tmp_path / "memo.pdf").read_bytes() == memo


def test_clear_errors_for_a_wrong_stack_a_missing_invoice_or_execution(
    backfill: dict[str, str],
    operator_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["invoices", "list", "--stack", "no-such-stack"]) == 3
    assert "no CloudFormation stack named 'no-such-stack' in us-east-1" in capsys.readouterr().err
    monkeypatch.setenv("ABRECON_STACK", "also-missing")
    assert main(["invoices", "list"]) == 3
    assert "no CloudFormation stack named 'also-missing'" in capsys.readouterr().err
    monkeypatch.delenv("ABRECON_STACK")
    assert main(["invoices", "get", "NO-SUCH-INVOICE", "--out", str(tmp_path / "x.pdf")]) == 4
    err = capsys.readouterr().err
    assert "invoice 'NO-SUCH-INVOICE' is unknown to stack 'abrecon'" in err and not (tmp_path / "x.pdf").exists()
    missing = backfill["arn"].rsplit(":", 1)[0] + ":no-such-execution"
    assert main(["watch", missing, "--interval", "0.1"]) == 4
    assert "no execution" in capsys.readouterr().err
    assert main(["start", "--from", "2026-10-31", "--to", "2026-10-01"]) == 2
    assert "must be before --to" in capsys.readouterr().err


def test_no_credentials_is_a_clear_error(
    operator_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["invoices", "list"]) == 5
    err = capsys.readouterr().err
    assert err.startswith("abrecon: error: no AWS credentials found: set AWS_PROFILE")
    assert "Traceback" not in err
