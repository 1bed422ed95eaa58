"""The ledger across executions: overlapping runs ask for nothing twice, deferred invoices come back next run."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from helpers import local_aws_for, start_execution, stored_summary, wait_for_execution, window_of

from abrecon_sandbox.aws.local_aws import LocalAws
from abrecon_sandbox.emulator import Emulator, EmulatorConfig


@pytest.fixture(scope="module")
def slow_emulator() -> Iterator[Emulator]:
    """Reports take ten Amazon hours (60 s here at 600x): far longer than a one-poll budget, even on a busy machine."""
    with Emulator(EmulatorConfig(seed=5, orders=5, speed=600.0, report_latency_seconds=(36000.0, 36000.0))) as emu:
        yield emu


@pytest.fixture(scope="module")
def slow_aws(slow_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    with local_aws_for(slow_emulator, tmp_path_factory.mktemp("lambda-logs")) as aws:
        yield aws


def _wait(aws: LocalAws, arn: str, deadline: float = 240) -> dict[str, Any]:
    described = wait_for_execution(aws, arn, deadline)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    return stored_summary(aws, described)


def _reports_per_invoice(emulator: Emulator) -> Counter[str]:
    return Counter(str(r.options.get("invoiceId")) for r in emulator.state.reports.values())


def test_deferred_invoices_are_polled_again_by_the_next_run_without_a_new_report(
    slow_aws: LocalAws, slow_emulator: Emulator
) -> None:
    first = _wait(slow_aws, start_execution(slow_aws, "defer-first", window_of(slow_emulator) | {"maxPolls": 1}))
    invoices = slow_emulator.invoice_numbers()
    assert first["deferred"] == len(invoices) and first["documentsStored"] == 0
    assert {d["invoiceNumber"] for d in first["deferrals"]} == invoices

    for report in slow_emulator.state.reports.values():
        report.latency_s = 0.0  # the hours pass: Amazon finishes every report

    # A window with no transactions at all: the only work is what the ledger says is still open.
    later = slow_emulator.config.window_end + timedelta(hours=1)
    empty_window = {"from": later.isoformat(), "to": (later + timedelta(hours=1)).isoformat()}
    second = _wait(slow_aws, start_execution(slow_aws, "defer-second", empty_window))
    assert second["lineItems"] == 0 and second["deferred"] == 0 and second["failed"] == 0
    assert second["documentsStored"] == sum(len(d) for d in slow_emulator.expected_documents().values())
    assert max(_reports_per_invoice(slow_emulator).values()) == 1, "a deferred invoice must reuse its reportId"


def test_overlapping_executions_never_ask_twice_nor_store_twice(local_aws: LocalAws, emulator: Emulator) -> None:
    """The schedule and a manual backfill on the same window, started together, share the work through the ledger."""
    window = window_of(emulator)
    arns: list[str] = []
    starters = [
        threading.Thread(target=lambda n=n: arns.append(start_execution(local_aws, n, window)))
        for n in ("overlap-schedule", "overlap-backfill")
    ]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join()
    summaries = [_wait(local_aws, arn) for arn in arns]

    invoices = emulator.invoice_numbers()
    assert max(_reports_per_invoice(emulator).values()) == 1
    assert set(_reports_per_invoice(emulator)) == invoices
    stored = [key for s in summaries for key in s["s3Keys"]]
    assert len(stored) == len(set(stored)), "each document is stored by exactly one execution"
    assert len(stored) == sum(len(d) for d in emulator.expected_documents().values())
    for summary in summaries:
        assert summary["failed"] == 0
        assert summary["invoices"] == len(invoices)
    assert local_aws.stack is not None
    s3 = local_aws.client("s3")
    versions = Counter(
        v["Key"]
        for page in s3.get_paginator("list_object_versions").paginate(
            Bucket=local_aws.stack.output("DocumentBucket"), Prefix="documents/"
        )
        for v in page.get("Versions", [])
    )
    assert set(versions.values()) == {1}
