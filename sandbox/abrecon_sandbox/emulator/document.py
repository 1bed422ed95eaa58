"""The Document (Reports) API: createReport, getReport, getReports, getReportDocument, and the presigned
downloads its URLs point at."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, request

from .dataset import Json
from .guard import delay
from .pdfs import pack_broken, pack_report, zip_bomb
from .report_list import QueryError, parse_query, token_alone
from .state import DONE, REPORT_TYPE, Presigned, ReportRecord, ServerState
from .web import current_state, error_response, json_response, same_secret

API_VERSION_REPORTS = "/reports/2021-09-30"
URL_LIFETIME_S = 300.0
DOCUMENT_TYPES = ("Invoice", "Credits")
INVOICE_TYPES = ("PBI_INVOICE",)
MAX_MARKETPLACES = 25

document = Blueprint("document", __name__)


def _invalid(details: str) -> Response:
    return error_response(400, "InvalidInput", "Invalid input", details)


@document.post(f"{API_VERSION_REPORTS}/reports", endpoint="createReport")
def create_report() -> Response:
    """POST /reports {reportType, marketplaceIds, reportOptions: {invoiceId, documentType | invoiceType}}."""
    state = current_state()
    config = state.config
    payload = request.get_json(force=True, silent=True)
    problem = _report_request_problem(payload, config.profile.marketplace_ids)
    if problem is not None:
        return _invalid(problem)
    assert isinstance(payload, dict)  # checked by _report_request_problem
    marketplaces, options = payload["marketplaceIds"], payload["reportOptions"]
    invoice_id = options["invoiceId"]
    wanted = "Invoice" if options.get("invoiceType") is not None else options.get("documentType")
    documents = state.dataset.report_documents(invoice_id, wanted)
    forced = state.injector.report_outcome(invoice_id)
    now = datetime.now(UTC)
    low, high = config.report_latency_seconds
    with state.lock:
        state.report_counter += 1
        report_id = str(50_000_000_000 + config.seed * 1_000_000 + state.report_counter)
        latency = state.rng.uniform(low, high) / config.speed
        queue = latency * state.rng.uniform(0.1, 0.5)
        state.reports[report_id] = ReportRecord(
            report_id=report_id,
            marketplace_ids=[str(m) for m in marketplaces],
            options={str(k): str(v) for k, v in options.items()},
            documents=documents,
            created=now,
            created_mono=time.monotonic(),
            queue_s=queue,
            latency_s=latency,
            forced=forced,
        )
    request.environ["abrecon.report_id"] = report_id
    return json_response({"reportId": report_id}, 202)


def _report_request_problem(payload: Any, known_marketplaces: Any) -> str | None:
    """What is wrong with a createReport body, in the order Amazon checks it; None when nothing is."""
    if not isinstance(payload, dict):
        return "The body must be a JSON object."
    if payload.get("reportType") != REPORT_TYPE:
        return f"reportType must be {REPORT_TYPE}; got {payload.get('reportType')!r}."
    marketplaces = payload.get("marketplaceIds")
    if (
        not isinstance(marketplaces, list)
        or not 1 <= len(marketplaces) <= MAX_MARKETPLACES
        or not all(isinstance(m, str) for m in marketplaces)
    ):
        return "marketplaceIds must be an array of 1 to 25 strings."
    unknown = [m for m in marketplaces if m not in known_marketplaces]
    if unknown:
        return f"Invalid marketplaceIds for this region: {unknown}."
    options = payload.get("reportOptions")
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        return "reportOptions must be a map of strings."
    return _report_options_problem(options)


def _report_options_problem(options: dict[str, str]) -> str | None:
    if not options.get("invoiceId"):
        return "reportOptions.invoiceId is required."
    document_type = options.get("documentType")
    invoice_type = options.get("invoiceType")
    if document_type is not None and invoice_type is not None:
        return "Provide either documentType or invoiceType, not both."
    if document_type is not None and document_type not in DOCUMENT_TYPES:
        return f"Unsupported documentType {document_type!r}."
    if invoice_type is not None and invoice_type not in INVOICE_TYPES:
        return f"Unsupported invoiceType {invoice_type!r}."
    return None


@document.get(f"{API_VERSION_REPORTS}/reports/<report_id>", endpoint="getReport")
def get_report(report_id: str) -> Response:
    """GET /reports/{reportId}: the report's status, with its reportDocumentId once DONE."""
    state = current_state()
    now_mono = time.monotonic()
    with state.lock:
        record = state.reports.get(report_id)
        if record is None:
            return _invalid(f"Unknown reportId {report_id}.")
        if record.aged:
            return error_response(404, "NotFound", "Report not found", f"Report {report_id} is no longer available.")
        record.polled = True
        _assign_document(state, record, now_mono)
        return json_response(record.as_json(now_mono))


@document.get(f"{API_VERSION_REPORTS}/reports", endpoint="getReports")
def get_reports() -> Response:
    """GET /reports?reportTypes&processingStatuses&...: the reports made, newest first, paged by nextToken."""
    state = current_state()
    try:
        token = token_alone(request.args)
        if token is None:
            query, offset = parse_query(request.args, datetime.now(UTC)), 0
        else:
            with state.lock:
                cursor = state.report_pages.get(token)
            if cursor is None:
                raise QueryError("Invalid nextToken.")
            query, offset = cursor
    except QueryError as exc:
        return _invalid(str(exc))
    now_mono = time.monotonic()
    with state.lock:
        newest_first = sorted(state.reports.values(), key=lambda r: r.created_mono, reverse=True)
        matching = [
            r
            for r in newest_first
            if not r.aged and query.selects(REPORT_TYPE, r.status(now_mono), r.marketplace_ids, r.created)
        ]
        page = matching[offset : offset + query.page_size]
        for record in page:
            _assign_document(state, record, now_mono)
        labelled = state.config.report_options_listed and not state.injector.rates.unlabelled_lists
        body: Json = {"reports": [r.as_json(now_mono, options=labelled) for r in page]}
        if offset + query.page_size < len(matching):
            next_token = secrets.token_urlsafe(48)
            state.report_pages[next_token] = (query, offset + query.page_size)
            body["nextToken"] = next_token
    return json_response(body)


@document.get(f"{API_VERSION_REPORTS}/documents/<document_id>", endpoint="getReportDocument")
def get_report_document(document_id: str) -> Response:
    """GET /documents/{reportDocumentId}: a presigned URL to the report's ZIP (gzip-compressed)."""
    state = current_state()
    faults = state.injector
    with state.lock:
        report_id = state.report_of_document.get(document_id)
        record = state.reports.get(report_id) if report_id is not None else None
    if report_id is None or record is None:
        return _invalid(f"Unknown reportDocumentId {document_id}.")
    expires = time.time() + URL_LIFETIME_S / state.config.speed
    token = secrets.token_urlsafe(24)
    with state.lock:
        state.presigned[token] = Presigned(report_id, expires)
    # A long security token makes the URL exceed 512 characters, as real ones do.
    security = secrets.token_urlsafe(420)
    query = {"expires": str(math.ceil(expires)), "X-Amz-Security-Token": security}
    query["signature"] = _sign(state.url_key, token, query)
    url = f"{request.host_url.rstrip('/')}/downloads/{token}?{urlencode(query)}"
    body: Json = {"reportDocumentId": document_id, "url": url, "compressionAlgorithm": "GZIP"}
    if faults.document_fault(record.options.get("invoiceId", "")) == "mislabelled-compression":
        del body["compressionAlgorithm"]  # still gzip: only the label is missing
        faults.record("bad-document:mislabelled-compression")
    return json_response(body)


@document.get("/downloads/<token>", endpoint="downloadDocument")
def download(token: str) -> Response:
    """GET a presigned URL: the report's ZIP, or S3's XML error for a bad, expired or unknown URL."""
    state = current_state()
    faults = state.injector
    state.limiter.count_call("downloadDocument")
    delay(state, faults.begin("downloadDocument"))
    args = request.args
    query = {"expires": args.get("expires", ""), "X-Amz-Security-Token": args.get("X-Amz-Security-Token", "")}
    with state.lock:
        issued = state.presigned.get(token)
    if issued is None:
        return _s3_error("AccessDenied", "Access Denied")
    if not same_secret(args.get("signature", ""), _sign(state.url_key, token, query)):
        return _s3_error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    if time.time() >= issued.expires:
        return _s3_error("AccessDenied", "Request has expired")
    with state.lock:
        packed = state.packed.get(issued.report_id)
        record = state.reports[issued.report_id]
    if record.document_id is not None and faults.expire_first_download(record.document_id):
        with state.lock:  # this URL stays expired; a fresh one from getReportDocument works
            state.presigned[token] = Presigned(issued.report_id, 0.0)
        return _s3_error("AccessDenied", "Request has expired")
    if packed is None:
        packed = pack_report(state.pdfs.files(record.documents))
        with state.lock:
            state.packed[issued.report_id] = packed
    variant = faults.document_fault(record.options.get("invoiceId", ""))
    if variant is None or variant == "mislabelled-compression":
        return Response(packed, status=200, mimetype="application/octet-stream")
    faults.record(f"bad-document:{variant}")
    if variant == "content-encoding-gzip":
        # The stored object is gzip; the header invites clients to decompress it a layer too early.
        response = Response(packed, status=200, mimetype="application/octet-stream")
        response.headers["Content-Encoding"] = "gzip"
        return response
    broken = zip_bomb() if variant == "zip-bomb" else pack_broken(variant, state.pdfs.files(record.documents))
    return Response(broken, status=200, mimetype="application/octet-stream")


def _s3_error(code: str, message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{secrets.token_hex(8).upper()}</RequestId>"
        f"<HostId>{secrets.token_urlsafe(48)}</HostId></Error>"
    )
    return Response(body, status=403, mimetype="application/xml")


def _assign_document(state: ServerState, record: ReportRecord, now_mono: float) -> None:
    """Give a report its document id the first time it is seen DONE (caller holds the lock)."""
    if record.status(now_mono) == DONE and record.document_id is None:
        record.document_id = "DOC-" + str(uuid.UUID(int=state.rng.getrandbits(128)))
        state.report_of_document[record.document_id] = record.report_id


def _sign(key: bytes, token: str, query: dict[str, str]) -> str:
    message = "\n".join([token, query["expires"], query["X-Amz-Security-Token"]]).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
