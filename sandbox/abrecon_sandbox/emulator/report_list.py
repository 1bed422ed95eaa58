"""getReports: its query parameters as the Document API model defines them, and the reports they select."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PROCESSING_STATUSES = frozenset({"CANCELLED", "DONE", "FATAL", "IN_PROGRESS", "IN_QUEUE"})
FILTERS = ("reportTypes", "processingStatuses", "marketplaceIds", "pageSize", "createdSince", "createdUntil")
MAX_LIST_ITEMS = 10  # reportTypes and marketplaceIds: maxItems 10
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
RETENTION = timedelta(days=90)  # createdSince defaults to 90 days ago; reports are kept at most 90 days


class QueryError(ValueError):
    """A getReports request the model says Amazon refuses (400); the message is the error's details."""


@dataclass(frozen=True)
class ReportQuery:
    """The filters of a getReports request; ``until`` is fixed at the first page so later pages stay stable."""

    report_types: frozenset[str]
    statuses: frozenset[str]
    marketplaces: frozenset[str]
    since: datetime
    until: datetime
    page_size: int

    def selects(self, report_type: str, status: str, marketplaces: Iterable[str], created: datetime) -> bool:
        """Whether a report with these properties is in the answer."""
        return (
            report_type in self.report_types
            and (not self.statuses or status in self.statuses)
            and (not self.marketplaces or not self.marketplaces.isdisjoint(marketplaces))
            and self.since <= created <= self.until
        )


def _csv(value: str | None, name: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    items = [v.strip() for v in value.split(",")]
    if not all(items):
        raise QueryError(f"{name} has an empty item.")
    return frozenset(items)


def _date(value: str | None, name: str, default: datetime) -> datetime:
    if value is None:
        return default
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise QueryError(f"{name} [{value}] is not in the expected ISO8601 format.") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_query(args: Mapping[str, str], now: datetime) -> ReportQuery:
    """The first page's filters; raises QueryError for what the model forbids."""
    types = _csv(args.get("reportTypes"), "reportTypes")
    if not types:
        raise QueryError("Either reportTypes or nextToken is required.")
    if len(types) > MAX_LIST_ITEMS:
        raise QueryError(f"reportTypes takes at most {MAX_LIST_ITEMS} items.")
    statuses = _csv(args.get("processingStatuses"), "processingStatuses")
    if statuses - PROCESSING_STATUSES:
        raise QueryError("Invalid input in processing status")
    marketplaces = _csv(args.get("marketplaceIds"), "marketplaceIds")
    if len(marketplaces) > MAX_LIST_ITEMS:
        raise QueryError(f"marketplaceIds takes at most {MAX_LIST_ITEMS} items.")
    size_text = args.get("pageSize", str(DEFAULT_PAGE_SIZE)).strip()
    if not size_text.isdigit() or not 1 <= int(size_text) <= MAX_PAGE_SIZE:
        raise QueryError(f"pageSize must be an integer from 1 to {MAX_PAGE_SIZE}.")
    since = _date(args.get("createdSince"), "createdSince", now - RETENTION)
    until = _date(args.get("createdUntil"), "createdUntil", now)
    if since > until:
        raise QueryError("createdSince must not be after createdUntil.")
    return ReportQuery(types, statuses, marketplaces, since, until, int(size_text))


def token_alone(args: Mapping[str, str]) -> str | None:
    """The nextToken of a later page; QueryError if it came with any filter (the model: "the only parameter")."""
    token = args.get("nextToken")
    if token is None:
        return None
    if any(name in args for name in FILTERS):
        raise QueryError("nextToken must be the only parameter.")
    if not token:
        raise QueryError("nextToken is empty.")
    return token
