"""Account-wide pacing for Amazon's rate limits: a token bucket per operation, kept in DynamoDB.

Every execution and every Lambda shares one bucket per operation, so together they never send more than
Amazon's published rate. A taker *reserves* the next token even when none is left (the count goes negative):
the answer is how long to wait for it, so each waiter gets its own slot instead of all of them racing for the
next token. Short waits happen inside the Lambda; the slow operations (createReport, getReportDocument: one a
minute) hand the wait to the state machine, which sleeps for free in a Wait state.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from abrecon.errors import ConfigurationError
from abrecon.storage import StorageError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

# A full bucket starts refilling when a request takes from it. Amazon's restarts when our request *arrives*, a
# little after we reserved its token, so ours restarts this much later than the reservation: never ahead of Amazon.
# Every later slot inherits that offset (requests only ever arrive after their slot), so it is the safety margin
# against network and clock jitter for the whole run, at a cost of one second once.
ARRIVAL_GUARD_SECONDS = 1.0
# What the guard cannot absorb is a rate slightly above Amazon's, which drifts a little further ahead with every
# token. The configured rates are at or under Amazon's (settings.DEFAULT_RATE_LIMITS); this covers the rest
# (clock-rate differences between hosts) for a cost of 0.1% of a run.
HEADROOM = 0.999
# Operations whose waits are long enough to hand to the state machine rather than sleep in a Lambda.
STEP_PACED = frozenset({"createReport", "getReportDocument", "getReports"})
MAX_IN_LAMBDA_WAIT_SECONDS = 60.0
_WRITE_ATTEMPTS = 20
# A spent slot's marker is only needed while the state machine may still retry the step that spent it.
SPENT_SLOT_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Limit:
    """An operation's rate (requests per second) and burst."""

    rate: float
    burst: int


def parse_limits(text: str) -> dict[str, Limit]:
    """Parse "op=rate/burst,op=rate/burst" (the ApiRateLimits template parameter)."""
    limits: dict[str, Limit] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            name, value = part.split("=", 1)
            rate_text, burst_text = value.split("/", 1)
            limit = Limit(rate=float(rate_text), burst=int(burst_text))
        except ValueError as exc:
            raise ConfigurationError(f"rate limit {part!r} is not op=rate/burst") from exc
        if limit.rate <= 0 or limit.burst < 1:
            raise ConfigurationError(f"rate limit {part!r} needs a positive rate and a burst of at least 1")
        limits[name.strip()] = limit
    return limits


class Pacer:
    """Reserve tokens from the shared buckets; `before_request` is the client's hook for in-Lambda pacing."""

    def __init__(
        self,
        table: Table,
        limits: dict[str, Limit],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._table = table
        self._limits = limits
        self._clock = clock
        self._sleep = sleep
        self.waited_seconds = 0.0

    def reserve(self, operation: str) -> float:
        """Take the operation's next token; returns the moment (epoch seconds) from which it may be used."""
        limit = self._limits.get(operation)
        if limit is None:
            return self._clock()
        rate = limit.rate * HEADROOM
        key = {"pk": f"PACE#{operation}"}
        for _attempt in range(_WRITE_ATTEMPTS):
            now = self._clock()
            try:
                item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
                tokens = float(limit.burst) if item is None else float(_number(item["tokens"]))
                stamp = now if item is None else float(_number(item["at"]))
                refilled = tokens + max(0.0, now - stamp) * rate
                if refilled >= limit.burst:
                    available, clock = float(limit.burst), now + ARRIVAL_GUARD_SECONDS
                else:
                    # Never move the bucket's clock back: another taker may have stamped it later than our `now`,
                    # and counting that interval again would hand out tokens Amazon never refilled.
                    available, clock = refilled, max(now, stamp)
                left = available - 1.0
                # Optimistic concurrency: the write succeeds only if nobody took a token since our read.
                version = 0 if item is None else int(_number(item.get("v", 0)))
                condition: dict[str, Any] = (
                    {"ConditionExpression": "attribute_not_exists(pk)"}
                    if item is None
                    else {
                        "ConditionExpression": "#v = :v",
                        "ExpressionAttributeNames": {"#v": "v"},
                        "ExpressionAttributeValues": {":v": version},
                    }
                )
                self._table.put_item(
                    Item={
                        **key,
                        "tokens": Decimal(repr(round(left, 6))),
                        "at": Decimal(repr(round(clock, 6))),
                        "v": version + 1,
                    },
                    **condition,
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise StorageError(f"could not update the {operation} rate-limit bucket: {exc}") from exc
                self._sleep(random.uniform(0.005, 0.05))  # noqa: S311  # nosec B311 # jitter, not security
                continue
            return now if left >= 0 else clock - left / rate
        raise StorageError(f"the {operation} rate-limit bucket stayed contended after {_WRITE_ATTEMPTS} attempts")

    def spend(self, operation: str, reserved_at: float, holder: str) -> bool:
        """Use a slot reserved earlier (handed through the state machine); False if it was used before.

        The state machine retries a failed step with the same input, so the slot named there may already have
        sent its request: it must not send another one (the retry reserves a new slot instead). One marker item
        per slot (`SLOT#...`, expiring via `expiresAt`), written conditionally: only the first use succeeds.
        """
        item: dict[str, str | int] = {
            "pk": f"SLOT#{operation}#{holder}#{reserved_at!r}",
            "expiresAt": int(self._clock()) + SPENT_SLOT_TTL_SECONDS,
        }
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise StorageError(f"could not record the use of a {operation} rate-limit slot: {exc}") from exc
        return True

    def before_request(self, operation: str) -> None:
        """Client hook: wait in-process for a token of the fast operations; the step-paced ones were reserved."""
        if operation in STEP_PACED:
            return
        wait = self.reserve(operation) - self._clock()
        if wait > MAX_IN_LAMBDA_WAIT_SECONDS:
            wait = MAX_IN_LAMBDA_WAIT_SECONDS  # the client's own 429 retries cover the rest
        if wait > 0:
            self.waited_seconds += wait
            self._sleep(wait)


def _number(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))
