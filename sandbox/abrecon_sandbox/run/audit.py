"""What the sandbox checks after a run, from the outside: every line item accounted for, nothing duplicated,
everything encrypted, no secret in a log line.

These checks read what the run left behind (its lists in S3, the ledger, the bucket, the emulator's own record
of reports, the Lambda log files) and do not trust the run's summary: the summary is checked against them.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abrecon_sandbox.aws.faults import ABORT_PROFILE
from abrecon_sandbox.emulator import Emulator
from abrecon_sandbox.run.summary import AuditVerdict, Disk, SecretsInLogs, Summary

if TYPE_CHECKING:
    from abrecon_sandbox.aws.local_aws import LocalAws
    from abrecon_sandbox.run.options import SandboxOptions

# A line item's state after a run, best first; LOST is anything that is not one of the explained states.
ACCOUNTED_STATES = ("STORED", "NOT_REQUESTED", "PENDING", "DEFERRED", "FAILED")
_RANK = {state: rank for rank, state in enumerate((*ACCOUNTED_STATES, "LOST"))}
MAX_LOST_LISTED = 20
FINANCE_LIST_CUT = 20  # the finance message lists at most this many failures (the report has them all)


def _json(s3: Any, bucket: str, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _triple(row: Mapping[str, Any]) -> str:
    """The run's matches key; a line item Amazon listed without a shipment has "" for it."""
    return f"{row['orderId']}|{row['orderLineItemId']}|{row.get('shipmentId') or ''}"


def _ledger_pk(row: Mapping[str, Any]) -> str:
    """The line item's ledger key: the triple, or order and line item while Amazon lists no shipment."""
    if not row.get("shipmentId"):
        return f"LINE#{row['orderId']}|{row['orderLineItemId']}"
    return f"LINE#{_triple(row)}"


def _identity(row: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (row["transactionId"], row["orderId"], row["orderLineItemId"], row.get("shipmentId") or "")


def account_line_items(
    aws: Any,
    bucket: str,
    ledger_table: str,
    run_id: str,
    run_summary: Mapping[str, Any],
    finance_message: Mapping[str, Any] | None,
    served: set[tuple[str, str, str, str]] | None = None,
) -> dict[str, Any]:
    """Every line item of the run in one explained state, judged from S3 and the ledger.

    ``served``: every transaction line item Amazon (the emulator) listed to the run, as (transactionId, orderId,
    orderLineItemId, shipmentId or ""): each must be a row of the run's list, or it is LOST. Without it (another
    endpoint) only the run's own rows can be judged.

    STORED: its documents' report target is STORED in the ledger and every one of its PDFs is in the bucket.
    PENDING: Amazon has no invoice for it yet, and the ledger keeps it open for the next run. DEFERRED: the
    target is DEFERRED with its reportId kept for the next run. FAILED: the target is FAILED with a reason, and
    the run's summary (so the report) lists it, as does finance's message unless it lists more than it shows.
    NOT_REQUESTED: the stack asks for no PDFs. Anything else is LOST.
    """
    judge = _Judge(aws, bucket, ledger_table, run_id, run_summary, finance_message)
    rows = judge.rows
    # One row per transaction line item: a refund's row has the same (order, line item, shipment) as its charge's.
    open_lines = {item["pk"] for item in _query_open(judge.table, "LINE")}
    states: Counter[str] = Counter()
    lost: list[str] = []
    # What Amazon listed and the run kept no row for is lost whatever the run's own counts say.
    missing = sorted((served or set()) - {_identity(row) for row in rows})
    lost += [f"{'|'.join(m)}: Amazon listed it, the run kept no row" for m in missing[:MAX_LOST_LISTED]]
    for row in rows:
        state, why = judge.state_of_row(row, open_lines)
        states[state] += 1
        if state == "LOST" and len(lost) < MAX_LOST_LISTED:
            lost.append(why)
    # The same transaction's line item twice in the run's list would be counted twice in the report.
    duplicated_rows = len(rows) - len({_identity(row) for row in rows})
    accounted = sum(n for s, n in states.items() if s != "LOST")
    if missing:
        states["LOST"] += len(missing)
    return {
        "lineItems": len(rows) + len(missing),
        "served": None if served is None else len(served),
        "accountedFor": accounted,
        "lost": len(rows) + len(missing) - accounted,
        "lineItemStates": dict(sorted(states.items())),
        "lostItems": lost,
        "duplicatedLineItems": duplicated_rows,
    }


class _Judge:
    """The run's lists, and the ledger's and the bucket's word on each invoice, read once each."""

    def __init__(
        self,
        aws: Any,
        bucket: str,
        ledger_table: str,
        run_id: str,
        run_summary: Mapping[str, Any],
        finance_message: Mapping[str, Any] | None,
    ) -> None:
        self.s3 = aws.client("s3")
        self.bucket = bucket
        self.table = aws.resource("dynamodb").Table(ledger_table)
        self.rows: list[dict[str, Any]] = _json(self.s3, bucket, f"runs/{run_id}/line-items.json")
        self.matches: dict[str, list[str]] = _json(self.s3, bucket, f"runs/{run_id}/matches.json")
        self.targets = {t["invoiceNumber"] for t in _json(self.s3, bucket, f"runs/{run_id}/invoices.json")}
        self.pdfs_requested = bool(run_summary.get("pdfsRequested", True))
        self.failures = {f["invoiceNumber"]: f.get("reason", "") for f in run_summary.get("failures", [])}
        self.message = (finance_message or {}).get("message", "")
        self._records: dict[str, dict[str, Any]] = {}
        self._stored_keys: dict[str, bool] = {}

    def state_of_row(self, row: Mapping[str, Any], open_lines: set[str]) -> tuple[str, str]:
        """The line item's state and, when LOST, why: its invoices' best state, or PENDING if kept open."""
        pk = _ledger_pk(row)
        numbers = self.matches.get(_triple(row), [])
        if not numbers:
            return ("PENDING", "") if pk in open_lines else ("LOST", f"{pk}: no invoice and not kept open")
        judged = [self.state_of_target(self.target_of(n)) for n in numbers]
        return max(judged, key=lambda j: _RANK[j[0]])

    def target_of(self, number: str) -> str:
        """The invoice whose report holds number's documents: a credit memo's original invoice when it is one."""
        if number in self.targets:
            return number
        try:
            detail = _json(self.s3, self.bucket, f"invoice-details/{number}.json")
        except Exception:  # noqa: BLE001 - no details: the number stays its own target, with no ledger entry
            return number
        original = detail.get("associatedInvoiceNumber")
        return original if original in self.targets else number

    def record(self, number: str) -> dict[str, Any] | None:
        """The invoice's ledger item (read consistently, once)."""
        if number not in self._records:
            key = {"pk": f"INVOICE#{number}"}
            self._records[number] = self.table.get_item(Key=key, ConsistentRead=True).get("Item") or {}
        return self._records[number] or None

    def object_exists(self, key: str) -> bool:
        """Whether the bucket has key (asked once)."""
        if key not in self._stored_keys:
            try:
                self.s3.head_object(Bucket=self.bucket, Key=key)
                self._stored_keys[key] = True
            except Exception:  # noqa: BLE001 - any refusal means the PDF is not there
                self._stored_keys[key] = False
        return self._stored_keys[key]

    def state_of_target(self, number: str) -> tuple[str, str]:
        """The invoice's state from its ledger item, each state checked for what makes it explained."""
        item = self.record(number)
        if item is None:
            return ("NOT_REQUESTED", "") if not self.pdfs_requested else ("LOST", f"{number}: no ledger entry")
        state = item.get("state")
        check = {"STORED": self._stored, "DEFERRED": self._deferred, "FAILED": self._failed}.get(str(state))
        if check is None:
            return "LOST", f"{number}: {state} owned by {item.get('runId')} when the run ended"
        return check(number, item)

    def _stored(self, number: str, item: Mapping[str, Any]) -> tuple[str, str]:
        keys = list(item.get("s3Keys") or [])
        missing = [k for k in keys if not self.object_exists(k)]
        if keys and not missing:
            return "STORED", ""
        return "LOST", f"{number}: STORED in the ledger but PDFs missing ({len(missing)} of {len(keys)})"

    def _deferred(self, number: str, item: Mapping[str, Any]) -> tuple[str, str]:
        if item.get("reportId") and item.get("openKind") == "INVOICE":
            return "DEFERRED", ""
        return "LOST", f"{number}: DEFERRED without a reportId kept open for the next run"

    def _failed(self, number: str, item: Mapping[str, Any]) -> tuple[str, str]:
        if not item.get("reason"):
            return "LOST", f"{number}: FAILED without a reason"
        if number not in self.failures:
            return "LOST", (
                f"{number}: FAILED ({item.get('runId')}, {item.get('updatedAt')}, v{item.get('version')}) but "
                f"not in the run's failures {sorted(self.failures)} (finance is not told)"
            )
        if len(self.failures) <= FINANCE_LIST_CUT and number not in self.message:
            return "LOST", f"{number}: FAILED but not in finance's message"
        return "FAILED", ""


def _query_open(table: Any, kind: str) -> list[dict[str, Any]]:
    from boto3.dynamodb.conditions import Key

    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"IndexName": "open", "KeyConditionExpression": Key("openKind").eq(kind)}
    while True:
        page = table.query(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def duplicates(emulator: Emulator, aws: Any, bucket: str) -> dict[str, int]:
    """Reports asked for twice and document objects written twice (both must stay 0), and the by-design extras.

    Per invoice (and documentType), in creation order, a report after another one is
    - `fatalRetries`: the one new report after the invoice's first FATAL report (by design, FIELD-NOTES);
    - `unansweredReports`: Amazon made the earlier report but its createReport answer never reached the caller
      (5xx after processing, a cut-off body, a dropped connection) and getReports did not identify it;
    - `agedRetries`: the earlier report is past Amazon's retention (getReport 404), so a new one was needed;
    `lostAnswersRecovered`: reports whose answer was lost but which the pipeline found again and polled.
    - `reports`: otherwise a duplicate.
    `objects`: extra versions of any documents/ key.
    """
    per_invoice: dict[tuple[str | None, str | None], list[Any]] = defaultdict(list)
    for report in emulator.state.reports.values():
        per_invoice[(report.options.get("invoiceId"), report.options.get("documentType"))].append(report)
    counts = Counter(
        {"reports": 0, "fatalRetries": 0, "unansweredReports": 0, "agedRetries": 0, "lostAnswersRecovered": 0}
    )
    for reports in per_invoice.values():
        reports.sort(key=lambda r: r.created_mono)
        fatal_retried = False
        # A report whose createReport answer was lost, found again with getReports and polled: no second report.
        counts["lostAnswersRecovered"] += sum(1 for r in reports if not r.answered and r.polled)
        for previous, _report in itertools.pairwise(reports):
            if not getattr(previous, "answered", True):
                counts["unansweredReports"] += 1
            elif previous.aged:
                counts["agedRetries"] += 1
            elif previous.forced == "FATAL" and not fatal_retried:
                fatal_retried = True
                counts["fatalRetries"] += 1
            else:
                counts["reports"] += 1
    versions: Counter[str] = Counter()
    for page in aws.client("s3").get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix="documents/"):
        versions.update(v["Key"] for v in page.get("Versions", []))
    counts["objects"] = sum(n - 1 for n in versions.values())
    return dict(counts)


def unencrypted_objects(aws: Any, bucket: str, key_arn: str) -> list[str]:
    """Every object in the bucket that is not under SSE-KMS with the stack's key (must be none)."""
    s3 = aws.client("s3")
    wrong = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            head = s3.head_object(Bucket=bucket, Key=obj["Key"])
            if (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")) != ("aws:kms", key_arn):
                wrong.append(obj["Key"])
    return wrong


def secrets_in_logs(log_dir: Path, secrets: Iterable[str]) -> dict[str, Any]:
    """Log lines carrying any of the secrets (the LWA client secret, the refresh token, every access token the
    emulator issued), per log file: counts and file names only, never the lines."""
    needles = [s for s in set(secrets) if s]
    hits: Counter[str] = Counter()
    scanned = 0
    for path in sorted(log_dir.glob("*.log")):
        with path.open("r", encoding="utf-8", errors="replace") as log:
            for line in log:
                scanned += 1
                if any(needle in line for needle in needles):
                    hits[path.name] += 1
    return {"lines": sum(hits.values()), "files": dict(hits), "linesScanned": scanned, "secrets": len(needles)}


def audit_run(
    options: SandboxOptions,
    emulator: Emulator | None,
    aws: LocalAws,
    run_id: str,
    run_summary: Mapping[str, Any],
    summary: Summary,
    served: set[tuple[str, str, str, str]] | None = None,
) -> None:
    """The run checked from the outside, into the summary's audit fields: every line item Amazon listed accounted
    for, no duplicate, every object under the stack's key, no secret in a log line, nothing on disk, no quota,
    timeout or IAM refusal. `summary.audit.passed` is False with the problems."""
    assert aws.stack is not None
    stack = aws.stack
    bucket = stack.output("DocumentBucket")
    summary.faults = options.faults
    problems = _account(aws, run_id, run_summary, summary, served)
    duplicates = summary.duplicates
    for what in ("reports", "objects"):
        if duplicates is not None and getattr(duplicates, what):
            problems.append(f"{getattr(duplicates, what)} duplicate {what}")
    summary.unencrypted_objects = unencrypted_objects(aws, bucket, stack.output("DocumentKey", "Arn"))
    if summary.unencrypted_objects:
        problems.append(f"{len(summary.unencrypted_objects)} objects not under SSE-KMS with the stack's key")
    credentials = emulator.credentials if emulator else dict(options.lwa_credentials or {})
    secrets = [credentials.get("client_secret", ""), credentials.get("refresh_token", "")]
    secrets += emulator.issued_access_tokens() if emulator else []
    summary.secrets_in_logs = SecretsInLogs.model_validate(secrets_in_logs(options.log_dir, secrets))
    if summary.secrets_in_logs.lines:
        problems.append(f"{summary.secrets_in_logs.lines} log lines carry a secret or access token")
    disk = aws.disk_report()
    summary.disk = Disk.model_validate(disk)
    if summary.disk.writes or summary.disk.left_on_disk:
        problems.append(f"functions wrote to disk: {disk}")
    summary.faults_injected = _faults_injected(options, emulator, aws, summary.status)
    problems += _limit_problems(summary)
    summary.audit = AuditVerdict(passed=not problems, problems=problems)


def _account(
    aws: LocalAws,
    run_id: str,
    run_summary: Mapping[str, Any],
    summary: Summary,
    served: set[tuple[str, str, str, str]] | None,
) -> list[str]:
    """Every line item accounted for (account_line_items), into the summary; the problems found."""
    assert aws.stack is not None
    if not run_summary:
        summary.accounted_for, summary.lost, summary.line_item_states, summary.lost_items = 0, None, {}, []
        return ["the execution did not succeed: nothing can be accounted for"]
    stack = aws.stack
    finance_message = summary.finance_message.model_dump(by_alias=True) if summary.finance_message else None
    accounting = account_line_items(
        aws, stack.output("DocumentBucket"), stack.output("LedgerTable"), run_id, run_summary, finance_message, served
    )
    summary.accounted_for = accounting["accountedFor"]
    summary.lost = accounting["lost"]
    summary.line_item_states = accounting["lineItemStates"]
    summary.lost_items = accounting["lostItems"]
    summary.served = accounting["served"]
    problems = []
    if accounting["lost"]:
        problems.append(f"{accounting['lost']} line items lost: {accounting['lostItems']}")
    if accounting["duplicatedLineItems"]:
        problems.append(f"{accounting['duplicatedLineItems']} line items listed twice in the run")
    if accounting["lineItems"] != run_summary.get("lineItems"):
        listed, said = accounting["lineItems"], run_summary.get("lineItems")
        problems.append(f"the summary says {said} line items, the run listed {listed}")
    return problems


def _faults_injected(options: SandboxOptions, emulator: Emulator | None, aws: LocalAws, status: str) -> dict[str, int]:
    """Every fault injected, on Amazon's side (the emulator) and AWS's (S3, services, aborts, handler crashes)."""
    assert aws.pool is not None
    injected: Counter[str] = Counter(emulator.stats().get("faultsInjected", {}) if emulator else {})
    if aws.s3_faults is not None:
        injected.update(aws.s3_faults.injected)
    if aws.router is not None and aws.router.service_faults is not None:
        injected.update(aws.router.service_faults.injected)
    if status == "ABORTED" and options.faults == ABORT_PROFILE:
        injected["execution-aborted"] += 1
    crashes = sum(aws.pool.stats.crashes.values())
    if crashes:
        injected["handler-crash"] += crashes
    return dict(sorted(injected.items()))


def _limit_problems(summary: Summary) -> list[str]:
    """Step Functions quotas, Lambda timeouts and IAM refusals: each fails the audit."""
    problems = []
    if summary.quota_violations:
        problems.append(f"Step Functions quotas exceeded: {summary.quota_violations}")
    if summary.lambda_timeouts:
        problems.append(f"{summary.lambda_timeouts} Lambda invocations ran out of time (Sandbox.Timedout)")
    # No fault profile refuses requests on purpose: every denial is a call AWS would refuse the deployed stack.
    if summary.access_denied:
        problems.append(f"{summary.access_denied} requests AWS would refuse (IAM): {summary.access_denied_calls[:3]}")
    return problems
