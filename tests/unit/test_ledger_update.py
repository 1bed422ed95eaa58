"""Ledger.update / Ledger.with_retries: the ledger's one read-check-write loop (decide, write, on a conflict again)."""

from __future__ import annotations

from typing import Any

import pytest

from abrecon.storage import InvoiceRecord, InvoiceState, Ledger, LedgerConflict, StorageError


class _NoDynamo:
    def Table(self, name: str) -> object:  # boto3's name
        return object()


class ScriptedLedger(Ledger):
    """Reads come from `reads` in turn; the first `conflicts` writes find the record changed."""

    def __init__(self, reads: list[InvoiceRecord | None], conflicts: int = 0) -> None:
        super().__init__(_NoDynamo(), "ledger")  # type: ignore[arg-type]
        self.reads = reads
        self.conflicts = conflicts
        self.writes: list[dict[str, Any]] = []

    def get(self, invoice_number: str) -> InvoiceRecord | None:
        return self.reads.pop(0)

    def write(self, invoice_number: str, expected: InvoiceRecord | None, run_id: str, **fields: Any) -> InvoiceRecord:
        self.writes.append(fields)
        if self.conflicts:
            self.conflicts -= 1
            raise LedgerConflict(invoice_number)
        version = (expected.version if expected else 0) + 1
        return InvoiceRecord(invoice_number=invoice_number, run_id=run_id, version=version, **fields)


def _record(version: int) -> InvoiceRecord:
    return InvoiceRecord(invoice_number="INV-1", state=InvoiceState.CLAIMED, run_id="run-a", version=version)


def test_decide_none_writes_nothing_and_returns_the_record_as_read() -> None:
    read = _record(3)
    ledger = ScriptedLedger([read])
    assert ledger.update("INV-1", "run-b", lambda record: None) is read
    assert ledger.writes == []


def test_a_conflict_reads_again_and_decides_on_the_new_record() -> None:
    ledger = ScriptedLedger([_record(1), _record(2)], conflicts=1)
    seen: list[int] = []

    def decide(record: InvoiceRecord | None) -> dict[str, Any]:
        seen.append(record.version if record else 0)
        return {"state": InvoiceState.STORED}

    written = ledger.update("INV-1", "run-a", decide)
    assert seen == [1, 2] and written.version == 3 and written.state is InvoiceState.STORED


def test_three_conflicts_in_a_row_are_a_storage_error() -> None:
    ledger = ScriptedLedger([_record(1), _record(2), _record(3)], conflicts=3)
    with pytest.raises(StorageError, match="kept changing under three attempts"):
        ledger.update("INV-1", "run-a", lambda record: {"state": InvoiceState.STORED})
    assert len(ledger.writes) == 3
