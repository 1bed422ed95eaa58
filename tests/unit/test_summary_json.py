"""The sandbox run's summary JSON (abrecon_sandbox.run.summary): its keys, in the order the run writes them, and
its documentation, generated from the model (docs/summary-json.md), which must match the model."""

from __future__ import annotations

from helpers import ROOT

from abrecon_sandbox.run.summary import AuditVerdict, ExecutionError, Exported, Summary, markdown

# The keys `abrecon sandbox run --summary FILE` wrote before the summary became a model, in the same order.
RUN_KEYS = [
    "status", "executionArn", "lineItems", "invoices", "creditMemos", "documentsStored", "failed", "pending",
    "deferred", "failures", "s3Keys", "region", "apiEndpoint", "pdfsRequested", "checked", "flagged", "flags",
    "bucket", "elapsedSeconds", "stateTransitions", "maxHistoryEvents", "maxPayloadBytes", "maxMapResultBytes",
    "quotaViolations", "floorSeconds", "timeline", "duplicates", "apiCalls", "throttled429",
    "throttled429ByOperation", "lambdaInvocations", "lambdaGbSeconds", "lambdaTimeouts", "awsRequests",
    "accessDenied", "accessDeniedCalls", "financeMessage", "reportKey", "reportHtmlKey", "outcome", "reportStates",
    "pastDue", "paymentStatus",
]  # fmt: skip
AUDIT_KEYS = ["faults", "accountedFor", "lost", "lineItemStates", "lostItems", "served", "unencryptedObjects",
              "secretsInLogs", "disk", "faultsInjected", "audit"]  # fmt: skip


def _figures() -> Summary:
    return Summary(
        status="SUCCEEDED", execution_arn="arn", line_items=3, invoices=2, credit_memos=0, documents_stored=2,
        failed=0, pending=1, deferred=0, failures=[], s3_keys=["documents/a.pdf"], region="NA",
        api_endpoint="emulator", pdfs_requested=True, checked=0, flagged=0, flags=[], bucket="b",
        elapsed_seconds=1.5, state_transitions=10, max_history_events=20, max_payload_bytes=30,
        max_map_result_bytes=40, quota_violations=[], floor_seconds=1.25, timeline=None, duplicates=None,
        api_calls={"getTransactions": 1}, throttled429=0, throttled429_by_operation={}, lambda_invocations={},
        lambda_gb_seconds=0.5, lambda_timeouts=0, aws_requests={}, access_denied=0, access_denied_calls=[],
        report_key="runs/r/report.csv", report_html_key="runs/r/report.html", outcome="OK", report_states={},
        past_due=0, payment_status={},
    )  # fmt: skip


def test_a_succeeded_run_has_the_keys_it_always_had_in_the_same_order() -> None:
    summary = _figures()
    summary.served = None  # set by the audit when the execution succeeded, null against another endpoint
    summary.audit = AuditVerdict(passed=True, problems=[])
    written = summary.as_json()
    assert list(written) == RUN_KEYS + AUDIT_KEYS
    assert written["served"] is None and written["audit"] == {"passed": True, "problems": []}


def test_error_served_and_exported_appear_only_when_the_run_sets_them() -> None:
    summary = _figures()
    assert list(summary.as_json()) == RUN_KEYS + [k for k in AUDIT_KEYS if k != "served"]
    summary.error = ExecutionError(error="States.Timeout", cause=None)
    summary.exported = Exported(dir="/x", csv="/x/r.csv", html="/x/r.html", pdfs=2)
    written = summary.as_json()
    assert list(written) == RUN_KEYS + ["error"] + [k for k in AUDIT_KEYS if k != "served"] + ["exported"]
    assert written["error"] == {"error": "States.Timeout", "cause": None}
    assert written["exported"] == {"dir": "/x", "csv": "/x/r.csv", "html": "/x/r.html", "pdfs": 2}


def test_every_key_is_documented() -> None:
    for name, field in Summary.model_fields.items():
        assert field.description, name


def test_the_committed_documentation_is_the_generated_one() -> None:
    """docs/summary-json.md is `python -m abrecon_sandbox.run.summary --markdown`: regenerate it after a change."""
    assert (ROOT / "docs" / "summary-json.md").read_text() == markdown()
