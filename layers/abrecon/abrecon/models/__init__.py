"""Pydantic models of the Amazon Business Reconciliation (2021-01-08) and Document (2021-09-30) APIs.

Built from Amazon's Swagger definitions, but tolerant: unknown fields are ignored and every field
the pipeline does not strictly need is optional, because Amazon's own examples omit fields the
models mark as required (registrationNumber, city, discount, ...). Amounts are ``Decimal`` parsed
from strings of varying precision ("2910.0", "970.00", "882"); an empty ``currencyCode`` becomes
None. Datetimes are timezone-aware UTC (a naive value is taken as UTC). Field names keep the API's
camelCase so a model and its JSON read the same.

The models live in one module per API (``common``: the tolerant field types, money, error answers); import them
from here.
"""

from __future__ import annotations

from abrecon.models.common import (
    ErrorDetail,
    ErrorList,
    Money,
    as_utc,
)
from abrecon.models.documents import (
    REPORT_TYPE_INVOICE_PDF,
    CreateReportRequest,
    CreateReportResponse,
    Report,
    ReportDocument,
    ReportOptions,
    ReportProcessingStatus,
    ReportsPage,
)
from abrecon.models.reconciliation import (
    AssociatedTransactionDetail,
    ConsolidatedInvoiceDetails,
    Customer,
    FeeType,
    InvoiceDetail,
    InvoiceDetailsByOrderLineItemsResponse,
    InvoiceDetailsOfOrderLineItem,
    InvoiceIssuerDetail,
    InvoiceLevelFeeApportionmentDetail,
    InvoiceLevelFeeDetail,
    InvoicePaymentDetailResult,
    InvoicePaymentDetailsResponse,
    InvoiceType,
    LineItemApportionmentDetail,
    LineItemLevelFeeApportionmentDetail,
    LineItemLevelFeeDetail,
    MerchantDetail,
    OrderLineItemKey,
    PaymentDetails,
    PaymentStatus,
    PhysicalAddress,
    TaxDetail,
    Transaction,
    TransactionDataItem,
    TransactionLineItem,
    TransactionsPage,
)

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
    "ReportsPage",
    "TaxDetail",
    "Transaction",
    "TransactionDataItem",
    "TransactionLineItem",
    "TransactionsPage",
    "as_utc",
]
