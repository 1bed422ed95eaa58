"""Look up the invoices and credit memos of many order line items."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from abrecon.models import InvoiceDetail, OrderLineItemKey

if TYPE_CHECKING:
    from abrecon.models import InvoiceDetailsOfOrderLineItem

__all__ = ["BATCH_SIZE", "InvoiceDetailsSource", "InvoiceLookup", "fetch_invoice_details"]

logger = logging.getLogger(__name__)

BATCH_SIZE = 25


class InvoiceDetailsSource(Protocol):
    """What fetch_invoice_details needs from AmazonBusinessClient."""

    def get_invoice_details(self, items: Sequence[OrderLineItemKey]) -> list[InvoiceDetailsOfOrderLineItem]:
        """Invoice details of at most 25 line items."""
        ...


@dataclass
class InvoiceLookup:
    """Result of fetch_invoice_details.

    ``by_line_item``: line items with at least one invoice or credit memo (each number once).
    ``invoices``: every invoice and credit memo found, once per invoiceNumber (first seen wins).
    ``unmatched``: requested line items with no invoice yet (not answered, or answered with an
    empty list, e.g. not shipped yet), in request order; ask again in a later run.
    """

    by_line_item: dict[OrderLineItemKey, list[InvoiceDetail]] = field(default_factory=dict)
    invoices: dict[str, InvoiceDetail] = field(default_factory=dict)
    unmatched: list[OrderLineItemKey] = field(default_factory=list)


def _normalised(key: OrderLineItemKey) -> tuple[str, str, str]:
    # Amazon's own JP example echoes a shipmentId with a leading space; compare without padding.
    return key.orderId.strip(), key.orderLineItemId.strip(), key.shipmentId.strip()


def fetch_invoice_details(client: InvoiceDetailsSource, keys: Iterable[OrderLineItemKey]) -> InvoiceLookup:
    """Ask for the invoices of ``keys`` in batches of 25 and match the answers on the triple.

    Answers are not in request order; one line item may have several invoices and credit memos;
    several line items may share one invoice (deduplicated by invoiceNumber). Answer entries for
    line items that were not asked for are ignored.
    """
    unique = list(dict.fromkeys(keys))  # drop repeats, keep order
    lookup = InvoiceLookup()
    for offset in range(0, len(unique), BATCH_SIZE):
        batch = unique[offset : offset + BATCH_SIZE]
        exact = set(batch)
        loose = {_normalised(key): key for key in batch}
        for entry in client.get_invoice_details(batch):
            answered = entry.orderLineItem
            key = answered if answered in exact else loose.get(_normalised(answered))
            if key is None:
                logger.warning("ignoring invoice details for a line item that was not requested")
                continue
            _add(lookup, key, entry.invoiceDetails)
    lookup.unmatched = [key for key in unique if key not in lookup.by_line_item]
    return lookup


def _add(lookup: InvoiceLookup, key: OrderLineItemKey, details: Sequence[InvoiceDetail]) -> None:
    for detail in details:
        number = detail.invoiceNumber.strip()
        if not number:
            logger.warning("ignoring an invoice detail without invoiceNumber")
            continue
        # One object per number, shared between the line items that reference it.
        shared = lookup.invoices.setdefault(number, detail)
        listed = lookup.by_line_item.setdefault(key, [])
        if all(existing.invoiceNumber.strip() != number for existing in listed):
            listed.append(shared)
