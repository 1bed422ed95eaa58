"""The sandbox run's summary (`abrecon sandbox run --summary FILE`): a typed model whose field descriptions are the
one documentation of its JSON. `python -m abrecon_sandbox.run.summary --markdown` writes docs/summary-json.md.

The JSON keys are the fields' camelCase aliases, in the order below; `error`, `served` and `exported` appear only
when the run sets them.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer
from pydantic.alias_generators import to_camel
from pydantic_core.core_schema import SerializerFunctionWrapHandler

# Keys written only when the run set them (a run that did not fail has no `error`, ...).
_ONLY_WHEN_SET = ("error", "served", "exported")


class _Part(BaseModel):
    """A part of the summary: camelCase keys, and nothing that is not documented here."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="forbid")


class FinanceMessage(_Part):
    """The message finance got on the stack's topic for this run."""

    subject: str = Field(description="The SNS subject.")
    message: str = Field(description="The message's text, as finance reads it.")
    attributes: dict[str, Any] = Field(description="The SNS message attributes (runId, outcome, ...).")


class ExecutionError(_Part):
    """Why an execution that did not succeed ended."""

    error: str | None = Field(description="The execution's error name (e.g. States.Timeout, Sandbox.Deadline).")
    cause: str | None = Field(description="The execution's cause text.")


class Duplicates(_Part):
    """Reports asked for more than once and document objects written more than once, judged from the emulator's
    record of every report and the bucket's object versions."""

    reports: int = Field(description="Reports asked for twice for the same invoice and document type: must be 0.")
    fatal_retries: int = Field(
        description="The one new report after an invoice's first FATAL report (by design, not a duplicate)."
    )
    unanswered_reports: int = Field(
        description="A new report after one whose createReport answer never reached the caller (5xx after "
        "processing, a cut-off body, a dropped connection) and that getReports did not identify."
    )
    aged_retries: int = Field(
        description="A new report after one past Amazon's retention (getReport answered 404): needed, not a duplicate."
    )
    lost_answers_recovered: int = Field(
        description="Reports whose createReport answer was lost but which the pipeline found again and polled."
    )
    objects: int = Field(description="Extra versions of any documents/ object in the bucket: must be 0.")


class SecretsInLogs(_Part):
    """The functions' log lines that carry a secret: counts and file names only, never the lines."""

    lines: int = Field(description="Log lines carrying the LWA client secret, the refresh token or an access token.")
    files: dict[str, int] = Field(description="Those lines per log file name.")
    lines_scanned: int = Field(description="Log lines read.")
    secrets: int = Field(description="How many distinct secrets were looked for.")


class Disk(_Part):
    """What the functions wrote to disk (Lambda gives them only /tmp; these functions write nothing)."""

    writes: dict[str, list[str]] = Field(description="Files opened for writing, per function (the workers' hook).")
    left_on_disk: list[str] = Field(description="Files left in the fresh TMPDIR and HOME of the diskless functions.")


class AuditVerdict(_Part):
    """The sandbox's audit of the run, from the outside (abrecon_sandbox.run.audit)."""

    passed: bool = Field(description="True when no problem was found; the command exits 0 only then.")
    problems: list[str] = Field(description="What failed the audit, one sentence each.")


class Exported(_Part):
    """Where `--export DIR` copied the run's report and PDFs, in the bucket's own layout."""

    dir: str = Field(description="The export directory.")
    csv: str = Field(description="The reconciliation report as CSV (DIR/runs/<execution>/report.csv).")
    html: str = Field(description="The report page finance would open (DIR/runs/<execution>/report.html).")
    pdfs: int = Field(description="How many PDFs were copied (under DIR/documents/).")


class Summary(_Part):
    """One sandbox run: the execution, what it stored and reported, what it cost Amazon and AWS, and its audit."""

    # The execution and the product's own run summary (runs/<execution>/summary.json).
    status: str = Field(description="The execution's end: SUCCEEDED, FAILED, TIMED_OUT or ABORTED.")
    execution_arn: str = Field(description="The Step Functions execution's ARN.")
    line_items: int = Field(description="Transaction line items the run listed.")
    invoices: int = Field(description="Invoices the run handled.")
    credit_memos: int = Field(description="Credit memos the run handled.")
    documents_stored: int = Field(description="Documents (PDFs) the run stored in the bucket.")
    failed: int = Field(description="Invoices failed for good, each with a reason.")
    pending: int = Field(description="Line items with no invoice yet (or not shipped yet), kept open for the next run.")
    deferred: int = Field(description="Invoices whose report was not ready, reportId kept for the next run.")
    failures: list[dict[str, Any]] = Field(description="The failed invoices: [{invoiceNumber, reason, ...}].")
    s3_keys: list[str] = Field(description="The keys of the documents the run stored.")
    region: str = Field(description="The template's AmazonBusinessRegion: NA, EU or JP.")
    api_endpoint: str = Field(description='The Amazon Business endpoint: "emulator", or the --api-endpoint URL.')
    pdfs_requested: bool = Field(description="False when the stack asks for no PDFs (an empty report list).")
    checked: int = Field(description="JP: tax-qualified invoices checked.")
    flagged: int = Field(description="JP: invoices the checks flagged.")
    flags: list[dict[str, Any]] = Field(
        description="JP: the flagged invoices (the first 100): [{invoiceNumber, reason}]."
    )
    bucket: str = Field(description="The stack's document bucket.")
    # Step Functions and its quotas, as metered in moto (abrecon_sandbox.aws.meter, .quotas).
    elapsed_seconds: float = Field(description="Wall-clock seconds from the execution's start to its end.")
    state_transitions: int = Field(description="State transitions, what Step Functions bills.")
    max_history_events: int = Field(description="The largest execution history (events), against the 25,000 quota.")
    max_payload_bytes: int = Field(description="The largest state input or output (bytes), against the 256 KiB quota.")
    max_map_result_bytes: int = Field(description="The largest Distributed Map result as AWS builds it (bytes).")
    quota_violations: list[dict[str, Any]] = Field(
        description="Step Functions quotas exceeded (empty when none): kind, state, bytes or events. "
        "The audit fails on any."
    )
    floor_seconds: float | None = Field(
        description="The earliest finish Amazon's limits and this run's report latencies allow (abrecon_sandbox.bench."
        "floor); null against another endpoint."
    )
    timeline: dict[str, Any] | None = Field(
        description="Where the time went: `measured` (seconds from the start to the first and last request of each "
        "operation, and `end`) and `floor` (the floor's last request per operation); null against another endpoint."
    )
    duplicates: Duplicates | None = Field(description="Null against another endpoint (the emulator keeps the record).")
    # Amazon Business (only the built-in emulator counts calls).
    api_calls: dict[str, int] = Field(
        description="Amazon Business requests per operation, 429s included; empty against another endpoint."
    )
    throttled429: int | None = Field(description="Requests answered 429; null against another endpoint.")
    throttled429_by_operation: dict[str, int] = Field(description="The 429s per operation.")
    # Lambda and AWS requests.
    lambda_invocations: dict[str, int] = Field(description="Lambda invocations per function.")
    lambda_gb_seconds: float = Field(description="Lambda GB-seconds (memory x duration), what Lambda bills.")
    lambda_timeouts: int = Field(
        description="Invocations ended at their Timeout on Amazon's clock (Sandbox.Timedout). The audit fails on any."
    )
    aws_requests: dict[str, int] = Field(description='AWS requests of the functions, per "service:action".')
    access_denied: int = Field(
        description="Requests AWS would refuse the deployed stack (the sandbox's IAM). The audit fails on any."
    )
    access_denied_calls: list[dict[str, Any]] = Field(
        description="The first 20 of them: [{caller, role, action, resource, policy, reason}]."
    )
    # What finance gets.
    finance_message: FinanceMessage | None = Field(default=None, description="Null when no message came for this run.")
    report_key: str | None = Field(description="The run's reconciliation report (CSV) in the bucket.")
    report_html_key: str | None = Field(description="The same report as an HTML page in the bucket.")
    outcome: str | None = Field(description="The run's outcome for finance: OK, INCOMPLETE or ACTION_NEEDED.")
    report_states: dict[str, int] = Field(description="The product's own count of line items per report status.")
    past_due: int = Field(description="Invoices Amazon says are past due.")
    payment_status: dict[str, int] = Field(
        description="Invoices asked about, by payment status: Closed, Past Due, Issued, Payment Processing, ERROR."
    )
    error: ExecutionError | None = Field(default=None, description="Only when the execution did not succeed.")
    # The audit (abrecon_sandbox.run.audit), from what the run left behind, not from the run's own counts.
    faults: str = Field(default="none", description="The fault profile injected (--faults).")
    accounted_for: int = Field(
        default=0, description="Line items in an explained state (STORED, PENDING, ...): must equal lineItems."
    )
    lost: int | None = Field(default=None, description="Line items in no explained state: must be 0.")
    line_item_states: dict[str, int] = Field(
        default_factory=dict,
        description="Line items per state: STORED, NOT_REQUESTED, PENDING, DEFERRED, FAILED, LOST.",
    )
    lost_items: list[str] = Field(default_factory=list, description="The first 20 lost line items, each with why.")
    served: int | None = Field(
        default=None,
        description="Transaction line items the emulator listed to the run (null against another endpoint); "
        "only when the execution succeeded.",
    )
    unencrypted_objects: list[str] = Field(
        default_factory=list, description="Objects in the bucket not under SSE-KMS with the stack's key: must be none."
    )
    secrets_in_logs: SecretsInLogs | None = Field(default=None, description="Must have no lines.")
    disk: Disk | None = Field(default=None, description="Must be empty.")
    faults_injected: dict[str, int] = Field(
        default_factory=dict, description="Faults injected, per kind, on Amazon's side and AWS's."
    )
    audit: AuditVerdict = Field(
        default_factory=lambda: AuditVerdict(passed=False, problems=["not audited"]),
        description="The audit's verdict.",
    )
    exported: Exported | None = Field(default=None, description="Only with --export DIR.")

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in _ONLY_WHEN_SET:
            if name not in self.model_fields_set:
                data.pop(to_camel(name), None)
        return data

    def as_json(self) -> dict[str, Any]:
        """The summary as the JSON file has it (camelCase keys)."""
        return self.model_dump(mode="json", by_alias=True)


_PARTS = (FinanceMessage, ExecutionError, Duplicates, SecretsInLogs, Disk, AuditVerdict, Exported)


def markdown() -> str:
    """docs/summary-json.md: every key of the summary JSON, from the model's field descriptions."""
    lines = [
        "# The sandbox run's summary JSON",
        "",
        "<!-- Generated by `python -m abrecon_sandbox.run.summary --markdown > docs/summary-json.md`; do not edit. -->",
        "",
        "`abrecon sandbox run --summary FILE` (`make run`: `.sandbox/summary.json`) writes one JSON object.",
        "",
        _doc(Summary),
        "",
        *_table(Summary),
    ]
    for part in _PARTS:
        lines += ["", f"## {part.__name__}", "", _doc(part), "", *_table(part)]
    return "\n".join(lines) + "\n"


def _doc(model: type[BaseModel]) -> str:
    return " ".join((model.__doc__ or "").split())


def _table(model: type[BaseModel]) -> list[str]:
    rows = ["| key | type | meaning |", "| --- | --- | --- |"]
    for name, info in model.model_fields.items():
        kind = _type_name(info.annotation)
        rows.append(f"| `{info.alias or name}` | {kind} | {info.description or ''} |")
    return rows


def _type_name(annotation: Any) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    text = re.sub(r"\b[\w.]+\.(\w+)", r"\1", text)  # typing.Any -> Any, <module>.Duplicates -> Duplicates
    for part in _PARTS:
        text = re.sub(rf"\b{part.__name__}\b", f"[{part.__name__}](#{part.__name__.lower()})", text)
    return text.replace(" | None", " or null").replace("None", "null")


def main(argv: list[str] | None = None) -> int:
    """`python -m abrecon_sandbox.run.summary --markdown`: print docs/summary-json.md."""
    parser = argparse.ArgumentParser(prog="abrecon-summary", description=__doc__)
    parser.add_argument("--markdown", action="store_true", help="print the summary's documentation as Markdown")
    args = parser.parse_args(argv)
    if not args.markdown:
        parser.print_help()
        return 2
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
