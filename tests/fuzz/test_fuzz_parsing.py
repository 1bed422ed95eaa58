"""Fuzzing the parsing of Amazon Business and LWA answers: whatever a server sends (random JSON around the real
shapes of transactions, invoice details, reports, report documents and error bodies, or random bytes), the client
returns typed results or raises an abrecon.errors.AbreconError; never another exception, a hang, or memory beyond
the body plus a fixed headroom. The models themselves raise only pydantic's ValidationError, which the client maps.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fuzz_support import FUZZ, FakeSession, run_bounded
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from abrecon.auth import LwaTokenProvider
from abrecon.client import AmazonBusinessClient, RetryPolicy
from abrecon.errors import AbreconError
from abrecon.models import (
    CreateReportResponse,
    ErrorList,
    InvoiceDetailsByOrderLineItemsResponse,
    InvoiceDetailsOfOrderLineItem,
    OrderLineItemKey,
    Report,
    ReportDocument,
    ReportProcessingStatus,
    Transaction,
    TransactionsPage,
)

pytestmark = pytest.mark.timeout(300)

API = "https://na.business-api.amazon.com"
START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 11, 8, tzinfo=UTC)
KEYS = [OrderLineItemKey(orderId="O1", orderLineItemId="L1", shipmentId="S1")]

# Regressions found by these tests (fixed in abrecon.models / abrecon.client / abrecon.auth):
# a datetime whose UTC conversion leaves year 1..9999 raised OverflowError out of a validator;
EDGE_DATETIME = "0001-01-01T00:00:00+01:00"
# a deeply nested JSON body raised RecursionError out of json.loads.
DEEP_JSON = b"[" * 100_000

# --- JSON around the real shapes --------------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
any_json = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the plausible value, sometimes any JSON at all."""
    return st.one_of(strategy, strategy, strategy, any_json)


_datetimes = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59))
_offsets = st.sampled_from(["Z", "+00:00", "+01:00", "-01:00", "+14:00", "-12:00", "", "+23:59"])
dates = st.one_of(
    st.builds(lambda d, z: d.isoformat() + z, _datetimes, _offsets),
    st.sampled_from([EDGE_DATETIME, "9999-12-31T23:59:59-01:00", "null", "", "Pending", "2026-13-40T25:61:61Z"]),
    st.integers(-(2**40), 2**40),
    st.text(max_size=25),
)
amount_texts = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999999", "1E-999999", "", " 12.5 ", "1,000.00", "0x10"]),
    st.text(max_size=12),
)
money = st.fixed_dictionaries(
    {"amount": maybe(amount_texts | st.integers() | st.floats())},
    optional={"currencyCode": maybe(st.sampled_from(["USD", "JPY", "EUR", "", None]))},
)
ids = st.text(min_size=0, max_size=20)
line_item = st.fixed_dictionaries(
    {},
    optional={
        "orderId": maybe(ids),
        "orderLineItemId": maybe(ids),
        "shipmentId": maybe(ids),
        "itemQuantity": maybe(st.integers(-5, 10**6)),
        "totalAmount": maybe(money),
        "shipmentDate": maybe(dates),
        "taxRate": maybe(amount_texts),
        "businessOrderInfo": any_json,
    },
)
transaction = st.fixed_dictionaries(
    {"transactionId": maybe(ids)},
    optional={
        "transactionType": maybe(st.sampled_from(["CHARGE", "REFUND", "OVERREFUND", "NEW"])),
        "transactionDate": maybe(dates),
        "feedDate": maybe(dates),
        "invoiceNumber": maybe(ids),
        "amount": maybe(money),
        "associatedTransactionDetails": maybe(st.lists(any_json, max_size=3)),
        "transactionLineItems": maybe(st.none() | st.lists(maybe(line_item), max_size=4)),
    },
)
transactions_page = st.fixed_dictionaries(
    {},
    optional={
        "transactions": maybe(st.none() | st.lists(maybe(transaction), max_size=4)),
        "nextPageToken": maybe(st.none() | ids),
    },
)
tax = st.fixed_dictionaries({}, optional={"rate": maybe(amount_texts), "amount": maybe(money)})
invoice_detail = st.fixed_dictionaries(
    {"invoiceNumber": maybe(ids), "invoiceDate": maybe(dates)},
    optional={
        "invoiceType": maybe(st.sampled_from(["STANDARD", "CREDIT_MEMO", "null", "OTHER"])),
        "associatedInvoiceNumber": maybe(ids | st.just("null")),
        "associatedInvoiceDate": maybe(dates),
        "consolidatedInvoiceDetails": maybe(st.just("Pending") | st.fixed_dictionaries({"invoiceNumber": ids})),
        "invoiceTotal": maybe(amount_texts),
        "tax": maybe(st.none() | st.lists(maybe(tax), max_size=3)),
        "transactionDataItems": maybe(st.lists(any_json, max_size=3)),
        "orderDate": maybe(dates),
    },
)
invoice_details_response = st.fixed_dictionaries(
    {
        "invoiceDetailsByOrderLineItems": maybe(
            st.lists(
                maybe(
                    st.fixed_dictionaries(
                        {
                            "orderLineItem": maybe(
                                st.fixed_dictionaries(
                                    {"orderId": maybe(ids), "orderLineItemId": maybe(ids), "shipmentId": maybe(ids)}
                                )
                            ),
                        },
                        optional={"invoiceDetails": maybe(st.none() | st.lists(maybe(invoice_detail), max_size=3))},
                    )
                ),
                max_size=4,
            )
        )
    }
)
report = st.fixed_dictionaries(
    {"reportId": maybe(ids), "processingStatus": maybe(st.sampled_from([s.value for s in ReportProcessingStatus]))},
    optional={
        "reportType": maybe(st.just("GET_AB_INVOICE_PDF")),
        "reportDocumentId": maybe(ids),
        "createdTime": maybe(dates),
        "processingEndTime": maybe(dates),
        "marketplaceIds": maybe(st.lists(ids, max_size=3)),
        "reportOptions": maybe(st.dictionaries(ids, ids, max_size=3)),
    },
)
report_document = st.fixed_dictionaries(
    {"reportDocumentId": maybe(ids), "url": maybe(st.just("https://d34o8swod1owfl.cloudfront.net/doc?sig=1") | ids)},
    optional={"compressionAlgorithm": maybe(st.sampled_from(["GZIP", "", "null"]))},
)
create_report_response = st.fixed_dictionaries({"reportId": maybe(ids)})
error_body = st.fixed_dictionaries(
    {
        "errors": maybe(
            st.lists(
                maybe(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "code": maybe(st.sampled_from(["InvalidInput", "QuotaExceeded", "400"]) | st.integers()),
                            "message": maybe(st.text(max_size=60)),
                            "details": maybe(st.text(max_size=60)),
                        },
                    )
                ),
                max_size=3,
            )
        )
    }
) | st.fixed_dictionaries({"message": maybe(st.text(max_size=60))})


def encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True, default=str).encode()


raw_bodies = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"null", b"[]", b"{}", b'{"a":', b"\xff\xfe{}", DEEP_JSON, b"{" * 5000, b"1" * 5000]),
    any_json.map(encode),
)

# --- the client over a fake server ------------------------------------------------------------------------------------

OPERATIONS: dict[str, Callable[[AmazonBusinessClient], Any]] = {
    "getTransactions": lambda c: list(c.iter_transactions(START, END)),
    "getInvoiceDetailsByOrderLineItems": lambda c: c.get_invoice_details(KEYS),
    "createReport": lambda c: c.create_report("INV-1", ["ATVPDKIKX0DER"]),
    "getReport": lambda c: c.get_report("R1"),
    "getReportDocument": lambda c: c.get_report_document("D1"),
}
EXPECTED: dict[str, Callable[[Any], bool]] = {
    "getTransactions": lambda r: all(isinstance(t, Transaction) for t in r),
    "getInvoiceDetailsByOrderLineItems": lambda r: all(isinstance(e, InvoiceDetailsOfOrderLineItem) for e in r),
    "createReport": lambda r: isinstance(r, str) and bool(r),
    "getReport": lambda r: isinstance(r, Report),
    "getReportDocument": lambda r: isinstance(r, ReportDocument) and bool(r.url),
}


class _Tokens:
    def __init__(self) -> None:
        self.invalidations = 0

    def access_token(self) -> str:
        return "Atza|TOKEN"

    def invalidate(self, refused: str | None = None) -> None:
        self.invalidations += 1


def call(operation: str, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    """One client call against a server answering ``status``/``body`` to everything: only typed results or
    AbreconError, within the memory bound."""
    session = FakeSession(status, body, headers)
    client = AmazonBusinessClient(
        API, _Tokens(), session=session, retry=RetryPolicy(max_attempts=2, base_delay=0.0), sleep=lambda _s: None
    )
    result, error = run_bounded(lambda: OPERATIONS[operation](client), input_size=len(body))
    if error is not None:
        if not isinstance(error, AbreconError):
            raise AssertionError(f"{operation}: {type(error).__name__} escaped the client: {error}") from error
        assert "Atza|TOKEN" not in str(error)
        return
    assert EXPECTED[operation](result), f"{operation} returned {result!r}"


@FUZZ
@given(transactions_page.map(encode))
@example(encode({"transactions": [{"transactionId": "T", "feedDate": EDGE_DATETIME}]}))
@example(DEEP_JSON)
def test_get_transactions(body: bytes) -> None:
    call("getTransactions", 200, body)


@FUZZ
@given(invoice_details_response.map(encode))
@example(encode({"invoiceDetailsByOrderLineItems": [
    {"orderLineItem": {"orderId": "O1", "orderLineItemId": "L1", "shipmentId": "S1"},
     "invoiceDetails": [{"invoiceNumber": "I", "invoiceDate": EDGE_DATETIME}]}]}))  # fmt: skip
def test_get_invoice_details(body: bytes) -> None:
    call("getInvoiceDetailsByOrderLineItems", 200, body)


@FUZZ
@given(report.map(encode))
@example(encode({"reportId": "R", "processingStatus": "DONE", "createdTime": EDGE_DATETIME}))
def test_get_report(body: bytes) -> None:
    call("getReport", 200, body)


@FUZZ
@given(report_document.map(encode))
def test_get_report_document(body: bytes) -> None:
    call("getReportDocument", 200, body)


@FUZZ
@given(create_report_response.map(encode), st.sampled_from([200, 202]))
def test_create_report(body: bytes, status: int) -> None:
    call("createReport", status, body)


@FUZZ
@given(st.sampled_from(sorted(OPERATIONS)), raw_bodies)
@example("getReport", DEEP_JSON)
def test_any_body_for_any_operation(operation: str, body: bytes) -> None:
    call(operation, 202 if operation == "createReport" else 200, body)


@FUZZ
@given(
    st.sampled_from(sorted(OPERATIONS)),
    st.sampled_from([400, 401, 403, 404, 409, 413, 415, 418, 429, 500, 502, 503, 504, 599, 301, 204, 100]),
    error_body.map(encode) | raw_bodies,
    st.dictionaries(st.sampled_from(["Retry-After", "Content-Type"]), st.text(max_size=20), max_size=2),
)
@example("getReport", 400, DEEP_JSON, {})
@example("getReport", 429, b"{}", {"Retry-After": "1e999"})
def test_error_answers(operation: str, status: int, body: bytes, headers: dict[str, str]) -> None:
    call(operation, status, body, headers)


# --- the models directly: only ValidationError ----------------------------------------------------------------------

MODELS: dict[type[BaseModel], st.SearchStrategy[Any]] = {
    TransactionsPage: transactions_page,
    Transaction: transaction,
    InvoiceDetailsByOrderLineItemsResponse: invoice_details_response,
    Report: report,
    ReportDocument: report_document,
    CreateReportResponse: create_report_response,
    ErrorList: error_body,
}


@FUZZ
@given(st.sampled_from(list(MODELS)).flatmap(lambda m: st.tuples(st.just(m), MODELS[m] | any_json)))
@example((Report, {"reportId": "R", "processingStatus": "DONE", "createdTime": EDGE_DATETIME}))
@example((Transaction, {"transactionId": "T", "transactionDate": "9999-12-31T23:59:59-01:00"}))
def test_models_raise_only_validation_errors(case: tuple[type[BaseModel], Any]) -> None:
    model, data = case
    # As the client hands them over: JSON numbers with a fraction as Decimal.
    data = json.loads(json.dumps(data, allow_nan=True, default=str), parse_float=Decimal)
    with contextlib.suppress(ValidationError):
        model.model_validate(data)


# --- the LWA token answer -------------------------------------------------------------------------------------------

token_answer = st.fixed_dictionaries(
    {},
    optional={
        "access_token": maybe(st.just("Atza|NEW") | st.text(max_size=10)),
        "expires_in": maybe(st.integers(-10, 10**9) | st.floats() | st.text(max_size=5)),
        "token_type": maybe(st.just("bearer")),
        "error": maybe(st.sampled_from(["invalid_grant", "invalid_client", "server_error"])),
        "error_description": maybe(st.text(max_size=40)),
    },
)


@FUZZ
@given(st.sampled_from([200, 400, 401, 429, 500, 503]), token_answer.map(encode) | raw_bodies)
@example(200, DEEP_JSON)
@example(400, DEEP_JSON)
def test_lwa_token_answers(status: int, body: bytes) -> None:
    credentials = {
        "client_id": "amzn1.application-oa2-client.FUZZ",
        "client_secret": "amzn1.oa2-cs.v1.SECRET",
        "refresh_token": "Atzr|REFRESH",
    }
    provider = LwaTokenProvider(
        "abrecon/lwa",
        "https://api.amazon.com/auth/o2/token",
        session=FakeSession(status, body),
        secret_loader=lambda _sid: dict(credentials),
        sleep=lambda _s: None,
    )
    token, error = run_bounded(provider.access_token, input_size=len(body))
    if error is not None:
        if not isinstance(error, AbreconError):
            raise AssertionError(f"{type(error).__name__} escaped LwaTokenProvider: {error}") from error
        for value in credentials.values():
            assert value not in str(error)
        return
    assert isinstance(token, str) and token
