"""Models of the Reconciliation API (2021-01-08): transactions, invoice details (JP fields optional), payments."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator

from abrecon.models.common import (
    ApiModel,
    ErrorDetail,
    ListOf,
    Money,
    OptDecimal,
    OptStr,
    OptUtcDatetime,
    UtcDatetime,
)

# --- Reconciliation API: transactions ---------------------------------------------------------


class OrderLineItemKey(BaseModel):
    """The triple that identifies an order line item shipment; hashable, used as a dict key."""

    model_config = {"extra": "ignore", "frozen": True}

    orderId: str
    orderLineItemId: str
    shipmentId: str

    @property
    def triple(self) -> str:
        """ "orderId|orderLineItemId|shipmentId": the key of the run's matches (line_items.match_key)."""
        return f"{self.orderId}|{self.orderLineItemId}|{self.shipmentId}"


class Customer(ApiModel):
    """Buyer or payer of a transaction."""

    id: str | None = None
    name: str | None = None
    email: str | None = None


class AssociatedTransactionDetail(ApiModel):
    """Link to a related transaction (a refund's charge, for instance)."""

    associatedTransactionId: str | None = None


class TransactionLineItem(ApiModel):
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


class Transaction(ApiModel):
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


class TransactionsPage(ApiModel):
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


class ConsolidatedInvoiceDetails(ApiModel):
    """Consolidated invoice of the order; its number is the text "Pending" until it is ready."""

    invoiceNumber: OptStr = None

    @property
    def is_pending(self) -> bool:
        """True while Amazon has not issued the consolidated invoice yet."""
        return self.invoiceNumber is None or self.invoiceNumber.strip().lower() == "pending"


class InvoiceIssuerDetail(ApiModel):
    """Issuer of a JP invoice; ``registrationNumber`` is "T" + 13 digits when present."""

    name: str | None = None
    registrationNumber: OptStr = None


class MerchantDetail(ApiModel):
    """Original seller of the products (JP)."""

    name: str | None = None
    registrationNumber: OptStr = None


class PhysicalAddress(ApiModel):
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


class TaxDetail(ApiModel):
    """Tax amounts for one rate."""

    rate: OptDecimal = None
    inclusiveTotal: Money | None = None
    exclusiveTotal: Money | None = None
    amount: Money | None = None


class LineItemApportionmentDetail(ApiModel):
    """How a transaction data item splits over order line items."""

    orderLineItemId: str | None = None
    lineNumber: int | None = None
    units: int | None = None
    unitPrice: Money | None = None
    taxAmount: Money | None = None


class LineItemLevelFeeApportionmentDetail(ApiModel):
    """How a line-item fee splits over order line items."""

    associatedOrderLineItemId: str | None = None
    units: int | None = None
    unitTaxExclusiveFee: Money | None = None
    unitTaxAmount: Money | None = None


class LineItemLevelFeeDetail(ApiModel):
    """A fee attached to one transaction data item."""

    feeType: str | None = None
    tax: TaxDetail | None = None
    discount: Money | None = None
    apportionment: ListOf[LineItemLevelFeeApportionmentDetail] = Field(default_factory=list)


class InvoiceLevelFeeApportionmentDetail(ApiModel):
    """Tax-exclusive part and tax of an invoice-level fee."""

    taxExclusiveFee: Money | None = None
    taxAmount: Money | None = None


class InvoiceLevelFeeDetail(ApiModel):
    """A fee on the whole invoice (SHIPPING, GIFTWRAPPING, OTHER)."""

    feeType: str | None = None
    tax: TaxDetail | None = None
    discount: Money | None = None
    apportionment: ListOf[InvoiceLevelFeeApportionmentDetail] = Field(default_factory=list)


class TransactionDataItem(ApiModel):
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


class InvoiceDetail(ApiModel):
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
        """True for a JP credit memo (``invoiceType`` CREDIT_MEMO, in any case)."""
        return (self.invoiceType or "").upper() == InvoiceType.CREDIT_MEMO


class InvoiceDetailsOfOrderLineItem(ApiModel):
    """The invoices and credit memos of one order line item."""

    orderLineItem: OrderLineItemKey
    invoiceDetails: ListOf[InvoiceDetail] = Field(default_factory=list)


class InvoiceDetailsByOrderLineItemsResponse(ApiModel):
    """Answer of getInvoiceDetailsByOrderLineItems (not in request order)."""

    invoiceDetailsByOrderLineItems: ListOf[InvoiceDetailsOfOrderLineItem] = Field(default_factory=list)


# --- Reconciliation API: invoice payment details ---------------------------------------------------


class PaymentStatus(StrEnum):
    """Known values of ``PaymentDetails.status`` (Amazon's words, spaces included)."""

    CLOSED = "Closed"
    PAST_DUE = "Past Due"
    ISSUED = "Issued"
    PAYMENT_PROCESSING = "Payment Processing"


class PaymentDetails(ApiModel):
    """An invoice's payment status and due date.

    ``status`` is kept as text (compare with ``PaymentStatus``) so that a value Amazon adds later does not make
    the whole batch of 25 unreadable; ``dueDate`` is optional although the model requires it.
    """

    status: str = Field(min_length=1)
    dueDate: OptUtcDatetime = None


class InvoicePaymentDetailResult(ApiModel):
    """One invoice's answer: ``resultType`` SUCCESS with ``paymentDetails``, or ERROR with ``error``."""

    invoiceId: str = Field(min_length=1)
    resultType: str
    paymentDetails: PaymentDetails | None = None
    error: ErrorDetail | None = None

    @property
    def succeeded(self) -> bool:
        """True for a SUCCESS result that carries its payment details."""
        return self.resultType.upper() == "SUCCESS" and self.paymentDetails is not None


class InvoicePaymentDetailsResponse(ApiModel):
    """Answer of getBatchInvoicePaymentDetails (one result per invoice asked about, in no promised order)."""

    invoicePaymentDetailsResults: ListOf[InvoicePaymentDetailResult] = Field(default_factory=list)
