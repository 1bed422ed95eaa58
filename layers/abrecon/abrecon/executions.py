"""Whether the execution that claimed an invoice still runs (Step Functions DescribeExecution).

The ledger stores the claiming execution's name (``runId``, ``$$.Execution.Name``); its ARN is the stack's
execution ARN prefix plus that name. An invoice claimed by an execution that has ended (FAILED, TIMED_OUT,
ABORTED, or SUCCEEDED without finishing it) is taken over at once instead of after CLAIM_STALE_SECONDS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

logger = Logger(child=True)

ENDED = frozenset({"FAILED", "TIMED_OUT", "ABORTED", "SUCCEEDED"})
# A running execution is asked again after this long; an ended one never changes (a redrive is a new claim).
RUNNING_CACHE_SECONDS = 30.0


class ExecutionLookup:
    """DescribeExecution of claiming executions, cached per process; any doubt answers "still running"."""

    def __init__(self, client: Callable[[], Any], arn_prefix: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._prefix = arn_prefix
        self._clock = clock
        self._seen: dict[str, tuple[str, float]] = {}

    def has_ended(self, run_id: str | None) -> bool:
        """True only when Step Functions says the execution named run_id is no longer running."""
        if not run_id:
            return False
        cached = self._seen.get(run_id)
        if cached is not None and (cached[0] in ENDED or self._clock() - cached[1] < RUNNING_CACHE_SECONDS):
            return cached[0] in ENDED
        try:
            status = str(self._client().describe_execution(executionArn=self._prefix + run_id)["status"])
        except (ClientError, BotoCoreError) as exc:
            # Not found (another stack's run, history past 90 days) or not allowed: fall back to the claim's age.
            logger.warning("could not look up the claiming execution", extra={"runId": run_id, "error": str(exc)})
            return False
        self._seen[run_id] = (status, self._clock())
        return status in ENDED
