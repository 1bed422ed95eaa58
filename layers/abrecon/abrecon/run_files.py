"""Where a run keeps its files in the document bucket: its lists and results under ``runs/<runId>/``, and every
invoice's details, as fetch-invoices stored them, under ``invoice-details/<invoiceNumber>.json``."""

from __future__ import annotations

from collections.abc import Iterable

from abrecon.models import InvoiceDetail
from abrecon.storage import DocumentStore


def run_key(run_id: str, name: str) -> str:
    """The key of one of the run's files, e.g. runs/<runId>/matches.json."""
    return f"runs/{run_id}/{name}"


def details_key(invoice_number: str) -> str:
    """The key of a document's details (an invoice's or a credit memo's)."""
    return f"invoice-details/{invoice_number}.json"


def read_details(store: DocumentStore, numbers: Iterable[str]) -> dict[str, InvoiceDetail]:
    """Every document's details as fetch-invoices stored them."""
    wanted = sorted(set(numbers))
    documents = store.get_json_many(details_key(n) for n in wanted)
    return {n: InvoiceDetail.model_validate(documents[details_key(n)]) for n in wanted}
