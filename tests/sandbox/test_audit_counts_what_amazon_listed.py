"""The sandbox's audit counts what the emulator listed, not what the run kept: a line item the pipeline drops is
lost, whatever the run's own counts say (fetch-transactions and fetch-invoices in-process, against moto)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import FakeContext, function_environment, load_event, load_handler, local_aws_for

from abrecon import contracts, steps
from abrecon.models import Transaction
from abrecon.steps import transactions
from abrecon_sandbox.aws.local_aws import LocalAws
from abrecon_sandbox.emulator import Emulator, EmulatorConfig
from abrecon_sandbox.run import audit


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(seed=11, orders=6, speed=600.0, faults="missing-shipment-ids")) as emu:
        yield emu


@pytest.fixture(scope="module")
def aws(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    with local_aws_for(emulator, tmp_path_factory.mktemp("lambda-logs")) as local:
        yield local


def _fetch_and_audit(
    aws: LocalAws, emulator: Emulator, monkeypatch: pytest.MonkeyPatch, run_id: str
) -> tuple[dict[str, Any], int]:
    """Fetch the window's transactions and invoices as run_id, then audit its line items (no PDFs asked for:
    the line items' documents are not what this test is about). Returns the audit and the run's lineItemCount."""
    assert aws.stack is not None
    window = {"from": emulator.config.window_start.isoformat(), "to": emulator.config.window_end.isoformat()}
    began = time.monotonic()
    with function_environment(aws, monkeypatch, "FetchTransactionsFunction"):
        run = load_handler("fetch-transactions")(
            load_event("fetch-transactions") | {"request": window, "runId": run_id}, FakeContext()
        )
    with function_environment(aws, monkeypatch, "FetchInvoicesFunction"):
        run = load_handler("fetch-invoices")(run, FakeContext())
    accounting = audit.account_line_items(
        aws,
        aws.stack.output("DocumentBucket"),
        aws.stack.output("LedgerTable"),
        run_id,
        {"pdfsRequested": False},
        None,
        emulator.served_line_items(began),
    )
    return accounting, int(run["lineItemCount"])


def test_a_dropped_shipmentless_line_item_fails_the_audit_and_a_kept_one_passes(
    aws: LocalAws, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    unshipped = emulator.dataset.unshipped_line_items()
    assert unshipped > 0

    # Yesterday's fetch-transactions: "a line item without the triple cannot be matched; keep nothing half-known".
    keep_all = steps.line_item_rows

    def dropping(transaction: Transaction) -> list[contracts.LineItemRow]:
        return [row for row in keep_all(transaction) if row.key is not None]

    with monkeypatch.context() as patch:
        patch.setattr(transactions, "line_item_rows", dropping)
        dropped, listed = _fetch_and_audit(aws, emulator, monkeypatch, "audit-dropping")
    # The run's own list agrees with itself, so only what Amazon listed can tell.
    assert listed == dropped["served"] - unshipped
    assert dropped["lost"] == unshipped and dropped["lineItems"] == dropped["served"]
    assert all("Amazon listed it, the run kept no row" in why for why in dropped["lostItems"])

    kept, listed = _fetch_and_audit(aws, emulator, monkeypatch, "audit-keeping")
    assert kept["lost"] == 0 and kept["lostItems"] == []
    assert listed == kept["lineItems"] == kept["served"] == kept["accountedFor"]
    assert kept["lineItemStates"]["PENDING"] == unshipped  # kept open in the ledger, NOT_SHIPPED
