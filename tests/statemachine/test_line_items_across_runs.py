"""Line items across executions: what Amazon lists without a shipment is kept open and matched by a later run
once it ships; windows that overlap (by design) and pages that repeat ask for nothing twice and list nothing twice."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from helpers import local_aws_for, start_execution, stored_summary, wait_for_execution

from abrecon_sandbox.aws.local_aws import LocalAws
from abrecon_sandbox.emulator import Emulator, EmulatorConfig


@pytest.fixture(scope="module")
def unshipped_emulator() -> Iterator[Emulator]:
    """8 orders, a third of the shipments not shipped yet, pages of 4 that repeat the previous page's last ones."""
    config = EmulatorConfig(
        seed=5,
        orders=8,
        speed=600.0,
        report_latency_seconds=(0.0, 60.0),
        unshipped_share=0.3,
        faults="repeated-transactions",
    )
    with Emulator(config) as emu:
        yield emu


@pytest.fixture(scope="module")
def unshipped_aws(unshipped_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    with local_aws_for(unshipped_emulator, tmp_path_factory.mktemp("lambda-logs")) as aws:
        yield aws


def _run(aws: LocalAws, name: str, window: dict[str, str]) -> dict[str, Any]:
    described = wait_for_execution(aws, start_execution(aws, name, window), 240)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    return stored_summary(aws, described)


def _ledger(aws: LocalAws) -> dict[str, dict[str, Any]]:
    assert aws.stack is not None
    table = aws.resource("dynamodb").Table(aws.stack.output("LedgerTable"))
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {}
    while True:
        page = table.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return {str(i["pk"]): i for i in items}
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _listed(emulator: Emulator, since: float) -> set[tuple[str, str, str, str]]:
    served = emulator.served_line_items(since)
    assert served, "the emulator listed nothing"
    return served


def test_shipmentless_line_items_are_matched_by_a_later_overlapping_run_and_nothing_is_asked_twice(
    unshipped_aws: LocalAws, unshipped_emulator: Emulator
) -> None:
    emulator = unshipped_emulator
    start, end = emulator.config.window_start, emulator.config.window_end
    span = end - start
    first_window = {"from": start.isoformat(), "to": (start + span * 0.7).isoformat()}
    second_window = {"from": (start + span * 0.4).isoformat(), "to": end.isoformat()}

    began = time.monotonic()
    first = _run(unshipped_aws, "lines-first", first_window)
    listed = _listed(emulator, began)
    unshipped = {item for item in listed if not item[3]}
    assert unshipped, "the data set must list some line items without a shipment in the first window"
    assert emulator.stats()["faultsInjected"].get("repeated-transactions"), "no page repeated a transaction"
    # Every line item Amazon listed is a row, once: repeats collapse, the shipment-less ones are kept.
    assert first["lineItems"] == len(listed)
    assert first["lineItemStates"].get("NOT_SHIPPED") == len(unshipped)
    assert first["outcome"] == "INCOMPLETE"
    ledger = _ledger(unshipped_aws)
    for _tx, order, line, _ship in unshipped:
        entry = ledger[f"LINE#{order}|{line}"]  # keyed by what Amazon gave
        assert (entry["state"], entry.get("openKind")) == ("NOT_SHIPPED", "LINE")

    # They ship; Amazon lists the updated transactions again, in a feed only the second window covers.
    emulator.ship_unshipped(listed_again_at=end - timedelta(minutes=30))
    began = time.monotonic()
    second = _run(unshipped_aws, "lines-second", second_window)
    relisted = _listed(emulator, began)

    assert second["lineItems"] == len(relisted), "the closed shipment-less entries are not carried as rows too"
    assert "NOT_SHIPPED" not in second["lineItemStates"] and second["failed"] == 0
    assert second["alreadyStored"] > 0, "the windows overlap: some invoices were stored by the first run"
    ledger = _ledger(unshipped_aws)
    for tx, order, line, _ship in unshipped:
        closed = ledger[f"LINE#{order}|{line}"]
        assert closed["state"] == "SHIPPED" and "openKind" not in closed
        (shipped,) = [item for item in relisted if item[:3] == (tx, order, line)]
        entry = ledger[f"LINE#{order}|{line}|{shipped[3]}"]
        assert entry["state"] == "INVOICED" and entry["invoiceNumbers"]
        assert all(ledger[f"INVOICE#{n}"]["state"] == "STORED" for n in entry["invoiceNumbers"])
    assert not [i for i in ledger.values() if i.get("openKind") == "LINE"], "nothing left dangling"

    # Across both runs: one report per invoice, every invoice (the newly shipped ones too) stored once.
    reports = Counter(str(r.options.get("invoiceId")) for r in emulator.state.reports.values())
    assert max(reports.values()) == 1 and set(reports) == emulator.invoice_numbers()
    stored = first["s3Keys"] + second["s3Keys"]
    assert len(stored) == len(set(stored)) == sum(len(d) for d in emulator.expected_documents().values())
