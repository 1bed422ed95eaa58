"""HTTP client of the Amazon Business Reconciliation and Document (Reports) APIs."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from urllib.parse import quote

from pydantic import ValidationError

from abrecon._http import RetryPolicy
from abrecon.errors import (
    AnswerLostError,
    BadRequestError,
    ServerError,
)
from abrecon.models import (
    CreateReportRequest,
    CreateReportResponse,
    InvoiceDetailsOfOrderLineItem,
    InvoicePaymentDetailResult,
    OrderLineItemKey,
    Report,
    ReportDocument,
    ReportsPage,
    Transaction,
    TransactionsPage,
    as_utc,
)
from abrecon.transport import OP_DOWNLOAD_DOCUMENT, ApiTransport, TokenSource, parse, readable_entries, summarise

__all__ = [
    "MAX_INVOICES_PER_PAYMENT_CALL",
    "MAX_LINE_ITEMS_PER_CALL",
    "OP_CREATE_REPORT",
    "OP_DOWNLOAD_DOCUMENT",
    "OP_GET_INVOICE_DETAILS",
    "OP_GET_PAYMENT_DETAILS",
    "OP_GET_REPORT",
    "OP_GET_REPORTS",
    "OP_GET_REPORT_DOCUMENT",
    "OP_GET_TRANSACTIONS",
    "AmazonBusinessClient",
    "RetryPolicy",
    "TokenSource",
]

logger = logging.getLogger(__name__)

OP_GET_TRANSACTIONS = "getTransactions"
OP_GET_INVOICE_DETAILS = "getInvoiceDetailsByOrderLineItems"
OP_GET_PAYMENT_DETAILS = "getBatchInvoicePaymentDetails"
OP_CREATE_REPORT = "createReport"
OP_GET_REPORT = "getReport"
OP_GET_REPORT_DOCUMENT = "getReportDocument"
OP_GET_REPORTS = "getReports"

TRANSACTIONS_PATH = "/reconciliation/2021-01-08/transactions"
INVOICES_PATH = "/reconciliation/2021-01-08/invoices"
PAYMENT_DETAILS_PATH = "/reconciliation/2021-01-08/invoices/batch/paymentDetails"
REPORTS_PATH = "/reports/2021-09-30/reports"
DOCUMENTS_PATH = "/reports/2021-09-30/documents"

# Stated in Amazon's prose only; the schema has no maxItems.
MAX_LINE_ITEMS_PER_CALL = 25
# getReports: the model's bounds of reportTypes and pageSize.
MAX_REPORT_TYPES = 10
MAX_REPORTS_PAGE_SIZE = 100
# The model's GetBatchInvoicePaymentDetailsRequest: invoiceIds has 1 to 25 items of 1 to 255 characters.
MAX_INVOICES_PER_PAYMENT_CALL = 25
MAX_INVOICE_ID_LENGTH = 255


class AmazonBusinessClient(ApiTransport):
    """The Amazon Business Reconciliation and Document (Reports) API operations, each checked against Amazon's model
    before any call (bad input: BadRequestError) and sent through ApiTransport's retries."""

    def __repr__(self) -> str:
        return f"AmazonBusinessClient(endpoint={self.endpoint!r})"

    # --- Reconciliation API ---------------------------------------------------------------------

    def iter_transactions(self, start: datetime, end: datetime) -> Iterator[Transaction]:
        """Every transaction whose feed date lies in [start, end], following nextPageToken."""
        for page in self.iter_transaction_pages(start, end):
            yield from page.transactions

    def iter_transaction_pages(
        self, start: datetime, end: datetime, page_token: str | None = None
    ) -> Iterator[TransactionsPage]:
        """The pages behind ``iter_transactions``; with page_token, resume after the page that handed it out.

        Later pages send ``nextPageToken`` alone, as the model says; if the server answers 400 to
        that, the page is asked again with the token plus both dates, and so are all later pages
        (the model also marks the dates required, so be ready for either).
        """
        start_text, end_text = _iso_utc(start), _iso_utc(end)
        if start_text >= end_text:
            raise BadRequestError(OP_GET_TRANSACTIONS, None, "InvalidInput", "window start is not before end")
        dates = {"feedStartDate": start_text, "feedEndDate": end_text}
        if page_token is None:
            page = self._transactions_page(dates)
            yield page
        else:
            page = TransactionsPage(transactions=[], nextPageToken=page_token)
        seen_tokens: set[str] = set()
        send_dates = False
        while page.nextPageToken:
            token = page.nextPageToken
            if token in seen_tokens:
                # A server that hands back a token twice would otherwise keep us paging forever.
                raise ServerError(OP_GET_TRANSACTIONS, None, "PaginationLoop", "nextPageToken repeated")
            seen_tokens.add(token)
            if send_dates:
                page = self._transactions_page({"nextPageToken": token, **dates})
            else:
                try:
                    page = self._transactions_page({"nextPageToken": token})
                except BadRequestError as exc:
                    logger.info("nextPageToken alone refused (%s); sending the dates too", exc.code)
                    send_dates = True
                    page = self._transactions_page({"nextPageToken": token, **dates})
            yield page

    def get_invoice_details(self, items: Sequence[OrderLineItemKey]) -> list[InvoiceDetailsOfOrderLineItem]:
        """Invoices and credit memos of up to 25 line items. The answer is NOT in request order.

        An unreadable answer entry is skipped with a warning (its line item then stays unmatched
        and is asked again later) rather than failing the other items of the batch.
        """
        keys = list(items)
        if len(keys) > MAX_LINE_ITEMS_PER_CALL:
            raise BadRequestError(
                OP_GET_INVOICE_DETAILS,
                None,
                "InvalidInput",
                f"at most {MAX_LINE_ITEMS_PER_CALL} line items per call, got {len(keys)}",
            )
        if not keys:
            return []
        body = {"orderLineItems": [key.model_dump() for key in keys]}
        data = self.call(OP_GET_INVOICE_DETAILS, "POST", INVOICES_PATH, body=body)
        return readable_entries(
            OP_GET_INVOICE_DETAILS, data, "invoiceDetailsByOrderLineItems", InvoiceDetailsOfOrderLineItem
        )

    def get_invoice_payment_details(self, invoice_ids: Sequence[str]) -> list[InvoicePaymentDetailResult]:
        """Payment status and due date of up to 25 invoices: one SUCCESS or ERROR result per invoice.

        Ids are checked against the model (1 to 25 of them, 1 to 255 characters each) before any call; duplicates
        are asked once. An unreadable result entry is skipped with a warning: its invoice is then missing from the
        answer, which the caller records as an error for that invoice alone.
        """
        ids = list(dict.fromkeys(invoice_ids))
        if not ids:
            return []
        if len(ids) > MAX_INVOICES_PER_PAYMENT_CALL:
            raise BadRequestError(
                OP_GET_PAYMENT_DETAILS,
                None,
                "InvalidInput",
                f"at most {MAX_INVOICES_PER_PAYMENT_CALL} invoice ids per call, got {len(ids)}",
            )
        if any(not i or not i.strip() or len(i) > MAX_INVOICE_ID_LENGTH for i in ids):
            raise BadRequestError(
                OP_GET_PAYMENT_DETAILS,
                None,
                "InvalidInput",
                f"invoice ids must have 1 to {MAX_INVOICE_ID_LENGTH} characters",
            )
        data = self.call(OP_GET_PAYMENT_DETAILS, "POST", PAYMENT_DETAILS_PATH, body={"invoiceIds": ids})
        return readable_entries(
            OP_GET_PAYMENT_DETAILS, data, "invoicePaymentDetailsResults", InvoicePaymentDetailResult
        )

    # --- Document (Reports) API -----------------------------------------------------------------

    def create_report(
        self,
        invoice_number: str,
        marketplace_ids: Sequence[str],
        *,
        document_type: str | None = None,
        invoice_type: str | None = None,
    ) -> str:
        """Request a GET_AB_INVOICE_PDF report for one invoice; returns the reportId.

        Without document_type/invoice_type the report holds the invoice and its credit memos.
        Both given, or any other invalid input: BadRequestError before any call. createReport is not safe to
        repeat: only a 429 or a connect timeout (nothing was processed) is retried here; a 5xx, a broken
        connection or an unreadable answer is AnswerLostError (the report may exist: look for it with getReports).
        """
        ids = [marketplace_ids] if isinstance(marketplace_ids, str) else list(marketplace_ids)
        try:
            request = CreateReportRequest.for_invoice(
                invoice_number, ids, document_type=document_type, invoice_type=invoice_type
            )
        except ValidationError as exc:
            raise BadRequestError(OP_CREATE_REPORT, None, "InvalidInput", summarise(exc)) from None
        try:
            data = self.call(
                OP_CREATE_REPORT, "POST", REPORTS_PATH, body=request.to_body(), ok=(202, 200), idempotent=False
            )
            return parse(OP_CREATE_REPORT, CreateReportResponse, data).reportId
        except ServerError as exc:
            raise AnswerLostError(exc.operation, exc.status, exc.code, exc.message) from exc

    def get_report(self, report_id: str) -> Report:
        """Status of a report (and its reportDocumentId once DONE)."""
        path = f"{REPORTS_PATH}/{_path_segment(OP_GET_REPORT, report_id, 'reportId')}"
        return parse(OP_GET_REPORT, Report, self.call(OP_GET_REPORT, "GET", path))

    def get_reports(
        self,
        report_types: Sequence[str] = (),
        *,
        created_since: datetime | None = None,
        created_until: datetime | None = None,
        processing_statuses: Sequence[str] = (),
        marketplace_ids: Sequence[str] = (),
        page_size: int | None = None,
        next_token: str | None = None,
    ) -> ReportsPage:
        """One page of the reports matching the filters (newest first in Amazon's examples; order not relied on).

        The first page needs ``report_types`` (1 to 10); a later page is asked with ``next_token`` alone, as the
        model demands (Amazon refuses a token sent with any filter). Bad input: BadRequestError before any call.
        """
        if next_token is not None:
            dates_or_size = (created_since, created_until, page_size)
            if report_types or processing_statuses or marketplace_ids or any(v is not None for v in dates_or_size):
                raise BadRequestError(OP_GET_REPORTS, None, "InvalidInput", "nextToken must be the only parameter")
            if not next_token.strip():
                raise BadRequestError(OP_GET_REPORTS, None, "InvalidInput", "nextToken is empty")
            params = {"nextToken": next_token}
        else:
            params = _first_reports_page(
                report_types, processing_statuses, marketplace_ids, created_since, created_until, page_size
            )
        return parse(OP_GET_REPORTS, ReportsPage, self.call(OP_GET_REPORTS, "GET", REPORTS_PATH, params=params))

    def get_report_document(self, report_document_id: str) -> ReportDocument:
        """The presigned URL (valid 5 minutes) and compression label of a report document."""
        segment = _path_segment(OP_GET_REPORT_DOCUMENT, report_document_id, "reportDocumentId")
        path = f"{DOCUMENTS_PATH}/{segment}"
        return parse(OP_GET_REPORT_DOCUMENT, ReportDocument, self.call(OP_GET_REPORT_DOCUMENT, "GET", path))

    # --- internals ------------------------------------------------------------------------------

    def _transactions_page(self, params: Mapping[str, str]) -> TransactionsPage:
        data = self.call(OP_GET_TRANSACTIONS, "GET", TRANSACTIONS_PATH, params=params)
        return parse(OP_GET_TRANSACTIONS, TransactionsPage, data)


# --- module helpers -------------------------------------------------------------------------------


def _iso_utc(value: datetime) -> str:
    # Amazon wants ISO 8601 UTC, e.g. 2026-11-01T00:00:00Z; a naive datetime is taken as UTC.
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _first_reports_page(
    report_types: Sequence[str],
    processing_statuses: Sequence[str],
    marketplace_ids: Sequence[str],
    created_since: datetime | None,
    created_until: datetime | None,
    page_size: int | None,
) -> dict[str, str]:
    """getReports' query for a first page, checked against the model's bounds; filters not given are left out."""
    types = [report_types] if isinstance(report_types, str) else list(report_types)
    if not 1 <= len(types) <= MAX_REPORT_TYPES or not all(t and t.strip() for t in types):
        raise BadRequestError(
            OP_GET_REPORTS, None, "InvalidInput", f"give 1 to {MAX_REPORT_TYPES} report types, or a nextToken"
        )
    if page_size is not None and not 1 <= page_size <= MAX_REPORTS_PAGE_SIZE:
        raise BadRequestError(OP_GET_REPORTS, None, "InvalidInput", f"pageSize must be 1 to {MAX_REPORTS_PAGE_SIZE}")
    params = {"reportTypes": ",".join(types)}
    if processing_statuses:
        params["processingStatuses"] = ",".join(processing_statuses)
    if marketplace_ids:
        params["marketplaceIds"] = ",".join(marketplace_ids)
    if created_since is not None:
        params["createdSince"] = _iso_utc(created_since)
    if created_until is not None:
        params["createdUntil"] = _iso_utc(created_until)
    if page_size is not None:
        params["pageSize"] = str(page_size)
    return params


def _path_segment(operation: str, value: str, what: str) -> str:
    if not value or not value.strip():
        raise BadRequestError(operation, None, "InvalidInput", f"{what} is empty")
    # Quote everything, "/" included, so an id can never change the path.
    return quote(value, safe="")
