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
from typing import Any

from abrecon_sandbox.emulator import Emulator

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
    s3 = aws.client("s3")
    table = aws.resource("dynamodb").Table(ledger_table)
    rows: list[dict[str, Any]] = _json(s3, bucket, f"runs/{run_id}/line-items.json")
    matches: dict[str, list[str]] = _json(s3, bucket, f"runs/{run_id}/matches.json")
    targets = {t["invoiceNumber"] for t in _json(s3, bucket, f"runs/{run_id}/invoices.json")}
    pdfs_requested = bool(run_summary.get("pdfsRequested", True))
    failures = {f["invoiceNumber"]: f.get("reason", "") for f in run_summary.get("failures", [])}
    message = (finance_message or {}).get("message", "")

    def target_of(number: str) -> str:
        if number in targets:
            return number
        try:
            detail = _json(s3, bucket, f"invoice-details/{number}.json")
        except Exception:  # noqa: BLE001 - no details: the number stays its own target, with no ledger entry
            return number
        original = detail.get("associatedInvoiceNumber")
        return original if original in targets else number

    records: dict[str, dict[str, Any]] = {}

    def record(number: str) -> dict[str, Any] | None:
        if number not in records:
            records[number] = table.get_item(Key={"pk": f"INVOICE#{number}"}, ConsistentRead=True).get("Item") or {}
        return records[number] or None

    stored_keys: dict[str, bool] = {}

    def object_exists(key: str) -> bool:
        if key not in stored_keys:
            try:
                s3.head_object(Bucket=bucket, Key=key)
                stored_keys[key] = True
            except Exception:  # noqa: BLE001 - any refusal means the PDF is not there
                stored_keys[key] = False
        return stored_keys[key]

    def state_of_target(number: str) -> tuple[str, str]:
        item = record(number)
        if item is None:
            return ("NOT_REQUESTED", "") if not pdfs_requested else ("LOST", f"{number}: no ledger entry")
        state = item.get("state")
        if state == "STORED":
            keys = list(item.get("s3Keys") or [])
            missing = [k for k in keys if not object_exists(k)]
            if keys and not missing:
                return "STORED", ""
            return "LOST", f"{number}: STORED in the ledger but PDFs missing ({len(missing)} of {len(keys)})"
        if state == "DEFERRED":
            if item.get("reportId") and item.get("openKind") == "INVOICE":
                return "DEFERRED", ""
            return "LOST", f"{number}: DEFERRED without a reportId kept open for the next run"
        if state == "FAILED":
            if not item.get("reason"):
                return "LOST", f"{number}: FAILED without a reason"
            if number not in failures:
                return "LOST", (
                    f"{number}: FAILED ({item.get('runId')}, {item.get('updatedAt')}, v{item.get('version')}) but "
                    f"not in the run's failures {sorted(failures)} (finance is not told)"
                )
            if len(failures) <= FINANCE_LIST_CUT and number not in message:
                return "LOST", f"{number}: FAILED but not in finance's message"
            return "FAILED", ""
        return "LOST", f"{number}: {state} owned by {item.get('runId')} when the run ended"

    # One row per transaction line item: a refund's row has the same (order, line item, shipment) as its charge's.
    open_lines = {item["pk"] for item in _query_open(table, "LINE")}
    states: Counter[str] = Counter()
    lost: list[str] = []
    # What Amazon listed and the run kept no row for is lost whatever the run's own counts say.
    missing = sorted((served or set()) - {_identity(row) for row in rows})
    lost += [f"{'|'.join(m)}: Amazon listed it, the run kept no row" for m in missing[:MAX_LOST_LISTED]]
    for row in rows:
        pk = _ledger_pk(row)
        numbers = matches.get(_triple(row), [])
        if not numbers:
            state, why = ("PENDING", "") if pk in open_lines else ("LOST", f"{pk}: no invoice and not kept open")
        else:
            judged = [state_of_target(target_of(n)) for n in numbers]
            state, why = max(judged, key=lambda j: _RANK[j[0]])
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
