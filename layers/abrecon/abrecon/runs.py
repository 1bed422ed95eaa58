"""Starting runs: the schedule's entry point and the operator's backfill share one naming and one start call.

Execution names carry the run's date, and Step Functions refuses a second execution of the same name for 90 days
(``ExecutionAlreadyExists``; a running one with the same name and input is simply returned). So a schedule that
fires twice for the same time -- EventBridge Scheduler delivers at least once, and retries -- starts one run.
EventBridge Scheduler cannot name the execution itself: its ``<aws.scheduler.scheduled-time>`` is
``2026-11-21T06:00:00Z`` and execution names allow no ':', and ``<aws.scheduler.execution-id>`` changes with
every attempt. So the schedule invokes start-run with the scheduled time, and start-run names the execution.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.exceptions import ClientError
from pydantic import Field

from abrecon.contracts import StepModel
from abrecon.errors import ConfigurationError
from abrecon.models import as_utc
from abrecon.runtime import Runtime

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions.client import SFNClient

__all__ = [
    "ScheduledStart",
    "StartedRun",
    "backfill_name",
    "execution_arn",
    "scheduled_name",
    "start_execution",
    "start_scheduled_run",
    "window_input",
]

# A safe subset of what Step Functions allows in an execution name (no whitespace, no ':', '/', '?', ...).
EXECUTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


def _checked(name: str) -> str:
    if not EXECUTION_NAME.match(name):
        raise ValueError(f"not a valid execution name: {name!r}")
    return name


def scheduled_name(scheduled_time: datetime) -> str:
    """The execution name of a scheduled run: one name per scheduled time, e.g. scheduled-2026-11-21T060000Z."""
    return _checked(f"scheduled-{as_utc(scheduled_time):%Y-%m-%dT%H%M%SZ}")


def backfill_name(start: datetime, end: datetime, now: datetime) -> str:
    """The execution name of a backfill: its window's days and when it was started, so a backfill can be repeated."""
    start, end = as_utc(start), as_utc(end)
    last = end - timedelta(microseconds=1)
    return _checked(f"backfill-{start:%Y-%m-%d}-to-{last:%Y-%m-%d}-at-{as_utc(now):%Y%m%dT%H%M%SZ}")


def window_input(
    start: datetime, end: datetime, *, poll_seconds: int | None = None, max_polls: int | None = None
) -> dict[str, Any]:
    """The execution input for a window (from inclusive, to exclusive), as in events/backfill.json."""
    run: dict[str, Any] = {
        "from": as_utc(start).isoformat().replace("+00:00", "Z"),
        "to": as_utc(end).isoformat().replace("+00:00", "Z"),
    }
    if poll_seconds is not None:
        run["pollSeconds"] = poll_seconds
    if max_polls is not None:
        run["maxPolls"] = max_polls
    return run


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN an execution of that name has (or would have)."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def start_execution(sfn: SFNClient, state_machine_arn: str, name: str, run_input: dict[str, Any]) -> tuple[str, bool]:
    """Start the execution; (its ARN, True), or (the ARN of the one that has this name already, False).

    An execution of that name is looked up first, because Step Functions answers a start with the same name and
    input as a running execution with that execution, as if it were new. The start itself stays the guard: two
    starts racing past the look-up still make one execution (the other gets it back, or ExecutionAlreadyExists).
    """
    arn = execution_arn(state_machine_arn, name)
    try:
        sfn.describe_execution(executionArn=arn)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ExecutionDoesNotExist":
            raise
    else:
        return arn, False
    try:
        started = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(run_input))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
            return arn, False
        raise
    return started["executionArn"], True


class ScheduledStart(StepModel):
    """What the schedule sends (its Input, with EventBridge Scheduler's context attributes filled in)."""

    scheduled_time: datetime = Field(alias="scheduledTime")
    schedule_arn: str | None = Field(default=None, alias="scheduleArn")


class StartedRun(StepModel):
    """The run a scheduled time stands for: started now, or started already by an earlier delivery."""

    status: Literal["STARTED", "ALREADY_STARTED"]
    name: str
    execution_arn: str = Field(alias="executionArn")
    window_start: datetime = Field(alias="windowStart")
    window_end: datetime = Field(alias="windowEnd")

    def metrics(self) -> dict[str, float]:
        """Scheduled runs started, and repeated deliveries that started nothing."""
        return {"ScheduledRunsStarted" if self.status == "STARTED" else "ScheduledStartsSkipped": 1.0}


@cache
def _stepfunctions() -> SFNClient:
    client: SFNClient = boto3.client("stepfunctions")
    return client


def start_scheduled_run(event: ScheduledStart, rt: Runtime) -> StartedRun:
    """Start the run for the scheduled time: the window is the LookbackDays before it, the name carries it."""
    machine = rt.settings.state_machine_arn
    if not machine:
        raise ConfigurationError("STATE_MACHINE_ARN is not set: only the start-run function starts runs")
    end = as_utc(event.scheduled_time)
    start = end - timedelta(days=rt.settings.lookback_days)
    name = scheduled_name(end)
    arn, started = start_execution(_stepfunctions(), machine, name, window_input(start, end))
    return StartedRun(
        status="STARTED" if started else "ALREADY_STARTED",
        name=name,
        execution_arn=arn,
        window_start=start,
        window_end=end,
    )
