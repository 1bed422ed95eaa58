"""Issue 12, finding 1, on the real functions in the sandbox's Lambda workers (Amazon's clock, amazon_clock.py): a
window of ~190 getTransactions pages (2 Amazon seconds each at 0.5 requests a second) does not fit one 300-second
invocation. fetch-transactions stops at the invocation's time budget and continues in the next invocation; a loop
bounded by a constant (the old PAGE_BUDGET_SECONDS = 600) is killed at the Timeout."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import local_aws_for

from abrecon_sandbox.aws.local_aws import LocalAws
from abrecon_sandbox.emulator import Emulator, EmulatorConfig
from abrecon_sandbox.run.options import scaled_rate_limits

SPEED = 200.0


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """1,300 orders: about 190 pages of transactions and 3,000 line items; the emulator's clock 200 times faster."""
    with Emulator(EmulatorConfig(seed=5, orders=1300, speed=SPEED)) as emu:
        yield emu


@pytest.fixture(scope="module")
def local_aws(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    """The stack at the same speed: rate limits scaled as `abrecon sandbox run` does, workers on Amazon's clock."""
    with local_aws_for(
        emulator, tmp_path_factory.mktemp("lambda-logs"), speed=SPEED, ApiRateLimits=scaled_rate_limits(SPEED)
    ) as aws:
        yield aws


def _first_payload(emulator: Emulator, run_id: str) -> dict[str, Any]:
    config = emulator.config
    window = {"from": config.window_start.isoformat(), "to": config.window_end.isoformat()}
    return {
        "request": window,
        "runId": run_id,
        "startTime": config.window_end.isoformat(),
        "defaultPollSeconds": 1,
        "defaultMaxPolls": 30,
    }


def _invoke(aws: LocalAws, logical_id: str, payload: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    assert aws.pool is not None and aws.stack is not None
    ok, body = aws.pool.invoke(aws.stack.functions[logical_id], json.dumps(payload).encode())
    answer: dict[str, Any] = json.loads(body)
    return ok, answer


def test_a_large_window_takes_several_invocations_each_within_the_timeout(
    emulator: Emulator, local_aws: LocalAws
) -> None:
    assert local_aws.pool is not None
    payload = _first_payload(emulator, "budget-run")
    transactions = emulator.dataset.transactions_between(emulator.config.window_start, emulator.config.window_end)
    assert len(transactions) > 1600  # more than 160 pages of 10: over 300 Amazon seconds at 0.5 pages a second
    ok, run = _invoke(local_aws, "FetchTransactionsFunction", payload)
    fetches = 1
    while ok and run.get("nextPageToken"):
        ok, run = _invoke(local_aws, "FetchTransactionsFunction", payload | {"request": {}, "resume": run})
        fetches += 1
    assert ok, run
    assert fetches >= 2
    assert run["transactionCount"] == len(transactions)
    lookups = 0
    while ok and run.get("invoicesKey") is None:
        ok, run = _invoke(local_aws, "FetchInvoicesFunction", run)
        lookups += 1
    assert ok, run
    assert lookups == 1  # ~3,400 line items: 136 calls at 2 a second fit one invocation (test_handlers: several)
    assert run["invoiceCount"] == len(emulator.invoice_numbers())
    assert local_aws.pool.stats.timeouts == {}


# What fetch-transactions did before issue 12: page until a constant budget (PAGE_BUDGET_SECONDS, 600) runs out.
CONSTANT_BUDGET_HANDLER = """import time
from datetime import datetime

from abrecon.runtime import get_runtime


def lambda_handler(event, context):
    rt = get_runtime()
    deadline = time.monotonic() + 600.0
    window = event["request"]
    pages = rt.api.iter_transaction_pages(datetime.fromisoformat(window["from"]), datetime.fromisoformat(window["to"]))
    for count, page in enumerate(pages, start=1):
        if page.nextPageToken and time.monotonic() > deadline:
            return {"pages": count, "nextPageToken": page.nextPageToken}
    return {"pages": count}
"""


def test_a_loop_bounded_by_a_constant_longer_than_the_timeout_is_killed(
    emulator: Emulator, local_aws: LocalAws, tmp_path: Path
) -> None:
    """At x200 the ~190 pages take about 2 s of wall time, far under the 300 s a wall clock would allow; on Amazon's
    clock they take about 370 s, and Lambda stops the function at 300 s as it would at Amazon."""
    assert local_aws.pool is not None and local_aws.stack is not None
    (tmp_path / "constant_budget.py").write_text(CONSTANT_BUDGET_HANDLER)
    real = local_aws.stack.functions["FetchTransactionsFunction"]
    spec = dataclasses.replace(real, code_dir=tmp_path, handler="constant_budget.lambda_handler", name="constant")
    pool = type(local_aws.pool)([spec], local_aws.pool.base_env, tmp_path / "logs", speed=SPEED, function_env={})
    try:
        ok, body = pool.invoke(spec, json.dumps(_first_payload(emulator, "constant-budget")).encode())
    finally:
        pool.stop()
    assert not ok
    assert json.loads(body) == {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 300.00 seconds"}
    assert pool.stats.timeouts == {"constant": 1}
