"""Payment status and due dates of the emulator's invoices (getBatchInvoicePaymentDetails), fixed by the seed.

Each invoice gets payment terms (due on receipt, net 7, 15, 30 or 60 days) and, from its due date and the moment
of the request, a status: before the due date Issued, Payment Processing or Closed (paid early); after it Closed
or Past Due. The terms are shorter on average than most accounts have, so that a week's window shows every status.
Some invoices have no payment details (paid by card, not billed by Pay by Invoice): an ERROR result, as Amazon
answers for them; so do ids that are no invoice of this customer (a credit memo's number, a made-up id).

The Payments API's one operation (POST /reconciliation/2021-01-08/invoices/batch/paymentDetails) is here too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta

from flask import Blueprint, Response, request

from .dataset import STANDARD, Document, Json, iso_seconds
from .web import current_state, error_response, json_response

# (days, share): what the terms of an invoice are drawn from.
TERMS = ((0, 0.15), (7, 0.15), (15, 0.15), (30, 0.40), (60, 0.15))
NOT_BILLED_SHARE = 0.08
PAST_DUE_SHARE = 0.6  # of invoices past their due date, the ones not paid yet
PAID_EARLY_SHARE = 0.2  # of invoices not yet due, the ones already Closed
PROCESSING_SHARE = 0.25  # of invoices not yet due, the ones whose payment is on its way
MAX_PAYMENT_INVOICES = 25  # GetBatchInvoicePaymentDetailsRequest.invoiceIds: 1 to 25 ids of 1 to 255 characters
MAX_INVOICE_ID_LENGTH = 255

NOT_FOUND = {"code": "NOT_FOUND", "message": "Invoice not found."}
NOT_BILLED = {
    "code": "PAYMENT_DETAILS_UNAVAILABLE",
    "message": "Payment details are not available for this invoice.",
    "details": "The invoice is not billed through Pay by Invoice.",
}


class PaymentBook:
    """The payment side of the data set: one SUCCESS or ERROR result per invoice id."""

    def __init__(self, seed: int, documents: Mapping[str, Document], window_end: datetime) -> None:
        self._seed = seed
        self._documents = documents
        # One invoice dated a day or more before the window's end is due on receipt and unpaid, so that every
        # data set shows a past-due invoice.
        billed = [
            n
            for n, d in documents.items()
            if d.kind == STANDARD and d.date <= window_end - timedelta(days=1) and not self._not_billed(n)
        ]
        self._overdue = min(billed, key=lambda n: self._unit("overdue", n)) if billed else None

    def _not_billed(self, number: str) -> bool:
        return self._unit("not-billed", number) < NOT_BILLED_SHARE

    def _unit(self, kind: str, number: str) -> float:
        digest = hashlib.blake2b(f"{self._seed}/payments/{kind}/{number}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def due_date(self, number: str) -> datetime | None:
        """The invoice's due date (end of its last day, UTC), or None if it has no payment details."""
        doc = self._documents.get(number)
        if doc is None or doc.kind != STANDARD or self._not_billed(number):
            return None
        pick, days = (0.0 if number == self._overdue else self._unit("terms", number)), TERMS[-1][0]
        for terms, share in TERMS:
            if pick < share:
                days = terms
                break
            pick -= share
        return datetime.combine(doc.date.date() + timedelta(days=days), time(23, 59, 59), tzinfo=doc.date.tzinfo)

    def status(self, number: str, due: datetime, now: datetime) -> str:
        """Amazon's status for an invoice due at ``due``, asked at ``now``."""
        if now > due:
            unpaid = number == self._overdue or self._unit("paid-late", number) < PAST_DUE_SHARE
            return "Past Due" if unpaid else "Closed"
        pick = self._unit("before-due", number)
        if pick < PAID_EARLY_SHARE:
            return "Closed"
        return "Payment Processing" if pick < PAID_EARLY_SHARE + PROCESSING_SHARE else "Issued"

    def result(self, invoice_id: str, now: datetime) -> Json:
        """The model's SuccessInvoicePaymentDetailResult or FailedInvoicePaymentDetailResult for one id."""
        if invoice_id not in self._documents or self._documents[invoice_id].kind != STANDARD:
            error: Json = {**NOT_FOUND, "details": f"No invoice {invoice_id} for this customer."}
            return {"invoiceId": invoice_id, "resultType": "ERROR", "error": error}
        due = self.due_date(invoice_id)
        if due is None:
            return {"invoiceId": invoice_id, "resultType": "ERROR", "error": dict(NOT_BILLED)}
        details = {"status": self.status(invoice_id, due, now), "dueDate": iso_seconds(due)}
        return {"invoiceId": invoice_id, "resultType": "SUCCESS", "paymentDetails": details}


payments = Blueprint("payments", __name__)


@payments.post("/reconciliation/2021-01-08/invoices/batch/paymentDetails", endpoint="getBatchInvoicePaymentDetails")
def get_payment_details() -> Response:
    """POST {invoiceIds: [...]}: one SUCCESS or ERROR result per distinct id, in no particular order."""
    state = current_state()
    payload = request.get_json(force=True, silent=True)
    ids = payload.get("invoiceIds") if isinstance(payload, dict) else None
    problem = None
    if not isinstance(ids, list) or not ids:
        problem = "The invoiceIds array must contain at least one invoice ID."
    elif len(ids) > MAX_PAYMENT_INVOICES:
        problem = f"The invoiceIds array must contain at most {MAX_PAYMENT_INVOICES} invoice IDs; got {len(ids)}."
    elif not all(isinstance(i, str) and 1 <= len(i) <= MAX_INVOICE_ID_LENGTH for i in ids):
        problem = f"Each invoice ID must be a string of 1 to {MAX_INVOICE_ID_LENGTH} characters."
    if problem is not None or not isinstance(ids, list):
        return error_response(400, "INVALID_REQUEST_PARAMETER", "The request contains invalid parameters.", problem)
    now = datetime.now(UTC)
    results = [state.payments.result(str(i), now) for i in dict.fromkeys(ids)]
    with state.lock:
        state.rng.shuffle(results)  # the model promises no order
    return json_response({"invoicePaymentDetailsResults": results})
