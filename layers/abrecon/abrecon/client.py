"""HTTP client of the Amazon Business Reconciliation and Document (Reports) APIs."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import requests
import urllib3
from pydantic import BaseModel, ValidationError

from abrecon._http import RetryPolicy, parse_retry_after, require_secure_url
from abrecon.errors import (
    AnswerLostError,
    ApiError,
    AuthError,
    BadRequestError,
    DocumentError,
    DocumentUrlExpiredError,
    NotFoundError,
    ServerError,
    ThrottledError,
)
from abrecon.models import (
    CreateReportRequest,
    CreateReportResponse,
    ErrorList,
    InvoiceDetailsOfOrderLineItem,
    InvoicePaymentDetailResult,
    OrderLineItemKey,
    Report,
    ReportDocument,
    ReportsPage,
    Transaction,
    TransactionsPage,
)

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
OP_DOWNLOAD_DOCUMENT = "downloadDocument"

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

_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_BAD_REQUEST_STATUSES = frozenset({400, 413, 415})
_AUTH_STATUSES = frozenset({401, 403})
_USER_AGENT = "abrecon/0.1 (Language=Python)"
_DOWNLOAD_CHUNK = 64 * 1024

_DEFAULT_RETRY = RetryPolicy()

_M = TypeVar("_M", bound=BaseModel)


class TokenSource(Protocol):
    """What the client needs from LwaTokenProvider (a protocol, so tests can pass a stub)."""

    def access_token(self) -> str:
        """A valid access token."""
        ...

    def invalidate(self, refused: str | None = None) -> None:
        """Forget the cached token (only if it is still ``refused``, when given)."""
        ...


class _RetryableRead(Exception):
    """The body of a download broke off mid-stream."""


class AmazonBusinessClient:
    """Calls the Amazon Business APIs with retries, token refresh and error mapping.

    Every call carries ``x-amz-access-token`` and a timeout. 429/5xx/connection errors are retried
    per ``retry`` (full jitter, Retry-After honoured); a 401 or 403 invalidates the token and is
    retried once with a fresh one, a second one is AuthError. Errors surface as ``abrecon.errors``
    classes. ``api_calls`` counts HTTP requests sent per operation name, retries included.
    """

    def __init__(
        self,
        endpoint: str,
        tokens: TokenSource,
        *,
        session: requests.Session | None = None,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        retry: RetryPolicy = _DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        pace: Callable[[str], None] | None = None,
    ) -> None:
        require_secure_url(endpoint, "Amazon Business API endpoint")
        self.endpoint = endpoint.rstrip("/")
        self._tokens = tokens
        self._session = session if session is not None else requests.Session()
        self._timeout = timeout
        self._retry = retry
        self._sleep = sleep
        self._pace = pace
        self.api_calls: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"AmazonBusinessClient(endpoint={self.endpoint!r})"

    def warm_up(self) -> None:
        """Have an access token ready, so a request sent right after a rate-limit reservation goes out at once."""
        self._tokens.access_token()

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
        data = self._call(OP_GET_INVOICE_DETAILS, "POST", INVOICES_PATH, body=body)
        return _readable_entries(
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
        data = self._call(OP_GET_PAYMENT_DETAILS, "POST", PAYMENT_DETAILS_PATH, body={"invoiceIds": ids})
        return _readable_entries(
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
            raise BadRequestError(OP_CREATE_REPORT, None, "InvalidInput", _summarise(exc)) from None
        try:
            data = self._call(
                OP_CREATE_REPORT, "POST", REPORTS_PATH, body=request.to_body(), ok=(202, 200), idempotent=False
            )
            return _parse(OP_CREATE_REPORT, CreateReportResponse, data).reportId
        except ServerError as exc:
            raise AnswerLostError(exc.operation, exc.status, exc.code, exc.message) from exc

    def get_report(self, report_id: str) -> Report:
        """Status of a report (and its reportDocumentId once DONE)."""
        path = f"{REPORTS_PATH}/{_path_segment(OP_GET_REPORT, report_id, 'reportId')}"
        return _parse(OP_GET_REPORT, Report, self._call(OP_GET_REPORT, "GET", path))

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
            types = [report_types] if isinstance(report_types, str) else list(report_types)
            if not 1 <= len(types) <= MAX_REPORT_TYPES or not all(t and t.strip() for t in types):
                raise BadRequestError(
                    OP_GET_REPORTS, None, "InvalidInput", f"give 1 to {MAX_REPORT_TYPES} report types, or a nextToken"
                )
            if page_size is not None and not 1 <= page_size <= MAX_REPORTS_PAGE_SIZE:
                raise BadRequestError(
                    OP_GET_REPORTS, None, "InvalidInput", f"pageSize must be 1 to {MAX_REPORTS_PAGE_SIZE}"
                )
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
        return _parse(OP_GET_REPORTS, ReportsPage, self._call(OP_GET_REPORTS, "GET", REPORTS_PATH, params=params))

    def get_report_document(self, report_document_id: str) -> ReportDocument:
        """The presigned URL (valid 5 minutes) and compression label of a report document."""
        segment = _path_segment(OP_GET_REPORT_DOCUMENT, report_document_id, "reportDocumentId")
        path = f"{DOCUMENTS_PATH}/{segment}"
        return _parse(OP_GET_REPORT_DOCUMENT, ReportDocument, self._call(OP_GET_REPORT_DOCUMENT, "GET", path))

    def download(self, url: str, *, max_bytes: int) -> bytes:
        """The raw bytes behind a presigned URL, exactly as served.

        No access-token header is sent and Content-Encoding is not decoded (unpacking goes by magic
        bytes). More than ``max_bytes`` or an empty body: DocumentError. 400/403 from the download
        host: DocumentUrlExpiredError (ask getReportDocument for a fresh URL). 429/5xx/broken
        connections are retried, then ServerError. The URL is never logged: it carries a signature.
        """
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        require_secure_url(url, "report document URL")
        host = urlsplit(url).hostname or "?"
        attempt = 0
        while True:
            attempt += 1
            self.api_calls[OP_DOWNLOAD_DOCUMENT] += 1
            try:
                resp = self._session.get(
                    url,
                    # identity: we want the stored bytes, not a transport-compressed copy.
                    headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"},
                    timeout=self._timeout,
                    stream=True,
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._retry_or_raise(OP_DOWNLOAD_DOCUMENT, attempt, None, None, type(exc).__name__)
                continue
            with resp:
                status = resp.status_code
                if status == 200:
                    try:
                        return _read_capped(resp, max_bytes)
                    except _RetryableRead as exc:
                        self._retry_or_raise(OP_DOWNLOAD_DOCUMENT, attempt, None, None, str(exc))
                        continue
                if status in (400, 403):
                    raise DocumentUrlExpiredError(
                        f"download from {host} refused with HTTP {status}: presigned URL probably expired",
                        status,
                    )
                if status in _RETRYABLE_STATUSES:
                    reason = f"HTTP {status}"
                    self._retry_or_raise(OP_DOWNLOAD_DOCUMENT, attempt, status, resp.headers, reason)
                    continue
                raise DocumentError(f"download from {host} failed with HTTP {status}")

    # --- internals ------------------------------------------------------------------------------

    def _transactions_page(self, params: Mapping[str, str]) -> TransactionsPage:
        data = self._call(OP_GET_TRANSACTIONS, "GET", TRANSACTIONS_PATH, params=params)
        return _parse(OP_GET_TRANSACTIONS, TransactionsPage, data)

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
        idempotent: bool = True,
    ) -> Any:
        """Send one API request with retries; return the decoded JSON body.

        Not ``idempotent``: only what Amazon cannot have processed (429, a connect timeout) is retried.
        """
        url = self.endpoint + path
        payload = json.dumps(body) if body is not None else None
        attempt = 0
        token_refreshed = False
        while True:
            attempt += 1
            token = self._tokens.access_token()
            headers = {
                "x-amz-access-token": token,
                "Accept": "application/json",
                "User-Agent": _USER_AGENT,
            }
            if payload is not None:
                headers["Content-Type"] = "application/json"
            if self._pace is not None:
                self._pace(operation)  # waits for the account-wide rate limit's token, if this operation is paced
            self.api_calls[operation] += 1
            try:
                # No redirects: requests would carry x-amz-access-token along to another host.
                resp = self._session.request(
                    method,
                    url,
                    params=params,
                    data=payload,
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if not idempotent and not isinstance(exc, requests.ConnectTimeout):
                    raise ServerError(
                        operation, None, type(exc).__name__, "no answer: the request may have been processed"
                    ) from None
                self._retry_or_raise(operation, attempt, None, None, type(exc).__name__)
                continue
            status = resp.status_code
            if status in ok:
                return _decode_json(operation, resp)
            if status in _AUTH_STATUSES:
                # Never reuse a token Amazon refused: a warm worker would carry it into its next invocation.
                self._tokens.invalidate(token)
                if token_refreshed:
                    raise _auth_error(operation, resp)
                # Revoked, or expired before its declared lifetime (Amazon answers that 403 as well as 401):
                # one more try with a fresh token, outside the retry budget.
                logger.warning("%s answered %d; retrying once with a fresh access token", operation, status)
                token_refreshed = True
                attempt -= 1
                continue
            if status in _RETRYABLE_STATUSES and (idempotent or status == 429):
                self._retry_or_raise(operation, attempt, status, resp.headers, f"HTTP {status}", resp)
                continue
            raise _api_error(operation, resp)

    def _retry_or_raise(
        self,
        operation: str,
        attempt: int,
        status: int | None,
        headers: Mapping[str, str] | None,
        reason: str,
        resp: requests.Response | None = None,
    ) -> None:
        """Sleep before the next attempt, or raise if the retry budget is spent."""
        retry_after = parse_retry_after(headers) if headers is not None else None
        if attempt >= self._retry.max_attempts:
            if resp is not None:
                raise _api_error(operation, resp, retry_after)
            message = f"{reason}, giving up after {attempt} attempts"
            if status == 429:
                raise ThrottledError(operation, status, None, message, retry_after)
            raise ServerError(operation, status, reason if status is None else None, message)
        delay = self._retry.delay(attempt, retry_after)
        logger.warning(
            "%s failed (%s), attempt %d of %d, retrying in %.2fs",
            operation,
            reason,
            attempt,
            self._retry.max_attempts,
            delay,
        )
        self._sleep(delay)


# --- module helpers -------------------------------------------------------------------------------


def _iso_utc(value: datetime) -> str:
    # Amazon wants ISO 8601 UTC, e.g. 2026-11-01T00:00:00Z; a naive datetime is taken as UTC.
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%SZ")


def _path_segment(operation: str, value: str, what: str) -> str:
    if not value or not value.strip():
        raise BadRequestError(operation, None, "InvalidInput", f"{what} is empty")
    # Quote everything, "/" included, so an id can never change the path.
    return quote(value, safe="")


def _decode_json(operation: str, resp: requests.Response) -> Any:
    if not resp.content:
        return {}
    try:
        # parse_float=Decimal: numbers that come as JSON numbers keep their exact value.
        return json.loads(resp.content, parse_float=Decimal)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply
        raise ServerError(operation, resp.status_code, "InvalidResponse", "answer is not JSON") from None


def _parse(operation: str, model: type[_M], data: Any) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ServerError(operation, 200, "InvalidResponse", _summarise(exc)) from None


def _readable_entries(operation: str, data: Any, name: str, model: type[_M]) -> list[_M]:
    """The entries of an answer's list ``name`` that parse as ``model``; an unreadable one is skipped with a warning,
    so one bad entry does not cost the batch's others. A missing list is an empty one; anything else: ServerError."""
    entries = data.get(name) if isinstance(data, dict) else None
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise ServerError(operation, 200, "InvalidResponse", "answer list is not a list")
    result: list[_M] = []
    for index, entry in enumerate(entries):
        try:
            result.append(model.model_validate(entry))
        except ValidationError as exc:
            logger.warning("%s: skipping unreadable answer entry %d: %s", operation, index, _summarise(exc))
    return result


def _summarise(exc: ValidationError) -> str:
    # Field locations and reasons only: input values could be presigned URLs or personal data.
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return "; ".join(parts[:5]) + (f" (+{len(parts) - 5} more)" if len(parts) > 5 else "")


def _error_body(resp: requests.Response) -> tuple[str | None, str]:
    """(code, message) from an error answer; tolerates bodies that are not JSON."""
    try:
        data = json.loads(resp.content) if resp.content else None
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply
        data = None
    if isinstance(data, dict):
        try:
            errors = ErrorList.model_validate(data).errors
        except ValidationError:
            errors = []
        if errors:
            code = next((e.code for e in errors if e.code), None)
            messages = []
            for e in errors:
                text = e.message or ""
                if e.details:
                    text = f"{text} ({e.details})" if text else e.details
                if text:
                    messages.append(text)
            return code, "; ".join(messages) or (resp.reason or "")
        # Some gateways answer {"message": "..."} instead of an ErrorList.
        for key in ("message", "Message"):
            if isinstance(data.get(key), str):
                return None, data[key]
    text = resp.text.strip() if resp.content else ""
    return None, (" ".join(text.split())[:200] or resp.reason or "")


def _auth_error(operation: str, resp: requests.Response) -> AuthError:
    """A 401/403 that a fresh access token did not cure, saying what it most likely is."""
    status = resp.status_code
    code, message = _error_body(resp)
    if status == 403:
        likely = (
            "refused again with a freshly exchanged access token, so not an expired token: the application "
            "likely lacks the 'Business Purchase Reconciliation' role, or the account has not authorized it"
        )
    else:
        likely = (
            "refused again with a freshly exchanged access token: the application's authorization was likely "
            "revoked, or the refresh token belongs to another region's endpoint"
        )
    return AuthError(operation, status, code, f"{message} ({likely})" if message else likely)


def _api_error(operation: str, resp: requests.Response, retry_after: float | None = None) -> ApiError:
    status = resp.status_code
    code, message = _error_body(resp)
    if status == 429:
        return ThrottledError(operation, status, code, message, retry_after)
    if status in (401, 403):
        return AuthError(operation, status, code, message)
    if status == 404:
        return NotFoundError(operation, status, code, message)
    if status in _BAD_REQUEST_STATUSES or 400 <= status < 500:
        return BadRequestError(operation, status, code, message)
    if status >= 500:
        return ServerError(operation, status, code, message)
    return ApiError(operation, status, code, message or "unexpected answer")


def _read_capped(resp: requests.Response, max_bytes: int) -> bytes:
    declared = resp.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise DocumentError(f"document is {int(declared)} bytes, more than the limit of {max_bytes}")
    data = bytearray()
    try:
        while True:
            # decode_content=False: the bytes as served; Content-Encoding: gzip is NOT undone here,
            # or a gzip-labelled gzip would be unpacked twice.
            chunk = resp.raw.read(_DOWNLOAD_CHUNK, decode_content=False)
            if not chunk:
                break
            data += chunk
            if len(data) > max_bytes:
                raise DocumentError(f"document is larger than the limit of {max_bytes} bytes")
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _RetryableRead(f"download broke off: {type(exc).__name__}") from None
    if not data:
        raise DocumentError("document is empty")
    return bytes(data)
