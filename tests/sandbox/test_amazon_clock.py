"""Lambda's Timeout on Amazon's clock (amazon_clock.py): sped-up waits count at Amazon's pace, CPU work at its own,
and an invocation that runs out is answered Sandbox.Timedout as Lambda does. Worker processes only, no moto."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import worker_pool_for

from abrecon_sandbox.amazon_clock import AmazonClock


class FakeMonotonic:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_waits_count_speed_times_and_the_rest_once() -> None:
    clock_time = FakeMonotonic()
    clock = AmazonClock(speed=50.0, monotonic=clock_time)
    start = clock.mark()
    clock_time.now += 2.0  # work: CPU, the local AWS
    with clock.waiting():
        clock_time.now += 0.1  # a sleep the speed factor shrank: 5 Amazon seconds
    assert clock.elapsed(start) == pytest.approx(2.0 + 0.1 * 50)


def test_overlapping_waits_of_several_threads_count_once() -> None:
    clock_time = FakeMonotonic()
    clock = AmazonClock(speed=10.0, monotonic=clock_time)
    start = clock.mark()
    with clock.waiting():
        clock_time.now += 1.0
        with clock.waiting():  # a second thread waits during the first one's wait
            clock_time.now += 1.0
        clock_time.now += 1.0
        assert clock.elapsed(start) == pytest.approx(30.0)  # a wait still going on counts too
    assert clock.elapsed(start) == pytest.approx(30.0)


# The product's pacer (abrecon.pacing) over an in-memory table: getTransactions at Amazon's 0.5 requests a second,
# sped up 100 times as the sandbox scales the rate limits (50 a second, burst 1): each page waits 2 Amazon seconds.
PACED = """import time
from abrecon.pacing import Limit, Pacer


class Table:
    def __init__(self):
        # A bucket in use, not full: a full one's first waits also carry the pacer's one-second arrival guard.
        self.items = {"PACE#getTransactions": {"pk": "PACE#getTransactions", "tokens": 0, "at": time.time(), "v": 1}}

    def get_item(self, Key, ConsistentRead):
        item = self.items.get(Key["pk"])
        return {"Item": item} if item else {}

    def put_item(self, Item, **condition):
        self.items[Item["pk"]] = Item


PACER = Pacer(Table(), {"getTransactions": Limit(rate=0.5 * 100, burst=1)})


def lambda_handler(event, context):
    PACER._table.items["PACE#getTransactions"]["at"] = time.time()
    remaining = [context.get_remaining_time_in_millis()]
    for _ in range(event["pages"]):
        PACER.before_request("getTransactions")
        remaining.append(context.get_remaining_time_in_millis())
    time.sleep(event.get("backoff", 0))  # a sleep the speed factor does not shrink (the client's backoff)
    remaining.append(context.get_remaining_time_in_millis())
    return remaining
"""


def test_paced_waits_count_in_amazon_time_and_a_timed_out_invocation_answers_as_lambda(tmp_path: Path) -> None:
    pool, spec = worker_pool_for(tmp_path, PACED, speed=100.0, timeout_seconds=10)
    try:
        ok, body = pool.invoke(spec, json.dumps({"pages": 8}).encode())  # 8 waits of 2 Amazon seconds
        assert not ok
        assert json.loads(body) == {
            "errorType": "Sandbox.Timedout",
            "errorMessage": "Task timed out after 10.00 seconds",
        }
        assert pool.stats.timeouts == {"test-function": 1}
        # A fresh environment serves the next invocation; a backoff sleep of 0.2 s counts 0.2 s, not 20.
        ok, body = pool.invoke(spec, json.dumps({"pages": 3, "backoff": 0.2}).encode())
    finally:
        pool.stop()
    assert ok, body
    remaining = json.loads(body)
    assert remaining[0] > 9900
    assert 1900 < remaining[1] - remaining[2] < 2400  # a paced wait of 0.02 s at x100: 2 Amazon seconds
    assert 190 < remaining[3] - remaining[4] < 600
    assert pool.stats.timeouts == {"test-function": 1}


BUSY = """import time

def lambda_handler(event, context):
    end = time.monotonic() + event["seconds"]
    while time.monotonic() < end:
        sum(range(1000))
    return context.get_remaining_time_in_millis()
"""


def test_cpu_work_is_not_multiplied_by_the_speed_factor(tmp_path: Path) -> None:
    """Half a second of CPU at x100 would be 50 Amazon seconds if it were multiplied; it counts as half a second."""
    pool, spec = worker_pool_for(tmp_path, BUSY, speed=100.0, timeout_seconds=3)
    try:
        ok, body = pool.invoke(spec, json.dumps({"seconds": 0.5}).encode())
    finally:
        pool.stop()
    assert ok, body
    assert 1500 < json.loads(body) < 2600
    assert pool.stats.timeouts == {}


def test_a_worker_stuck_past_the_backstop_is_killed(tmp_path: Path) -> None:
    """The watchdog cannot end a handler that holds the interpreter (here: stops it with SIGSTOP); the pool does."""
    stopper = "import os, signal\n\ndef lambda_handler(event, context):\n    os.kill(os.getpid(), signal.SIGSTOP)\n"
    pool, spec = worker_pool_for(tmp_path, stopper, timeout_seconds=1)
    import abrecon_sandbox.lambdas as lambdas

    original = lambdas.BACKSTOP_GRACE_SECONDS
    lambdas.BACKSTOP_GRACE_SECONDS = 0.5
    started = time.monotonic()
    try:
        ok, body = pool.invoke(spec, b"{}")
    finally:
        lambdas.BACKSTOP_GRACE_SECONDS = original
        pool.stop()
    assert not ok and json.loads(body)["errorType"] == "Sandbox.Timedout"
    assert time.monotonic() - started < 10
