"""The shared buckets against Amazon's: a long run of reserved slots never finds Amazon's bucket empty."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from abrecon import pacing
from abrecon.pacing import Limit, Pacer, parse_limits
from abrecon.settings import DEFAULT_RATE_LIMITS
from abrecon_sandbox.aws.stack import load_template
from abrecon_sandbox.emulator.ratelimit import PUBLISHED_PLANS, TokenBucket

ROOT = Path(__file__).resolve().parents[2]
REPORTS = 200  # with a rate 0.2% too fast the slots drift past the one-second arrival guard after about 8 tokens


class Clock:
    """A settable clock shared by our buckets and Amazon's."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table() -> Iterator[object]:
    with mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        created = resource.create_table(
            TableName="ledger",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield created


def refused_requests(table: object, limit: Limit, seed: int = 1) -> int:
    """Reserve REPORTS createReport slots at once (a queue of waiting invoices), send each request at its slot
    plus a random network delay, and count how many Amazon's bucket (the emulator's, one a minute, burst 15)
    refuses."""
    clock = Clock()
    pacer = Pacer(table, {"createReport": limit}, clock=clock, sleep=lambda _s: None)  # type: ignore[arg-type]
    slots = [pacer.reserve("createReport") for _ in range(REPORTS)]
    rng = random.Random(seed)
    arrivals = sorted(slot + rng.uniform(0.0, 0.8) for slot in slots)
    amazon = TokenBucket(PUBLISHED_PLANS["createReport"].rate, PUBLISHED_PLANS["createReport"].burst, clock=clock)
    refused = 0
    for arrival in arrivals:
        clock.now = arrival
        refused += not amazon.try_take()
    return refused


def test_a_long_queue_at_the_configured_rate_is_never_refused(table: object) -> None:
    limit = parse_limits(DEFAULT_RATE_LIMITS)["createReport"]
    assert refused_requests(table, limit) == 0


def test_the_published_rounded_rate_without_headroom_would_be_refused(
    table: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Why the default is 0.016666 and not the published 0.0167: the rounded-up rate drifts past the guard.
    monkeypatch.setattr(pacing, "HEADROOM", 1.0)
    assert refused_requests(table, Limit(rate=0.0167, burst=15)) > 0


def test_the_configured_rates_are_at_or_under_amazons_and_the_template_says_the_same() -> None:
    template_default = load_template(ROOT / "template.yaml")["Parameters"]["ApiRateLimits"]["Default"]
    assert template_default == DEFAULT_RATE_LIMITS
    configured = parse_limits(DEFAULT_RATE_LIMITS)
    for operation, plan in PUBLISHED_PLANS.items():
        assert configured[operation].rate <= plan.rate, operation
        assert configured[operation].burst <= plan.burst, operation
