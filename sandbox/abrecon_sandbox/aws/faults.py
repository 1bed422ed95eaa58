"""Faults on the AWS side of the sandbox: S3 writes that fail, a Lambda process that dies mid-invocation, DynamoDB,
KMS and Secrets Manager errors, an execution stopped mid-run.

These are profiles of the sandbox, not of the product: the product has no code path for them. S3 and service
faults are injected by the sandbox's WSGI router in front of moto (lambdas.LambdaRouter), answered in each
service's own error shape so botocore's retries and the product's typed errors see what AWS sends. The crash is
the sandbox's Lambda worker's (lambda_worker.py), told which invoices to crash on through an environment variable
the sandbox sets for the download-document function only. Decisions are seeded hashes of (seed, kind, key), so a
run is reproducible however threads interleave, and each invoice profile hits at least one invoice.
"""

from __future__ import annotations

import hashlib
import json
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
    "execution-aborted": "The first run's execution is stopped (StopExecution) while it holds claimed and requested "
    "invoices; the re-run, a new execution for the window, takes them over at once.",
    "dynamodb-throttling": "About 20% of DynamoDB requests answer 400 ThrottlingException or "
    "ProvisionedThroughputExceededException (nothing written).",
    "dynamodb-5xx": "About 15% of DynamoDB requests answer 500 InternalServerError or 503, half of them after the "
    "request was applied (a retried conditional write then meets its own write).",
    "kms-throttling": "About 20% of the functions' S3 reads and writes answer 503 SlowDown 'Please reduce your "
    "request rate for operations involving AWS KMS.' (what S3 answers when KMS throttles SSE-KMS); KMS calls "
    "answer 400 ThrottlingException.",
    "secretsmanager-5xx": "The first 6 GetSecretValue requests answer 500 InternalServiceError or 503 (more than "
    "botocore retries), then about one in five.",
}
# The profiles ServiceFaults injects, and the one the sandbox's follow loop injects (run.py).
SERVICE_FAULT_PROFILES = frozenset({"dynamodb-throttling", "dynamodb-5xx", "kms-throttling", "secretsmanager-5xx"})
ABORT_PROFILE = "execution-aborted"

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


_Answer = tuple[str, list[tuple[str, str]], bytes]


def _json_error(status: str, content_type: str, error_type: str, message: str) -> _Answer:
    body = json.dumps({"__type": error_type, "message": message}).encode()
    headers = [("Content-Type", content_type), ("x-amzn-ErrorType", error_type.rsplit("#", 1)[-1])]
    return status, [*headers, ("Content-Length", str(len(body)))], body


_DDB = "application/x-amz-json-1.0"
_JSON11 = "application/x-amz-json-1.1"
_DYNAMODB_THROTTLES = (
    _json_error(
        "400 Bad Request", _DDB, "com.amazon.coral.availability#ThrottlingException",
        "Rate of requests exceeds the allowed throughput.",
    ),
    _json_error(
        "400 Bad Request", _DDB, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded. Consider increasing your "
        "provisioning level with the UpdateTable API.",
    ),
)  # fmt: skip
_DYNAMODB_5XX = (
    _json_error("500 Internal Server Error", _DDB, "com.amazonaws.dynamodb.v20120810#InternalServerError",
                "Internal server error"),
    _json_error("503 Service Unavailable", _DDB, "com.amazon.coral.availability#ServiceUnavailableException",
                "Service unavailable"),
)  # fmt: skip
_SECRETS_5XX = (
    _json_error("500 Internal Server Error", _JSON11, "InternalServiceError", "An error occurred on the server side."),
    _json_error("503 Service Unavailable", _JSON11, "ServiceUnavailable", "Service is unavailable."),
)
_KMS_THROTTLE = _json_error(
    "400 Bad Request", _JSON11, "ThrottlingException",
    "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.",
)  # fmt: skip
SERVICE_FAULT_SHARES = {
    "dynamodb-throttling": 0.2,
    "dynamodb-5xx": 0.15,
    "kms-throttling": 0.2,
    "secretsmanager-5xx": 0.2,
}
# botocore's User-Agent in the Lambda workers (AWS_EXECUTION_ENV, as the Lambda runtime sets it).
LAMBDA_USER_AGENT = "exec-env/AWS_Lambda"
SECRETS_OUTAGE_REQUESTS = 6  # botocore tries GetSecretValue 5 times: the product itself sees the first failure


def _function_object_request(service: str, environ: dict[str, Any]) -> bool:
    """Whether the request is a Lambda function's S3 read or write of an object (KMS throttling's reach)."""
    if service != "s3" or environ.get("REQUEST_METHOD") not in ("GET", "PUT", "HEAD"):
        return False
    if LAMBDA_USER_AGENT not in environ.get("HTTP_USER_AGENT", ""):
        # The functions' reads and writes only: moto's ASL interpreter reads the Map's item list with the
        # SDK's retries switched off (max_attempts 0), which the Step Functions service does not.
        return False
    return bool(unquote(environ.get("PATH_INFO", "")).strip("/").count("/"))  # a bucket's listings touch no key


class ServiceFaults:
    """DynamoDB, KMS (as S3 meets it) and Secrets Manager errors of one profile; thread-safe, seeded per request.

    Each request of the faulty service gets the n-th number of its action; whether it fails, and how, is a hash of
    (seed, profile, action, n). An error "after" lets moto apply the request first (DynamoDB 5xx only).
    """

    def __init__(self, profile: str, seed: int) -> None:
        if profile not in SERVICE_FAULT_PROFILES:
            raise ValueError(f"not a service fault profile: {profile!r}")
        self.profile = profile
        self._seed = seed
        self._share = SERVICE_FAULT_SHARES[profile]
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    def _decide(self, action: str) -> tuple[int, float] | None:
        with self._lock:
            self._seen[action] += 1
            n = self._seen[action]
        key = f"{self.profile}/{action}#{n}"
        if action == "secretsmanager.GetSecretValue" and n <= SECRETS_OUTAGE_REQUESTS:
            return n, 0.0
        hit = _unit(self._seed, "service-fault", key)
        return (n, _unit(self._seed, "service-fault-kind", key)) if hit < self._share else None

    def answer(self, service: str, environ: dict[str, Any]) -> tuple[_Answer, bool] | None:
        """(the error to send, whether to apply the request first), or None to pass it on untouched."""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if self.profile == "kms-throttling":
            return self._kms_answer(service, environ, target)
        if self.profile == "secretsmanager-5xx":
            if target != "secretsmanager.GetSecretValue" or (decided := self._decide(target)) is None:
                return None
            return _SECRETS_5XX[decided[0] % 2], False
        if service != "dynamodb" or (decided := self._decide(target)) is None:
            return None
        kind = decided[1]
        if self.profile == "dynamodb-throttling":
            return _DYNAMODB_THROTTLES[int(kind * 2)], False
        return _DYNAMODB_5XX[int(kind * 4) % 2], kind >= 0.5

    def _kms_answer(self, service: str, environ: dict[str, Any], target: str) -> tuple[_Answer, bool] | None:
        """KMS throttling: KMS's own answer, or S3's when a function reads or writes an object under SSE-KMS."""
        if service == "kms":
            return (_KMS_THROTTLE, False) if self._decide(f"kms.{target}") else None
        if not _function_object_request(service, environ):
            return None
        if self._decide(f"s3.{environ.get('REQUEST_METHOD')}") is None:
            return None
        if environ.get("REQUEST_METHOD") == "HEAD":
            return ("503 Slow Down", [("Content-Length", "0")], b""), False
        error = _s3_error(
            "503 Slow Down", "SlowDown", "Please reduce your request rate for operations involving AWS KMS."
        )
        return error, False

    def serve(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        app: Callable[..., Iterable[bytes]],
        service: str,
        lock: threading.Lock,
    ) -> Iterable[bytes] | None:
        """Answer a faulty request here (``lock`` held while moto applies one), or None to pass it on."""
        decided = self.answer(service, environ)
        if decided is None:
            return None
        (status, headers, body), apply_first = decided
        if apply_first:
            with lock:
                list(app(environ, lambda *_args, **_kwargs: None))  # applied; the caller never hears so
        else:
            get_input_stream(environ).read()  # the request body, unread, would be parsed as the next request
        code = json.loads(body)["__type"].rsplit("#", 1)[-1] if body.startswith(b"{") else status.split(" ", 1)[0]
        with self._lock:
            self.injected[f"{service}:{code}{':after' if apply_first else ''}"] += 1
        start_response(status, headers)
        return [body]


def ledger_holds_claims(aws: Any, table_name: str) -> bool:
    """Whether the ledger has an invoice claimed or requested and not stored yet (the moment to stop a run)."""
    from boto3.dynamodb.conditions import Attr

    table = aws.resource("dynamodb").Table(table_name)
    page = table.scan(
        FilterExpression=Attr("state").is_in(["CLAIMED", "REQUESTED"]) & Attr("pk").begins_with("INVOICE#")
    )
    return bool(page.get("Items"))
