"""start-run, the schedule's entry point, against moto: one execution per scheduled time, named after it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from helpers import FakeContext, function_environment, load_event, load_handler

from abrecon import runs
from abrecon.errors import ConfigurationError
from abrecon.runtime import get_runtime
from abrecon.settings import get_settings
from abrecon_sandbox.aws.local_aws import LocalAws


@pytest.fixture
def start_run_env(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process gets exactly the environment the template gives StartRunFunction."""
    with function_environment(local_aws, monkeypatch, "StartRunFunction"):
        yield


def test_a_scheduled_time_starts_one_dated_execution_however_often_it_is_delivered(
    local_aws: LocalAws, start_run_env: None
) -> None:
    assert local_aws.stack is not None
    sfn = local_aws.client("stepfunctions")
    machine = local_aws.stack.output("ReconcileStateMachine")
    # A time long before the emulator's data: the started runs find no transactions and end in seconds.
    event = load_event("start-run") | {"scheduledTime": "2025-01-10T06:00:00Z"}
    handler = load_handler("start-run")

    first = handler(event, FakeContext("start-run"))
    assert first["status"] == "STARTED"
    assert first["name"] == "scheduled-2025-01-10T060000Z"
    assert first["windowStart"] == "2025-01-07T06:00:00Z" and first["windowEnd"] == "2025-01-10T06:00:00Z"
    try:
        described = sfn.describe_execution(executionArn=first["executionArn"])
        assert described["stateMachineArn"] == machine and described["name"] == first["name"]
        assert json.loads(described["input"]) == {"from": "2025-01-07T06:00:00Z", "to": "2025-01-10T06:00:00Z"}

        again = handler(event, FakeContext("start-run"))  # EventBridge Scheduler delivers at least once, and retries
        assert again["status"] == "ALREADY_STARTED" and again["executionArn"] == first["executionArn"]
        named = [e for e in sfn.list_executions(stateMachineArn=machine)["executions"] if e["name"] == first["name"]]
        assert len(named) == 1

        later = handler(event | {"scheduledTime": "2025-01-11T06:00:00Z"}, FakeContext("start-run"))
        assert later["status"] == "STARTED" and later["name"] == "scheduled-2025-01-11T060000Z"
    finally:  # the runs are real: let them end before the module's moto goes (moto cannot stop one mid-start)
        deadline = time.monotonic() + 120
        while sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]:
            assert time.monotonic() < deadline, "the started runs did not end"
            time.sleep(0.5)


def test_start_run_without_a_state_machine_is_a_configuration_error(
    start_run_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STATE_MACHINE_ARN")
    get_settings.cache_clear()
    get_runtime.cache_clear()
    with pytest.raises(ConfigurationError, match="STATE_MACHINE_ARN"):
        load_handler("start-run")(load_event("start-run"), FakeContext())


@pytest.mark.parametrize(
    ("start", "end", "now", "name"),
    [
        (
            datetime(2026, 10, 1, tzinfo=UTC),
            datetime(2026, 11, 1, tzinfo=UTC),
            datetime(2026, 11, 21, 12, 5, 1, tzinfo=UTC),
            "backfill-2026-10-01-to-2026-10-31-at-20261121T120501Z",
        ),
        (
            datetime(2026, 11, 18, 6, tzinfo=UTC),
            datetime(2026, 11, 21, 6, tzinfo=UTC),
            datetime(2026, 11, 21, 7, tzinfo=UTC),
            "backfill-2026-11-18-to-2026-11-21-at-20261121T070000Z",
        ),
    ],
)
def test_execution_names_carry_the_window_and_no_character_step_functions_refuses(
    start: datetime, end: datetime, now: datetime, name: str
) -> None:
    assert runs.backfill_name(start, end, now) == name
    assert runs.EXECUTION_NAME.match(name) and ":" not in name and len(name) <= 80
    assert runs.scheduled_name(datetime(2026, 11, 21, 6, tzinfo=UTC)) == "scheduled-2026-11-21T060000Z"
