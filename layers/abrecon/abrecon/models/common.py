"""The tolerant field types and the shared models of both Amazon Business APIs (money, error answers)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

__all__ = [
    "ApiModel",
    "ErrorDetail",
    "ErrorList",
    "ListOf",
    "Money",
    "OptDecimal",
    "OptStr",
    "OptText",
    "OptUtcDatetime",
    "UtcDatetime",
    "as_utc",
]


# --- tolerant field types ---------------------------------------------------------------------


def _blank_to_none(value: Any) -> Any:
    # Amazon sends "" for unknown currency codes, and the JP guide documents the *text* "null" for
    # associatedInvoiceNumber/Date on standard invoices.
    if isinstance(value, str) and value.strip().lower() in ("", "null"):
        return None
    return value


def _none_to_list(value: Any) -> Any:
    # Lists come back as null in some answers; an empty list is what the caller means.
    return [] if value is None else value


def as_utc(value: datetime) -> datetime:
    """The datetime in UTC; a naive one is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return as_utc(value)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00; pydantic turns only ValueError into a ValidationError
        raise ValueError("datetime is out of range once converted to UTC") from None


def _to_text(value: Any) -> Any:
    # Error codes are strings in the model but "400"-like; accept a bare number too.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


OptStr = Annotated[str | None, BeforeValidator(_blank_to_none)]
OptDecimal = Annotated[Decimal | None, BeforeValidator(_blank_to_none)]
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
OptUtcDatetime = Annotated[datetime | None, BeforeValidator(_blank_to_none), AfterValidator(_as_utc)]
OptText = Annotated[str | None, BeforeValidator(_to_text)]
_T = TypeVar("_T")
ListOf = Annotated[list[_T], BeforeValidator(_none_to_list)]


class ApiModel(BaseModel):
    """Base of all response models: unknown fields are ignored."""

    model_config = {"extra": "ignore"}


# --- shared -------------------------------------------------------------------------------------


class Money(ApiModel):
    """An amount with its ISO 4217 currency; ``currencyCode`` is None when Amazon sent ""."""

    amount: Decimal
    currencyCode: OptStr = None


class ErrorDetail(ApiModel):
    """One entry of an error answer."""

    code: OptText = None
    message: OptText = None
    details: OptText = None


class ErrorList(ApiModel):
    """Error answer body: ``{"errors": [{code, message, details?}]}``."""

    errors: ListOf[ErrorDetail] = Field(default_factory=list)
