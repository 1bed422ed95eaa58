"""What the emulator's app mutates, behind one lock: tokens, reports, page cursors, download URLs; and the LWA
credentials it accepts."""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .config import EmulatorConfig
from .dataset import Dataset, Document, Json, iso_millis
from .faults import FaultInjector
from .payments import PaymentBook
from .pdfs import PdfCache
from .ratelimit import RateLimiter
from .report_list import ReportQuery

REPORT_TYPE = "GET_AB_INVOICE_PDF"
IN_QUEUE, IN_PROGRESS, DONE, CANCELLED, FATAL = "IN_QUEUE", "IN_PROGRESS", "DONE", "CANCELLED", "FATAL"


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
