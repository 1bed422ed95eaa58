"""Faults on the AWS side of the sandbox: S3 writes that fail, a Lambda process that dies mid-invocation.

These are profiles of the sandbox, not of the product: the product has no code path for them. S3 faults are
injected by the sandbox's WSGI router in front of moto (lambdas.LambdaRouter); the crash by the sandbox's
Lambda worker (lambda_worker.py), told which invoices to crash on through an environment variable the sandbox
sets for the download-document function only. Decisions are seeded hashes of (seed, kind, invoice number), so a
run is reproducible however threads interleave, and each profile hits at least one invoice.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

from werkzeug.wsgi import get_input_stream

from abrecon_sandbox.emulator.faults import FAULT_PROFILES

AWS_FAULT_PROFILES: dict[str, str] = {
    "s3-write-failure": "S3 PutObject to documents/ fails: about a quarter of the invoices' first write answers 503 "
    "SlowDown, some answer 500 after the object was written, and a few invoices' writes fail (500) for the whole "
    "first run (an outage that is over by the re-run).",
    "handler-crash": "The download-document Lambda process is killed right after its first S3 put for about a "
    "third of the invoices (Lambda answers Runtime.ExitError).",
}

# The function the crash profile kills, and the variable its sandbox-only wrapper reads (lambda_worker.py).
CRASH_FUNCTION = "DownloadDocumentFunction"
CRASH_ENV = "ABRECON_SANDBOX_CRASH_AFTER_PUT"

S3_FAULT_SHARES = {"outage": 0.15, "after-write": 0.15, "slowdown": 0.25}
CRASH_SHARE = 0.34
# path-style S3 requests (the sandbox's endpoint is an IP address): /<bucket>/documents/<marketplace>/<invoice>/<file>
_DOCUMENT_PUT = re.compile(r"^/(?P<bucket>[^/]+)/documents/[^/]+/(?P<invoice>[^/]+)/[^/]+$")


def all_fault_profiles() -> dict[str, str]:
    """Every profile `abrecon sandbox run --faults` takes: the emulator's (Amazon's side), then AWS's."""
    return {**FAULT_PROFILES, **AWS_FAULT_PROFILES}


def emulator_profile(profile: str) -> str:
    """The emulator's profile for a sandbox profile: an AWS-side profile leaves Amazon's side fault-free."""
    return "none" if profile in AWS_FAULT_PROFILES else profile


def _unit(seed: int, kind: str, key: str) -> float:
    digest = hashlib.blake2b(f"{seed}/{kind}/{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def pick(seed: int, kind: str, numbers: Iterable[str], share: float) -> list[str]:
    """Invoices hit at `share`, at least one (so a profile always shows)."""
    ordered = sorted(numbers)
    if not ordered or share <= 0:
        return []
    chosen = [n for n in ordered if _unit(seed, kind, n) < share]
    return chosen or [min(ordered, key=lambda n: _unit(seed, kind, n))]


def crash_environment(profile: str, seed: int, invoice_numbers: Iterable[str]) -> dict[str, dict[str, str]]:
    """Extra environment per function (logical id) for the profile: the crash victims for handler-crash."""
    if profile != "handler-crash":
        return {}
    return {CRASH_FUNCTION: {CRASH_ENV: ",".join(pick(seed, "crash", invoice_numbers, CRASH_SHARE))}}


def _s3_error(status: str, code: str, message: str) -> tuple[str, list[tuple[str, str]], bytes]:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        "<RequestId>SANDBOXFAULT</RequestId></Error>"
    ).encode()
    return status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))], body


class S3WriteFaults:
    """s3-write-failure: which PutObject requests to documents/ fail, and how; thread-safe.

    Per invoice (seeded): an *outage* fails every write with 500 until `end_outage()` (the sandbox calls it
    before the re-run); *after-write* lets the first write land, then answers 500 (S3's "may or may not have
    succeeded"); *slowdown* answers the first write 503 SlowDown without writing.
    """

    def __init__(self, seed: int, invoice_numbers: Iterable[str]) -> None:
        numbers = sorted(invoice_numbers)
        self.plan: dict[str, str] = {}
        for kind in ("slowdown", "after-write", "outage"):  # later kinds win where picks overlap
            self.plan.update(dict.fromkeys(pick(seed, f"s3-{kind}", numbers, S3_FAULT_SHARES[kind]), kind))
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()
        self.outage = True
        self.injected: Counter[str] = Counter()

    def end_outage(self) -> None:
        """The outage is over: the outage invoices' writes succeed from now on."""
        self.outage = False

    def decide(self, path: str) -> str | None:
        """ "before" (answer an error, write nothing), "after" (write, then answer 500) or None, for one PUT path."""
        match = _DOCUMENT_PUT.match(unquote(path))
        if match is None:
            return None
        key = unquote(path).split("/", 2)[2]
        kind = self.plan.get(match["invoice"])
        with self._lock:
            self._seen[key] += 1
            first = self._seen[key] == 1
            if kind == "outage" and self.outage:
                decision = "outage"
            elif kind in ("after-write", "slowdown") and first:
                decision = kind
            else:
                return None
            self.injected[f"s3-{decision}"] += 1
        return "after" if decision == "after-write" else "before"

    def serve(
        self, environ: dict[str, Any], start_response: Callable[..., Any], app: Callable[..., Iterable[bytes]]
    ) -> Iterable[bytes] | None:
        """Answer a faulty PUT here, or None to let the router pass the request on untouched."""
        if environ.get("REQUEST_METHOD") != "PUT" or environ.get("QUERY_STRING"):
            return None  # only plain PutObject (no ?uploads, ?tagging, ...)
        decision = self.decide(environ.get("PATH_INFO", ""))
        if decision is None:
            return None
        if decision == "after":
            captured: list[Any] = []
            body = b"".join(app(environ, lambda status, headers, exc_info=None: captured.append(status)))
            del body  # the object is written; the caller never hears so
            status, headers, answer = _s3_error(
                "500 Internal Server Error", "InternalError", "We encountered an internal error. Please try again."
            )
        else:
            get_input_stream(environ).read()  # the request body, unread, would be parsed as the next request
            status, headers, answer = (
                _s3_error("503 Slow Down", "SlowDown", "Please reduce your request rate.")
                if self.plan.get(_invoice_of(environ)) == "slowdown"
                else _s3_error(
                    "500 Internal Server Error", "InternalError", "We encountered an internal error. Please try again."
                )
            )
        start_response(status, headers)
        return [answer]


def _invoice_of(environ: dict[str, Any]) -> str:
    match = _DOCUMENT_PUT.match(unquote(environ.get("PATH_INFO", "")))
    return match["invoice"] if match else ""
