"""The clients a step works with, built once per process from the settings (never at import time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import boto3

from abrecon.auth import LwaTokenProvider
from abrecon.budget import TimeBudget
from abrecon.client import AmazonBusinessClient
from abrecon.executions import ExecutionLookup
from abrecon.pacing import Pacer, parse_limits
from abrecon.settings import Settings, get_settings
from abrecon.storage import DocumentStore, Ledger


@dataclass(frozen=True)
class Runtime:
    """What the step functions need: settings, the Amazon Business client, the bucket, the ledger, and the time the
    invocation has left (the handler sets it from the Lambda context for each invocation)."""

    settings: Settings
    api: AmazonBusinessClient
    store: DocumentStore
    ledger: Ledger
    pacer: Pacer
    budget: TimeBudget = field(default_factory=lambda: TimeBudget.lambda_maximum(0.0))
    executions: ExecutionLookup | None = None  # set where the function may ask Step Functions (EXECUTION_ARN_PREFIX)


@cache
def get_runtime() -> Runtime:
    """Build the runtime on first use and keep it for the life of the Lambda execution environment."""
    settings = get_settings()
    tokens = LwaTokenProvider(settings.lwa_secret_id, settings.lwa_endpoint, timeout=settings.http_timeout_seconds)
    ledger = Ledger(boto3.resource("dynamodb"), settings.ledger_table)
    pacer = Pacer(ledger.table, parse_limits(settings.api_rate_limits))
    api = AmazonBusinessClient(
        settings.api_endpoint, tokens, timeout=(5.0, settings.http_timeout_seconds), pace=pacer.before_request
    )
    store = DocumentStore(boto3.client("s3"), settings.document_bucket, settings.document_key_arn)
    budget = TimeBudget.lambda_maximum(settings.time_margin_seconds)
    prefix = settings.execution_arn_prefix
    executions = ExecutionLookup(cache(lambda: boto3.client("stepfunctions")), prefix) if prefix else None
    return Runtime(
        settings=settings, api=api, store=store, ledger=ledger, pacer=pacer, budget=budget, executions=executions
    )
