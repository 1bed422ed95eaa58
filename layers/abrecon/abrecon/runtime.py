"""The clients a step works with, built once per process from the settings (never at import time)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache

import boto3

from abrecon.auth import LwaTokenProvider
from abrecon.client import AmazonBusinessClient
from abrecon.pacing import Pacer, parse_limits
from abrecon.settings import Settings, get_settings
from abrecon.storage import DocumentStore, Ledger


@dataclass(frozen=True)
class Runtime:
    """What the step functions need: settings, the Amazon Business client, the bucket and the ledger."""

    settings: Settings
    api: AmazonBusinessClient
    store: DocumentStore
    ledger: Ledger
    pacer: Pacer


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
    return Runtime(settings=settings, api=api, store=store, ledger=ledger, pacer=pacer)


# When the current Lambda invocation ends (time.monotonic()), set by the handler from the Lambda context.
_invocation_deadline: ContextVar[float | None] = ContextVar("invocation_deadline", default=None)


def set_invocation_deadline(remaining_millis: Callable[[], int] | None) -> None:
    """Note when this invocation ends, from the Lambda context's get_remaining_time_in_millis (None: unknown)."""
    _invocation_deadline.set(None if remaining_millis is None else time.monotonic() + remaining_millis() / 1000)


def seconds_left(default: float) -> float:
    """Seconds until this invocation's timeout; ``default`` when no Lambda context said (tests, scripts)."""
    deadline = _invocation_deadline.get()
    return default if deadline is None else deadline - time.monotonic()
