"""Transaction line items as Amazon lists them: one row each however often the feed repeats it, and the documents
of the ones Amazon lists without a shipment yet.

A transaction line item is identified by its transaction and its (order, line item, shipment): a charge and the
refund of the same line item are two transactions, so two rows. Pages of a window can repeat a transaction (the
feed changes while it is paged; consecutive runs' windows overlap by design): the repeat is the same row.
Amazon fills in a line item's shipmentId once it ships; a sighting without it then gives way to the one with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, TypeVar

__all__ = ["Line", "distinct", "match_key", "shipped_elsewhere", "with_shipmentless_matches"]


class Line(Protocol):
    """What identifies a transaction line item (``abrecon.steps.LineItemRow``, ``reporting.LineItemLike``)."""

    @property
    def transaction_id(self) -> str:
        """Amazon's transactionId."""
        ...

    @property
    def order_id(self) -> str:
        """The orderId."""
        ...

    @property
    def order_line_item_id(self) -> str:
        """The orderLineItemId."""
        ...

    @property
    def shipment_id(self) -> str | None:
        """The shipmentId; None while Amazon lists none (ordered, not shipped yet)."""
        ...


L = TypeVar("L", bound=Line)


def identity(line: Line) -> tuple[str, str, str, str]:
    """(transactionId, orderId, orderLineItemId, shipmentId or "")."""
    return line.transaction_id, line.order_id, line.order_line_item_id, line.shipment_id or ""


def _unshipped_identity(line: Line) -> tuple[str, str, str]:
    return line.transaction_id, line.order_id, line.order_line_item_id


def match_key(line: Line) -> str:
    """The key of the run's matches: "orderId|orderLineItemId|shipmentId" ("orderId|orderLineItemId|" without one)."""
    return f"{line.order_id}|{line.order_line_item_id}|{line.shipment_id or ''}"


def distinct(lines: Iterable[L]) -> list[L]:
    """One row per transaction line item, in the order first seen; a repeat's content wins (it is the later
    version of the feed), and a sighting without a shipment gives way to the same one with its shipment."""
    rows = list(lines)
    shipped = {_unshipped_identity(row) for row in rows if row.shipment_id}
    kept: dict[tuple[str, str, str, str], L] = {}
    for row in rows:
        if row.shipment_id is None and _unshipped_identity(row) in shipped:
            continue
        kept[identity(row)] = row
    return list(kept.values())


def shipped_elsewhere(waiting: Iterable[L], lines: Iterable[Line]) -> tuple[list[L], list[L]]:
    """Split rows kept open without a shipment (from earlier runs) into (still waiting, now listed with their
    shipment among ``lines``); the latter are the same transaction line items, so they are not rows any more."""
    shipped = {_unshipped_identity(line) for line in lines if line.shipment_id}
    still: list[L] = []
    now: list[L] = []
    for row in waiting:
        (now if row.shipment_id is None and _unshipped_identity(row) in shipped else still).append(row)
    return still, now


def with_shipmentless_matches(matches: Mapping[str, Sequence[str]], lines: Iterable[Line]) -> dict[str, list[str]]:
    """``matches`` (match_key -> document numbers) plus, for each line item listed without a shipment, the
    documents Amazon issued for that order line item's shipments among ``lines`` (none: it stays unmatched)."""
    rows = list(lines)
    by_line_item: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        if row.shipment_id:
            numbers = by_line_item.setdefault((row.order_id, row.order_line_item_id), [])
            numbers += [n for n in matches.get(match_key(row), []) if n not in numbers]
    found = {key: list(numbers) for key, numbers in matches.items()}
    for row in rows:
        of_line_item = by_line_item.get((row.order_id, row.order_line_item_id))
        if row.shipment_id is None and of_line_item:
            found[match_key(row)] = of_line_item
    return found
