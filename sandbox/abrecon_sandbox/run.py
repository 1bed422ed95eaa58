"""`abrecon sandbox run`: the whole pipeline on this machine, one execution, followed state by state."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import ClientError

from abrecon_sandbox.aws import LocalAws
from abrecon_sandbox.emulator import Emulator, EmulatorConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = PROJECT_ROOT / "template.yaml"
AMAZON_POLL_SECONDS = 15


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

    @property
    def effective_poll_seconds(self) -> int:
        """Amazon's 15 s poll interval divided by the speed factor (Wait states take whole seconds)."""
        return self.poll_seconds or max(1, round(AMAZON_POLL_SECONDS / self.speed))


@dataclass
class SandboxRun:
    """Handles on a running sandbox, for tests that look inside afterwards."""

    emulator: Emulator
    aws: LocalAws
    summary: dict[str, Any]


def run_sandbox(options: SandboxOptions, out: TextIO = sys.stdout, keep: list[SandboxRun] | None = None) -> int:
    """Run one execution end to end; 0 if it SUCCEEDED. With keep, the run's handles are appended and left open."""
    emulator = Emulator(EmulatorConfig(seed=options.seed, orders=options.orders, speed=options.speed))
    emulator.start()
    aws = LocalAws(
        TEMPLATE,
        {
            "ApiEndpoint": emulator.base_url,
            "LwaEndpoint": emulator.lwa_url,
            "PollSeconds": str(options.effective_poll_seconds),
        },
        options.log_dir,
    )
    try:
        aws.start()
        summary = _run_once(options, emulator, aws, out)
    except BaseException:
        aws.stop()
        emulator.stop()
        raise
    if keep is not None:
        keep.append(SandboxRun(emulator=emulator, aws=aws, summary=summary))
    else:
        aws.stop()
        emulator.stop()
    return 0 if summary["status"] == "SUCCEEDED" else 1


def _run_once(options: SandboxOptions, emulator: Emulator, aws: LocalAws, out: TextIO) -> dict[str, Any]:
    assert aws.stack is not None and aws.pool is not None
    stack = aws.stack
    # What an operator does after deploy: put the LWA credentials into the stack's secret.
    aws.client("secretsmanager").put_secret_value(
        SecretId=stack.output("LwaSecret"), SecretString=json.dumps(emulator.credentials)
    )
    finance_inbox = _subscribe_queue(aws, stack.output("FinanceTopic"))
    config = emulator.config
    started_at = datetime.now(UTC)
    name = f"sandbox-{started_at:%Y%m%dT%H%M%S}-seed{options.seed}"
    run_input = {"from": config.window_start.isoformat(), "to": config.window_end.isoformat()}
    print(
        f"abrecon sandbox: {options.orders} orders (seed {options.seed}), speed x{options.speed:g}, "
        f"poll every {options.effective_poll_seconds}s; AWS at {aws.endpoint_url}, "
        f"Amazon Business emulator at {emulator.base_url}",
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
    status = _follow(sfn, execution_arn, clock, options.deadline_seconds, out)
    elapsed = time.monotonic() - clock
    description = sfn.describe_execution(executionArn=execution_arn)
    run_summary: dict[str, Any] = json.loads(description.get("output") or "{}") if status == "SUCCEEDED" else {}
    stats = emulator.stats()
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
        "bucket": stack.output("DocumentBucket"),
        "elapsedSeconds": round(elapsed, 2),
        "stateTransitions": aws.meter.state_transitions,
        "maxHistoryEvents": aws.meter.max_history_events,
        "apiCalls": stats["apiCalls"],
        "throttled429": stats["throttled429"],
        "lambdaInvocations": dict(aws.pool.stats.invocations),
        "lambdaGbSeconds": round(aws.pool.stats.gb_seconds, 3),
        "financeMessage": _receive(aws, finance_inbox),
    }
    if status != "SUCCEEDED":
        summary["error"] = {"error": description.get("error"), "cause": description.get("cause")}
    _print_summary(summary, out)
    if options.summary_file:
        options.summary_file.parent.mkdir(parents=True, exist_ok=True)
        options.summary_file.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _follow(sfn: Any, execution_arn: str, clock: float, deadline_seconds: float, out: TextIO) -> str:
    """Print each state as it is entered and left until the execution ends; returns its status."""
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
    aws.client("sns").subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "false"}
    )
    return queue_url


def _receive(aws: LocalAws, queue_url: str) -> dict[str, str] | None:
    messages = (
        aws.client("sqs")
        .receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1)
        .get("Messages", [])
    )
    if not messages:
        return None
    envelope = json.loads(messages[0]["Body"])
    return {"subject": envelope.get("Subject", ""), "message": envelope.get("Message", "")}


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
    for key in summary["s3Keys"]:
        print(f"  s3://{summary['bucket']}/{key}", file=out)
    calls = ", ".join(f"{op} {n}" for op, n in sorted(summary["apiCalls"].items()))
    print(f"Amazon Business calls: {calls}; 429s: {summary['throttled429']}", file=out)
    if summary["financeMessage"]:
        print(
            f"\nfinance notification: {summary['financeMessage']['subject']}\n{summary['financeMessage']['message']}",
            file=out,
        )
    if "error" in summary:
        print(f"error: {summary['error']}", file=out)
