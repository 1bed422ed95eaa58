"""What `abrecon sandbox run` prints: each state as the execution enters and leaves it, the Map's progress, and the
run's summary at the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from botocore.exceptions import ClientError

from abrecon_sandbox.run.options import SandboxError, SandboxOptions
from abrecon_sandbox.run.summary import Summary

if TYPE_CHECKING:
    from abrecon_sandbox.aws.local_aws import LocalAws
    from abrecon_sandbox.emulator import Emulator


def announce(
    options: SandboxOptions, emulator: Emulator | None, aws: LocalAws, run_input: dict[str, str], out: TextIO
) -> None:
    """What is about to run, against what, and what the sandbox does not run locally."""
    assert aws.stack is not None
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
    for note in aws.stack.skipped:
        print(f"  not run locally: {note}", file=out)


def follow(
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


def print_summary(run: Summary, out: TextIO) -> None:
    """The run's figures and audit, then finance's message: what the summary JSON has, for a reader."""
    summary = run.as_json()  # printed as the JSON file has it (dicts, nulls as None)
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
