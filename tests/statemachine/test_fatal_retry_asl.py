"""FATAL reports through the real state machine (moto's interpreter, the real handlers): an invoice whose first
report ends FATAL gets one new report after the cool-down and is stored; one whose second report ends FATAL too
is recorded as failed, and never gets a third."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import local_aws_for, start_execution, stored_summary, wait_for_execution, window_of

from abrecon_sandbox.aws.local_aws import LocalAws
from abrecon_sandbox.emulator import Emulator, EmulatorConfig
from abrecon_sandbox.run.options import scaled_rate_limits

SPEED = 600.0


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """NA data where about a fifth of the invoices' first reports end FATAL, and some of those every time."""
    config = EmulatorConfig(seed=11, orders=10, speed=SPEED, report_latency_seconds=(0.0, 30.0), faults="fatal-reports")
    with Emulator(config) as emu:
        yield emu


@pytest.fixture(scope="module")
def local_aws(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    with local_aws_for(
        emulator,
        tmp_path_factory.mktemp("lambda-logs"),
        FatalRetrySeconds="1",
        ApiRateLimits=scaled_rate_limits(SPEED),
    ) as aws:
        yield aws


def _run(local_aws: LocalAws, emulator: Emulator, name: str, deadline: float = 240) -> dict[str, Any]:
    return wait_for_execution(local_aws, start_execution(local_aws, name, window_of(emulator)), deadline)


def test_first_fatal_is_retried_once_and_a_second_fatal_is_recorded(local_aws: LocalAws, emulator: Emulator) -> None:
    result = _run(local_aws, emulator, "fatal-retry")
    assert result["status"] == "SUCCEEDED", result.get("cause")
    summary = stored_summary(local_aws, result)

    reports = Counter(r.options["invoiceId"] for r in emulator.state.reports.values())
    always_fatal = {n for n, kind in emulator.affected_invoices().items() if kind == "report-fatal"}
    retried = {n for n, count in reports.items() if count > 1}
    fatal_once = retried - always_fatal
    assert always_fatal and fatal_once, "the data set must show both outcomes"
    # One new report per FATAL invoice, never a third; every other invoice asked for once.
    assert retried == always_fatal | fatal_once
    assert {reports[n] for n in retried} == {2}
    assert set(reports) == emulator.invoice_numbers()
    assert emulator.stats()["faultsInjected"]["report-fatal"] == len(fatal_once) + 2 * len(always_fatal)

    failures = {f["invoiceNumber"]: f["reason"] for f in summary["failures"]}
    assert set(failures) == always_fatal
    assert all("FATAL" in reason and "retry" in reason for reason in failures.values())
    expected = emulator.expected_documents()
    stored = {key.split("/")[2] for key in summary["s3Keys"]}
    assert stored == emulator.invoice_numbers() - always_fatal  # the retried ones included
    assert summary["documentsStored"] == sum(len(expected[n]) for n in stored)
