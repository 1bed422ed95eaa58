"""Models of the Document (Reports) API (2021-09-30): reports, their documents, and createReport's request."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from abrecon.models.common import ApiModel, ListOf, OptStr, OptUtcDatetime

REPORT_TYPE_INVOICE_PDF: Final = "GET_AB_INVOICE_PDF"


class ReportProcessingStatus(StrEnum):
    """Processing status of a report."""

    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"
    FATAL = "FATAL"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        """True once processing has ended (DONE, FATAL or CANCELLED)."""
        return self in _TERMINAL_STATUSES


_TERMINAL_STATUSES = frozenset(
    {ReportProcessingStatus.DONE, ReportProcessingStatus.FATAL, ReportProcessingStatus.CANCELLED}
)


class Report(ApiModel):
    """Answer of getReport (and an entry of getReports). ``reportDocumentId`` is set once the report is DONE."""

    reportId: str
    processingStatus: ReportProcessingStatus
    reportType: str | None = None
    reportDocumentId: OptStr = None
    createdTime: OptUtcDatetime = None
    dataStartTime: OptUtcDatetime = None
    dataEndTime: OptUtcDatetime = None
    processingStartTime: OptUtcDatetime = None
    processingEndTime: OptUtcDatetime = None
    marketplaceIds: ListOf[str] = Field(default_factory=list)
    # Not in the model, but Amazon's tutorial shows it echoed back.
    reportOptions: dict[str, Any] | None = None


class ReportsPage(ApiModel):
    """One page of getReports (GetReportsResponse); ``nextToken`` is set when more reports match."""

    reports: ListOf[Report] = Field(default_factory=list)
    nextToken: OptStr = None


class ReportDocument(ApiModel):
    """Answer of getReportDocument. ``url`` is presigned, expires in 5 minutes: use it at once, never log it.

    ``compressionAlgorithm`` is only a label (it has been wrong in the field); unpacking goes by magic bytes.
    """

    reportDocumentId: str
    url: str = Field(min_length=1)
    compressionAlgorithm: OptStr = None


class CreateReportResponse(ApiModel):
    """Answer of createReport (HTTP 202)."""

    reportId: str = Field(min_length=1)


class ReportOptions(BaseModel):
    """``reportOptions`` of a GET_AB_INVOICE_PDF request.

    ``documentType`` (Invoice | Credits) or the deprecated ``invoiceType`` (PBI_INVOICE), never both.
    Neither: the invoice and its credit memos come in one report.
    """

    model_config = {"extra": "forbid", "frozen": True}

    invoiceId: str = Field(min_length=1)
    documentType: Literal["Invoice", "Credits"] | None = None
    invoiceType: Literal["PBI_INVOICE"] | None = None

    @field_validator("invoiceId")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("invoiceId must not be blank")
        return value

    @model_validator(mode="after")
    def _one_type_at_most(self) -> ReportOptions:
        if self.documentType is not None and self.invoiceType is not None:
            raise ValueError("give documentType or invoiceType, not both (Amazon rejects the request)")
        return self


class CreateReportRequest(BaseModel):
    """Body of createReport for an invoice PDF; ``to_body()`` gives the JSON to send."""

    model_config = {"extra": "forbid", "frozen": True}

    reportType: Literal["GET_AB_INVOICE_PDF"] = REPORT_TYPE_INVOICE_PDF
    marketplaceIds: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, max_length=25)
    reportOptions: ReportOptions

    @classmethod
    def for_invoice(
        cls,
        invoice_number: str,
        marketplace_ids: list[str] | tuple[str, ...],
        *,
        document_type: str | None = None,
        invoice_type: str | None = None,
    ) -> CreateReportRequest:
        """Build (and validate) the request for one invoice number; raises pydantic.ValidationError."""
        return cls.model_validate(
            {
                "marketplaceIds": list(marketplace_ids),
                "reportOptions": {
                    "invoiceId": invoice_number,
                    "documentType": document_type,
                    "invoiceType": invoice_type,
                },
            }
        )

    def to_body(self) -> dict[str, Any]:
        """The JSON body: reportType, marketplaceIds, reportOptions without unset options."""
        return self.model_dump(mode="json", exclude_none=True)
