"""`abrecon sandbox run`: the whole pipeline on this machine, one execution, followed state by state."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from abrecon.errors import ConfigurationError
from abrecon.pacing import parse_limits
from abrecon_sandbox.aws.faults import (
    ABORT_PROFILE,
    SERVICE_FAULT_PROFILES,
    S3WriteFaults,
    ServiceFaults,
    crash_environment,
    emulator_profile,
    ledger_holds_claims,
)
from abrecon_sandbox.aws.local_aws import LocalAws
from abrecon_sandbox.bench.floor import floor_timeline
from abrecon_sandbox.emulator import Emulator, EmulatorConfig
from abrecon_sandbox.run import audit
from abrecon_sandbox.run.console import announce, follow, print_summary
from abrecon_sandbox.run.export import export_run
from abrecon_sandbox.run.options import TEMPLATE, SandboxOptions, check_endpoint_options, scaled_rate_limits
from abrecon_sandbox.run.summary import Duplicates, ExecutionError, FinanceMessage, Summary


@dataclass
class SandboxRun:
    """Handles on a running sandbox, for tests that look inside afterwards."""

    emulator: Emulator | None  # None when the run went to another endpoint (SandboxOptions.api_endpoint)
    aws: LocalAws
    summary: dict[str, Any]
    options: SandboxOptions | None = None  # what the run was started with (rerun_sandbox starts another like it)


def run_sandbox(options: SandboxOptions, out: TextIO = sys.stdout, keep: list[SandboxRun] | None = None) -> int:
    """Run one execution end to end; 0 if it SUCCEEDED. With keep, the run's handles are appended and left open."""
    check_endpoint_options(options)
    emulator: Emulator | None = None
    if options.api_endpoint is None:
        try:
            config = EmulatorConfig(
                seed=options.seed,
                orders=options.orders,
                speed=options.speed,
                region=options.region,
                faults=emulator_profile(options.faults),
                jp_inconsistent_invoices=options.jp_inconsistent_invoices,
                max_items_per_order=options.max_items_per_order,
            )
        except ValueError as exc:  # e.g. a region the built-in emulator has no data for
            raise ConfigurationError(f"built-in emulator: {exc}") from exc
        emulator = Emulator(config)
        emulator.start()
    lwa_endpoint = options.lwa_endpoint or (emulator.lwa_url if emulator else None)
    aws = LocalAws(
        TEMPLATE,
        {
            "AmazonBusinessRegion": options.region,
            "ApiEndpoint": options.api_endpoint or (emulator.base_url if emulator else ""),
            **({"LwaEndpoint": lwa_endpoint} if lwa_endpoint else {}),
            "FatalRetrySeconds": str(options.fatal_retry_seconds),
            "PollSeconds": str(options.effective_poll_seconds),
            **({"MaxPolls": str(options.max_polls)} if options.max_polls else {}),
            "ApiRateLimits": scaled_rate_limits(options.speed),
        },
        options.log_dir,
        # The sandbox's AWS-side fault profiles: the product has no code path for them (aws_faults.py).
        function_env=crash_environment(options.faults, options.seed, emulator.invoice_numbers()) if emulator else None,
        s3_faults=S3WriteFaults(options.seed, emulator.invoice_numbers())
        if emulator and options.faults == "s3-write-failure"
        else None,
        speed=options.speed,
    )
    try:
        aws.start()
        if aws.router is not None and options.faults in SERVICE_FAULT_PROFILES:
            aws.router.service_faults = ServiceFaults(options.faults, options.seed)
        summary = _run_once(options, emulator, aws, out)
    except BaseException:
        aws.stop()
        if emulator:
            emulator.stop()
        raise
    if keep is not None:
        keep.append(SandboxRun(emulator=emulator, aws=aws, summary=summary, options=options))
    else:
        aws.stop()
        if emulator:
            emulator.stop()
    return 0 if summary["status"] == "SUCCEEDED" and summary["audit"]["passed"] else 1


def rerun_sandbox(run: SandboxRun, out: TextIO = sys.stdout, options: SandboxOptions | None = None) -> int:
    """Start another execution for the same window on a kept sandbox (same emulator, same AWS and ledger).

    An AWS-side outage the profile injected is over by then (the S3 outage ends); the emulator's faults go on.
    run.summary becomes the new run's summary; the exit code is as for run_sandbox.
    """
    options = options or run.options or SandboxOptions()
    if run.aws.s3_faults is not None:
        run.aws.s3_faults.end_outage()
    if run.emulator is not None and options.faults == "token-revoked":
        # The profile revokes one token after a few calls, which a small run may never reach; the warm workers'
        # cached tokens are all revoked here, so the re-run meets a 401 on its first call of every function.
        revoked = len(run.emulator.issued_access_tokens())
        run.emulator.expire_access_tokens()
        run.emulator.state.injector.record("token-revoked", revoked)
    if run.emulator is not None and options.faults == "aged-reports":
        run.emulator.age_reports()  # the first run's reportIds are past Amazon's 30/90 days by the re-run
    if run.emulator is not None:
        run.emulator.ship_unshipped()  # what had not shipped for the first run has shipped by the next one
    run.summary = _run_once(options, run.emulator, run.aws, out)
    return 0 if run.summary["status"] == "SUCCEEDED" and run.summary["audit"]["passed"] else 1


def _run_once(options: SandboxOptions, emulator: Emulator | None, aws: LocalAws, out: TextIO) -> dict[str, Any]:
    """One execution on a started sandbox, followed to its end; its summary, audited, printed and written."""
    assert aws.stack is not None
    stack = aws.stack
    credentials = emulator.credentials if emulator else dict(options.lwa_credentials or {})
    # What an operator does after deploy: put the LWA credentials into the stack's secret.
    aws.client("secretsmanager").put_secret_value(
        SecretId=stack.output("LwaSecret"), SecretString=json.dumps(credentials)
    )
    finance_inbox = _subscribe_queue(aws, stack.output("FinanceTopic"))
    started_at = datetime.now(UTC)
    name = f"sandbox-{started_at:%Y%m%dT%H%M%S}-seed{options.seed}"
    earlier = aws.client("stepfunctions").list_executions(stateMachineArn=stack.output("ReconcileStateMachine"))
    if any(e["name"] == name for e in earlier["executions"]):
        name += f"-{started_at:%f}"  # a re-run in the same second
    run_input = _run_input(options, emulator)
    announce(options, emulator, aws, run_input, out)
    sfn = aws.client("stepfunctions")
    clock = time.monotonic()
    execution_arn = sfn.start_execution(
        stateMachineArn=stack.output("ReconcileStateMachine"), name=name, input=json.dumps(run_input)
    )["executionArn"]
    print(f"execution {name} started", file=out)
    # execution-aborted: the first run is stopped while it holds claims (the re-run must take them over).
    abort = options.faults == ABORT_PROFILE and not earlier["executions"]
    table = stack.output("LedgerTable")
    status = follow(
        sfn,
        execution_arn,
        clock,
        options.deadline_seconds,
        out,
        (lambda: ledger_holds_claims(aws, table)) if abort else None,
    )
    elapsed = time.monotonic() - clock
    description = sfn.describe_execution(executionArn=execution_arn)
    run_summary = _product_summary(aws, status, description)
    summary = _summarize(options, emulator, aws, execution_arn, status, run_summary, clock, elapsed)
    summary.finance_message = _receive(aws, finance_inbox, name)
    if status != "SUCCEEDED":
        summary.error = ExecutionError(error=description.get("error"), cause=description.get("cause"))
    served = emulator.served_line_items(since=clock) if emulator else None
    audit.audit_run(options, emulator, aws, name, run_summary, summary, served)
    print_summary(summary, out)
    if options.export_dir and summary.report_key:
        summary.exported = export_run(aws, summary, options.export_dir, out)
    written = summary.as_json()
    if options.summary_file:
        options.summary_file.parent.mkdir(parents=True, exist_ok=True)
        options.summary_file.write_text(json.dumps(written, indent=2) + "\n")
    return written


def _run_input(options: SandboxOptions, emulator: Emulator | None) -> dict[str, str]:
    """The execution's input: the window to reconcile (the emulator's data set's, unless given); {} for the
    state machine's own LookbackDays."""
    window = (options.window_from, options.window_to)
    if emulator and window[0] is None:
        window = (emulator.config.window_start, emulator.config.window_end)
    return {"from": window[0].isoformat(), "to": window[1].isoformat()} if window[0] and window[1] else {}


def _product_summary(aws: LocalAws, status: str, description: dict[str, Any]) -> dict[str, Any]:
    """The product's own run summary (runs/<execution>/summary.json); {} when the execution did not succeed."""
    assert aws.stack is not None
    run_summary: dict[str, Any] = json.loads(description.get("output") or "{}") if status == "SUCCEEDED" else {}
    if run_summary.get("summaryKey"):
        # The execution's output carries counts; the lists (stored keys, failures, ...) are in the stored summary.
        bucket = aws.stack.output("DocumentBucket")
        body = aws.client("s3").get_object(Bucket=bucket, Key=run_summary["summaryKey"])["Body"]
        run_summary = json.loads(body.read())
    return run_summary


def _summarize(
    options: SandboxOptions,
    emulator: Emulator | None,
    aws: LocalAws,
    execution_arn: str,
    status: str,
    run_summary: dict[str, Any],
    clock: float,
    elapsed: float,
) -> Summary:
    """The summary's figures: the product's counts, and what the sandbox measured (before the audit)."""
    assert aws.stack is not None and aws.pool is not None
    bucket = aws.stack.output("DocumentBucket")
    # Calls to another endpoint are not counted: only the built-in emulator sees them.
    stats = emulator.stats() if emulator else {"apiCalls": {}, "throttled429": None}
    floor = _floor(emulator, options.speed) if emulator else None
    # First and last request per operation, and the floor's last ones: where the time over the floor went.
    timeline = {"measured": _timeline(emulator, clock, elapsed), "floor": floor} if emulator and floor else None
    denials = aws.iam.summary() if aws.iam else {"accessDenied": 0, "accessDeniedCalls": []}  # iam.py
    return Summary(
        status=status,
        execution_arn=execution_arn,
        line_items=run_summary.get("lineItems", 0),
        invoices=run_summary.get("invoices", 0),
        credit_memos=run_summary.get("creditMemos", 0),
        documents_stored=run_summary.get("documentsStored", 0),
        failed=run_summary.get("failed", 0),
        pending=run_summary.get("pending", 0),
        deferred=run_summary.get("deferred", 0),
        failures=run_summary.get("failures", []),
        s3_keys=run_summary.get("s3Keys", []),
        region=options.region,
        api_endpoint=options.api_endpoint or "emulator",
        pdfs_requested=run_summary.get("pdfsRequested", True),
        checked=run_summary.get("checked", 0),
        flagged=run_summary.get("flagged", 0),
        flags=run_summary.get("flags", []),
        bucket=bucket,
        elapsed_seconds=round(elapsed, 2),
        state_transitions=aws.meter.state_transitions,
        max_history_events=aws.meter.max_history_events,
        max_payload_bytes=aws.meter.max_payload_bytes,
        max_map_result_bytes=aws.quotas.max_map_result_bytes,
        quota_violations=list(aws.quotas.violations),
        floor_seconds=floor["getReportDocument"] if floor else None,
        timeline=timeline,
        duplicates=Duplicates.model_validate(audit.duplicates(emulator, aws, bucket)) if emulator else None,
        api_calls=stats["apiCalls"],
        throttled429=stats["throttled429"],
        throttled429_by_operation=stats.get("throttled429ByOperation", {}),
        lambda_invocations=dict(aws.pool.stats.invocations),
        lambda_gb_seconds=round(aws.pool.stats.gb_seconds, 3),
        lambda_timeouts=sum(aws.pool.stats.timeouts.values()),
        aws_requests=dict(aws.router.requests) if aws.router else {},
        access_denied=denials["accessDenied"],
        access_denied_calls=denials["accessDeniedCalls"],
        report_key=run_summary.get("reportKey"),
        report_html_key=run_summary.get("reportHtmlKey"),
        outcome=run_summary.get("outcome"),
        report_states=run_summary.get("lineItemStates", {}),  # the product's own: line items by report status
        past_due=int(run_summary.get("pastDue", 0)),  # invoices Amazon says are past due
        payment_status=run_summary.get("paymentStatus", {}),  # invoices asked about, by payment status
    )


def _floor(emulator: Emulator, speed: float) -> dict[str, float]:
    """The earliest finish Amazon's limits and this run's report latencies allow, by phase (see floor.py)."""
    stats = emulator.stats()
    calls, throttled = stats["apiCalls"], stats.get("throttled429ByOperation", {})

    def answered(operation: str) -> int:
        return int(calls.get(operation, 0)) - int(throttled.get(operation, 0))

    reports = sorted(emulator.state.reports.values(), key=lambda r: r.created_mono)
    limits = parse_limits(scaled_rate_limits(speed))
    # The floor is measured against Amazon's own limits, without the pipeline's headroom.
    timeline = floor_timeline(
        answered("getTransactions"),
        answered("getInvoiceDetailsByOrderLineItems"),
        [r.latency_s for r in reports],
        limits,
    )
    return {phase: round(seconds, 2) for phase, seconds in timeline.items()}


def _timeline(emulator: Emulator, started: float, elapsed: float) -> dict[str, Any]:
    """Seconds from the execution's start to the first and last request of each operation, and to its end."""
    calls = {
        operation: [round(first - started, 2), round(last - started, 2)]
        for operation, (first, last) in emulator.limiter.call_times().items()
    }
    return {**calls, "end": round(elapsed, 2)}


def _subscribe_queue(aws: LocalAws, topic_arn: str) -> str:
    """A queue on the finance topic, so the sandbox shows the message finance would get."""
    sqs = aws.client("sqs")
    queue_url: str = sqs.create_queue(QueueName="finance-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscriptions = aws.client("sns").list_subscriptions_by_topic(TopicArn=topic_arn).get("Subscriptions", [])
    if any(sub.get("Endpoint") == queue_arn for sub in subscriptions):
        return queue_url  # a re-run on a kept sandbox
    aws.client("sns").subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "false"}
    )
    return queue_url


def _receive(aws: LocalAws, queue_url: str, run_id: str | None = None) -> FinanceMessage | None:
    """The finance message of run_id (any run's without one); messages read are deleted, so a re-run on a kept
    sandbox never sees an earlier run's message."""
    sqs = aws.client("sqs")
    found: FinanceMessage | None = None
    for _attempt in range(3):
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        for received in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=received["ReceiptHandle"])
            envelope = json.loads(received["Body"])
            attributes = {name: a.get("Value") for name, a in envelope.get("MessageAttributes", {}).items()}
            if run_id is None or attributes.get("runId") == run_id:
                found = FinanceMessage(
                    subject=envelope.get("Subject", ""), message=envelope.get("Message", ""), attributes=attributes
                )
        if found is not None or not messages:
            return found
    return found
