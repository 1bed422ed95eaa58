"""Fault profiles: seeded, thread-safe injection of the failures Amazon's APIs are known for.

Every decision is a hash of (seed, kind, key), the key being an invoice number, a report
document id or "<operation>#<n>" for the n-th call of an operation. So a run is reproducible for
a seed however threads interleave across operations, and nothing is drawn from a shared stream.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

FAULT_PROFILES: dict[str, str] = {
    "none": "No injected faults.",
    "throttle-storm": "About 30% of API calls answer 429 on top of the published rate limits.",
    "server-errors": "About 20% of API calls answer 500, 503 or 504 (half of createReport's after creating the "
    "report).",
    "connection-resets": "About 10% of API calls are processed, then the connection is closed without an answer.",
    "slow": "Every API answer and download is delayed 1-3 s (divided by speed).",
    "fatal-reports": "About 20% of invoices: the first report ends FATAL and a later one succeeds; a few are "
    "FATAL every time.",
    "cancelled-reports": "About 15% of invoices: every report ends CANCELLED.",
    "stuck-reports": "About 15% of invoices: every report stays IN_PROGRESS forever.",
    "expired-urls": "The first download of every document answers 403 'Request has expired'; a fresh URL works.",
    "bad-documents": "Some invoices' downloads are broken: mislabelled, Content-Encoding gzip, truncated gzip, "
    "corrupt zip, zip bomb, non-PDF entry, path-traversal entry name.",
    "malformed-json": "About 10% of successful JSON answers are cut off mid-body, status unchanged.",
    "missing-fields": "Answers lose optional and some model-required fields, or carry them as null, as Amazon's "
    "examples do (never the identifiers).",
    "token-revoked": "The first access token is revoked after a few calls (401); a fresh token works.",
    "invalid-grant": "LWA answers invalid_grant on every token exchange.",
    "lost-report-answers": "About 30% of createReport calls make the report, then lose the answer (500, a cut-off "
    "body or a dropped connection); getReports echoes reportOptions, so each lost report can be identified.",
    "lost-report-answers-unlabelled": "The 3rd createReport call, and every 20th after it, loses its answer as in "
    "lost-report-answers, and getReports answers the model's Report without reportOptions: a lost report is "
    "identified by its creation time (two lost in one burst could not be told apart).",
    "aged-reports": "About 30% of invoices: the first report stays IN_PROGRESS; before the re-run every report "
    "made so far ages past Amazon's retention (getReport 404), so the re-run must ask for a new one.",
    "missing-shipment-ids": "About 30% of shipments have not shipped yet: their line items are listed without "
    "shipmentId and no invoice exists for them; they ship before the re-run, which lists the same transactions "
    "with the shipment.",
    "repeated-transactions": "Pages of 4 transactions, and about half of the later pages start again with the "
    "previous page's last one or two transactions (the feed changed while it was paged).",
    "token-expiry-403": "Every access token expires after one to three calls, long before its declared hour, "
    "answered 403 'Expired Token' as Amazon's models document.",
    "chaos": "A seeded mix of the transient faults (429, 5xx, resets, slow, malformed JSON, expired URLs, "
    "one-off FATAL, a revoked token) at lower rates.",
}

# Variants of the bad-documents profile, in the order they are handed out.
DOCUMENT_FAULTS = (
    "mislabelled-compression",
    "content-encoding-gzip",
    "truncated-gzip",
    "corrupt-zip",
    "zip-bomb",
    "not-a-pdf",
    "path-traversal",
)
# A pipeline that unpacks by magic bytes, ignores Content-Encoding and sanitises entry names
# still stores these; the others can only end as a failed invoice.
RECOVERABLE_DOCUMENT_FAULTS = frozenset({"mislabelled-compression", "content-encoding-gzip", "path-traversal"})

API_OPERATIONS = frozenset(
    {
        "getTransactions",
        "getInvoiceDetailsByOrderLineItems",
        "createReport",
        "getReport",
        "getReports",
        "getReportDocument",
        "getBatchInvoicePaymentDetails",
    }
)

# missing-fields never drops these: the brief's identifiers plus what no answer can be used without.
PROTECTED_FIELDS = frozenset(
    {
        "orderId",
        "orderLineItemId",
        "shipmentId",
        "invoiceNumber",
        "reportId",
        "processingStatus",
        "transactionId",
        "invoiceDate",
        "reportDocumentId",
        "url",
        "nextPageToken",
        "nextToken",
        "reports",
        "errors",
        "transactions",
        "transactionLineItems",
        "invoiceDetailsByOrderLineItems",
        "orderLineItem",
        "invoiceDetails",
        "invoicePaymentDetailsResults",
        "invoiceId",
        "resultType",
    }
)
# Fields Amazon's JP example sends as null: missing-fields sometimes nulls them instead of dropping.
NULLED_FIELDS = frozenset(
    {
        "associatedInvoiceNumber",
        "associatedInvoiceDate",
        "consolidatedInvoiceDetails",
        "discount",
        "companyName",
        "addressLine2",
        "addressLine3",
        "city",
        "registrationNumber",
    }
)

_SERVER_STATUSES = (500, 503, 504)


@dataclass(frozen=True)
class FaultRates:
    """How often each fault happens; shares are probabilities in [0, 1]."""

    throttle: float = 0.0  # API calls answered 429
    server_error: float = 0.0  # API calls answered 500/503/504
    reset: float = 0.0  # API calls processed, then dropped without an answer
    slow: float = 0.0  # answers delayed 1-3 s / speed
    malformed: float = 0.0  # successful JSON answers cut off
    missing_fields: float = 0.0  # chance per droppable field
    expired_url: float = 0.0  # documents whose first download answers expired
    fatal: float = 0.0  # invoices whose first report ends FATAL
    fatal_permanent: float = 0.0  # of those, the ones whose every report ends FATAL
    cancelled: float = 0.0  # invoices whose reports end CANCELLED
    stuck: float = 0.0  # invoices whose reports stay IN_PROGRESS
    bad_documents: float = 0.0  # invoices with a broken download
    token_revoked: bool = False
    invalid_grant: bool = False
    lost_answers: float = 0.0  # createReport calls that make the report and lose the answer
    lost_every: int = 0  # or: the 3rd createReport call and every lost_every-th after it
    unlabelled_lists: bool = False  # getReports without reportOptions (the model's Report)
    stuck_once: float = 0.0  # invoices whose first report stays IN_PROGRESS (later ones finish)
    unshipped: float = 0.0  # shipments not shipped yet: line items without shipmentId, no invoice
    repeated_pages: float = 0.0  # later pages that repeat the previous page's last transactions
    token_expiry_403: bool = False  # every access token refused with 403 after a few calls


_RATES: dict[str, FaultRates] = {
    "none": FaultRates(),
    "throttle-storm": FaultRates(throttle=0.3),
    "server-errors": FaultRates(server_error=0.2),
    "connection-resets": FaultRates(reset=0.1),
    "slow": FaultRates(slow=1.0),
    "fatal-reports": FaultRates(fatal=0.2, fatal_permanent=0.25),
    "cancelled-reports": FaultRates(cancelled=0.15),
    "stuck-reports": FaultRates(stuck=0.15),
    "expired-urls": FaultRates(expired_url=1.0),
    "bad-documents": FaultRates(bad_documents=0.2),
    "malformed-json": FaultRates(malformed=0.1),
    "missing-fields": FaultRates(missing_fields=0.2),
    "token-revoked": FaultRates(token_revoked=True),
    "invalid-grant": FaultRates(invalid_grant=True),
    "lost-report-answers": FaultRates(lost_answers=0.3),
    "lost-report-answers-unlabelled": FaultRates(lost_every=20, unlabelled_lists=True),
    "aged-reports": FaultRates(stuck_once=0.3),
    "missing-shipment-ids": FaultRates(unshipped=0.3),
    "repeated-transactions": FaultRates(repeated_pages=0.5),
    "token-expiry-403": FaultRates(token_expiry_403=True),
}
LOST_ANSWER_KINDS = ("server-error-after", "cut-off", "reset")
PAGE_SIZE_WITH_REPEATS = 4  # small pages, so a CI-sized window has several of them to repeat across


def fault_rates(profile: str, seed: int) -> FaultRates:
    """The rates of a profile; chaos scales its base rates by seeded factors in [0.5, 1.5]."""
    if profile != "chaos":
        return _RATES[profile]
    rng = random.Random(f"abrecon-emulator/chaos/{seed}")  # noqa: S311 - test data

    def scaled(base: float) -> float:
        return round(base * rng.uniform(0.5, 1.5), 4)

    return FaultRates(
        throttle=scaled(0.1),
        server_error=scaled(0.05),
        reset=scaled(0.03),
        slow=scaled(0.2),
        malformed=scaled(0.03),
        expired_url=scaled(0.3),
        fatal=scaled(0.1),
        token_revoked=True,
    )


def _holds_protected(name: str, value: Any) -> bool:
    """True for a protected field, or one whose value holds a protected field (apportionment[]).

    A Money's ``amount`` text stays too: Amazon drops whole amounts, never the number inside one.
    """
    if name in PROTECTED_FIELDS or (name == "amount" and isinstance(value, str)):
        return True
    if isinstance(value, dict):
        return any(_holds_protected(k, v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_protected("", v) for v in value)
    return False


class FaultInjector:
    """Decides, records and reports the faults of one profile; every method is thread-safe."""

    def __init__(self, profile: str, seed: int, invoice_numbers: Iterable[str], speed: float = 1.0) -> None:
        if profile not in FAULT_PROFILES:
            raise ValueError(f"unknown fault profile {profile!r}")
        self.profile = profile
        self.rates = fault_rates(profile, seed)
        self._seed = seed
        self._speed = speed
        self._lock = threading.Lock()
        self._injected: Counter[str] = Counter()
        self._calls: Counter[str] = Counter()
        self._reports_of: Counter[str] = Counter()
        self._downloaded: set[str] = set()
        self._victim: str | None = None
        self._victim_calls_left = 0
        self._token_calls: Counter[str] = Counter()
        invoices = sorted(invoice_numbers)
        self._report_plan = self._plan_reports(invoices)
        self._document_plan = self._plan_documents(invoices)

    # ----- seeded decisions -----------------------------------------------------------

    def _unit(self, kind: str, key: str) -> float:
        """A uniform number in [0, 1) fixed by (seed, kind, key)."""
        digest = hashlib.blake2b(f"{self._seed}/{kind}/{key}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def _hit(self, kind: str, key: str, share: float) -> bool:
        return share > 0 and self._unit(kind, key) < share

    def _pick(self, kind: str, invoices: list[str], share: float) -> list[str]:
        """Invoices hit at ``share``; at least one when share > 0, so a profile always shows."""
        if share <= 0 or not invoices:
            return []
        chosen = [n for n in invoices if self._hit(kind, n, share)]
        return chosen or [min(invoices, key=lambda n: self._unit(kind, n))]

    def _plan_reports(self, invoices: list[str]) -> dict[str, str]:
        plan: dict[str, str] = {}
        fatal = self._pick("fatal", invoices, self.rates.fatal)
        permanent = [n for n in fatal if self._hit("fatal-permanent", n, self.rates.fatal_permanent)]
        if self.rates.fatal_permanent > 0 and not permanent and len(fatal) >= 2:
            permanent = [min(fatal, key=lambda n: self._unit("fatal-permanent", n))]
        if permanent and len(permanent) == len(fatal):
            permanent = permanent[1:]  # keep at least one FATAL that a retry fixes
        for number in fatal:
            plan[number] = "fatal" if number in permanent else "fatal-once"
        for number in self._pick("cancelled", invoices, self.rates.cancelled):
            plan[number] = "cancelled"
        for number in self._pick("stuck", invoices, self.rates.stuck):
            plan[number] = "stuck"
        for number in self._pick("stuck-once", invoices, self.rates.stuck_once):
            plan[number] = "stuck-once"
        return plan

    def _plan_documents(self, invoices: list[str]) -> dict[str, str]:
        if self.rates.bad_documents <= 0 or not invoices:
            return {}
        ordered = sorted(invoices, key=lambda n: self._unit("bad-document", n))
        count = min(len(ordered), max(len(DOCUMENT_FAULTS), round(self.rates.bad_documents * len(ordered))))
        return {n: DOCUMENT_FAULTS[i % len(DOCUMENT_FAULTS)] for i, n in enumerate(ordered[:count])}

    # ----- bookkeeping ----------------------------------------------------------------

    def record(self, kind: str, count: int = 1) -> None:
        """Count ``count`` injected faults of ``kind``."""
        with self._lock:
            self._injected[kind] += count

    def injected(self) -> dict[str, int]:
        """{fault kind: how many were injected so far}."""
        with self._lock:
            return dict(self._injected)

    def affected_invoices(self) -> dict[str, str]:
        """Invoices whose outcome the profile changes for good: invoiceNumber -> fault kind.

        Kinds: report-fatal, report-cancelled, report-stuck, bad-document:<variant>
        (see ``RECOVERABLE_DOCUMENT_FAULTS`` for variants a careful pipeline still stores).
        """
        passing = ("fatal-once", "stuck-once")
        affected = {n: f"report-{plan}" for n, plan in self._report_plan.items() if plan not in passing}
        affected.update({n: f"bad-document:{variant}" for n, variant in self._document_plan.items()})
        return dict(sorted(affected.items()))

    def begin(self, operation: str) -> str:
        """The key of this call for per-call decisions: "<operation>#<n>"."""
        with self._lock:
            self._calls[operation] += 1
            return f"{operation}#{self._calls[operation]}"

    # ----- per-call faults ------------------------------------------------------------

    def delay_seconds(self, key: str) -> float:
        """How long to hold this answer back (slow), 0.0 for no delay."""
        if not self._hit("slow", key, self.rates.slow):
            return 0.0
        self.record("slow")
        return (1.0 + 2.0 * self._unit("slow-seconds", key)) / self._speed

    def throttled(self, key: str) -> bool:
        """Answer this API call 429 although the bucket has tokens."""
        if not self._hit("throttle", key, self.rates.throttle):
            return False
        self.record("throttle-429")
        return True

    def server_error(self, key: str) -> int | None:
        """500, 503 or 504 for this API call, or None."""
        if not self._hit("server-error", key, self.rates.server_error):
            return None
        status = _SERVER_STATUSES[int(self._unit("server-status", key) * len(_SERVER_STATUSES))]
        self.record(f"server-{status}")
        return status

    def error_after_processing(self, key: str) -> bool:
        """For a createReport hit by a server error: fail after the report was created (half of them)."""
        return self._unit("server-after", key) < 0.5

    def lost_answer(self, key: str) -> str | None:
        """For a createReport call (processed): how its answer is lost (LOST_ANSWER_KINDS), or None."""
        if not key.startswith("createReport#"):
            return None
        nth, every = int(key.rsplit("#", 1)[1]), self.rates.lost_every
        if not (every and nth % every == 3 % every) and not self._hit("lost-answer", key, self.rates.lost_answers):
            return None
        kind = LOST_ANSWER_KINDS[int(self._unit("lost-answer-kind", key) * len(LOST_ANSWER_KINDS))]
        self.record(f"lost-answer:{kind}")
        return kind

    def connection_reset(self, key: str) -> bool:
        """Drop the connection instead of answering this (already processed) API call."""
        if not self._hit("reset", key, self.rates.reset):
            return False
        self.record("connection-reset")
        return True

    def truncate(self, key: str, body: bytes) -> bytes:
        """The body cut off mid-way (malformed-json), or unchanged."""
        if len(body) < 2 or not self._hit("malformed", key, self.rates.malformed):
            return body
        self.record("malformed-json")
        return body[: 1 + int(self._unit("malformed-at", key) * (len(body) - 1))]

    @property
    def strips_fields(self) -> bool:
        """True when answers lose fields (missing-fields)."""
        return self.rates.missing_fields > 0

    def strip_fields(self, key: str, body: Any) -> Any:
        """Drop (or null) fields of a decoded JSON answer in place; returns it.

        Never touches a protected field nor a field holding one (so no identifier disappears
        with its container).
        """
        rng = random.Random(f"abrecon-emulator/missing-fields/{self._seed}/{key}")  # noqa: S311 - test data
        rate = self.rates.missing_fields
        dropped = 0

        def walk(node: Any) -> None:
            nonlocal dropped
            if isinstance(node, list):
                for child in node:
                    walk(child)
            elif isinstance(node, dict):
                for name in list(node):
                    if not _holds_protected(name, node[name]) and rng.random() < rate:
                        dropped += 1
                        if name in NULLED_FIELDS and rng.random() < 0.5:
                            node[name] = None
                        else:
                            del node[name]
                    else:
                        walk(node[name])

        walk(body)
        if dropped:
            self.record("missing-fields")
        return body

    # ----- LWA and access tokens ------------------------------------------------------

    def invalid_grant(self) -> bool:
        """Answer this token exchange invalid_grant."""
        if not self.rates.invalid_grant:
            return False
        self.record("invalid-grant")
        return True

    def token_issued(self, token: str) -> None:
        """Note an issued access token; the first one becomes the victim of token-revoked."""
        if not self.rates.token_revoked:
            return
        with self._lock:
            if self._victim is None:
                self._victim = token
                self._victim_calls_left = 3 + int(self._unit("token-revoked", "calls") * 6)

    def revoke_now(self, token: str) -> bool:
        """True exactly once: on the call where the victim token gets revoked."""
        with self._lock:
            if token != self._victim or self._victim_calls_left <= 0:
                return False
            self._victim_calls_left -= 1
            if self._victim_calls_left > 0:
                return False
            self._injected["token-revoked"] += 1
            return True

    def expired_early(self, token: str) -> bool:
        """True once the token has been used for its few calls (token-expiry-403): refuse it with 403 from now on."""
        if not self.rates.token_expiry_403:
            return False
        limit = 1 + int(self._unit("token-expiry-calls", token) * 3)  # 1 to 3 calls
        with self._lock:
            self._token_calls[token] += 1
            if self._token_calls[token] <= limit:
                return False
            self._injected["token-expired-403"] += 1
            return True

    # ----- transaction pages ----------------------------------------------------------

    def page_size(self, default: int) -> int:
        """Transactions per getTransactions page."""
        return PAGE_SIZE_WITH_REPEATS if self.rates.repeated_pages > 0 else default

    def repeated_on_next_page(self, key: str) -> int:
        """How many of this page's last transactions the next page lists again (0, 1 or 2)."""
        if not self._hit("repeated-page", key, self.rates.repeated_pages):
            return 0
        repeated = 1 + int(self._unit("repeated-count", key) * 2)
        self.record("repeated-transactions", repeated)
        return repeated

    # ----- reports and documents ------------------------------------------------------

    def report_outcome(self, invoice_id: str) -> str | None:
        """Forced end of a new report on ``invoice_id``: FATAL, CANCELLED, IN_PROGRESS (stuck) or None."""
        plan = self._report_plan.get(invoice_id)
        if plan is None:
            return None
        with self._lock:
            self._reports_of[invoice_id] += 1
            nth = self._reports_of[invoice_id]
        if plan in ("fatal-once", "stuck-once") and nth > 1:
            return None
        outcome = {
            "fatal-once": "FATAL",
            "fatal": "FATAL",
            "cancelled": "CANCELLED",
            "stuck": "IN_PROGRESS",
            "stuck-once": "IN_PROGRESS",
        }[plan]
        self.record({"FATAL": "report-fatal", "CANCELLED": "report-cancelled", "IN_PROGRESS": "report-stuck"}[outcome])
        return outcome

    def document_fault(self, invoice_id: str) -> str | None:
        """The bad-documents variant of ``invoice_id``'s downloads, or None."""
        return self._document_plan.get(invoice_id)

    def expire_first_download(self, document_id: str) -> bool:
        """True on the first download of a hit document (expired-urls)."""
        if not self._hit("expired-url", document_id, self.rates.expired_url):
            return False
        with self._lock:
            if document_id in self._downloaded:
                return False
            self._downloaded.add(document_id)
            self._injected["expired-url"] += 1
        return True
