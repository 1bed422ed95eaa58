"""`abrecon sandbox run --region JP` (the JP data set, its tax-qualified invoice checks in the summary) and
`abrecon sandbox run --api-endpoint URL` against another endpoint: a second, separately started emulator on
loopback playing "someone's own mock"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import kept_sandbox_run

from abrecon_sandbox.emulator import Emulator, EmulatorConfig
from abrecon_sandbox.run.options import LWA_CREDENTIAL_ENV, SandboxOptions, lwa_credentials_from
from abrecon_sandbox.run.orchestration import SandboxRun

JP_MARKETPLACE = "A1VC38T7YXB528"
BROKEN = 3


@pytest.fixture(scope="module")
def jp_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, SandboxRun, dict[str, Any], str]]:
    workdir = tmp_path_factory.mktemp("jp")
    options = SandboxOptions(
        region="JP",
        orders=12,
        jp_inconsistent_invoices=BROKEN,
        summary_file=workdir / "summary.json",
        log_dir=workdir / "logs",
    )
    with kept_sandbox_run(options) as (code, run, out):
        yield code, run, json.loads(Path(workdir / "summary.json").read_text()), out.getvalue()


@pytest.mark.e2e
def test_jp_run_stores_every_invoice_and_reports_what_was_checked(
    jp_run: tuple[int, SandboxRun, dict[str, Any], str],
) -> None:
    code, run, summary, printed = jp_run
    assert code == 0, printed
    emulator = run.emulator
    assert emulator is not None and emulator.config.region == "JP"
    assert summary["region"] == "JP" and summary["pdfsRequested"] is True
    assert summary["failed"] == 0 and summary["pending"] == 0
    assert summary["invoices"] == len(emulator.invoice_numbers())
    # Every invoice and credit memo of the run was checked; exactly the broken ones were flagged, with why.
    assert summary["checked"] == summary["invoices"] + summary["creditMemos"]
    broken = emulator.deliberate_inconsistencies()
    assert summary["flagged"] == BROKEN == len(broken)
    assert {f["invoiceNumber"] for f in summary["flags"]} == set(broken)
    assert all(f["reason"] for f in summary["flags"])
    assert "tax-qualified invoice checks" in printed
    message = summary["financeMessage"]["message"]
    assert all(number in message for number in broken)
    # The JP marketplace's documents, from the template's region mapping.
    expected = emulator.expected_documents()
    assert sorted(summary["s3Keys"]) == sorted(
        f"documents/{JP_MARKETPLACE}/{number}/{name}" for number, docs in expected.items() for name, _ in docs
    )


# --- another endpoint -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_mock() -> Iterator[Emulator]:
    """Someone's own mock: an emulator this test starts itself, on loopback, with data of its own."""
    config = EmulatorConfig(seed=3, orders=6, speed=120.0, report_latency_seconds=(0.0, 60.0))
    with Emulator(config) as mock:
        yield mock


@pytest.mark.e2e
def test_run_against_another_endpoint(own_mock: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, name in LWA_CREDENTIAL_ENV.items():
        monkeypatch.setenv(name, own_mock.credentials[key])
    options = SandboxOptions(
        speed=120.0,
        api_endpoint=own_mock.base_url,
        lwa_endpoint=own_mock.lwa_url,
        lwa_credentials=lwa_credentials_from(),  # from the ABRECON_LWA_* variables
        window_from=own_mock.config.window_start,
        window_to=own_mock.config.window_end,
        summary_file=tmp_path / "summary.json",
        log_dir=tmp_path / "logs",
    )
    with kept_sandbox_run(options) as (code, run, out):
        assert code == 0, out.getvalue()
        assert run.emulator is None  # the built-in emulator never started
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["apiEndpoint"] == own_mock.base_url
        assert f"Amazon Business API at {own_mock.base_url}" in out.getvalue()
        # Everything came from the mock: its transactions, its invoices, its PDFs.
        calls = own_mock.stats()["apiCalls"]
        assert calls["getTransactions"] >= 1 and calls["createReport"] == len(own_mock.invoice_numbers())
        assert summary["invoices"] == len(own_mock.invoice_numbers()) and summary["failed"] == 0
        expected = own_mock.expected_documents()
        assert summary["documentsStored"] == sum(len(docs) for docs in expected.values())
        s3 = run.aws.client("s3")
        for number, docs in expected.items():
            for name, content in docs:
                key = f"documents/ATVPDKIKX0DER/{number}/{name}"
                assert s3.get_object(Bucket=summary["bucket"], Key=key)["Body"].read() == content
