"""The emulator's WSGI app: LWA, Reconciliation and Document (Reports) APIs, presigned downloads.

Fault profiles (``faults``) hook in at three places: ``guard`` (delays, revoked tokens, extra 429s,
5xx), ``after_request`` (missing fields, cut-off JSON, the decision to drop the connection) and
``_DropConnections`` (closes the socket instead of answering).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import random
import secrets
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from .config import EmulatorConfig
from .dataset import Dataset, Document, Json, iso_millis
from .faults import API_OPERATIONS, FaultInjector
from .payments import PaymentBook
from .pdfs import PdfCache, pack_broken, pack_report, zip_bomb
from .ratelimit import RateLimiter
from .report_list import QueryError, ReportQuery, parse_query, token_alone

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

API_VERSION_RECON = "/reconciliation/2021-01-08"
API_VERSION_REPORTS = "/reports/2021-09-30"
LWA_PATH = "/auth/o2/token"
REPORT_TYPE = "GET_AB_INVOICE_PDF"
PAGE_SIZE = 10
MAX_LINE_ITEMS = 25
MAX_PAYMENT_INVOICES = 25  # GetBatchInvoicePaymentDetailsRequest.invoiceIds: 1 to 25 ids of 1 to 255 characters
MAX_INVOICE_ID_LENGTH = 255
TOKEN_LIFETIME_S = 3600.0
URL_LIFETIME_S = 300.0
DOCUMENT_TYPES = ("Invoice", "Credits")
INVOICE_TYPES = ("PBI_INVOICE",)

IN_QUEUE, IN_PROGRESS, DONE, CANCELLED, FATAL = "IN_QUEUE", "IN_PROGRESS", "DONE", "CANCELLED", "FATAL"
RESET_FLAG = "abrecon.reset"
_SERVER_ERRORS = {
    500: ("InternalFailure", "We encountered an internal error. Please try again."),
    503: ("ServiceUnavailable", "Service temporarily unavailable. Please try again."),
    504: ("GatewayTimeout", "The server did not answer in time. Please try again."),
}


@dataclass(frozen=True)
class Credentials:
    """The LWA client and refresh token the emulator accepts."""

    client_id: str
    client_secret: str
    refresh_token: str

    @classmethod
    def for_seed(cls, seed: int) -> Credentials:
        """Deterministic, realistic-looking credentials."""
        rng = random.Random(f"abrecon-emulator/credentials/{seed}")  # noqa: S311 - fake, deterministic
        hexa = "0123456789abcdef"
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        return cls(
            client_id="amzn1.application-oa2-client." + "".join(rng.choice(hexa) for _ in range(32)),
            client_secret="amzn1.oa2-cs.v1." + "".join(rng.choice(hexa) for _ in range(64)),
            refresh_token="Atzr|" + "".join(rng.choice(alphabet) for _ in range(300)),
        )

    def as_dict(self) -> dict[str, str]:
        """The secret's JSON keys: client_id, client_secret, refresh_token."""
        return {"client_id": self.client_id, "client_secret": self.client_secret, "refresh_token": self.refresh_token}


@dataclass
class ReportRecord:
    """One createReport request and its scripted lifecycle."""

    report_id: str
    marketplace_ids: list[str]
    options: dict[str, str]
    documents: list[Document]
    created: datetime
    created_mono: float
    queue_s: float
    latency_s: float
    document_id: str | None = None
    forced: str | None = None  # fault injection: FATAL, CANCELLED, or IN_PROGRESS forever
    # False when the report was created but its createReport answer never reached the caller intact
    # (an injected 5xx after processing, a cut-off body, a dropped connection): the caller cannot know its id.
    answered: bool = True
    polled: bool = False  # someone asked getReport for it (a lost answer's report found again, for the audit)
    aged: bool = False  # past Amazon's retention (fault injection): getReport answers 404, getReports omits it

    def status(self, now_mono: float) -> str:
        """IN_QUEUE, then IN_PROGRESS, then DONE (or CANCELLED when there is no data, or the forced end)."""
        elapsed = now_mono - self.created_mono
        if elapsed < self.queue_s:
            return IN_QUEUE
        if elapsed < self.latency_s or self.forced == IN_PROGRESS:
            return IN_PROGRESS
        if self.forced is not None:
            return self.forced
        return DONE if self.documents else CANCELLED

    def as_json(self, now_mono: float, *, options: bool = True) -> Json:
        """The model's Report object; ``options``: with reportOptions echoed back (Amazon's tutorial shows them)."""
        status = self.status(now_mono)
        body: Json = {
            "reportId": self.report_id,
            "reportType": REPORT_TYPE,
            "marketplaceIds": list(self.marketplace_ids),
            "createdTime": iso_millis(self.created),
            "processingStatus": status,
        }
        if options:
            body["reportOptions"] = dict(self.options)
        if status != IN_QUEUE:
            body["processingStartTime"] = iso_millis(self.created + timedelta(seconds=self.queue_s))
        if status in (DONE, CANCELLED, FATAL):
            body["processingEndTime"] = iso_millis(self.created + timedelta(seconds=self.latency_s))
        if status == DONE and self.document_id is not None:
            body["reportDocumentId"] = self.document_id
        return body


@dataclass(frozen=True)
class Presigned:
    """One issued download URL."""

    report_id: str
    expires: float


@dataclass
class ServerState:
    """Everything the app mutates, behind one lock."""

    config: EmulatorConfig
    dataset: Dataset
    pdfs: PdfCache
    credentials: Credentials
    limiter: RateLimiter
    lock: threading.Lock = field(default_factory=threading.Lock)
    access_tokens: dict[str, float] = field(default_factory=dict)
    issued_tokens: list[str] = field(default_factory=list)  # every access token ever issued (log scans)
    pages: dict[str, tuple[datetime, datetime, int]] = field(default_factory=dict)
    report_pages: dict[str, tuple[ReportQuery, int]] = field(default_factory=dict)  # getReports' nextTokens
    reports: dict[str, ReportRecord] = field(default_factory=dict)
    report_of_document: dict[str, str] = field(default_factory=dict)
    presigned: dict[str, Presigned] = field(default_factory=dict)
    packed: dict[str, bytes] = field(default_factory=dict)
    url_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    faults: FaultInjector | None = None
    # Operations refused with this status whatever the token (Emulator.refuse: an app without the role, ...).
    refusals: dict[str, int] = field(default_factory=dict)
    rng: random.Random = field(init=False)
    payments: PaymentBook = field(init=False)
    report_counter: int = 0
    # Every transaction line item getTransactions answered with: (monotonic time, its identity).
    served: list[tuple[float, tuple[str, str, str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"abrecon-emulator/server/{self.config.seed}")  # noqa: S311 - not security
        self.payments = PaymentBook(self.config.seed, self.dataset.documents, self.config.window_end)
        if self.faults is None:
            config = self.config
            self.faults = FaultInjector(config.faults, config.seed, self.dataset.invoice_numbers(), config.speed)
            unshipped = self.dataset.unshipped_line_items()
            if unshipped:
                self.faults.record("shipment-id-missing", unshipped)

    def record_served(self, transactions: Iterable[Json]) -> None:
        """Note the transaction line items of an answer: (transactionId, orderId, orderLineItemId, shipmentId)."""
        now = time.monotonic()
        with self.lock:
            self.served += [
                (
                    now,
                    (
                        str(t.get("transactionId") or ""),
                        str(line.get("orderId") or ""),
                        str(line.get("orderLineItemId") or ""),
                        str(line.get("shipmentId") or ""),
                    ),
                )
                for t in transactions
                for line in t.get("transactionLineItems", [])
            ]

    @property
    def injector(self) -> FaultInjector:
        """The fault injector (always set after construction)."""
        assert self.faults is not None
        return self.faults

    def age_reports(self) -> int:
        """Age every report made so far past Amazon's retention (fault injection); returns how many."""
        with self.lock:
            for record in self.reports.values():
                record.aged = True
            return len(self.reports)

    def expire_access_tokens(self) -> None:
        """Make every issued access token invalid (fault injection)."""
        with self.lock:
            self.access_tokens.clear()


def _error(status: int, code: str, message: str, details: str | None = None) -> Response:
    error: dict[str, str] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return _json({"errors": [error]}, status)


def _server_error(status: int) -> Response:
    code, message = _SERVER_ERRORS[status]
    return _error(status, code, message)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _parse_date(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _s3_error(code: str, message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{secrets.token_hex(8).upper()}</RequestId>"
        f"<HostId>{secrets.token_urlsafe(48)}</HostId></Error>"
    )
    return Response(body, status=403, mimetype="application/xml")


class _DropConnections:
    """WSGI middleware: a request flagged with RESET_FLAG gets no answer, only a closed connection."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        captured: list[tuple[str, list[tuple[str, str]], Any]] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.append((status, headers, exc_info))
            return _no_write

        body = self.app(environ, capture)
        if not environ.get(RESET_FLAG):
            status, headers, exc_info = captured[-1]
            start_response(status, headers, exc_info)
            return body
        close = getattr(body, "close", None)
        if close is not None:
            close()
        sock = environ.get("werkzeug.socket")
        if isinstance(sock, socket.socket):
            with suppress(OSError):
                # Linger 0: the close that follows sends a reset instead of a graceful FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
        # werkzeug treats ConnectionError as a dropped connection: nothing is written, nothing logged.
        raise ConnectionResetError("injected connection reset")


def _no_write(data: bytes) -> None:
    raise RuntimeError("the emulator's views return their bodies")


def create_app(state: ServerState) -> Flask:
    """Build the Flask app serving ``state``."""
    app = Flask("abrecon_sandbox.emulator")
    app.wsgi_app = _DropConnections(app.wsgi_app)  # type: ignore[method-assign]
    config, dataset, limiter, faults = state.config, state.dataset, state.limiter, state.injector

    def delay(key: str) -> None:
        seconds = faults.delay_seconds(key)
        if seconds:
            time.sleep(seconds)

    def guard(operation: str) -> Response | None:
        """Count the call, inject per-call faults, check the access token, then the rate limit."""
        limiter.count_call(operation)
        key = faults.begin(operation)
        request.environ["abrecon.operation"] = operation
        request.environ["abrecon.fault_key"] = key
        delay(key)
        token = request.headers.get("x-amz-access-token", "")
        with state.lock:
            expiry = state.access_tokens.get(token)
        if not token:
            return _error(401, "Unauthorized", "Access to requested resource is denied.", "Missing access token.")
        revoked = expiry is not None and faults.revoke_now(token)
        if revoked:
            with state.lock:
                state.access_tokens.pop(token, None)
        if expiry is None or expiry <= time.monotonic() or revoked:
            return _error(
                401,
                "Unauthorized",
                "Access to requested resource is denied.",
                "The access token you provided is revoked, malformed or invalid.",
            )
        with state.lock:
            refused_with = state.refusals.get(operation)
        if refused_with is not None:
            return _error(refused_with, "Unauthorized", "Access to requested resource is denied.")
        if faults.expired_early(token):  # the models document 403 for "... Expired Token ..."
            return _error(403, "Unauthorized", "Access to requested resource is denied.", "Expired Token")
        if faults.throttled(key):
            limiter.count_throttled(operation)
            return _throttled(1.0)
        status = faults.server_error(key)
        if status is not None:
            # Half of createReport's errors come after the report was made: a blind retry duplicates it.
            if operation != "createReport" or not faults.error_after_processing(key):
                return _server_error(status)
            request.environ["abrecon.fail_after"] = status
        admitted, wait_s = limiter.admit(operation)
        if not admitted:
            return _throttled(wait_s)
        lost = faults.lost_answer(key)
        if lost == "server-error-after":
            request.environ["abrecon.fail_after"] = 500
        request.environ["abrecon.lost"] = lost
        return None

    def _throttled(wait_s: float) -> Response:
        response = _error(429, "QuotaExceeded", "You exceeded your quota for the requested resource.")
        if config.retry_after:
            response.headers["Retry-After"] = str(max(1, round(wait_s + 0.5)))
        return response

    @app.after_request
    def headers(response: Response) -> Response:
        environ = request.environ
        ok = 200 <= response.status_code < 300
        fail_after = environ.get("abrecon.fail_after")
        if isinstance(fail_after, int) and ok:
            response, ok = _server_error(fail_after), False
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        operation = environ.get("abrecon.operation")
        if operation in limiter.plans and ok:
            response.headers["x-amzn-RateLimit-Limit"] = limiter.plans[operation].header
        key = environ.get("abrecon.fault_key")
        cut = False
        if isinstance(key, str) and operation in API_OPERATIONS:
            if ok and response.mimetype == "application/json":
                data = response.get_data()
                if faults.strips_fields:
                    data = json.dumps(faults.strip_fields(key, json.loads(data))).encode()
                cut = len(truncated := faults.truncate(key, data)) < len(data)
                if environ.get("abrecon.lost") == "cut-off":
                    truncated, cut = data[: len(data) // 2], True
                response.set_data(truncated)
            if faults.connection_reset(key) or environ.get("abrecon.lost") == "reset":
                environ[RESET_FLAG] = True
        created = environ.get("abrecon.report_id")
        if isinstance(created, str) and (not ok or cut or environ.get(RESET_FLAG)):
            with state.lock:
                state.reports[created].answered = False
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        name = (exc.name or "Error").replace(" ", "")
        return _error(code, name, exc.description or name)

    # ----- Login with Amazon -----------------------------------------------------------

    @app.post(LWA_PATH)
    def lwa_token() -> Response:
        limiter.count_call("lwaToken")
        body = request.get_json(silent=True) if not request.form else None
        form: Any = request.form if request.form else (body if isinstance(body, dict) else {})
        grant_type = str(form.get("grant_type", ""))
        if not grant_type or not form.get("client_id") or not form.get("client_secret"):
            return _json({"error": "invalid_request", "error_description": "Missing required parameter."}, 400)
        if grant_type != "refresh_token":
            return _json(
                {"error": "unsupported_grant_type", "error_description": f"Unsupported grant_type: {grant_type}"}, 400
            )
        creds = state.credentials
        if not (
            _same(str(form.get("client_id")), creds.client_id)
            and _same(str(form.get("client_secret")), creds.client_secret)
        ):
            return _json({"error": "invalid_client", "error_description": "Client authentication failed"}, 400)
        if faults.invalid_grant() or not _same(str(form.get("refresh_token", "")), creds.refresh_token):
            return _json(
                {
                    "error": "invalid_grant",
                    "error_description": "The request has an invalid grant parameter : refresh_token",
                },
                400,
            )
        access_token = "Atza|" + secrets.token_urlsafe(96)
        with state.lock:
            state.access_tokens[access_token] = time.monotonic() + TOKEN_LIFETIME_S
            state.issued_tokens.append(access_token)
        faults.token_issued(access_token)
        return _json(
            {
                "access_token": access_token,
                "refresh_token": creds.refresh_token,
                "token_type": "bearer",  # nosec B105 # the OAuth token type, not a password
                "expires_in": int(TOKEN_LIFETIME_S),
            }
        )

    # ----- Reconciliation API ----------------------------------------------------------

    @app.get(f"{API_VERSION_RECON}/transactions")
    def get_transactions() -> Response:
        refused = guard("getTransactions")
        if refused is not None:
            return refused
        args = request.args
        dates: list[datetime] = []
        for name in ("feedStartDate", "feedEndDate"):
            raw = args.get(name)
            if raw is None:
                continue
            parsed = _parse_date(raw)
            if parsed is None:
                return _error(
                    400, "INVALID_REQUEST_PARAMETER", f"Input date [{raw}] is not in the expected ISO8601 format."
                )
            dates.append(parsed)
        page_token = args.get("nextPageToken")
        if page_token:
            with state.lock:
                cursor = state.pages.get(page_token)
            if cursor is None:
                return _error(400, "INVALID_REQUEST_PARAMETER", "Invalid nextPageToken.")
            start, end, offset = cursor
        else:
            if len(dates) != 2:
                return _error(400, "INVALID_REQUEST_PARAMETER", "feedStartDate and feedEndDate are required.")
            start, end = dates
            offset = 0
            if start > end:
                return _error(400, "INVALID_REQUEST_PARAMETER", "feedStartDate must be before feedEndDate.")
        matching = dataset.transactions_between(start, end)
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
        return _json(body)

    @app.post(f"{API_VERSION_RECON}/invoices")
    def get_invoice_details() -> Response:
        refused = guard("getInvoiceDetailsByOrderLineItems")
        if refused is not None:
            return refused
        payload = request.get_json(force=True, silent=True)
        items = payload.get("orderLineItems") if isinstance(payload, dict) else None
        if not isinstance(items, list) or not items:
            return _error(400, "InvalidInput", "Invalid input", "orderLineItems must be a non-empty array.")
        if len(items) > MAX_LINE_ITEMS:
            return _error(
                400,
                "InvalidInput",
                "Invalid input",
                f"The maximum number of order line items is {MAX_LINE_ITEMS}; got {len(items)}.",
            )
        keys: list[tuple[str, str, str]] = []
        for item in items:
            fields = [item.get(n) if isinstance(item, dict) else None for n in _TRIPLE]
            if not all(isinstance(f, str) and f for f in fields):
                return _error(
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
        if len(answer) > 1 and [a["orderLineItem"] for a in answer] == [
            dict(zip(_TRIPLE, k, strict=True)) for k in found
        ]:
            answer.append(answer.pop(0))  # never in request order
        return _json({"invoiceDetailsByOrderLineItems": answer})

    @app.post(f"{API_VERSION_RECON}/invoices/batch/paymentDetails")
    def get_payment_details() -> Response:
        refused = guard("getBatchInvoicePaymentDetails")
        if refused is not None:
            return refused
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
            return _error(400, "INVALID_REQUEST_PARAMETER", "The request contains invalid parameters.", problem)
        now = datetime.now(UTC)
        results = [state.payments.result(str(i), now) for i in dict.fromkeys(ids)]
        with state.lock:
            state.rng.shuffle(results)  # the model promises no order
        return _json({"invoicePaymentDetailsResults": results})

    # ----- Document (Reports) API ------------------------------------------------------

    @app.post(f"{API_VERSION_REPORTS}/reports")
    def create_report() -> Response:
        refused = guard("createReport")
        if refused is not None:
            return refused
        payload = request.get_json(force=True, silent=True)
        if not isinstance(payload, dict):
            return _error(400, "InvalidInput", "Invalid input", "The body must be a JSON object.")
        if payload.get("reportType") != REPORT_TYPE:
            return _error(
                400,
                "InvalidInput",
                "Invalid input",
                f"reportType must be {REPORT_TYPE}; got {payload.get('reportType')!r}.",
            )
        marketplaces = payload.get("marketplaceIds")
        if (
            not isinstance(marketplaces, list)
            or not 1 <= len(marketplaces) <= 25
            or not all(isinstance(m, str) for m in marketplaces)
        ):
            return _error(400, "InvalidInput", "Invalid input", "marketplaceIds must be an array of 1 to 25 strings.")
        unknown = [m for m in marketplaces if m not in config.profile.marketplace_ids]
        if unknown:
            return _error(400, "InvalidInput", "Invalid input", f"Invalid marketplaceIds for this region: {unknown}.")
        options = payload.get("reportOptions")
        if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
            return _error(400, "InvalidInput", "Invalid input", "reportOptions must be a map of strings.")
        invoice_id = options.get("invoiceId")
        if not invoice_id:
            return _error(400, "InvalidInput", "Invalid input", "reportOptions.invoiceId is required.")
        document_type = options.get("documentType")
        invoice_type = options.get("invoiceType")
        if document_type is not None and invoice_type is not None:
            return _error(400, "InvalidInput", "Invalid input", "Provide either documentType or invoiceType, not both.")
        if document_type is not None and document_type not in DOCUMENT_TYPES:
            return _error(400, "InvalidInput", "Invalid input", f"Unsupported documentType {document_type!r}.")
        if invoice_type is not None and invoice_type not in INVOICE_TYPES:
            return _error(400, "InvalidInput", "Invalid input", f"Unsupported invoiceType {invoice_type!r}.")
        wanted = "Invoice" if invoice_type is not None else document_type
        documents = dataset.report_documents(invoice_id, wanted)
        forced = faults.report_outcome(invoice_id)
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
        return _json({"reportId": report_id}, 202)

    @app.get(f"{API_VERSION_REPORTS}/reports/<report_id>")
    def get_report(report_id: str) -> Response:
        refused = guard("getReport")
        if refused is not None:
            return refused
        now_mono = time.monotonic()
        with state.lock:
            record = state.reports.get(report_id)
            if record is None:
                return _error(400, "InvalidInput", "Invalid input", f"Unknown reportId {report_id}.")
            if record.aged:
                return _error(404, "NotFound", "Report not found", f"Report {report_id} is no longer available.")
            record.polled = True
            _assign_document(state, record, now_mono)
            return _json(record.as_json(now_mono))

    @app.get(f"{API_VERSION_REPORTS}/reports")
    def get_reports() -> Response:
        refused = guard("getReports")
        if refused is not None:
            return refused
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
            return _error(400, "InvalidInput", "Invalid input", str(exc))
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
            labelled = config.report_options_listed and not faults.rates.unlabelled_lists
            body: Json = {"reports": [r.as_json(now_mono, options=labelled) for r in page]}
            if offset + query.page_size < len(matching):
                next_token = secrets.token_urlsafe(48)
                state.report_pages[next_token] = (query, offset + query.page_size)
                body["nextToken"] = next_token
        return _json(body)

    @app.get(f"{API_VERSION_REPORTS}/documents/<document_id>")
    def get_report_document(document_id: str) -> Response:
        refused = guard("getReportDocument")
        if refused is not None:
            return refused
        with state.lock:
            report_id = state.report_of_document.get(document_id)
            record = state.reports.get(report_id) if report_id is not None else None
        if report_id is None or record is None:
            return _error(400, "InvalidInput", "Invalid input", f"Unknown reportDocumentId {document_id}.")
        expires = time.time() + URL_LIFETIME_S / config.speed
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
        return _json(body)

    @app.get("/downloads/<token>")
    def download(token: str) -> Response:
        limiter.count_call("downloadDocument")
        delay(faults.begin("downloadDocument"))
        args = request.args
        query = {"expires": args.get("expires", ""), "X-Amz-Security-Token": args.get("X-Amz-Security-Token", "")}
        with state.lock:
            issued = state.presigned.get(token)
        if issued is None:
            return _s3_error("AccessDenied", "Access Denied")
        if not _same(args.get("signature", ""), _sign(state.url_key, token, query)):
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

    return app


_TRIPLE = ("orderId", "orderLineItemId", "shipmentId")


def _assign_document(state: ServerState, record: ReportRecord, now_mono: float) -> None:
    """Give a report its document id the first time it is seen DONE (caller holds the lock)."""
    if record.status(now_mono) == DONE and record.document_id is None:
        record.document_id = "DOC-" + str(uuid.UUID(int=state.rng.getrandbits(128)))
        state.report_of_document[record.document_id] = record.report_id


def _sign(key: bytes, token: str, query: dict[str, str]) -> str:
    message = "\n".join([token, query["expires"], query["X-Amz-Security-Token"]]).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
