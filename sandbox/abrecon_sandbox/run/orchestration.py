"""`abrecon sandbox run`: the whole pipeline on this machine, one execution, followed state by state."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import ClientError

from abrecon._http import require_secure_url
from abrecon.errors import ConfigurationError
from abrecon.pacing import parse_limits
from abrecon_sandbox.aws.faults import (
    ABORT_PROFILE,
    SERVICE_FAULT_PROFILES,
    S3WriteFaults,
    ServiceFaults,
    all_fault_profiles,
    crash_environment,
    emulator_profile,
    ledger_holds_claims,
)
from abrecon_sandbox.aws.local_aws import LocalAws
from abrecon_sandbox.aws.stack import load_template
from abrecon_sandbox.bench.floor import floor_timeline
from abrecon_sandbox.emulator import Emulator, EmulatorConfig
from abrecon_sandbox.run import audit

PROJECT_ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = PROJECT_ROOT / "template.yaml"
AMAZON_POLL_SECONDS = 15
AMAZON_FATAL_RETRY_SECONDS = 300  # the template's FatalRetrySeconds default
# Where `--api-endpoint` runs take the LWA credentials from when no flag gives them.
LWA_CREDENTIAL_ENV = {  # nosec B105 # names of environment variables, not their values
    "client_id": "ABRECON_LWA_CLIENT_ID",
    "client_secret": "ABRECON_LWA_CLIENT_SECRET",
    "refresh_token": "ABRECON_LWA_REFRESH_TOKEN",
}


def scaled_rate_limits(speed: float) -> str:
    """The template's ApiRateLimits with every rate multiplied by speed, matching the emulator's sped-up buckets."""
    default = str(load_template(TEMPLATE)["Parameters"]["ApiRateLimits"]["Default"])
    return ",".join(f"{op}={limit.rate * speed:g}/{limit.burst}" for op, limit in parse_limits(default).items())


class SandboxError(Exception):
    """The sandbox could not run the pipeline to an end."""


@dataclass(frozen=True)
class SandboxOptions:
    """What `abrecon sandbox run` takes."""

    seed: int = 7
    orders: int = 30
    speed: float = 60.0
    poll_seconds: int | None = None
    summary_file: Path | None = None
    deadline_seconds: float = 900.0
    log_dir: Path = field(default_factory=lambda: PROJECT_ROOT / ".sandbox" / "logs")
    region: str = "NA"  # the template's AmazonBusinessRegion; the built-in emulator has NA and JP data
    jp_inconsistent_invoices: int = 0  # JP: invoices the emulator breaks on purpose (the checks must flag them)
    faults: str = "none"  # a fault profile: the built-in emulator's, or the sandbox's AWS-side ones (aws_faults.py)
    max_polls: int | None = None  # the template's MaxPolls (default 240): fewer defers stuck reports sooner
    # Another Amazon Business endpoint (Amazon's sandbox, someone's mock) instead of the built-in emulator;
    # then the LWA credentials come from lwa_credentials (see lwa_credentials_from) and the window from window_*.
    api_endpoint: str | None = None
    lwa_endpoint: str | None = None
    lwa_credentials: Mapping[str, str] | None = field(default=None, repr=False)
    window_from: datetime | None = None
    window_to: datetime | None = None
    export_dir: Path | None = None  # the run's report (CSV, HTML) and PDFs, copied here in the bucket's layout
    max_items_per_order: int = 4  # the built-in emulator's data set: 1 to this many line items an order

    @property
    def effective_poll_seconds(self) -> int:
        """Amazon's 15 s poll interval divided by the speed factor (Wait states take whole seconds)."""
        return self.poll_seconds or max(1, round(AMAZON_POLL_SECONDS / self.speed))

    @property
    def fatal_retry_seconds(self) -> int:
        """The cool-down before the one new report after a FATAL, divided by the speed factor."""
        return max(1, round(AMAZON_FATAL_RETRY_SECONDS / self.speed))


def lwa_credentials_from(
    client_id: str | None = None,
    client_secret: str | None = None,
    refresh_token: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, str]:
    """The LWA credentials for an `--api-endpoint` run: each from its flag, else its ABRECON_LWA_* variable.

    A missing one is a ConfigurationError naming the flag and the variable, never a value.
    """
    given = {"client_id": client_id, "client_secret": client_secret, "refresh_token": refresh_token}
    found = {key: value or environ.get(LWA_CREDENTIAL_ENV[key], "") for key, value in given.items()}
    missing = [key for key, value in found.items() if not value]
    if missing:
        names = ", ".join(f"--lwa-{key.replace('_', '-')} or {LWA_CREDENTIAL_ENV[key]}" for key in missing)
        raise ConfigurationError(f"LWA credentials missing for --api-endpoint: {names}")
    return found


def _check_endpoint_options(options: SandboxOptions) -> None:
    """Refuse a run against another endpoint that cannot work, before anything starts."""
    if options.faults not in all_fault_profiles():
        raise ConfigurationError(f"unknown fault profile {options.faults!r}; known: {', '.join(all_fault_profiles())}")
    if options.api_endpoint is not None and options.faults != "none":
        raise ConfigurationError("--faults needs the built-in emulator (not --api-endpoint)")
    if options.api_endpoint is None:
        if options.lwa_endpoint or options.lwa_credentials:
            raise ConfigurationError("--lwa-endpoint and LWA credentials go with --api-endpoint")
        return
    # Plain http only for loopback addresses (someone's own mock on this machine): the client's own rule.
    require_secure_url(options.api_endpoint, "--api-endpoint")
    if options.lwa_endpoint:
        require_secure_url(options.lwa_endpoint, "--lwa-endpoint")
    if not options.lwa_credentials:
        raise ConfigurationError("--api-endpoint needs LWA credentials (flags or ABRECON_LWA_* variables)")
    if (options.window_from is None) != (options.window_to is None):
        raise ConfigurationError("give both --from and --to, or neither (the last LookbackDays days)")


@dataclass
class SandboxRun:
    """Handles on a running sandbox, for tests that look inside afterwards."""

    emulator: Emulator | None  # None when the run went to another endpoint (SandboxOptions.api_endpoint)
    aws: LocalAws
    summary: dict[str, Any]
    options: SandboxOptions | None = None  # what the run was started with (rerun_sandbox starts another like it)


def run_sandbox(options: SandboxOptions, out: TextIO = sys.stdout, keep: list[SandboxRun] | None = None) -> int:
    """Run one execution end to end; 0 if it SUCCEEDED. With keep, the run's handles are appended and left open."""
    _check_endpoint_options(options)
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
    assert aws.stack is not None and aws.pool is not None
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
    window = (options.window_from, options.window_to)
    if emulator and window[0] is None:
        window = (emulator.config.window_start, emulator.config.window_end)
    run_input = {"from": window[0].isoformat(), "to": window[1].isoformat()} if window[0] and window[1] else {}
    if emulator:
        where = f"Amazon Business emulator at {emulator.base_url} ({options.region} data)"
        what = f"{options.orders} orders (seed {options.seed})"
    else:
        where = f"Amazon Business API at {options.api_endpoint} ({options.region}), not the built-in emulator"
        what = f"window {run_input.get('from', 'last LookbackDays days')} to {run_input.get('to', 'now')}"
    print(
        f"abrecon sandbox: {what}, speed x{options.speed:g}, "
        f"poll every {options.effective_poll_seconds}s; AWS at {aws.endpoint_url}, {where}",
        file=out,
    )
    for note in stack.skipped:
        print(f"  not run locally: {note}", file=out)
    sfn = aws.client("stepfunctions")
    clock = time.monotonic()
    execution_arn = sfn.start_execution(
        stateMachineArn=stack.output("ReconcileStateMachine"), name=name, input=json.dumps(run_input)
    )["executionArn"]
    print(f"execution {name} started", file=out)
    # execution-aborted: the first run is stopped while it holds claims (the re-run must take them over).
    abort = options.faults == ABORT_PROFILE and not earlier["executions"]
    table = stack.output("LedgerTable")
    status = _follow(
        sfn,
        execution_arn,
        clock,
        options.deadline_seconds,
        out,
        (lambda: ledger_holds_claims(aws, table)) if abort else None,
    )
    elapsed = time.monotonic() - clock
    description = sfn.describe_execution(executionArn=execution_arn)
    run_summary: dict[str, Any] = json.loads(description.get("output") or "{}") if status == "SUCCEEDED" else {}
    if run_summary.get("summaryKey"):
        # The execution's output carries counts; the lists (stored keys, failures, ...) are in the stored summary.
        body = aws.client("s3").get_object(Bucket=stack.output("DocumentBucket"), Key=run_summary["summaryKey"])["Body"]
        run_summary = json.loads(body.read())
    # Calls to another endpoint are not counted: only the built-in emulator sees them.
    stats = emulator.stats() if emulator else {"apiCalls": {}, "throttled429": None}
    floor = _floor(emulator, options.speed) if emulator else None
    # First and last request per operation, and the floor's last ones: where the time over the floor went.
    timeline = {"measured": _timeline(emulator, clock, elapsed), "floor": floor} if emulator and floor else None
    summary = {
        "status": status,
        "executionArn": execution_arn,
        "lineItems": run_summary.get("lineItems", 0),
        "invoices": run_summary.get("invoices", 0),
        "creditMemos": run_summary.get("creditMemos", 0),
        "documentsStored": run_summary.get("documentsStored", 0),
        "failed": run_summary.get("failed", 0),
        "pending": run_summary.get("pending", 0),
        "deferred": run_summary.get("deferred", 0),
        "failures": run_summary.get("failures", []),
        "s3Keys": run_summary.get("s3Keys", []),
        "region": options.region,
        "apiEndpoint": options.api_endpoint or "emulator",
        "pdfsRequested": run_summary.get("pdfsRequested", True),
        "checked": run_summary.get("checked", 0),
        "flagged": run_summary.get("flagged", 0),
        "flags": run_summary.get("flags", []),
        "bucket": stack.output("DocumentBucket"),
        "elapsedSeconds": round(elapsed, 2),
        "stateTransitions": aws.meter.state_transitions,
        "maxHistoryEvents": aws.meter.max_history_events,
        "maxPayloadBytes": aws.meter.max_payload_bytes,
        "maxMapResultBytes": aws.quotas.max_map_result_bytes,
        "quotaViolations": list(aws.quotas.violations),
        "floorSeconds": floor["getReportDocument"] if floor else None,
        "timeline": timeline,
        "duplicates": audit.duplicates(emulator, aws, stack.output("DocumentBucket")) if emulator else None,
        "apiCalls": stats["apiCalls"],
        "throttled429": stats["throttled429"],
        "throttled429ByOperation": stats.get("throttled429ByOperation", {}),
        "lambdaInvocations": dict(aws.pool.stats.invocations),
        "lambdaGbSeconds": round(aws.pool.stats.gb_seconds, 3),
        "lambdaTimeouts": sum(aws.pool.stats.timeouts.values()),
        "awsRequests": dict(aws.router.requests) if aws.router else {},
        **(aws.iam.summary() if aws.iam else {"accessDenied": 0, "accessDeniedCalls": []}),  # iam.py
        "financeMessage": _receive(aws, finance_inbox, name),
        "reportKey": run_summary.get("reportKey"),
        "reportHtmlKey": run_summary.get("reportHtmlKey"),
        "outcome": run_summary.get("outcome"),
        "reportStates": run_summary.get("lineItemStates", {}),  # the product's own: line items by report status
        "pastDue": int(run_summary.get("pastDue", 0)),  # invoices Amazon says are past due
        "paymentStatus": run_summary.get("paymentStatus", {}),  # invoices asked about, by payment status
    }
    if status != "SUCCEEDED":
        summary["error"] = {"error": description.get("error"), "cause": description.get("cause")}
    served = emulator.served_line_items(since=clock) if emulator else None
    summary.update(_audit(options, emulator, aws, name, run_summary, summary, served))
    _print_summary(summary, out)
    if options.export_dir and summary["reportKey"]:
        summary["exported"] = export_run(aws, summary, options.export_dir, out)
    if options.summary_file:
        options.summary_file.parent.mkdir(parents=True, exist_ok=True)
        options.summary_file.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _follow(
    sfn: Any,
    execution_arn: str,
    clock: float,
    deadline_seconds: float,
    out: TextIO,
    abort_when: Callable[[], bool] | None = None,
) -> str:
    """Print each state as it is entered and left until the execution ends; returns its status.

    abort_when (a fault profile): stop the execution the first time it answers True.
    """
    seen = 0
    last_progress = ""
    while True:
        status = sfn.describe_execution(executionArn=execution_arn)["status"]
        events = _history(sfn, execution_arn)
        for event in events[seen:]:
            kind = event["type"]
            at = time.monotonic() - clock
            if kind.endswith("StateEntered"):
                print(f"{at:7.1f}s  > {event['stateEnteredEventDetails']['name']}", file=out)
            elif kind.endswith("StateExited"):
                print(f"{at:7.1f}s  < {event['stateExitedEventDetails']['name']}", file=out)
        seen = len(events)
        if status != "RUNNING":
            return str(status)
        if abort_when is not None and abort_when():
            sfn.stop_execution(
                executionArn=execution_arn, error="Sandbox.Aborted", cause="the execution-aborted profile"
            )
            print(f"{time.monotonic() - clock:7.1f}s  execution stopped (execution-aborted)", file=out)
            abort_when = None
        progress = _map_progress(sfn, execution_arn)
        if progress and progress != last_progress:
            print(f"{time.monotonic() - clock:7.1f}s    invoices: {progress}", file=out)
            last_progress = progress
        if time.monotonic() - clock > deadline_seconds:
            sfn.stop_execution(
                executionArn=execution_arn, error="Sandbox.Deadline", cause=f"no end after {deadline_seconds:.0f}s"
            )
            raise SandboxError(f"execution still running after {deadline_seconds:.0f}s; stopped it")
        time.sleep(0.5)


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


def _audit(
    options: SandboxOptions,
    emulator: Emulator | None,
    aws: LocalAws,
    run_id: str,
    run_summary: dict[str, Any],
    summary: dict[str, Any],
    served: set[tuple[str, str, str, str]] | None = None,
) -> dict[str, Any]:
    """The run checked from the outside (audit.py): every line item Amazon listed accounted for, no duplicate,
    every object under the stack's key, no secret in a log line, nothing on disk. `audit.passed` is False with
    the problems."""
    assert aws.stack is not None and aws.pool is not None
    stack = aws.stack
    bucket = stack.output("DocumentBucket")
    problems: list[str] = []
    found: dict[str, Any] = {"faults": options.faults}
    if run_summary:  # the execution succeeded: the run's lists are in the bucket
        accounting = audit.account_line_items(
            aws, bucket, stack.output("LedgerTable"), run_id, run_summary, summary["financeMessage"], served
        )
        found.update(
            accountedFor=accounting["accountedFor"],
            lost=accounting["lost"],
            lineItemStates=accounting["lineItemStates"],
            lostItems=accounting["lostItems"],
            served=accounting["served"],
        )
        if accounting["lost"]:
            problems.append(f"{accounting['lost']} line items lost: {accounting['lostItems']}")
        if accounting["duplicatedLineItems"]:
            problems.append(f"{accounting['duplicatedLineItems']} line items listed twice in the run")
        if accounting["lineItems"] != run_summary.get("lineItems"):
            listed, said = accounting["lineItems"], run_summary.get("lineItems")
            problems.append(f"the summary says {said} line items, the run listed {listed}")
    else:
        found.update(accountedFor=0, lost=None, lineItemStates={}, lostItems=[])
        problems.append("the execution did not succeed: nothing can be accounted for")
    duplicates = summary.get("duplicates") or {}
    for what in ("reports", "objects"):
        if duplicates.get(what):
            problems.append(f"{duplicates[what]} duplicate {what}")
    found["unencryptedObjects"] = audit.unencrypted_objects(aws, bucket, stack.output("DocumentKey", "Arn"))
    if found["unencryptedObjects"]:
        problems.append(f"{len(found['unencryptedObjects'])} objects not under SSE-KMS with the stack's key")
    credentials = emulator.credentials if emulator else dict(options.lwa_credentials or {})
    secrets = [credentials.get("client_secret", ""), credentials.get("refresh_token", "")]
    secrets += emulator.issued_access_tokens() if emulator else []
    found["secretsInLogs"] = audit.secrets_in_logs(options.log_dir, secrets)
    if found["secretsInLogs"]["lines"]:
        problems.append(f"{found['secretsInLogs']['lines']} log lines carry a secret or access token")
    found["disk"] = aws.disk_report()
    if found["disk"]["writes"] or found["disk"]["leftOnDisk"]:
        problems.append(f"functions wrote to disk: {found['disk']}")
    injected: Counter[str] = Counter(emulator.stats().get("faultsInjected", {}) if emulator else {})
    if aws.s3_faults is not None:
        injected.update(aws.s3_faults.injected)
    if aws.router is not None and aws.router.service_faults is not None:
        injected.update(aws.router.service_faults.injected)
    if summary.get("status") == "ABORTED" and options.faults == ABORT_PROFILE:
        injected["execution-aborted"] += 1
    crashes = sum(aws.pool.stats.crashes.values())
    if crashes:
        injected["handler-crash"] += crashes
    found["faultsInjected"] = dict(sorted(injected.items()))
    if summary["quotaViolations"]:
        problems.append(f"Step Functions quotas exceeded: {summary['quotaViolations']}")
    if summary["lambdaTimeouts"]:
        problems.append(f"{summary['lambdaTimeouts']} Lambda invocations ran out of time (Sandbox.Timedout)")
    # No fault profile refuses requests on purpose: every denial is a call AWS would refuse the deployed stack.
    if summary.get("accessDenied"):
        problems.append(
            f"{summary['accessDenied']} requests AWS would refuse (IAM): {summary['accessDeniedCalls'][:3]}"
        )
    found["audit"] = {"passed": not problems, "problems": problems}
    return found


def _history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return events


def _map_progress(sfn: Any, execution_arn: str) -> str:
    try:
        runs = sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
        if not runs:
            return ""
        counts = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"])["itemCounts"]
    except ClientError:  # moto cannot describe a map run once its execution has ended
        return ""
    return f"{counts['succeeded']}/{counts['total']} done, {counts['running']} running, {counts['failed']} failed"


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


def export_run(aws: LocalAws, summary: dict[str, Any], directory: Path, out: TextIO) -> dict[str, Any]:
    """Copy the run's report (CSV, HTML) and its PDFs out of the bucket into directory, in the bucket's layout.

    The layout is the bucket's (runs/<run>/report.html, documents/...), so the report's links to the PDFs work,
    as they do in any copy of the bucket (aws s3 sync).
    """
    s3 = aws.client("s3")
    root = directory.resolve()
    keys = [summary["reportKey"], summary["reportHtmlKey"], *summary["s3Keys"]]
    for key in keys:
        target = (root / key).resolve()
        if not target.is_relative_to(root):  # keys come from the run; never write outside the directory
            raise SandboxError(f"refusing to export {key!r} outside {root}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_object(Bucket=summary["bucket"], Key=key)["Body"].read())
    exported = {"dir": str(root), "csv": str(root / keys[0]), "html": str(root / keys[1]), "pdfs": len(keys) - 2}
    # The page's path comes last, where a newcomer looks: what finance would open.
    print(f"\nexported: spreadsheet {exported['csv']}, {exported['pdfs']} PDFs under {root / 'documents'}", file=out)
    print(f"report exported: open {exported['html']}", file=out)
    return exported


def _receive(aws: LocalAws, queue_url: str, run_id: str | None = None) -> dict[str, Any] | None:
    """The finance message of run_id (any run's without one); messages read are deleted, so a re-run on a kept
    sandbox never sees an earlier run's message."""
    sqs = aws.client("sqs")
    found: dict[str, Any] | None = None
    for _attempt in range(3):
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        for received in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=received["ReceiptHandle"])
            envelope = json.loads(received["Body"])
            attributes = {name: a.get("Value") for name, a in envelope.get("MessageAttributes", {}).items()}
            if run_id is None or attributes.get("runId") == run_id:
                found = {
                    "subject": envelope.get("Subject", ""),
                    "message": envelope.get("Message", ""),
                    "attributes": attributes,
                }
        if found is not None or not messages:
            return found
    return found


def _print_summary(summary: dict[str, Any], out: TextIO) -> None:
    print(
        f"\nexecution {summary['status']} in {summary['elapsedSeconds']}s, "
        f"{summary['stateTransitions']} state transitions",
        file=out,
    )
    print(
        f"line items {summary['lineItems']}, invoices {summary['invoices']} "
        f"(+{summary['creditMemos']} credit memos), documents stored {summary['documentsStored']}, "
        f"failed {summary['failed']}, pending {summary['pending']}, deferred {summary['deferred']}",
        file=out,
    )
    for failure in summary["failures"]:
        print(f"  failed {failure['invoiceNumber']}: {failure['reason']}", file=out)
    if summary["paymentStatus"]:
        statuses = ", ".join(f"{status} {n}" for status, n in summary["paymentStatus"].items())
        print(f"payment status: {statuses}; past due {summary['pastDue']}", file=out)
    for key in summary["s3Keys"]:
        print(f"  s3://{summary['bucket']}/{key}", file=out)
    if summary["checked"]:
        print(f"tax-qualified invoice checks: {summary['checked']} checked, {summary['flagged']} flagged", file=out)
        for flag in summary["flags"]:
            print(f"  flagged {flag['invoiceNumber']}: {flag['reason']}", file=out)
    wall_over_floor = summary["elapsedSeconds"] / max(summary["floorSeconds"] or 0, 0.001)  # no floor: another endpoint
    print(
        f"floor {summary['floorSeconds']}s (wall/floor {wall_over_floor:.2f}), "
        f"largest history {summary['maxHistoryEvents']} events, largest payload {summary['maxPayloadBytes']} bytes, "
        f"duplicates {summary['duplicates']}",
        file=out,
    )
    calls = ", ".join(f"{op} {n}" for op, n in sorted(summary["apiCalls"].items()))
    print(f"Amazon Business calls: {calls}; 429s: {summary['throttled429']}", file=out)
    states = ", ".join(f"{state} {n}" for state, n in summary["lineItemStates"].items())
    print(
        f"faults {summary['faults']}: injected {summary['faultsInjected'] or 'none'}\n"
        f"accounted for {summary['accountedFor']} of {summary['lineItems']} line items ({states}), "
        f"lost {summary['lost']}; objects not under the stack's key {len(summary['unencryptedObjects'])}; "
        f"log lines with a secret {summary['secretsInLogs']['lines']} of {summary['secretsInLogs']['linesScanned']}; "
        f"disk writes {sum(len(w) for w in summary['disk']['writes'].values()) + len(summary['disk']['leftOnDisk'])}; "
        f"requests AWS would refuse {summary['accessDenied']}",
        file=out,
    )
    print("audit: passed" if summary["audit"]["passed"] else f"audit: FAILED {summary['audit']['problems']}", file=out)
    if summary["financeMessage"]:
        print(
            f"\nfinance notification: {summary['financeMessage']['subject']}\n{summary['financeMessage']['message']}",
            file=out,
        )
        attributes = summary["financeMessage"].get("attributes") or {}
        print("message attributes: " + ", ".join(f"{k}={v}" for k, v in sorted(attributes.items())), file=out)
    if summary.get("reportKey"):
        bucket = summary["bucket"]
        print(f"report: s3://{bucket}/{summary['reportKey']}, s3://{bucket}/{summary['reportHtmlKey']}", file=out)
    if "error" in summary:
        print(f"error: {summary['error']}", file=out)
