"""Operator commands for a deployed stack: start a backfill, watch a run, list invoices, fetch an invoice's PDF.

Every command finds the stack's resources through its CloudFormation Outputs (`--stack`, default ABRECON_STACK or
"abrecon") and uses the AWS credentials boto3 finds (profile, SSO, environment, instance role). Errors are
OperatorErrors: one line on stderr that says what to do, and a distinct exit code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError
from pydantic import ValidationError

from abrecon import runs
from abrecon.models import InvoiceDetail
from abrecon.payment_status import PaymentRecord, status_text
from abrecon.reporting import describe_window, format_amount
from abrecon.storage import InvoiceRecord, InvoiceState
from abrecon_cli.deployed import Aws, DeployedStack, default_stack_name, find_stack
from abrecon_cli.errors import (
    AwsError,
    ExecutionNotFoundError,
    InvoiceNotFoundError,
    InvoiceNotStoredError,
    OperatorError,
    UsageError,
    aws_errors,
)
from abrecon_cli.progress import Progress, format_duration

DETAILS_PREFIX = "invoice-details/"
READERS = 16  # parallel S3 reads when listing invoices
FINISHED = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


# --- dates -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """A --from/--to value: a whole day (YYYY-MM-DD) or an instant (ISO 8601, UTC if no offset)."""

    at: datetime
    whole_day: bool

    @property
    def start(self) -> datetime:
        """As a window start: the instant, or the day's first moment."""
        return self.at

    @property
    def end(self) -> datetime:
        """As a window end (exclusive): the instant, or the day after a whole day, so --to names the last day."""
        return self.at + timedelta(days=1) if self.whole_day else self.at


def _bound(text: str) -> Bound:
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return Bound(datetime(day.year, day.month, day.day, tzinfo=UTC), whole_day=True)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD) or ISO 8601 time: {text!r}") from None
    return Bound(value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC), whole_day=False)


def _window(start: Bound | None, end: Bound | None) -> tuple[datetime | None, datetime | None]:
    lower, upper = (start.start if start else None), (end.end if end else None)
    if lower and upper and lower >= upper:
        raise UsageError(f"--from {lower:%Y-%m-%d %H:%M} must be before --to (the window ends {upper:%Y-%m-%d %H:%M})")
    return lower, upper


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _console(region: str | None, execution_arn: str) -> str:
    region = region or "us-east-1"
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"


# --- start -------------------------------------------------------------------------------------------------------


def cmd_start(args: argparse.Namespace, out: TextIO) -> int:
    """Start a backfill for --from/--to."""
    start, end = _window(args.window_from, args.window_to)
    assert start is not None and end is not None  # nosec B101 # both are required options: argparse enforces them
    if start > datetime.now(UTC):
        raise UsageError(f"--from {start:%Y-%m-%d %H:%M} is in the future: there is nothing to fetch yet")
    aws = Aws(args.region)
    stack = find_stack(aws, args.stack)
    name = args.name or runs.backfill_name(start, end, datetime.now(UTC))
    if not runs.EXECUTION_NAME.match(name):
        raise UsageError(f"--name {name!r}: use up to 80 letters, digits, '-', '_' or '.'")
    run_input = runs.window_input(start, end, poll_seconds=args.poll_seconds, max_polls=args.max_polls)
    with aws_errors(f"start an execution of {stack.state_machine_arn}"):
        arn, started = runs.start_execution(aws.client("stepfunctions"), stack.state_machine_arn, name, run_input)
    print(f"{'Started' if started else 'Already started'} {name}", file=out)
    print(f"  window     {describe_window(start, end)}: {_iso(start)} up to {_iso(end)}", file=out)
    print(f"  execution  {arn}", file=out)
    print(f"  console    {_console(aws.region, arn)}", file=out)
    if args.watch:
        return _watch(aws, stack, arn, args.interval, None, out)
    print(f"Follow it:   abrecon watch {arn}", file=out)
    return 0


# --- watch -------------------------------------------------------------------------------------------------------


def _latest_state(sfn: Any, arn: str) -> str:
    """The state the execution entered last (reverse order: the newest events come first on AWS)."""
    with aws_errors("read the execution's history"):
        events = sfn.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=100)["events"]
    entered = [e for e in events if e["type"].endswith("StateEntered")]
    if not entered:
        return "starting"
    return str(max(entered, key=lambda e: e["id"])["stateEnteredEventDetails"]["name"])


def _map_counts(sfn: Any, arn: str) -> dict[str, int] | None:
    try:
        runs_ = sfn.list_map_runs(executionArn=arn).get("mapRuns", [])
        if not runs_:
            return None
        counts: dict[str, int] = sfn.describe_map_run(mapRunArn=runs_[0]["mapRunArn"])["itemCounts"]
    except ClientError:  # the map run is not described (yet, or any more): show the state alone
        return None
    return counts


def _look(sfn: Any, arn: str) -> tuple[Progress, dict[str, Any]]:
    with aws_errors("describe the execution"):
        try:
            described = sfn.describe_execution(executionArn=arn)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("ExecutionDoesNotExist", "InvalidArn"):
                raise ExecutionNotFoundError(f"no execution {arn}: check the ARN (or name) and the region") from exc
            raise
    started: datetime = described["startDate"]
    stopped: datetime = described.get("stopDate") or datetime.now(started.tzinfo or UTC)
    counts = _map_counts(sfn, arn)
    progress = Progress(
        status=str(described["status"]),
        state=_latest_state(sfn, arn),
        elapsed_seconds=(stopped - started).total_seconds(),
        total=counts["total"] if counts else None,
        succeeded=counts.get("succeeded", 0) if counts else 0,
        failed=counts.get("failed", 0) if counts else 0,
        running=counts.get("running", 0) if counts else 0,
    )
    return progress, described


def _watch(aws: Aws, stack: DeployedStack | None, arn: str, interval: float, timeout: float | None, out: TextIO) -> int:
    sfn = aws.client("stepfunctions")
    tty = out.isatty()
    began = time.monotonic()
    shown = ""
    try:
        while True:
            progress, described = _look(sfn, arn)
            line = progress.line()
            if tty:
                print("\r" + line.ljust(len(shown)), end="", file=out, flush=True)
            elif line != shown:
                print(line, file=out, flush=True)
            shown = line
            if progress.status in FINISHED:
                break
            if timeout is not None and time.monotonic() - began > timeout:
                print(f"\nstill {progress.status} after watching {format_duration(timeout)}; it goes on", file=out)
                return 124
            time.sleep(interval)
    except KeyboardInterrupt:
        print("\nstopped watching; the execution goes on", file=out)
        return 130
    if tty:
        print(file=out)
    return _outcome(progress, described, stack, out)


def _outcome(progress: Progress, described: dict[str, Any], stack: DeployedStack | None, out: TextIO) -> int:
    took = format_duration(progress.elapsed_seconds)
    if progress.status != "SUCCEEDED":
        print(f"The run {progress.status} after {took}, in state {progress.state!r}.", file=out)
        if described.get("error") or described.get("cause"):
            print(f"  error  {described.get('error', '')}: {described.get('cause', '')}", file=out)
        print("  Finance got no summary for it. Fix the cause, then start the window again (abrecon start).", file=out)
        return 1
    summary: dict[str, Any] = json.loads(described.get("output") or "{}")
    print(f"The run SUCCEEDED in {took}.", file=out)
    print(
        f"  invoices {summary.get('invoices', 0)}, credit memos {summary.get('creditMemos', 0)}, "
        f"PDFs stored {summary.get('documentsStored', 0)}, failed {summary.get('failed', 0)}, "
        f"deferred {summary.get('deferred', 0)}, line items without an invoice {summary.get('pending', 0)}",
        file=out,
    )
    for failure in summary.get("failures", [])[:20]:
        print(f"  failed {failure.get('invoiceNumber')}: {failure.get('reason')}", file=out)
    prefix = f"s3://{stack.bucket}/" if stack else ""
    for label, key in (("report", summary.get("reportHtmlKey")), ("spreadsheet", summary.get("reportKey"))):
        if key:
            print(f"  {label:<11} {prefix}{key}", file=out)
    return 0


def cmd_watch(args: argparse.Namespace, out: TextIO) -> int:
    """Follow an execution (ARN, or name of an execution of the stack's state machine) until it ends."""
    aws = Aws(args.region)
    stack: DeployedStack | None = None
    arn = args.execution
    if not arn.startswith("arn:"):
        stack = find_stack(aws, args.stack)
        arn = runs.execution_arn(stack.state_machine_arn, arn)
    else:
        try:
            stack = find_stack(aws, args.stack)
        except OperatorError:
            stack = None  # the ARN is enough to follow it; the stack only names the bucket at the end
    return _watch(aws, stack, arn, args.interval, args.timeout, out)


# --- invoices ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    """One invoice or credit memo as `invoices list` shows it."""

    number: str
    kind: str
    date: str
    total: str
    currency: str
    state: str
    pdfs: int
    note: str
    payment_status: str = ""  # Amazon's payment status (Closed, Past Due, Issued, Payment Processing) or ERROR
    due_date: str = ""

    def as_json(self) -> dict[str, Any]:
        """For --json."""
        return {
            "invoiceNumber": self.number,
            "type": self.kind,
            "invoiceDate": self.date,
            "total": self.total,
            "currency": self.currency,
            "state": self.state,
            "pdfs": self.pdfs,
            "note": self.note,
            "paymentStatus": self.payment_status,
            "dueDate": self.due_date,
        }


def _scan(aws: Aws, stack: DeployedStack, prefix: str) -> Iterator[dict[str, Any]]:
    """Every ledger entry whose key starts with prefix ("INVOICE#", "PAYMENT#")."""
    table = aws.resource("dynamodb").Table(stack.ledger_table)
    kwargs: dict[str, Any] = {"FilterExpression": Attr("pk").begins_with(prefix)}
    with aws_errors(f"read the ledger table {stack.ledger_table}"):
        while True:
            page = table.scan(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _ledger(aws: Aws, stack: DeployedStack) -> dict[str, InvoiceRecord]:
    records = (_record(item) for item in _scan(aws, stack, "INVOICE#"))
    return {record.invoice_number: record for record in records if record}


def _record(item: dict[str, Any]) -> InvoiceRecord | None:
    try:
        return InvoiceRecord.model_validate(item)
    except ValidationError:  # an entry of a kind this CLI does not know: not an invoice to list
        return None


def _payments(aws: Aws, stack: DeployedStack) -> dict[str, PaymentRecord]:
    """The ledger's payment entries (what the last run learned of each invoice's payment status)."""
    found: dict[str, PaymentRecord] = {}
    for item in _scan(aws, stack, "PAYMENT#"):
        with suppress(ValidationError):  # an entry this CLI cannot read: listed without a payment status
            record = PaymentRecord.model_validate(item)
            found[record.invoice_number] = record
    return found


def _detail_keys(s3: Any, bucket: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=DETAILS_PREFIX):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".json"):
                yield obj["Key"]


def _details(aws: Aws, stack: DeployedStack) -> dict[str, InvoiceDetail]:
    s3 = aws.client("s3")

    def read(key: str) -> InvoiceDetail | None:
        body = s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()
        try:
            return InvoiceDetail.model_validate_json(body)
        except ValidationError:
            return None

    with aws_errors(f"read the invoice details in s3://{stack.bucket}/{DETAILS_PREFIX}"):
        keys = list(_detail_keys(s3, stack.bucket))
        with ThreadPoolExecutor(max_workers=READERS) as pool:
            found = [d for d in pool.map(read, keys) if d is not None]
    return {d.invoiceNumber: d for d in found}


def _owner(number: str, detail: InvoiceDetail | None, records: dict[str, InvoiceRecord]) -> InvoiceRecord | None:
    """The ledger entry whose report carries this document (a credit memo comes with its invoice's report)."""
    if number in records:
        return records[number]
    if detail is not None and detail.is_credit_memo and detail.associatedInvoiceNumber:
        return records.get(detail.associatedInvoiceNumber)
    return None


def _pdf_keys(number: str, record: InvoiceRecord) -> list[str]:
    own = [k for k in record.s3_keys if number in k.rsplit("/", 1)[-1]]
    return own or list(record.s3_keys)


def _listed(number: str, detail: InvoiceDetail | None, record: InvoiceRecord | None) -> Listed:
    kind = "credit memo" if detail is not None and detail.is_credit_memo else "invoice"
    total = detail.invoiceTotal if detail is not None else None
    currency = (detail.currencyCode if detail is not None else None) or ""
    if record is None:
        state, note = "NOT_REQUESTED", "no PDF asked for yet"
    else:
        state, note = record.state.value, record.reason or (f"run {record.run_id}" if record.run_id else "")
    return Listed(
        number=number,
        kind=kind,
        date=detail.invoiceDate.date().isoformat() if detail is not None else "",
        total=format_amount(total, currency) if total is not None else "",
        currency=currency,
        state=state,
        pdfs=len(_pdf_keys(number, record)) if record is not None and record.state is InvoiceState.STORED else 0,
        note=note,
    )


def cmd_invoices_list(args: argparse.Namespace, out: TextIO) -> int:
    """List the invoices and credit memos the stack knows, with their dates and whether their PDFs are stored."""
    start, end = _window(args.window_from, args.window_to)
    aws = Aws(args.region)
    stack = find_stack(aws, args.stack)
    records, details, paid = _ledger(aws, stack), _details(aws, stack), _payments(aws, stack)
    listed = []
    for number in sorted(set(records) | set(details)):
        detail = details.get(number)
        if start or end:
            if detail is None:
                continue  # no date to compare
            when = detail.invoiceDate
            if (start and when < start) or (end and when >= end):
                continue
        item = _listed(number, detail, _owner(number, detail, records))
        if number in paid:
            payment = paid[number]
            due = payment.due_date.isoformat() if payment.due_date else ""
            item = replace(item, payment_status=status_text(payment), due_date=due)
        if args.state and item.state != args.state:
            continue
        if args.past_due and not (number in paid and paid[number].is_past_due):
            continue
        listed.append(item)
    listed.sort(key=lambda i: (i.date, i.number))
    if args.json:
        json.dump([i.as_json() for i in listed], out, indent=2)
        print(file=out)
        return 0
    _print_table(listed, out)
    return 0


def _print_table(listed: list[Listed], out: TextIO) -> None:
    rows = [("INVOICE", "TYPE", "DATE", "TOTAL", "STATE", "PDFS", "PAYMENT", "DUE", "NOTE")]
    rows += [
        (
            i.number,
            i.kind,
            i.date,
            f"{i.total} {i.currency}".strip(),
            i.state,
            str(i.pdfs),
            i.payment_status.split(":", 1)[0],  # ERROR's reason is in --json
            i.due_date,
            i.note,
        )
        for i in listed
    ]
    columns = len(rows[0]) - 1
    widths = [max(len(r[c]) for r in rows) for c in range(columns)]
    for row in rows:
        print(
            "  ".join(
                cell.ljust(widths[c]) if c != 3 else cell.rjust(widths[c]) for c, cell in enumerate(row[:columns])
            )
            + "  "
            + row[columns],
            file=out,
        )
    states: dict[str, int] = {}
    for item in listed:
        states[item.state] = states.get(item.state, 0) + 1
    memos = sum(1 for i in listed if i.kind == "credit memo")
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items()))
    print(f"{len(listed) - memos} invoices, {memos} credit memos" + (f": {counts}" if counts else ""), file=out)


def _write_atomically(path: Path, content: bytes) -> None:
    """The whole file or nothing, readable by its owner only (invoices are confidential)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def cmd_invoices_get(args: argparse.Namespace, out: TextIO) -> int:
    """Fetch an invoice's (or credit memo's) stored PDF to --out: a file, or a directory for all of its PDFs."""
    aws = Aws(args.region)
    stack = find_stack(aws, args.stack)
    number: str = args.invoice.strip()
    s3 = aws.client("s3")
    table = aws.resource("dynamodb").Table(stack.ledger_table)
    with aws_errors(f"read invoice {number} from the ledger"):
        item = table.get_item(Key={"pk": f"INVOICE#{number}"}, ConsistentRead=True).get("Item")
    record = _record(item) if item else None
    if record is None:
        detail = _detail(s3, stack, number)
        if detail is None:
            raise InvoiceNotFoundError(
                f"invoice {number!r} is unknown to stack {stack.name!r}: no run has seen it (check the number, "
                "or list what there is: abrecon invoices list)"
            )
        owner = detail.associatedInvoiceNumber if detail.is_credit_memo else None
        if owner:
            with aws_errors(f"read invoice {owner} from the ledger"):
                item = table.get_item(Key={"pk": f"INVOICE#{owner}"}, ConsistentRead=True).get("Item")
            record = _record(item) if item else None
        if record is None:
            raise InvoiceNotStoredError(f"{number}: Amazon listed it, but no PDF has been asked for it yet")
    if record.state is not InvoiceState.STORED:
        raise InvoiceNotStoredError(
            f"{number}: its PDF is not stored; the ledger says {record.state.value}"
            + (f": {record.reason}" if record.reason else "")
        )
    keys = _pdf_keys(number, record)
    if not keys:
        raise InvoiceNotStoredError(f"{number}: stored, but the ledger lists no PDF for it")
    targets = _targets(Path(args.out), keys, args.force)
    digests = dict(zip(record.s3_keys, record.sha256, strict=False))
    for key, target in targets:
        with aws_errors(f"read s3://{stack.bucket}/{key}"):
            content = s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()
        digest = hashlib.sha256(content).hexdigest()
        if key in digests and digests[key] != digest:
            raise AwsError(f"s3://{stack.bucket}/{key} does not match the checksum the ledger recorded; not written")
        if not content.startswith(b"%PDF-"):
            raise AwsError(f"s3://{stack.bucket}/{key} is not a PDF; not written")
        _write_atomically(target, content)
        print(f"{target}  ({len(content):,} bytes, sha256 {digest[:12]}..., from s3://{stack.bucket}/{key})", file=out)
    return 0


def _detail(s3: Any, stack: DeployedStack, number: str) -> InvoiceDetail | None:
    with aws_errors(f"read the details of {number}"):
        try:
            body = s3.get_object(Bucket=stack.bucket, Key=f"{DETAILS_PREFIX}{number}.json")["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
    try:
        return InvoiceDetail.model_validate_json(body)
    except ValidationError:
        return None


def _targets(out: Path, keys: list[str], force: bool) -> list[tuple[str, Path]]:
    """Where each PDF goes: into --out if it is a directory, else --out itself (then there must be one PDF)."""
    if out.is_dir() or str(out).endswith(os.sep):
        out.mkdir(parents=True, exist_ok=True)
        targets = [(key, out / key.rsplit("/", 1)[-1]) for key in keys]
    elif len(keys) > 1:
        names = ", ".join(k.rsplit("/", 1)[-1] for k in keys)
        raise UsageError(f"there are {len(keys)} PDFs ({names}): give a directory as --out to get them all")
    else:
        if not out.parent.is_dir():
            raise UsageError(f"--out {out}: the directory {out.parent} does not exist")
        targets = [(keys[0], out)]
    for _key, target in targets:
        if target.exists() and not force:
            raise UsageError(f"{target} exists; give --force to replace it")
    return targets


# --- the command line ---------------------------------------------------------------------------------------------


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _handler(command: Callable[[argparse.Namespace, TextIO], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args, sys.stdout)
        except OperatorError as exc:
            print(f"abrecon: error: {exc}", file=sys.stderr)
            return exc.exit_code

    return run


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add start, watch and invoices to the `abrecon` command line."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--stack",
        default=default_stack_name(),
        help="the deployed stack's name (default: ABRECON_STACK, else abrecon)",
    )
    common.add_argument("--region", default=None, help="its AWS region (default: AWS_REGION or the profile's)")

    start = commands.add_parser(
        "start",
        parents=[common],
        help="start a backfill run for a window",
        description="Start a run of the deployed stack for a window. A date (YYYY-MM-DD) names a whole day: "
        "--from 2026-10-01 --to 2026-10-31 is all of October. Times are ISO 8601, UTC unless they carry an offset.",
    )
    start.add_argument("--from", dest="window_from", type=_bound, required=True, metavar="DATE", help="first day")
    start.add_argument("--to", dest="window_to", type=_bound, required=True, metavar="DATE", help="last day")
    start.add_argument("--poll-seconds", type=_positive_int, default=None, help="seconds between report polls")
    start.add_argument("--max-polls", type=_positive_int, default=None, help="poll budget per report")
    start.add_argument("--name", default=None, help="execution name (default: backfill-FROM-to-TO-at-NOW)")
    start.add_argument("--watch", action="store_true", help="follow the run until it ends")
    start.add_argument("--interval", type=_positive_float, default=5.0, help=argparse.SUPPRESS)
    start.set_defaults(func=_handler(cmd_start))

    watch = commands.add_parser(
        "watch",
        parents=[common],
        help="follow a run with a progress bar until it ends",
        description="Follow an execution until it ends; exits 0 if it SUCCEEDED, 1 if not.",
    )
    watch.add_argument("execution", metavar="EXECUTION", help="execution ARN, or the name of one of the stack's")
    watch.add_argument("--interval", type=_positive_float, default=5.0, help="seconds between looks (default 5)")
    watch.add_argument("--timeout", type=_positive_float, default=None, help="stop watching after this many seconds")
    watch.set_defaults(func=_handler(cmd_watch))

    invoices = commands.add_parser("invoices", help="the invoices and credit memos the stack has")
    invoice_commands = invoices.add_subparsers(dest="invoices_command", required=True)
    listing = invoice_commands.add_parser(
        "list",
        parents=[common],
        help="list invoices and credit memos, with date, total and whether the PDF is stored",
    )
    listing.add_argument(
        "--from", dest="window_from", type=_bound, default=None, metavar="DATE", help="invoice date from"
    )
    listing.add_argument("--to", dest="window_to", type=_bound, default=None, metavar="DATE", help="invoice date to")
    listing.add_argument("--state", choices=[s.value for s in InvoiceState] + ["NOT_REQUESTED"], default=None)
    listing.add_argument(
        "--past-due", action="store_true", help="only invoices Amazon says are past due (as the last run asked)"
    )
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    listing.set_defaults(func=_handler(cmd_invoices_list))
    get = invoice_commands.add_parser("get", parents=[common], help="fetch an invoice's stored PDF")
    get.add_argument("invoice", metavar="INVOICE", help="invoice or credit memo number")
    get.add_argument("--out", required=True, metavar="PATH", help="file to write, or a directory for all its PDFs")
    get.add_argument("--force", action="store_true", help="replace an existing file")
    get.set_defaults(func=_handler(cmd_invoices_get))


__all__ = ["Bound", "add_commands", "cmd_invoices_get", "cmd_invoices_list", "cmd_start", "cmd_watch"]
