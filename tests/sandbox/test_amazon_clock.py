"""Lambda's Timeout on Amazon's clock (amazon_clock.py): sped-up waits count at Amazon's pace, CPU work at its own,
and an invocation that runs out is answered Sandbox.Timedout as Lambda does. Worker processes only, no moto."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import worker_pool_for

from abrecon_sandbox.aws.amazon_clock import AmazonClock


class FakeMonotonic:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_paced_requests_cost_what_amazons_rate_limit_makes_them_wait_and_the_rest_its_wall_time() -> None:
    clock_time = FakeMonotonic()
    clock = AmazonClock(speed=50.0, amazon_limits={"getTransactions": (0.5, 2)}, monotonic=clock_time)
    start = clock.start_invocation()
    clock_time.now += 1.5  # work: CPU, the local AWS, the emulator's answer
    for _ in range(5):  # two from the burst, then one every 2 Amazon seconds
        with clock.pacing("getTransactions"):
            clock_time.now += 0.04  # the sandbox's sped-up pacer: replaced, not counted
    assert clock.elapsed(start) == pytest.approx(1.5 + 3 * 2.0)


def test_a_sandbox_too_slow_for_its_sped_up_limit_still_pays_amazons_pace() -> None:
    """Pages 0.05 s of wall time apart never wait in the sandbox at x200 (limit 100 a second): at Amazon each one
    after the burst waits for its token, 2 s apart, minus the time the page itself took."""
    clock_time = FakeMonotonic()
    clock = AmazonClock(speed=200.0, amazon_limits={"getTransactions": (0.5, 1)}, monotonic=clock_time)
    start = clock.start_invocation()
    for _ in range(4):
        with clock.pacing("getTransactions"):
            pass
        clock_time.now += 0.05
    assert clock.elapsed(start) == pytest.approx(3 * 2.0 + 0.05)


def test_overlapping_pacer_time_of_several_threads_is_replaced_once_and_buckets_refill_per_invocation() -> None:
    clock_time = FakeMonotonic()
    clock = AmazonClock(speed=10.0, amazon_limits={"getReport": (2.0, 15)}, monotonic=clock_time)
    start = clock.start_invocation()
    with clock.pacing("getReport"):
        clock_time.now += 1.0
        with clock.pacing("getReport"):  # a second thread in the pacer at the same time
            clock_time.now += 1.0
    assert clock.elapsed(start) == pytest.approx(0.0)  # two requests of a burst of 15: no wait at Amazon
    clock_time.now += 3.0
    assert clock.elapsed(start) == pytest.approx(3.0)
    with clock.pacing("createReport"):  # an operation without an in-function limit: its pacer time is replaced
        clock_time.now += 0.5
    assert clock.elapsed(start) == pytest.approx(3.0)


# The product's pacer (abrecon.pacing) over an in-memory table, getTransactions at the rate of its test: the worker
# counts each page at Amazon's rate, AB_API_RATE_LIMITS (sped up 100 times, as the sandbox sets it) divided by 100.
PACED = """import time
from abrecon.pacing import Limit, Pacer


class Table:
    def __init__(self):
        self.items = {}

    def get_item(self, Key, ConsistentRead):
        item = self.items.get(Key["pk"])
        return {"Item": item} if item else {}

    def put_item(self, Item, **condition):
        self.items[Item["pk"]] = Item


def lambda_handler(event, context):
    PACER = Pacer(Table(), {"getTransactions": Limit(rate=event["sandboxRate"], burst=event["sandboxBurst"])})
    remaining = [context.get_remaining_time_in_millis()]
    for _ in range(event["pages"]):
        PACER.before_request("getTransactions")
        remaining.append(context.get_remaining_time_in_millis())
    time.sleep(event.get("backoff", 0))  # a sleep the speed factor does not shrink (the client's backoff)
    remaining.append(context.get_remaining_time_in_millis())
    return remaining
"""


AT_X100 = {"AB_API_RATE_LIMITS": "getTransactions=50/1"}  # Amazon's 0.5 a second, burst 1, sped up 100 times


def test_paced_requests_count_at_amazons_rate_and_a_timed_out_invocation_answers_as_lambda(tmp_path: Path) -> None:
    pool, spec = worker_pool_for(tmp_path, PACED, env=AT_X100, speed=100.0, timeout_seconds=10)
    paced = {"sandboxRate": 50, "sandboxBurst": 1}
    try:
        ok, body = pool.invoke(spec, json.dumps({"pages": 8, **paced}).encode())  # 7 Amazon waits of 2 s
        assert not ok
        assert json.loads(body) == {
            "errorType": "Sandbox.Timedout",
            "errorMessage": "Task timed out after 10.00 seconds",
        }
        assert pool.stats.timeouts == {"test-function": 1}
        # A fresh environment serves the next invocation; a backoff sleep of 0.2 s counts 0.2 s, not 20.
        ok, body = pool.invoke(spec, json.dumps({"pages": 3, "backoff": 0.2, **paced}).encode())
    finally:
        pool.stop()
    assert ok, body
    remaining = json.loads(body)
    assert remaining[0] > 9900
    assert 1900 < remaining[1] - remaining[2] < 2300  # the second page: 2 Amazon seconds
    assert 190 < remaining[3] - remaining[4] < 600
    assert pool.stats.timeouts == {"test-function": 1}


def test_a_sandbox_bucket_that_never_waits_still_costs_amazons_pace(tmp_path: Path) -> None:
    """The sandbox's own bucket large enough never to wait (or the sandbox too slow to reach its limit): the
    pages still cost 2 Amazon seconds each once Amazon's burst is spent."""
    pool, spec = worker_pool_for(tmp_path, PACED, env=AT_X100, speed=100.0, timeout_seconds=30)
    try:
        ok, body = pool.invoke(spec, json.dumps({"pages": 6, "sandboxRate": 1e6, "sandboxBurst": 1000}).encode())
    finally:
        pool.stop()
    assert ok, body
    remaining = json.loads(body)
    assert 9_500 < remaining[0] - remaining[-1] < 11_000  # five waits of 2 s


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
    import abrecon_sandbox.aws.lambdas as lambdas

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
