"""Pydantic models of the Amazon Business Reconciliation (2021-01-08) and Document (2021-09-30) APIs.

Built from Amazon's Swagger definitions, but tolerant: unknown fields are ignored and every field
the pipeline does not strictly need is optional, because Amazon's own examples omit fields the
models mark as required (registrationNumber, city, discount, ...). Amounts are ``Decimal`` parsed
from strings of varying precision ("2910.0", "970.00", "882"); an empty ``currencyCode`` becomes
None. Datetimes are timezone-aware UTC (a naive value is taken as UTC). Field names keep the API's
camelCase so a model and its JSON read the same.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, field_validator, model_validator

__all__ = [
    "REPORT_TYPE_INVOICE_PDF",
    "AssociatedTransactionDetail",
    "ConsolidatedInvoiceDetails",
    "CreateReportRequest",
    "CreateReportResponse",
    "Customer",
    "ErrorDetail",
    "ErrorList",
    "FeeType",
    "InvoiceDetail",
    "InvoiceDetailsByOrderLineItemsResponse",
    "InvoiceDetailsOfOrderLineItem",
    "InvoiceIssuerDetail",
    "InvoiceLevelFeeApportionmentDetail",
    "InvoiceLevelFeeDetail",
    "InvoicePaymentDetailResult",
    "InvoicePaymentDetailsResponse",
    "InvoiceType",
    "LineItemApportionmentDetail",
    "LineItemLevelFeeApportionmentDetail",
    "LineItemLevelFeeDetail",
    "MerchantDetail",
    "Money",
    "OrderLineItemKey",
    "PaymentDetails",
    "PaymentStatus",
    "PhysicalAddress",
    "Report",
    "ReportDocument",
    "ReportOptions",
    "ReportProcessingStatus",
    "TaxDetail",
    "Transaction",
    "TransactionDataItem",
    "TransactionLineItem",
    "TransactionsPage",
]

REPORT_TYPE_INVOICE_PDF: Final = "GET_AB_INVOICE_PDF"


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


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
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


class _ApiModel(BaseModel):
    """Base of all response models: unknown fields are ignored."""

    model_config = {"extra": "ignore"}


# --- shared -------------------------------------------------------------------------------------


class Money(_ApiModel):
    """An amount with its ISO 4217 currency; ``currencyCode`` is None when Amazon sent ""."""

    amount: Decimal
    currencyCode: OptStr = None


class ErrorDetail(_ApiModel):
    """One entry of an error answer."""

    code: OptText = None
    message: OptText = None
    details: OptText = None


class ErrorList(_ApiModel):
    """Error answer body: ``{"errors": [{code, message, details?}]}``."""

    errors: ListOf[ErrorDetail] = Field(default_factory=list)


# --- Reconciliation API: transactions ---------------------------------------------------------


class OrderLineItemKey(BaseModel):
    """The triple that identifies an order line item shipment; hashable, used as a dict key."""

    model_config = {"extra": "ignore", "frozen": True}

    orderId: str
    orderLineItemId: str
    shipmentId: str


class Customer(_ApiModel):
    """Buyer or payer of a transaction."""

    id: str | None = None
    name: str | None = None
    email: str | None = None


class AssociatedTransactionDetail(_ApiModel):
    """Link to a related transaction (a refund's charge, for instance)."""

    associatedTransactionId: str | None = None


class TransactionLineItem(_ApiModel):
    """A line item of a transaction; ``key`` is its order line item triple when complete."""

    orderId: str | None = None
    orderLineItemId: str | None = None
    shipmentId: str | None = None
    asin: str | None = None
    productTitle: str | None = None
    itemQuantity: int | None = None
    totalAmount: Money | None = None
    principalAmount: Money | None = None
    shippingCharge: Money | None = None
    regulatoryFee: Money | None = None
    giftWrappingCharge: Money | None = None
    discount: Money | None = None
    tax: Money | None = None
    unitPrice: Money | None = None
    taxRate: OptDecimal = None
    refundReason: str | None = None
    unspsc: str | None = None
    purchaseOrderNumber: str | None = None
    purchaseOrderLineItemId: str | None = None
    shipmentDate: OptUtcDatetime = None
    merchantLegalName: str | None = None
    budgetId: str | None = None
    businessOrderInfo: dict[str, Any] | None = None

    @property
    def key(self) -> OrderLineItemKey | None:
        """The (orderId, orderLineItemId, shipmentId) triple, or None if any part is missing."""
        if self.orderId and self.orderLineItemId and self.shipmentId:
            return OrderLineItemKey(
                orderId=self.orderId, orderLineItemId=self.orderLineItemId, shipmentId=self.shipmentId
            )
        return None


class Transaction(_ApiModel):
    """A business transaction (CHARGE, REFUND, OVERREFUND) from getTransactions."""

    transactionId: str
    transactionType: str | None = None
    transactionDate: OptUtcDatetime = None
    feedDate: OptUtcDatetime = None
    marketplaceId: str | None = None
    invoiceNumber: OptStr = None
    amount: Money | None = None
    chargeIdentifier: str | None = None
    shipTaxRate: OptDecimal = None
    giftWrapTaxRate: OptDecimal = None
    legalEntityName: str | None = None
    purchasingCustomerGroupName: str | None = None
    paymentInstrumentType: str | None = None
    paymentInstrumentLast4Digits: str | None = None
    buyer: Customer | None = None
    payer: Customer | None = None
    associatedTransactionDetails: ListOf[AssociatedTransactionDetail] = Field(default_factory=list)
    transactionLineItems: ListOf[TransactionLineItem] = Field(default_factory=list)


class TransactionsPage(_ApiModel):
    """One page of getTransactions; ``nextPageToken`` is None on the last page."""

    transactions: ListOf[Transaction] = Field(default_factory=list)
    nextPageToken: OptStr = None


# --- Reconciliation API: invoice details (JP fields optional) ---------------------------------


class InvoiceType(StrEnum):
    """Known values of ``InvoiceDetail.invoiceType`` (JP only)."""

    STANDARD = "STANDARD"
    CREDIT_MEMO = "CREDIT_MEMO"


class FeeType(StrEnum):
    """Known values of a fee's ``feeType``."""

    SHIPPING = "SHIPPING"
    GIFTWRAPPING = "GIFTWRAPPING"
    OTHER = "OTHER"


class ConsolidatedInvoiceDetails(_ApiModel):
    """Consolidated invoice of the order; its number is the text "Pending" until it is ready."""

    invoiceNumber: OptStr = None

    @property
    def is_pending(self) -> bool:
        """True while Amazon has not issued the consolidated invoice yet."""
        return self.invoiceNumber is None or self.invoiceNumber.strip().lower() == "pending"


class InvoiceIssuerDetail(_ApiModel):
    """Issuer of a JP invoice; ``registrationNumber`` is "T" + 13 digits when present."""

    name: str | None = None
    registrationNumber: OptStr = None


class MerchantDetail(_ApiModel):
    """Original seller of the products (JP)."""

    name: str | None = None
    registrationNumber: OptStr = None


class PhysicalAddress(_ApiModel):
    """Bill-to address (JP). Every part is optional: Amazon's examples leave out city and type."""

    addressType: str | None = None
    fullName: str | None = None
    phoneNumber: str | None = None
    companyName: str | None = None
    addressLine1: str | None = None
    addressLine2: str | None = None
    addressLine3: str | None = None
    city: str | None = None
    stateOrRegion: str | None = None
    postalCode: str | None = None
    countryCode: str | None = None


class TaxDetail(_ApiModel):
    """Tax amounts for one rate."""

    rate: OptDecimal = None
    inclusiveTotal: Money | None = None
    exclusiveTotal: Money | None = None
    amount: Money | None = None


class LineItemApportionmentDetail(_ApiModel):
    """How a transaction data item splits over order line items."""

    orderLineItemId: str | None = None
    lineNumber: int | None = None
    units: int | None = None
    unitPrice: Money | None = None
    taxAmount: Money | None = None


class LineItemLevelFeeApportionmentDetail(_ApiModel):
    """How a line-item fee splits over order line items."""

    associatedOrderLineItemId: str | None = None
    units: int | None = None
    unitTaxExclusiveFee: Money | None = None
    unitTaxAmount: Money | None = None


class LineItemLevelFeeDetail(_ApiModel):
    """A fee attached to one transaction data item."""

    feeType: str | None = None
    tax: TaxDetail | None = None
    discount: Money | None = None
    apportionment: ListOf[LineItemLevelFeeApportionmentDetail] = Field(default_factory=list)


class InvoiceLevelFeeApportionmentDetail(_ApiModel):
    """Tax-exclusive part and tax of an invoice-level fee."""

    taxExclusiveFee: Money | None = None
    taxAmount: Money | None = None


class InvoiceLevelFeeDetail(_ApiModel):
    """A fee on the whole invoice (SHIPPING, GIFTWRAPPING, OTHER)."""

    feeType: str | None = None
    tax: TaxDetail | None = None
    discount: Money | None = None
    apportionment: ListOf[InvoiceLevelFeeApportionmentDetail] = Field(default_factory=list)


class TransactionDataItem(_ApiModel):
    """An invoice line (JP): ASIN, prices, units, discount, apportionment and fees."""

    taxRate: OptDecimal = None
    unit: int | None = None
    asin: str | None = None
    title: str | None = None
    unitTaxInclusivePrice: Money | None = None
    unitTaxExclusivePrice: Money | None = None
    unitTaxAmount: Money | None = None
    totalAmount: Money | None = None
    discount: Money | None = None
    apportionment: ListOf[LineItemApportionmentDetail] = Field(default_factory=list)
    fees: ListOf[LineItemLevelFeeDetail] = Field(default_factory=list)


class InvoiceDetail(_ApiModel):
    """An invoice or credit memo. Only ``invoiceNumber`` and ``invoiceDate`` are required.

    ``invoiceType`` is kept as text (compare with ``InvoiceType``) so that a value Amazon adds later
    does not make a whole batch of 25 line items unreadable.
    """

    invoiceNumber: str
    invoiceDate: UtcDatetime
    consolidatedInvoiceDetails: ConsolidatedInvoiceDetails | None = None
    invoiceType: OptStr = None
    associatedInvoiceNumber: OptStr = None
    associatedInvoiceDate: OptUtcDatetime = None
    invoiceIssuer: InvoiceIssuerDetail | None = None
    billToAddress: PhysicalAddress | None = None
    sellerInformation: MerchantDetail | None = None
    orderDate: OptUtcDatetime = None
    currencyCode: OptStr = None
    invoiceTotal: OptDecimal = None
    tax: ListOf[TaxDetail] = Field(default_factory=list)
    transactionDataItems: ListOf[TransactionDataItem] = Field(default_factory=list)
    fees: ListOf[InvoiceLevelFeeDetail] = Field(default_factory=list)

    @field_validator("consolidatedInvoiceDetails", mode="before")
    @classmethod
    def _consolidated_from_text(cls, value: Any) -> Any:
        # Seen both as {"invoiceNumber": "Pending"} and as the bare text "Pending".
        if isinstance(value, str):
            return None if not value.strip() else {"invoiceNumber": value}
        return value

    @property
    def is_credit_memo(self) -> bool:
        """True for a JP credit memo (``invoiceType`` CREDIT_MEMO)."""
        return self.invoiceType == InvoiceType.CREDIT_MEMO


class InvoiceDetailsOfOrderLineItem(_ApiModel):
    """The invoices and credit memos of one order line item."""

    orderLineItem: OrderLineItemKey
    invoiceDetails: ListOf[InvoiceDetail] = Field(default_factory=list)


class InvoiceDetailsByOrderLineItemsResponse(_ApiModel):
    """Answer of getInvoiceDetailsByOrderLineItems (not in request order)."""

    invoiceDetailsByOrderLineItems: ListOf[InvoiceDetailsOfOrderLineItem] = Field(default_factory=list)


# --- Reconciliation API: invoice payment details ---------------------------------------------------


class PaymentStatus(StrEnum):
    """Known values of ``PaymentDetails.status`` (Amazon's words, spaces included)."""

    CLOSED = "Closed"
    PAST_DUE = "Past Due"
    ISSUED = "Issued"
    PAYMENT_PROCESSING = "Payment Processing"


class PaymentDetails(_ApiModel):
    """An invoice's payment status and due date.

    ``status`` is kept as text (compare with ``PaymentStatus``) so that a value Amazon adds later does not make
    the whole batch of 25 unreadable; ``dueDate`` is optional although the model requires it.
    """

    status: str = Field(min_length=1)
    dueDate: OptUtcDatetime = None


class InvoicePaymentDetailResult(_ApiModel):
    """One invoice's answer: ``resultType`` SUCCESS with ``paymentDetails``, or ERROR with ``error``."""

    invoiceId: str = Field(min_length=1)
    resultType: str
    paymentDetails: PaymentDetails | None = None
    error: ErrorDetail | None = None

    @property
    def succeeded(self) -> bool:
        """True for a SUCCESS result that carries its payment details."""
        return self.resultType.upper() == "SUCCESS" and self.paymentDetails is not None


class InvoicePaymentDetailsResponse(_ApiModel):
    """Answer of getBatchInvoicePaymentDetails (one result per invoice asked about, in no promised order)."""

    invoicePaymentDetailsResults: ListOf[InvoicePaymentDetailResult] = Field(default_factory=list)


# --- Document (Reports) API ---------------------------------------------------------------------


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


class Report(_ApiModel):
    """Answer of getReport. ``reportDocumentId`` is set once the report is DONE."""

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


class ReportDocument(_ApiModel):
    """Answer of getReportDocument. ``url`` is presigned, expires in 5 minutes: use it at once, never log it.

    ``compressionAlgorithm`` is only a label (it has been wrong in the field); unpacking goes by magic bytes.
    """

    reportDocumentId: str
    url: str = Field(min_length=1)
    compressionAlgorithm: OptStr = None


class CreateReportResponse(_ApiModel):
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
