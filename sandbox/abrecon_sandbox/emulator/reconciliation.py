"""The Reconciliation API: getTransactions (paged) and getInvoiceDetailsByOrderLineItems."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from flask import Blueprint, Response, request

from .dataset import Json
from .web import current_state, error_response, json_response

API_VERSION_RECON = "/reconciliation/2021-01-08"
PAGE_SIZE = 10
MAX_LINE_ITEMS = 25
_TRIPLE = ("orderId", "orderLineItemId", "shipmentId")

reconciliation = Blueprint("reconciliation", __name__, url_prefix=API_VERSION_RECON)


def _parse_date(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@reconciliation.get("/transactions", endpoint="getTransactions")
def get_transactions() -> Response:
    """GET /transactions?feedStartDate&feedEndDate, or ?nextPageToken for the next page."""
    state = current_state()
    faults = state.injector
    args = request.args
    dates: list[datetime] = []
    for name in ("feedStartDate", "feedEndDate"):
        raw = args.get(name)
        if raw is None:
            continue
        parsed = _parse_date(raw)
        if parsed is None:
            return error_response(
                400, "INVALID_REQUEST_PARAMETER", f"Input date [{raw}] is not in the expected ISO8601 format."
            )
        dates.append(parsed)
    page_token = args.get("nextPageToken")
    if page_token:
        with state.lock:
            cursor = state.pages.get(page_token)
        if cursor is None:
            return error_response(400, "INVALID_REQUEST_PARAMETER", "Invalid nextPageToken.")
        start, end, offset = cursor
    else:
        if len(dates) != 2:
            return error_response(400, "INVALID_REQUEST_PARAMETER", "feedStartDate and feedEndDate are required.")
        start, end = dates
        offset = 0
        if start > end:
            return error_response(400, "INVALID_REQUEST_PARAMETER", "feedStartDate must be before feedEndDate.")
    matching = state.dataset.transactions_between(start, end)
    size = faults.page_size(PAGE_SIZE)
    body: Json = {"transactions": matching[offset : offset + size]}
    if offset + size < len(matching):
        next_token = secrets.token_urlsafe(48)
        # repeated-transactions: the next page starts again with this page's last one or two.
        repeated = faults.repeated_on_next_page(str(request.environ["abrecon.fault_key"]))
        with state.lock:
            state.pages[next_token] = (start, end, offset + size - repeated)
        body["nextPageToken"] = next_token
    state.record_served(body["transactions"])
    return json_response(body)


@reconciliation.post("/invoices", endpoint="getInvoiceDetailsByOrderLineItems")
def get_invoice_details() -> Response:
    """POST /invoices {orderLineItems: [{orderId, orderLineItemId, shipmentId}, ...]}: the invoices of each."""
    state = current_state()
    dataset = state.dataset
    payload = request.get_json(force=True, silent=True)
    items = payload.get("orderLineItems") if isinstance(payload, dict) else None
    if not isinstance(items, list) or not items:
        return error_response(400, "InvalidInput", "Invalid input", "orderLineItems must be a non-empty array.")
    if len(items) > MAX_LINE_ITEMS:
        return error_response(
            400,
            "InvalidInput",
            "Invalid input",
            f"The maximum number of order line items is {MAX_LINE_ITEMS}; got {len(items)}.",
        )
    keys: list[tuple[str, str, str]] = []
    for item in items:
        fields = [item.get(n) if isinstance(item, dict) else None for n in _TRIPLE]
        if not all(isinstance(f, str) and f for f in fields):
            return error_response(
                400, "InvalidInput", "Invalid input", "Each item needs orderId, orderLineItemId and shipmentId."
            )
        key = (str(fields[0]), str(fields[1]), str(fields[2]))
        if key not in keys:
            keys.append(key)
    found = [k for k in keys if k in dataset.details_by_key]
    answer = [
        {
            "orderLineItem": dict(zip(_TRIPLE, key, strict=True)),
            "invoiceDetails": [dict(d) for d in dataset.details_by_key[key]],
        }
        for key in found
    ]
    with state.lock:
        state.rng.shuffle(answer)
    if len(answer) > 1 and [a["orderLineItem"] for a in answer] == [dict(zip(_TRIPLE, k, strict=True)) for k in found]:
        answer.append(answer.pop(0))  # never in request order
    return json_response({"invoiceDetailsByOrderLineItems": answer})
