"""Configuration: one validated model, read once from the environment the template gives each function."""

from __future__ import annotations

import os
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from abrecon.errors import ConfigurationError

# Amazon's published limits, "operation=requests per second/burst" (FIELD-NOTES: getTransactions is 0.5/s by one
# page and 2/s by another; the lower one is safe). "One a minute" is written 0.016666, just under 1/60: the
# published 0.0167 is rounded up, and pacing at it would run 0.2% fast and drift into 429s over a long backfill.
DEFAULT_RATE_LIMITS = (
    "getTransactions=0.5/10,getInvoiceDetailsByOrderLineItems=2/10,createReport=0.016666/15,"
    "getReport=2/15,getReportDocument=0.016666/15,getBatchInvoicePaymentDetails=2/10"
)


class Settings(BaseModel):
    """Everything a step needs to know about where it runs. Field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    api_endpoint: str = Field(alias="AB_API_ENDPOINT", min_length=1)
    lwa_endpoint: str = Field(alias="AB_LWA_ENDPOINT", min_length=1)
    lwa_secret_id: str = Field(alias="AB_LWA_SECRET_ID", min_length=1)
    marketplace_id: str = Field(alias="AB_MARKETPLACE_ID", min_length=1)
    # The account's Amazon Business region (its refresh token is per region); JP invoices get the tax checks.
    region: Literal["NA", "EU", "JP"] = Field(default="NA", alias="AB_REGION")
    # False: store the invoice data and its checks, ask for no PDF reports.
    request_pdfs: bool = Field(default=True, alias="REQUEST_PDFS")
    # A report that ends FATAL gets one new report after this cool-down (FATAL can be a hidden frequency limit).
    fatal_retry_seconds: int = Field(default=300, alias="FATAL_RETRY_SECONDS", ge=1, le=86_400)
    document_bucket: str = Field(alias="DOCUMENT_BUCKET", min_length=1)
    document_key_arn: str = Field(alias="DOCUMENT_KEY_ARN", min_length=1)
    ledger_table: str = Field(alias="LEDGER_TABLE", min_length=1)
    # Only the start-run function (the schedule's entry point) starts executions.
    state_machine_arn: str | None = Field(default=None, alias="STATE_MACHINE_ARN", min_length=1)
    lookback_days: int = Field(default=3, alias="LOOKBACK_DAYS", ge=1, le=90)
    # Invoices not yet Closed are asked about again on every run until they are this old (by invoice date).
    payment_lookback_days: int = Field(default=120, alias="PAYMENT_LOOKBACK_DAYS", ge=1, le=3650)
    http_timeout_seconds: float = Field(default=30.0, alias="HTTP_TIMEOUT_SECONDS", gt=0, le=120)
    max_document_bytes: int = Field(default=50 * 1024 * 1024, alias="MAX_DOCUMENT_BYTES", gt=0)
    # fetch-transactions hands the rest of a large window to its next invocation after this long (Lambda: 15 min).
    page_budget_seconds: float = Field(default=600.0, alias="PAGE_BUDGET_SECONDS", gt=0)
    api_rate_limits: str = Field(default=DEFAULT_RATE_LIMITS, alias="AB_API_RATE_LIMITS")
    # An execution that has not touched an invoice for this long is presumed dead and may be taken over.
    claim_stale_seconds: float = Field(default=3600.0, alias="CLAIM_STALE_SECONDS", gt=0)


@cache
def get_settings() -> Settings:
    """Read and validate the settings once per process; a missing or bad variable is a ConfigurationError."""
    names = {field.alias for field in Settings.model_fields.values() if field.alias}
    try:
        return Settings.model_validate({name: os.environ[name] for name in names if name in os.environ})
    except ValidationError as exc:
        problems = ", ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigurationError(f"invalid function configuration ({problems})") from exc
