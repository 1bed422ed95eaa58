"""Configuration: one validated model, read once from the environment the template gives each function."""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from abrecon.errors import ConfigurationError


class Settings(BaseModel):
    """Everything a step needs to know about where it runs. Field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    api_endpoint: str = Field(alias="AB_API_ENDPOINT", min_length=1)
    lwa_endpoint: str = Field(alias="AB_LWA_ENDPOINT", min_length=1)
    lwa_secret_id: str = Field(alias="AB_LWA_SECRET_ID", min_length=1)
    marketplace_id: str = Field(alias="AB_MARKETPLACE_ID", min_length=1)
    document_bucket: str = Field(alias="DOCUMENT_BUCKET", min_length=1)
    document_key_arn: str = Field(alias="DOCUMENT_KEY_ARN", min_length=1)
    ledger_table: str = Field(alias="LEDGER_TABLE", min_length=1)
    lookback_days: int = Field(default=3, alias="LOOKBACK_DAYS", ge=1, le=90)
    http_timeout_seconds: float = Field(default=30.0, alias="HTTP_TIMEOUT_SECONDS", gt=0, le=120)
    max_document_bytes: int = Field(default=50 * 1024 * 1024, alias="MAX_DOCUMENT_BYTES", gt=0)


@cache
def get_settings() -> Settings:
    """Read and validate the settings once per process; a missing or bad variable is a ConfigurationError."""
    names = {field.alias for field in Settings.model_fields.values() if field.alias}
    try:
        return Settings.model_validate({name: os.environ[name] for name in names if name in os.environ})
    except ValidationError as exc:
        problems = ", ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigurationError(f"invalid function configuration ({problems})") from exc
