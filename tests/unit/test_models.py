"""Models against Amazon's own examples and the tolerance rules of FIELD-NOTES."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator
from pydantic import BaseModel, ValidationError
from unit_fakes import FakeHttp, Reply, Sleeps, StubTokens

from abrecon.client import AmazonBusinessClient
from abrecon.errors import BadRequestError
from abrecon.models import (
    AssociatedTransactionDetail,
    ConsolidatedInvoiceDetails,
    CreateReportRequest,
    CreateReportResponse,
    Customer,
    ErrorDetail,
    ErrorList,
    FeeType,
    InvoiceDetail,
    InvoiceDetailsByOrderLineItemsResponse,
    InvoiceDetailsOfOrderLineItem,
    InvoiceIssuerDetail,
    InvoiceLevelFeeApportionmentDetail,
    InvoiceLevelFeeDetail,
    InvoiceType,
    LineItemApportionmentDetail,
    LineItemLevelFeeApportionmentDetail,
    LineItemLevelFeeDetail,
    MerchantDetail,
    Money,
    OrderLineItemKey,
    PhysicalAddress,
    Report,
    ReportDocument,
    ReportOptions,
    ReportProcessingStatus,
    TaxDetail,
    Transaction,
    TransactionDataItem,
    TransactionLineItem,
    TransactionsPage,
)

SHARED = Path(__file__).parents[2].parent / "shared"
API_MODELS = SHARED / "api-models"
REFERENCE = SHARED / "reference"


def _sandbox_examples() -> list[tuple[str, str, str, Any]]:
    """(file, operationId, status, response) for every x-amzn-api-sandbox example."""
    found = []
    for name in ("Reconciliation_API.json", "Document_API_v1.json"):
        spec = json.loads((API_MODELS / name).read_text())
        for operations in spec["paths"].values():
            for method, operation in operations.items():
                if method == "parameters":
                    continue
                for status, response in operation.get("responses", {}).items():
                    for examples in response.get("x-amzn-api-sandbox", {}).values():
                        for example in examples:
                            found.append((name, operation["operationId"], status, example.get("response")))
    return found


SANDBOX_EXAMPLES = _sandbox_examples()

# Which model reads which successful answer.
SUCCESS_MODELS: dict[str, type[BaseModel]] = {
    "getTransactions": TransactionsPage,
    "getInvoiceDetailsByOrderLineItems": InvoiceDetailsByOrderLineItemsResponse,
    "createReport": CreateReportResponse,
    "getReport": Report,
    "getReportDocument": ReportDocument,
}
# Operations the pipeline does not call; their examples are checked only where noted.
NOT_MODELLED = {"getBatchInvoicePaymentDetails", "cancelReport", "getReports"}


def test_every_sandbox_example_is_covered() -> None:
    operations = {op for _, op, _, _ in SANDBOX_EXAMPLES}
    assert len(SANDBOX_EXAMPLES) == 16
    assert operations <= set(SUCCESS_MODELS) | NOT_MODELLED
    assert set(SUCCESS_MODELS) <= operations


@pytest.mark.parametrize(
    ("file", "operation", "status", "response"),
    SANDBOX_EXAMPLES,
    ids=[f"{op}-{status}-{i}" for i, (_, op, status, _) in enumerate(SANDBOX_EXAMPLES)],
)
def test_sandbox_example_parses(file: str, operation: str, status: str, response: Any) -> None:
    if status.startswith(("4", "5")):
        errors = ErrorList.model_validate(response).errors
        assert errors
        assert all(e.code and e.message for e in errors)
        return
    if operation == "getReports":
        reports = [Report.model_validate(r) for r in response["reports"]]
        assert reports[0].processingStatus is ReportProcessingStatus.IN_PROGRESS
        return
    if operation in NOT_MODELLED:
        return
    model = SUCCESS_MODELS[operation]
    parsed = model.model_validate(response)
    # Round trip keeps every value the example carries for our fields (no silent drops).
    assert parsed.model_dump(exclude_unset=True)


def _example(operation: str, status: str = "200") -> Any:
    return next(r for _, op, st, r in SANDBOX_EXAMPLES if op == operation and st == status)


def test_transactions_example_values() -> None:
    page = TransactionsPage.model_validate(_example("getTransactions"))
    assert page.nextPageToken is None
    (txn,) = page.transactions
    assert txn.transactionId == "1x47pVc03Ffs71cjjCct"
    assert txn.transactionType == "CHARGE"
    assert txn.amount == Money(amount=Decimal("5.99"), currencyCode="USD")
    assert txn.feedDate == datetime(2021, 5, 12, 20, 44, 21, 791000, tzinfo=UTC)
    (item,) = txn.transactionLineItems
    assert item.key == OrderLineItemKey(
        orderId="114-1458190-2465828", orderLineItemId="31208275451321", shipmentId="DhG3L9W23"
    )
    assert item.discount is not None and item.discount.amount == Decimal("-2.99")
    assert item.taxRate == Decimal("0.00")
    assert item.businessOrderInfo == {"GL code": "535-office", "COVID-19 Related?": "No", "Cost center": ""}


def test_invoice_details_example_values() -> None:
    example = _example("getInvoiceDetailsByOrderLineItems")
    answer = InvoiceDetailsByOrderLineItemsResponse.model_validate(example)
    first, second = answer.invoiceDetailsByOrderLineItems
    # Not in request order: the example asked for 503-... first.
    assert first.orderLineItem.orderId == "250-9059274-9386231"
    assert second.orderLineItem.orderId == "503-0807783-5846230"
    numbers = [d.invoiceNumber for d in first.invoiceDetails]
    assert numbers == ["JP218PV8HMOI", "JP22E0VEIAJGKI", "JP21UV8HMOC", "JP2SRUXAJGKC", "JP2SPSMAJGKC"]
    invoice, _, memo = first.invoiceDetails[:3]
    assert invoice.consolidatedInvoiceDetails == ConsolidatedInvoiceDetails(invoiceNumber="11XS-123S-XFA1")
    assert invoice.invoiceTotal == Decimal("1751.0")
    assert invoice.invoiceIssuer is not None and invoice.invoiceIssuer.registrationNumber is None
    assert invoice.billToAddress is not None and invoice.billToAddress.city is None
    assert invoice.tax == []
    item = invoice.transactionDataItems[0]
    assert item.unitTaxInclusivePrice == Money(amount=Decimal("0"), currencyCode=None)  # currencyCode ""
    assert item.discount is None
    assert invoice.fees[0].feeType == "SHIPPING"
    assert invoice.fees[0].discount == Money(amount=Decimal("-61.0"), currencyCode="JPY")
    assert memo.is_credit_memo and not invoice.is_credit_memo
    assert memo.associatedInvoiceNumber == "JP218PV8HMOI"
    assert memo.invoiceTotal == Decimal("1751.00")
    assert memo.fees[0].apportionment[0].taxExclusiveFee == Money(amount=Decimal("61.0"), currencyCode="JPY")
    # Fee without discount (marked required in the model) is accepted.
    assert second.invoiceDetails[0].fees[0].discount is None


def _tutorial_json(file_name: str, marker: str) -> Any:
    text = (REFERENCE / file_name).read_text()
    start = text.index(marker)
    value, _ = json.JSONDecoder().raw_decode(text[start:])
    return value


def test_jp_tutorial_example() -> None:
    data = _tutorial_json("003_2c91d96ba5059a7e.txt", '{\n"invoiceDetailsByOrderLineItems"')
    answer = InvoiceDetailsByOrderLineItemsResponse.model_validate(data)
    (entry,) = answer.invoiceDetailsByOrderLineItems
    assert entry.orderLineItem.shipmentId == " XXXXXXXXX"  # leading space as published
    invoice, memo = entry.invoiceDetails
    assert invoice.invoiceType == InvoiceType.STANDARD
    assert invoice.consolidatedInvoiceDetails is None
    assert invoice.associatedInvoiceNumber is None and invoice.associatedInvoiceDate is None
    assert invoice.invoiceDate == datetime(2023, 7, 20, 21, 26, 49, 760000, tzinfo=UTC)
    assert invoice.invoiceTotal == Decimal("2910")
    assert invoice.sellerInformation is not None
    assert invoice.sellerInformation.registrationNumber == "T3040001028123"
    tax = invoice.tax[0]
    assert tax.rate == Decimal("0.1")
    assert tax.inclusiveTotal is not None and tax.inclusiveTotal.amount == Decimal("2910.0")
    assert tax.exclusiveTotal is not None and tax.exclusiveTotal.amount == Decimal("2646.0")
    assert tax.amount is not None and tax.amount.amount == Decimal("264.0")
    item = invoice.transactionDataItems[0]
    assert item.unit == 3
    assert item.unitTaxExclusivePrice is not None and item.unitTaxExclusivePrice.amount == Decimal("882")
    assert item.apportionment[0].orderLineItemId == "7XXXXXXXXXXXX"
    assert item.apportionment[0].unitPrice == Money(amount=Decimal("882.0"), currencyCode="JPY")
    assert invoice.fees[0].tax is not None and invoice.fees[0].tax.rate == Decimal("0.1")
    assert memo.invoiceType == "CREDIT_MEMO" and memo.is_credit_memo
    assert memo.associatedInvoiceNumber == "JP36BXXXXXXXXX"
    assert memo.invoiceTotal == Decimal("970.00")
    assert memo.fees == []


# --- tolerance rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2910.0", Decimal("2910.0")),
        ("970.00", Decimal("970.00")),
        ("882", Decimal("882")),
        ("-410.0", Decimal("-410")),
    ],
)
def test_money_parses_strings_exactly(raw: str, expected: Decimal) -> None:
    money = Money.model_validate({"amount": raw, "currencyCode": "JPY"})
    assert isinstance(money.amount, Decimal)
    assert money.amount == expected
    assert str(money.amount) == raw  # precision kept as sent


def test_money_from_json_number_is_exact_and_blank_currency_is_none() -> None:
    money = Money.model_validate({"amount": 0.1, "currencyCode": ""})
    assert money.amount == Decimal("0.1")
    assert money.currencyCode is None


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "", "abc"])
def test_money_rejects_non_numbers(raw: str) -> None:
    with pytest.raises(ValidationError):
        Money.model_validate({"amount": raw, "currencyCode": "USD"})


def test_consolidated_invoice_pending_as_text_or_object() -> None:
    base = {"invoiceNumber": "A", "invoiceDate": "2024-01-02T03:04:05Z"}
    as_text = InvoiceDetail.model_validate({**base, "consolidatedInvoiceDetails": "Pending"})
    pending = {"invoiceNumber": "Pending"}
    as_object = InvoiceDetail.model_validate({**base, "consolidatedInvoiceDetails": pending})
    ready = InvoiceDetail.model_validate({**base, "consolidatedInvoiceDetails": {"invoiceNumber": "C-1"}})
    absent = InvoiceDetail.model_validate(base)
    states = [
        None if d.consolidatedInvoiceDetails is None else d.consolidatedInvoiceDetails.is_pending
        for d in (as_text, as_object, ready, absent)
    ]
    assert states == [True, True, False, None]


def test_invoice_detail_tolerates_nulls_text_null_and_unknown_fields() -> None:
    detail = InvoiceDetail.model_validate(
        {
            "invoiceNumber": "A",
            "invoiceDate": "2024-01-02T03:04:05",  # naive: taken as UTC
            "associatedInvoiceNumber": "null",
            "associatedInvoiceDate": "null",
            "invoiceType": "SOMETHING_NEW",
            "tax": None,
            "fees": None,
            "transactionDataItems": [{"apportionment": None, "fees": None, "discount": None}],
            "brandNewField": {"x": 1},
        }
    )
    assert detail.invoiceDate == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert detail.associatedInvoiceNumber is None and detail.associatedInvoiceDate is None
    assert detail.invoiceType == "SOMETHING_NEW" and not detail.is_credit_memo
    assert detail.tax == [] and detail.fees == []
    assert detail.transactionDataItems[0].apportionment == []
    assert not hasattr(detail, "brandNewField")


def test_invoice_detail_needs_number_and_date() -> None:
    with pytest.raises(ValidationError):
        InvoiceDetail.model_validate({"invoiceDate": "2024-01-02T03:04:05Z"})
    with pytest.raises(ValidationError):
        InvoiceDetail.model_validate({"invoiceNumber": "A"})


def test_datetimes_are_converted_to_utc() -> None:
    detail = InvoiceDetail.model_validate({"invoiceNumber": "A", "invoiceDate": "2024-01-02T09:00:00+09:00"})
    assert detail.invoiceDate == datetime(2024, 1, 2, 0, 0, tzinfo=UTC)
    assert detail.invoiceDate.utcoffset() is not None


def test_line_item_key_needs_all_three_parts() -> None:
    full = TransactionLineItem.model_validate({"orderId": "o", "orderLineItemId": "l", "shipmentId": "s"})
    assert full.key == OrderLineItemKey(orderId="o", orderLineItemId="l", shipmentId="s")
    assert TransactionLineItem.model_validate({"orderId": "o", "orderLineItemId": "l"}).key is None
    blank = TransactionLineItem.model_validate({"orderId": "o", "orderLineItemId": "l", "shipmentId": ""})
    assert blank.key is None


def test_order_line_item_key_is_frozen_and_hashable() -> None:
    a = OrderLineItemKey(orderId="o", orderLineItemId="l", shipmentId="s")
    b = OrderLineItemKey.model_validate({"orderId": "o", "orderLineItemId": "l", "shipmentId": "s", "x": 1})
    assert a == b and hash(a) == hash(b)
    assert {a: 1}[b] == 1
    with pytest.raises(ValidationError):
        a.orderId = "other"  # type: ignore[misc]


def test_transactions_page_blank_token_means_last_page() -> None:
    page = TransactionsPage.model_validate({"transactions": None, "nextPageToken": ""})
    assert page.transactions == [] and page.nextPageToken is None


@pytest.mark.parametrize(
    ("status", "terminal"),
    [("IN_QUEUE", False), ("IN_PROGRESS", False), ("DONE", True), ("FATAL", True), ("CANCELLED", True)],
)
def test_report_status_terminal(status: str, terminal: bool) -> None:
    report = Report.model_validate({"reportId": "r", "processingStatus": status})
    assert report.processingStatus.is_terminal is terminal
    assert report.processingStatus == status


def test_report_rejects_unknown_status_and_keeps_echoed_options() -> None:
    with pytest.raises(ValidationError):
        Report.model_validate({"reportId": "r", "processingStatus": "WAITING"})
    report = Report.model_validate(
        {
            "reportId": "ID323",
            "processingStatus": "DONE",
            "reportDocumentId": "DOC-1",
            "reportOptions": {"invoiceId": "1111", "documentType": "Invoice"},
        }
    )
    assert report.reportDocumentId == "DOC-1"
    assert report.reportOptions == {"invoiceId": "1111", "documentType": "Invoice"}


def test_report_document_keeps_url_untouched() -> None:
    url = "https://d34o8swod1owfl.cloudfront.net/SampleResult%2BKey%3DSample%2BINITVEC%3D58+fa+bf" + "x" * 600
    doc = ReportDocument.model_validate({"reportDocumentId": "D", "url": url, "compressionAlgorithm": "GZIP"})
    assert doc.url == url and len(doc.url) > 512
    assert doc.compressionAlgorithm == "GZIP"
    assert ReportDocument.model_validate({"reportDocumentId": "D", "url": url}).compressionAlgorithm is None


def test_error_list_accepts_numeric_codes_and_missing_details() -> None:
    errors = ErrorList.model_validate({"errors": [{"code": 400, "message": "Invalid input"}]}).errors
    assert errors[0].code == "400" and errors[0].details is None


# --- createReport request -----------------------------------------------------------------------


def test_create_report_body_without_type() -> None:
    request = CreateReportRequest.for_invoice("1111-2222-3333", ["ATVPDKIKX0DER"])
    assert request.to_body() == {
        "reportType": "GET_AB_INVOICE_PDF",
        "marketplaceIds": ["ATVPDKIKX0DER"],
        "reportOptions": {"invoiceId": "1111-2222-3333"},
    }


def test_create_report_body_matches_tutorial() -> None:
    tutorial = _tutorial_json("000_a74dc98f4cf7c34b.txt", '{\n"reportOptions"')
    request = CreateReportRequest.for_invoice("1111-2222-3333", ["ATVPDKIKX0DER"], document_type="Credits")
    assert request.to_body() == tutorial


def test_create_report_deprecated_invoice_type() -> None:
    body = CreateReportRequest.for_invoice("X", ("A", "B"), invoice_type="PBI_INVOICE").to_body()
    assert body["reportOptions"] == {"invoiceId": "X", "invoiceType": "PBI_INVOICE"}
    assert body["marketplaceIds"] == ["A", "B"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"document_type": "Invoice", "invoice_type": "PBI_INVOICE"},  # both: Amazon rejects it
        {"document_type": "invoice"},
        {"document_type": "CreditMemo"},
        {"invoice_type": "STANDARD"},
    ],
)
def test_create_report_rejects_bad_options(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        CreateReportRequest.for_invoice("X", ["ATVPDKIKX0DER"], **kwargs)


@pytest.mark.parametrize(
    ("invoice", "markets"), [("", ["A"]), ("  ", ["A"]), ("X", []), ("X", [""]), ("X", ["A"] * 26)]
)
def test_create_report_rejects_bad_ids(invoice: str, markets: list[str]) -> None:
    with pytest.raises(ValidationError):
        CreateReportRequest.for_invoice(invoice, markets)


def test_report_options_forbid_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        ReportOptions.model_validate({"invoiceId": "X", "documentTyp": "Invoice"})


# --- contract: Amazon's models against the project's models, requests and client ------------------
#
# Above, every x-amzn-api-sandbox answer parses with the matching model. Below: each answer also goes through
# the client's own path (status, JSON decoding, typed errors), the client's requests conform to the models'
# parameters and request schemas, and no field or enum value of Amazon's definitions is silently dropped.

SPECS = {
    name: json.loads((API_MODELS / name).read_text()) for name in ("Reconciliation_API.json", "Document_API_v1.json")
}

# Amazon's definition -> the project's model that reads or writes it.
DEFINITION_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("Reconciliation_API.json", "TransactionsResponse"): TransactionsPage,
    ("Reconciliation_API.json", "Transaction"): Transaction,
    ("Reconciliation_API.json", "TransactionLineItem"): TransactionLineItem,
    ("Reconciliation_API.json", "Customer"): Customer,
    ("Reconciliation_API.json", "AssociatedTransactionDetail"): AssociatedTransactionDetail,
    ("Reconciliation_API.json", "Money"): Money,
    ("Reconciliation_API.json", "OrderLineItem"): OrderLineItemKey,
    ("Reconciliation_API.json", "InvoiceDetailsByOrderLineItemsResponse"): InvoiceDetailsByOrderLineItemsResponse,
    ("Reconciliation_API.json", "InvoiceDetailsOfOrderLineItem"): InvoiceDetailsOfOrderLineItem,
    ("Reconciliation_API.json", "InvoiceDetail"): InvoiceDetail,
    ("Reconciliation_API.json", "ConsolidatedInvoiceDetails"): ConsolidatedInvoiceDetails,
    ("Reconciliation_API.json", "InvoiceIssuerDetail"): InvoiceIssuerDetail,
    ("Reconciliation_API.json", "MerchantDetail"): MerchantDetail,
    ("Reconciliation_API.json", "PhysicalAddress"): PhysicalAddress,
    ("Reconciliation_API.json", "TaxDetail"): TaxDetail,
    ("Reconciliation_API.json", "TransactionDataItem"): TransactionDataItem,
    ("Reconciliation_API.json", "LineItemApportionmentDetail"): LineItemApportionmentDetail,
    ("Reconciliation_API.json", "LineItemLevelFeeDetail"): LineItemLevelFeeDetail,
    ("Reconciliation_API.json", "LineItemLevelFeeApportionmentDetail"): LineItemLevelFeeApportionmentDetail,
    ("Reconciliation_API.json", "InvoiceLevelFeeDetail"): InvoiceLevelFeeDetail,
    ("Reconciliation_API.json", "InvoiceLevelFeeApportionmentDetail"): InvoiceLevelFeeApportionmentDetail,
    ("Reconciliation_API.json", "ErrorList"): ErrorList,
    ("Reconciliation_API.json", "Error"): ErrorDetail,
    ("Document_API_v1.json", "Report"): Report,
    ("Document_API_v1.json", "ReportDocument"): ReportDocument,
    ("Document_API_v1.json", "CreateReportResponse"): CreateReportResponse,
    ("Document_API_v1.json", "CreateReportSpecification"): CreateReportRequest,
    ("Document_API_v1.json", "ReportOptions"): ReportOptions,
    ("Document_API_v1.json", "ErrorList"): ErrorList,
    ("Document_API_v1.json", "Error"): ErrorDetail,
}
# Properties of those definitions the project leaves out on purpose.
NOT_SENT = {
    # GET_AB_INVOICE_PDF takes no data range: the invoice id in reportOptions says what the report holds.
    ("Document_API_v1.json", "CreateReportSpecification"): {"dataStartTime", "dataEndTime"},
}


@pytest.mark.parametrize(("file", "definition"), sorted(DEFINITION_MODELS), ids=lambda v: str(v))
def test_every_property_of_amazons_definition_has_a_field(file: str, definition: str) -> None:
    schema = SPECS[file]["definitions"][definition]
    properties = set(schema.get("properties", {}))
    fields = set(DEFINITION_MODELS[(file, definition)].model_fields)
    assert properties - NOT_SENT.get((file, definition), set()) <= fields


@pytest.mark.parametrize(
    ("file", "definition", "values"),
    [
        ("Reconciliation_API.json", "InvoiceType", {t.value for t in InvoiceType}),
        ("Reconciliation_API.json", "FeeType", {t.value for t in FeeType}),
    ],
)
def test_enums_match_amazons(file: str, definition: str, values: set[str]) -> None:
    assert set(SPECS[file]["definitions"][definition]["enum"]) == values


def test_report_statuses_and_compression_match_amazons() -> None:
    report = SPECS["Document_API_v1.json"]["definitions"]["Report"]["properties"]
    assert set(report["processingStatus"]["enum"]) == {s.value for s in ReportProcessingStatus}
    document = SPECS["Document_API_v1.json"]["definitions"]["ReportDocument"]["properties"]
    assert document["compressionAlgorithm"]["enum"] == ["GZIP"]


def _request_validator(file: str, definition: str) -> Draft4Validator:
    # Swagger 2.0 schema objects are JSON Schema draft 4 (plus x- extensions, which validators ignore).
    spec = SPECS[file]
    return Draft4Validator({"$ref": f"#/definitions/{definition}", "definitions": spec["definitions"]})


@pytest.mark.parametrize(
    "kwargs", [{}, {"document_type": "Invoice"}, {"document_type": "Credits"}, {"invoice_type": "PBI_INVOICE"}]
)
def test_create_report_body_conforms_to_amazons_schema(kwargs: dict[str, str]) -> None:
    body = CreateReportRequest.for_invoice("1111-2222-3333", ["ATVPDKIKX0DER"], **kwargs).to_body()
    _request_validator("Document_API_v1.json", "CreateReportSpecification").validate(body)
    # ReportOptions is a string map in Amazon's model: every value we send is a string.
    assert all(isinstance(v, str) for v in body["reportOptions"].values())


def _example_entry(operation: str, status: str) -> dict[str, Any]:
    for spec in SPECS.values():
        for operations in spec["paths"].values():
            for method, op in operations.items():
                if method != "parameters" and op["operationId"] == operation:
                    entry: dict[str, Any] = op["responses"][status]["x-amzn-api-sandbox"]["static"][0]
                    return entry
    raise KeyError(operation)


def _operation(operation: str) -> dict[str, Any]:
    for spec in SPECS.values():
        for operations in spec["paths"].values():
            for method, op in operations.items():
                if method != "parameters" and op["operationId"] == operation:
                    found: dict[str, Any] = op
                    return found
    raise KeyError(operation)


@pytest.fixture
def api(http: FakeHttp, tokens: StubTokens, sleeps: Sleeps) -> AmazonBusinessClient:
    return AmazonBusinessClient("https://na.business-api.amazon.com", tokens, session=http.session, sleep=sleeps)


def test_client_get_transactions_sends_amazons_example_request_and_reads_its_answer(
    api: AmazonBusinessClient, http: FakeHttp
) -> None:
    entry = _example_entry("getTransactions", "200")
    params = {name: p["value"] for name, p in entry["request"]["parameters"].items()}
    http.queue(Reply(200, json_body=entry["response"]))
    start, end = (datetime.fromisoformat(params[k]) for k in ("feedStartDate", "feedEndDate"))
    (transaction,) = api.iter_transactions(start, end)
    assert http.seen[0].params == params  # the same query Amazon's sandbox matches on
    declared = {p["name"] for p in _operation("getTransactions")["parameters"]}
    assert set(http.seen[0].params) <= declared
    assert transaction.transactionId == "1x47pVc03Ffs71cjjCct"


def test_client_invoice_details_sends_amazons_example_body_and_reads_its_answer(
    api: AmazonBusinessClient, http: FakeHttp
) -> None:
    entry = _example_entry("getInvoiceDetailsByOrderLineItems", "200")
    body = entry["request"]["parameters"]["body"]["value"]
    http.queue(Reply(200, json_body=entry["response"]))
    keys = [OrderLineItemKey.model_validate(item) for item in body["orderLineItems"]]
    answer = api.get_invoice_details(keys)
    assert http.seen[0].json() == body
    _request_validator("Reconciliation_API.json", "InvoiceDetailsByOrderLineItemsRequest").validate(http.seen[0].json())
    assert {entry.orderLineItem for entry in answer} == set(keys)  # all entries read, though out of order


def test_client_create_report_reads_amazons_202(api: AmazonBusinessClient, http: FakeHttp) -> None:
    entry = _example_entry("createReport", "202")
    assert set(_operation("createReport")["responses"]) >= {"202"}
    http.queue(Reply(202, json_body=entry["response"]))
    assert api.create_report("1111-2222-3333", ["ATVPDKIKX0DER"]) == "ID323"
    _request_validator("Document_API_v1.json", "CreateReportSpecification").validate(http.seen[0].json())


def test_client_get_report_and_document_read_amazons_answers(api: AmazonBusinessClient, http: FakeHttp) -> None:
    report_entry = _example_entry("getReport", "200")
    document_entry = _example_entry("getReportDocument", "200")
    http.queue(Reply(200, json_body=report_entry["response"]), Reply(200, json_body=document_entry["response"]))
    report = api.get_report(report_entry["request"]["parameters"]["reportId"]["value"])
    assert report.processingStatus is ReportProcessingStatus.IN_PROGRESS
    assert http.seen[0].path == "/reports/2021-09-30/reports/ID323"
    document_id = document_entry["request"]["parameters"]["reportDocumentId"]["value"]
    document = api.get_report_document(document_id)
    assert http.seen[1].path == f"/reports/2021-09-30/documents/{document_id}"
    assert document.url == document_entry["response"]["url"] and document.compressionAlgorithm is None


# Each operation the client calls, with the call that gets Amazon's error example back.
CLIENT_CALLS: dict[str, Any] = {
    "getTransactions": lambda c: list(c.iter_transactions(datetime(2020, 7, 9), datetime(2020, 8, 1))),
    "getInvoiceDetailsByOrderLineItems": lambda c: c.get_invoice_details(
        [OrderLineItemKey(orderId="o", orderLineItemId="l", shipmentId="s")]
    ),
    "createReport": lambda c: c.create_report("1111-2222-3333", ["ATVPDKIKX0DER"]),
    "getReport": lambda c: c.get_report("badReportId1"),
    "getReportDocument": lambda c: c.get_report_document("badDocumentId1"),
}


@pytest.mark.parametrize("operation", sorted(CLIENT_CALLS))
def test_client_maps_amazons_error_examples_to_typed_errors(
    api: AmazonBusinessClient, http: FakeHttp, operation: str
) -> None:
    response = _example_entry(operation, "400")["response"]
    http.queue(Reply(400, json_body=response))
    with pytest.raises(BadRequestError) as caught:
        CLIENT_CALLS[operation](api)
    (error,) = response["errors"]
    assert (caught.value.operation, caught.value.status, caught.value.code) == (operation, 400, error["code"])
    assert error["message"] in caught.value.message
    assert len(http.seen) == 1  # a 400 is not retried


def test_every_operation_the_client_calls_has_examples_of_both_outcomes() -> None:
    for operation in CLIENT_CALLS:
        statuses = {status for _, op, status, _ in SANDBOX_EXAMPLES if op == operation}
        assert any(s.startswith("2") for s in statuses) and "400" in statuses, operation
