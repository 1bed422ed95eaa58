"""`abrecon doctor`: is a deployed stack set up to run? One line per check, ✔ or ✘ and what to do.

The checks run in order; one that needs what an earlier one failed to find is shown as not run (a dash). The API
checks use the product's own token provider and client (abrecon.auth, abrecon.client), one cheap call each.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO, TypeAlias

from abrecon.auth import LwaTokenProvider
from abrecon.errors import AbreconError
from abrecon.models import REPORT_TYPE_INVOICE_PDF
from abrecon.steps import readable_reason
from abrecon_cli.amazon import api_client, explain, missing_fields, token_provider
from abrecon_cli.deployed import Aws, DeployedStack, find_stack
from abrecon_cli.errors import OperatorError, aws_errors
from abrecon_cli.progress import format_duration
from abrecon_cli.schedule import ScheduleExpressionError, next_run

__all__ = ["Check", "Handler", "Subcommands", "add_command", "cmd_doctor", "run_checks"]

# The outputs the checks read; a stack without one was deployed from an older template.
NEEDED_OUTPUTS = (
    "StateMachineArn",
    "DocumentBucketName",
    "LwaSecretArn",
    "LwaEndpoint",
    "AmazonBusinessApiEndpoint",
    "ScheduleName",
    "FinanceTopicArn",
    "OperationsTopicArn",
)
PENDING = "PendingConfirmation"  # the SubscriptionArn SNS lists for a subscription nobody has confirmed yet
MARKS = {True: "✔", False: "✘", None: "–"}
# How ops.add_commands hands its shared --stack/--region options and its error handling to the verbs added here.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[Callable[[argparse.Namespace, TextIO], int]], Callable[[argparse.Namespace], int]]


@dataclass(frozen=True)
class Check:
    """One line of the doctor's answer: passed (True), failed (False) or not run (None)."""

    name: str
    passed: bool | None
    detail: str

    def line(self) -> str:
        """✔ name: detail."""
        return f"{MARKS[self.passed]} {self.name}: {self.detail}"


@dataclass
class _Found:
    """What earlier checks found, for the later ones."""

    stack: DeployedStack | None = None
    credentials: dict[str, str] | None = None
    tokens: LwaTokenProvider | None = None
    outputs_missing: set[str] = field(default_factory=set)


def _not_run(name: str, needs: str) -> Check:
    return Check(name, None, f"not run ({needs})")


def _stack(aws: Aws, name: str, found: _Found) -> Check:
    try:
        stack = find_stack(aws, name)
    except OperatorError as exc:
        return Check("stack", False, str(exc))
    found.stack = stack
    found.outputs_missing = {key for key in NEEDED_OUTPUTS if not stack.outputs.get(key)}
    if found.outputs_missing:
        return Check(
            "stack",
            False,
            f"{name} in {aws.region} lacks the output(s) {', '.join(sorted(found.outputs_missing))}: it was "
            "deployed from an older template (sam build && sam deploy brings it up to date)",
        )
    return Check("stack", True, f"{name} in {aws.region}, with the {len(NEEDED_OUTPUTS)} outputs the checks read")


def _has(found: _Found, *outputs: str) -> bool:
    return found.stack is not None and not found.outputs_missing.intersection(outputs)


def _secret(aws: Aws, found: _Found) -> Check:
    name = "LWA secret"
    if found.stack is None or not _has(found, "LwaSecretArn"):
        return _not_run(name, "needs the stack's LwaSecretArn output")
    secret_id = found.stack.output("LwaSecretArn")
    try:
        with aws_errors(f"read the secret {secret_id}"):
            text = aws.client("secretsmanager").get_secret_value(SecretId=secret_id).get("SecretString") or ""
    except OperatorError as exc:
        return Check(name, False, f"{exc} (the operator needs secretsmanager:GetSecretValue and kms:Decrypt)")
    try:
        secret = json.loads(text)
    except ValueError:
        secret = None
    if not isinstance(secret, dict):
        return Check(
            name, False, f"{secret_id} is not a JSON object: store the credentials with abrecon credentials set"
        )
    missing = missing_fields(secret)
    if missing:
        return Check(
            name,
            False,
            f"{secret_id} lacks a value for {', '.join(missing)}: store the credentials with abrecon credentials set",
        )
    found.credentials = {key: str(secret[key]).strip() for key in ("client_id", "client_secret", "refresh_token")}
    return Check(name, True, f"{secret_id} has client_id, client_secret and refresh_token")


def _token(found: _Found) -> Check:
    name = "token exchange"
    if found.stack is None or found.credentials is None or not _has(found, "LwaEndpoint"):
        return _not_run(name, "needs the LWA secret and the LwaEndpoint output")
    try:
        tokens = token_provider(found.stack, found.credentials)
        tokens.access_token()
    except AbreconError as exc:
        return Check(name, False, explain(exc))
    found.tokens = tokens
    return Check(name, True, f"LWA at {found.stack.output('LwaEndpoint')} gave an access token")


def _api(found: _Found, name: str, call: Callable[[Any], str]) -> Check:
    if found.stack is None or found.tokens is None or not _has(found, "AmazonBusinessApiEndpoint"):
        return _not_run(name, "needs a working token exchange and the AmazonBusinessApiEndpoint output")
    try:
        return Check(name, True, call(api_client(found.stack, found.tokens)))
    except AbreconError as exc:
        return Check(name, False, explain(exc))


def _reconciliation(client: Any) -> str:
    end = datetime.now(UTC).replace(microsecond=0)
    page = next(iter(client.iter_transaction_pages(end - timedelta(days=1), end)))
    more = ", and more pages" if page.nextPageToken else ""
    return (
        f"getTransactions answered for the last day ({len(page.transactions)} transaction(s) on its first page{more})"
    )


def _documents(client: Any) -> str:
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    page = client.get_reports([REPORT_TYPE_INVOICE_PDF], created_since=since, page_size=1)
    return f"getReports answered for the last day: {'a' if page.reports else 'no'} {REPORT_TYPE_INVOICE_PDF} report"


def _schedule(aws: Aws, found: _Found, now: datetime) -> Check:
    name = "schedule"
    if found.stack is None or not _has(found, "ScheduleName"):
        return _not_run(name, "needs the stack's ScheduleName output")
    schedule_name = found.stack.output("ScheduleName")
    try:
        with aws_errors(f"read the schedule {schedule_name}"):
            schedule = aws.client("scheduler").get_schedule(Name=schedule_name)
    except OperatorError as exc:
        return Check(name, False, f"{exc} (the operator needs scheduler:GetSchedule)")
    expression, zone = schedule["ScheduleExpression"], schedule.get("ScheduleExpressionTimezone") or "UTC"
    if schedule.get("State") != "ENABLED":
        return Check(
            name,
            False,
            f"{schedule_name} is {schedule.get('State')}: no run starts on its own; enable it in the EventBridge "
            "Scheduler console (or aws scheduler update-schedule ... --state ENABLED)",
        )
    try:
        anchor = schedule.get("StartDate") or schedule.get("CreationDate")
        upcoming = next_run(expression, zone, now, anchor)
    except ScheduleExpressionError as exc:
        return Check(name, True, f"{schedule_name} is enabled, {expression} in {zone} (next run not computed: {exc})")
    if upcoming is None:
        return Check(name, False, f"{schedule_name} ({expression} in {zone}) never fires again: give it a new one")
    wait = format_duration((upcoming - now).total_seconds())
    return Check(
        name, True, f"{schedule_name} is enabled, {expression}: next run {upcoming:%Y-%m-%d %H:%M %Z} (in {wait})"
    )


def _subscriptions(aws: Aws, found: _Found, who: str, output: str, parameter: str) -> Check:
    name = f"{who} subscriptions"
    if found.stack is None or not _has(found, output):
        return _not_run(name, f"needs the stack's {output} output")
    topic = found.stack.output(output)
    try:
        with aws_errors(f"list the subscriptions of {topic}"):
            pages = aws.client("sns").get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
            subscriptions = [s for page in pages for s in page.get("Subscriptions", [])]
    except OperatorError as exc:
        return Check(name, False, f"{exc} (the operator needs sns:ListSubscriptionsByTopic)")
    pending = [s for s in subscriptions if s.get("SubscriptionArn") == PENDING]
    confirmed = [s for s in subscriptions if s.get("SubscriptionArn") != PENDING]
    if pending:
        names = ", ".join(f"{s.get('Protocol')} {s.get('Endpoint')}" for s in pending)
        return Check(
            name, False, f"pending confirmation: {names}: the confirmation mail's link has not been followed yet"
        )
    if not confirmed:
        return Check(
            name,
            False,
            f"nobody is subscribed to {topic}: deploy with {parameter}=ADDRESS (or subscribe to the topic)",
        )
    names = ", ".join(f"{s.get('Protocol')} {s.get('Endpoint')}" for s in confirmed)
    return Check(name, True, f"confirmed: {names}")


def _last_run(aws: Aws, found: _Found) -> Check:
    name = "last run"
    if found.stack is None or not _has(found, "StateMachineArn", "DocumentBucketName"):
        return _not_run(name, "needs the StateMachineArn and DocumentBucketName outputs")
    stack = found.stack
    sfn = aws.client("stepfunctions")
    try:
        with aws_errors("list the state machine's executions"):
            executions = sfn.list_executions(stateMachineArn=stack.state_machine_arn, maxResults=10)["executions"]
            if not executions:
                return Check(name, True, "none yet: start the first backfill (abrecon start --from DATE --to DATE)")
            newest = max(executions, key=lambda e: e["startDate"])
            described = sfn.describe_execution(executionArn=newest["executionArn"])
    except OperatorError as exc:
        return Check(name, False, f"{exc} (the operator needs states:ListExecutions and states:DescribeExecution)")
    run, status = described["name"], described["status"]
    started = f"{described['startDate']:%Y-%m-%d %H:%M %Z}".strip()
    if status == "RUNNING":
        return Check(name, True, f"{run} is running since {started} (abrecon watch {run})")
    if status != "SUCCEEDED":
        # A function's error comes with its Lambda payload as the cause: its message, not its stack trace.
        why = readable_reason(": ".join(str(described[k]) for k in ("error", "cause") if described.get(k))) or ""
        return Check(
            name,
            False,
            f"{run} (started {started}) {status}" + (f" ({why[:300]})" if why else "") + ": fix the cause, "
            "then start its window again (abrecon start)",
        )
    return _report(aws, stack, run, started, described)


def _report(aws: Aws, stack: DeployedStack, run: str, started: str, described: dict[str, Any]) -> Check:
    counts: dict[str, Any] = json.loads(described.get("output") or "{}")
    key = counts.get("summaryKey") or f"runs/{run}/summary.json"
    try:
        with aws_errors(f"read s3://{stack.bucket}/{key}"):
            summary: dict[str, Any] = json.loads(
                aws.client("s3").get_object(Bucket=stack.bucket, Key=key)["Body"].read()
            )
    except (OperatorError, ValueError) as exc:
        return Check("last run", False, f"{run} SUCCEEDED, but its summary could not be read: {exc}")
    report = summary.get("reportHtmlKey")
    if not report:
        return Check("last run", False, f"{run} SUCCEEDED, but its summary s3://{stack.bucket}/{key} names no report")
    failed = int(summary.get("failed", 0))
    left = f", {failed} failed (abrecon invoices list --state FAILED)" if failed else ""
    return Check(
        "last run",
        True,
        f"{run} (started {started}) SUCCEEDED: {summary.get('invoices', 0)} invoice(s), "
        f"{summary.get('documentsStored', 0)} PDF(s) stored{left}; report s3://{stack.bucket}/{report}",
    )


def run_checks(aws: Aws, stack_name: str, now: datetime | None = None) -> Iterator[Check]:
    """Every check, in order, each as soon as it is done."""
    found = _Found()
    now = now or datetime.now(UTC)
    yield _stack(aws, stack_name, found)
    yield _secret(aws, found)
    yield _token(found)
    yield _api(found, "Reconciliation API", _reconciliation)
    yield _api(found, "Document API", _documents)
    yield _schedule(aws, found, now)
    yield _subscriptions(aws, found, "finance", "FinanceTopicArn", "FinanceEmail")
    yield _subscriptions(aws, found, "operations", "OperationsTopicArn", "OperationsEmail")
    yield _last_run(aws, found)


def cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    """Check a deployed stack; exit 0 only if every check passed, 1 if one did not."""
    aws = Aws(args.region)
    failed = 0
    for check in run_checks(aws, args.stack):
        print(check.line(), file=out, flush=True)
        failed += check.passed is not True
    if failed:
        print(f"{failed} check(s) did not pass.", file=out)
        return 1
    print("All checks passed.", file=out)
    return 0


def add_command(commands: Subcommands, common: argparse.ArgumentParser, handler: Handler) -> None:
    """Add `abrecon doctor` (with the other verbs' --stack/--region)."""
    doctor = commands.add_parser(
        "doctor",
        parents=[common],
        help="check that a deployed stack is set up to run",
        description="Check a deployed stack: its outputs, the LWA secret and token exchange, one call each to the "
        "Reconciliation and Document APIs, the schedule, the finance and operations subscriptions, and the last "
        "run. Exit 0 only if every check passed.",
    )
    doctor.set_defaults(func=handler(cmd_doctor))
