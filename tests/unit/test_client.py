"""AmazonBusinessClient: requests sent, pagination, retries, error mapping and downloads."""

from __future__ import annotations

import gzip
import io
import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import requests
import urllib3
from unit_fakes import FakeHttp, Reply, Sleeps, StubTokens

from abrecon.client import AmazonBusinessClient, RetryPolicy
from abrecon.errors import (
    AnswerLostError,
    ApiError,
    AuthError,
    BadRequestError,
    ConfigurationError,
    DocumentError,
    DocumentUrlExpiredError,
    NotFoundError,
    ServerError,
    ThrottledError,
)
from abrecon.models import OrderLineItemKey, ReportProcessingStatus

API = "https://na.business-api.amazon.com"
START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 11, 8, tzinfo=UTC)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def make(
    http: FakeHttp,
    tokens: StubTokens,
    sleeps: Sleeps,
    retry: RetryPolicy | None = None,
    endpoint: str = API,
) -> AmazonBusinessClient:
    policy = retry or RetryPolicy()
    return AmazonBusinessClient(endpoint, tokens, session=http.session, retry=policy, sleep=sleeps)


@pytest.fixture
def client(http: FakeHttp, tokens: StubTokens, sleeps: Sleeps) -> AmazonBusinessClient:
    return make(http, tokens, sleeps)


def txn(n: int) -> dict[str, Any]:
    return {
        "transactionId": f"T{n}",
        "transactionType": "CHARGE",
        "amount": {"currencyCode": "USD", "amount": "5.99"},
        "transactionLineItems": [{"orderId": f"O{n}", "orderLineItemId": f"L{n}", "shipmentId": f"S{n}"}],
    }


def page(*numbers: int, token: str | None = None) -> Reply:
    body: dict[str, Any] = {"transactions": [txn(n) for n in numbers]}
    if token is not None:
        body["nextPageToken"] = token
    return Reply(200, json_body=body)


def errors(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message}]}


def key(n: int) -> OrderLineItemKey:
    return OrderLineItemKey(orderId=f"O{n}", orderLineItemId=f"L{n}", shipmentId=f"S{n}")


# --- construction --------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["http://na.business-api.amazon.com", "http://10.1.1.1", "ftp://x"])
def test_refuses_non_https_endpoint(http: FakeHttp, tokens: StubTokens, endpoint: str) -> None:
    with pytest.raises(ConfigurationError):
        make(http, tokens, Sleeps(), endpoint=endpoint)


def test_loopback_endpoint_allowed_and_trailing_slash_ignored(
    http: FakeHttp, tokens: StubTokens, sleeps: Sleeps
) -> None:
    client = make(http, tokens, sleeps, endpoint="http://127.0.0.1:8123/")
    http.queue(Reply(200, json_body={"reportId": "R", "processingStatus": "DONE"}))
    client.get_report("R")
    assert http.seen[0].url == "http://127.0.0.1:8123/reports/2021-09-30/reports/R"


# --- getTransactions -----------------------------------------------------------------------------


def test_transactions_first_page_request(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(page(1, 2))
    result = list(client.iter_transactions(START, END))
    assert [t.transactionId for t in result] == ["T1", "T2"]
    assert result[0].amount is not None and result[0].amount.amount == Decimal("5.99")
    (seen,) = http.seen
    assert seen.method == "GET"
    assert seen.path == "/reconciliation/2021-01-08/transactions"
    assert seen.params == {"feedStartDate": "2026-11-01T00:00:00Z", "feedEndDate": "2026-11-08T00:00:00Z"}
    assert seen.headers["x-amz-access-token"] == "Atza|tok-1"
    assert seen.headers["Accept"] == "application/json"
    assert seen.timeout == (5.0, 30.0)
    assert client.api_calls == {"getTransactions": 1}


def test_transaction_dates_are_sent_in_utc(client: AmazonBusinessClient, http: FakeHttp) -> None:
    tokyo = timezone(timedelta(hours=9))
    http.queue(page())
    start = datetime(2026, 11, 1, 9, 0, 0, 123456, tzinfo=tokyo)
    list(client.iter_transactions(start, datetime(2026, 11, 2)))
    assert http.seen[0].params == {
        "feedStartDate": "2026-11-01T00:00:00Z",
        "feedEndDate": "2026-11-02T00:00:00Z",
    }


def test_transactions_follow_next_page_token_alone(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(page(1, token="tok/+=A"), page(2, token="B"), page(3))
    assert [t.transactionId for t in client.iter_transactions(START, END)] == ["T1", "T2", "T3"]
    assert [s.params for s in http.seen[1:]] == [{"nextPageToken": "tok/+=A"}, {"nextPageToken": "B"}]
    assert http.seen[1].query_keys == ["nextPageToken"]
    assert client.api_calls["getTransactions"] == 3


def test_transactions_fall_back_to_token_plus_dates(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(
        page(1, token="A"),
        Reply(400, json_body=errors("INVALID_REQUEST_PARAMETER", "feedStartDate is required")),
        page(2, token="B"),
        page(3),
    )
    assert [t.transactionId for t in client.iter_transactions(START, END)] == ["T1", "T2", "T3"]
    dates = {"feedStartDate": "2026-11-01T00:00:00Z", "feedEndDate": "2026-11-08T00:00:00Z"}
    assert http.seen[1].params == {"nextPageToken": "A"}
    assert http.seen[2].params == {"nextPageToken": "A", **dates}
    # Once the server wanted the dates, later pages carry them straight away.
    assert http.seen[3].params == {"nextPageToken": "B", **dates}
    assert client.api_calls["getTransactions"] == 4


def test_transactions_fallback_refused_too(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(
        page(1, token="A"),
        Reply(400, json_body=errors("INVALID_REQUEST_PARAMETER", "bad token")),
        Reply(400, json_body=errors("INVALID_REQUEST_PARAMETER", "bad token")),
    )
    pages = client.iter_transactions(START, END)
    assert next(pages).transactionId == "T1"
    with pytest.raises(BadRequestError) as caught:
        next(pages)
    assert caught.value.code == "INVALID_REQUEST_PARAMETER"


def test_transactions_repeated_token_stops(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(page(1, token="A"), page(2, token="A"), page(3, token="A"))
    with pytest.raises(ServerError, match="nextPageToken"):
        list(client.iter_transactions(START, END))
    assert len(http.seen) == 2


def test_transactions_window_must_be_ordered(client: AmazonBusinessClient, http: FakeHttp) -> None:
    with pytest.raises(BadRequestError):
        list(client.iter_transactions(END, START))
    assert http.seen == []


# --- getInvoiceDetailsByOrderLineItems ---------------------------------------------------------


def invoice_entry(n: int, *numbers: str) -> dict[str, Any]:
    return {
        "orderLineItem": key(n).model_dump(),
        "invoiceDetails": [{"invoiceNumber": x, "invoiceDate": "2026-11-02T00:00:00Z"} for x in numbers],
    }


def test_invoice_details_request_and_answer(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(
        Reply(
            200,
            json_body={"invoiceDetailsByOrderLineItems": [invoice_entry(2, "I2"), invoice_entry(1, "I1")]},
        )
    )
    result = client.get_invoice_details([key(1), key(2)])
    (seen,) = http.seen
    assert seen.method == "POST" and seen.path == "/reconciliation/2021-01-08/invoices"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.json() == {
        "orderLineItems": [
            {"orderId": "O1", "orderLineItemId": "L1", "shipmentId": "S1"},
            {"orderId": "O2", "orderLineItemId": "L2", "shipmentId": "S2"},
        ]
    }
    assert [(e.orderLineItem, e.invoiceDetails[0].invoiceNumber) for e in result] == [
        (key(2), "I2"),
        (key(1), "I1"),
    ]
    assert client.api_calls == {"getInvoiceDetailsByOrderLineItems": 1}


def test_invoice_details_limit_25(client: AmazonBusinessClient, http: FakeHttp) -> None:
    with pytest.raises(BadRequestError, match="25"):
        client.get_invoice_details([key(n) for n in range(26)])
    assert client.get_invoice_details([]) == []
    assert http.seen == []


def test_invoice_details_skip_unreadable_entries(client: AmazonBusinessClient, http: FakeHttp) -> None:
    broken = {"orderLineItem": {"orderId": "O9"}, "invoiceDetails": []}
    http.queue(Reply(200, json_body={"invoiceDetailsByOrderLineItems": [broken, invoice_entry(1, "I1")]}))
    result = client.get_invoice_details([key(1), key(9)])
    assert [e.orderLineItem for e in result] == [key(1)]


def test_invoice_details_answer_not_a_list(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(200, json_body={"invoiceDetailsByOrderLineItems": "nope"}))
    with pytest.raises(ServerError):
        client.get_invoice_details([key(1)])


# --- reports -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [202, 200])
def test_create_report(client: AmazonBusinessClient, http: FakeHttp, status: int) -> None:
    http.queue(Reply(status, json_body={"reportId": "ID323"}))
    assert client.create_report("1111-2222-3333", ["ATVPDKIKX0DER"]) == "ID323"
    (seen,) = http.seen
    assert seen.method == "POST" and seen.path == "/reports/2021-09-30/reports"
    assert seen.json() == {
        "reportType": "GET_AB_INVOICE_PDF",
        "marketplaceIds": ["ATVPDKIKX0DER"],
        "reportOptions": {"invoiceId": "1111-2222-3333"},
    }
    assert client.api_calls == {"createReport": 1}


def test_create_report_with_document_type_and_single_marketplace_string(
    client: AmazonBusinessClient, http: FakeHttp
) -> None:
    http.queue(Reply(202, json_body={"reportId": "R"}))
    client.create_report("X", "A1VC38T7YXB528", document_type="Credits")
    assert http.seen[0].json()["reportOptions"] == {"invoiceId": "X", "documentType": "Credits"}
    assert http.seen[0].json()["marketplaceIds"] == ["A1VC38T7YXB528"]


@pytest.mark.parametrize(
    ("invoice", "markets", "kwargs"),
    [
        ("X", ["M"], {"document_type": "Invoice", "invoice_type": "PBI_INVOICE"}),
        ("X", ["M"], {"document_type": "Everything"}),
        ("", ["M"], {}),
        ("X", [], {}),
    ],
)
def test_create_report_validates_before_calling(
    client: AmazonBusinessClient, http: FakeHttp, invoice: str, markets: list[str], kwargs: dict[str, str]
) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.create_report(invoice, markets, **kwargs)
    assert caught.value.status is None
    assert http.seen == []
    assert client.api_calls == {}


def test_create_report_answer_without_id(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(202, json_body={}))
    with pytest.raises(ServerError):
        client.create_report("X", ["M"])


def test_get_report_quotes_the_id(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(200, json_body={"reportId": "a/b?c", "processingStatus": "IN_QUEUE"}))
    report = client.get_report("a/b?c")
    assert report.processingStatus is ReportProcessingStatus.IN_QUEUE
    assert http.seen[0].url == f"{API}/reports/2021-09-30/reports/a%2Fb%3Fc"
    assert client.api_calls == {"getReport": 1}


def test_get_report_empty_id(client: AmazonBusinessClient, http: FakeHttp) -> None:
    with pytest.raises(BadRequestError):
        client.get_report(" ")
    assert http.seen == []


def test_get_report_bad_answer_hides_values(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(200, json_body={"reportId": "R", "processingStatus": "SECRET-LOOKING-VALUE"}))
    with pytest.raises(ServerError) as caught:
        client.get_report("R")
    assert caught.value.code == "InvalidResponse"
    assert "processingStatus" in str(caught.value)
    assert "SECRET-LOOKING-VALUE" not in str(caught.value)


def test_get_reports_sends_the_filters_then_the_token_alone(client: AmazonBusinessClient, http: FakeHttp) -> None:
    report = {"reportId": "R1", "reportType": "GET_AB_INVOICE_PDF", "processingStatus": "DONE"}
    http.queue(
        Reply(200, json_body={"reports": [report], "nextToken": "tok/1"}),
        Reply(200, json_body={"reports": [{**report, "reportId": "R2", "createdTime": "2026-11-02T10:00:00Z"}]}),
    )
    first = client.get_reports(
        ["GET_AB_INVOICE_PDF"], created_since=datetime(2026, 11, 2, 9, 30, tzinfo=UTC), page_size=100
    )
    assert [r.reportId for r in first.reports] == ["R1"]
    assert first.nextToken == "tok/1"
    second = client.get_reports(next_token="tok/1")
    assert second.nextToken is None
    assert second.reports[0].createdTime == datetime(2026, 11, 2, 10, tzinfo=UTC)
    assert http.seen[0].url == (
        f"{API}/reports/2021-09-30/reports?reportTypes=GET_AB_INVOICE_PDF"
        "&createdSince=2026-11-02T09%3A30%3A00Z&pageSize=100"
    )
    assert http.seen[1].url == f"{API}/reports/2021-09-30/reports?nextToken=tok%2F1"
    assert client.api_calls == {"getReports": 2}


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"report_types": [""]},
        {"report_types": [f"T{n}" for n in range(11)]},
        {"report_types": ["GET_AB_INVOICE_PDF"], "page_size": 0},
        {"report_types": ["GET_AB_INVOICE_PDF"], "page_size": 101},
        {"report_types": ["GET_AB_INVOICE_PDF"], "next_token": "t"},
        {"next_token": "t", "created_since": START},
        {"next_token": "t", "page_size": 10},
        {"next_token": " "},
    ],
)
def test_get_reports_refuses_what_amazon_would(
    client: AmazonBusinessClient, http: FakeHttp, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(BadRequestError):
        client.get_reports(**kwargs)
    assert http.seen == []


def test_get_reports_answer_without_a_report_id(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(200, json_body={"reports": [{"processingStatus": "DONE", "reportType": "X"}]}))
    with pytest.raises(ServerError) as caught:
        client.get_reports(["GET_AB_INVOICE_PDF"])
    assert caught.value.code == "InvalidResponse"


def test_get_report_document(client: AmazonBusinessClient, http: FakeHttp) -> None:
    url = "https://d34o8swod1owfl.cloudfront.net/Sample%2BKey?X-Amz-Signature=" + "a" * 600
    body = {"reportDocumentId": "DOC-1", "url": url, "compressionAlgorithm": "GZIP"}
    http.queue(Reply(200, json_body=body))
    doc = client.get_report_document("DOC-1")
    assert doc.url == url
    assert doc.compressionAlgorithm == "GZIP"
    assert http.seen[0].path == "/reports/2021-09-30/documents/DOC-1"
    assert client.api_calls == {"getReportDocument": 1}


def test_json_numbers_become_exact_decimals(client: AmazonBusinessClient, http: FakeHttp) -> None:
    amount = b'{"currencyCode":"USD","amount":1234567890.123456789012}'
    body = b'{"transactions":[{"transactionId":"T","amount":' + amount + b"}]}"
    http.queue(Reply(200, body=body))
    (t,) = client.iter_transactions(START, END)
    assert t.amount is not None and t.amount.amount == Decimal("1234567890.123456789012")


def test_non_json_success_is_server_error(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(200, body=b"<html>"))
    with pytest.raises(ServerError, match="not JSON"):
        client.get_report("R")


# --- error mapping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequestError),
        (413, BadRequestError),
        (415, BadRequestError),
        (404, NotFoundError),
        (409, BadRequestError),
    ],
)
def test_client_errors_are_mapped_without_retry(
    client: AmazonBusinessClient,
    http: FakeHttp,
    sleeps: Sleeps,
    tokens: StubTokens,
    status: int,
    error_class: type[ApiError],
) -> None:
    http.queue(Reply(status, json_body={"errors": [{"code": "C", "message": "M", "details": "D"}]}))
    with pytest.raises(error_class) as caught:
        client.get_report("R")
    err = caught.value
    assert type(err) is error_class
    assert (err.operation, err.status, err.code, err.message) == ("getReport", status, "C", "M (D)")
    assert len(http.seen) == 1 and sleeps.calls == [] and tokens.invalidations == 0


def test_error_body_not_json(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(404, body=b"<html><body>Not   Found</body></html>"))
    with pytest.raises(NotFoundError) as caught:
        client.get_report("R")
    assert caught.value.code is None
    assert caught.value.message == "<html><body>Not Found</body></html>"


def test_error_body_with_several_errors(client: AmazonBusinessClient, http: FakeHttp) -> None:
    body = {"errors": [{"code": "A", "message": "first"}, {"code": "B", "message": "second"}]}
    http.queue(Reply(400, json_body=body))
    with pytest.raises(BadRequestError) as caught:
        client.get_report("R")
    assert caught.value.code == "A"
    assert caught.value.message == "first; second"


def test_token_echoed_in_error_is_redacted(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(400, json_body=errors("InvalidInput", "bad header Atza|tok-1 given")))
    with pytest.raises(BadRequestError) as caught:
        client.get_report("R")
    assert "Atza|tok-1" not in str(caught.value)
    assert "***" in str(caught.value)


def test_401_refreshes_token_once(client: AmazonBusinessClient, http: FakeHttp, tokens: StubTokens) -> None:
    http.queue(Reply(401, json_body=errors("Unauthorized", "old")), Reply(202, json_body={"reportId": "R"}))
    assert client.create_report("X", ["M"]) == "R"
    assert tokens.invalidations == 1
    assert [s.headers["x-amz-access-token"] for s in http.seen] == ["Atza|tok-1", "Atza|tok-2"]
    assert client.api_calls == {"createReport": 2}


def test_401_twice_is_auth_error(client: AmazonBusinessClient, http: FakeHttp, tokens: StubTokens) -> None:
    http.queue(*[Reply(401, json_body=errors("Unauthorized", "Access to requested resource is denied."))] * 2)
    with pytest.raises(AuthError) as caught:
        client.get_report("R")
    assert caught.value.status == 401
    assert "authorization was likely revoked" in caught.value.message
    # The second refused token is dropped too: a warm worker's next call exchanges a new one.
    assert len(http.seen) == 2 and tokens.invalidations == 2


def test_403_expired_token_refreshes_once(client: AmazonBusinessClient, http: FakeHttp, tokens: StubTokens) -> None:
    # Amazon's models document 403 for "Access Denied, Unauthorized, Expired Token, or Invalid Signature".
    http.queue(Reply(403, json_body=errors("Unauthorized", "Expired Token")), Reply(202, json_body={"reportId": "R"}))
    assert client.create_report("X", ["M"]) == "R"
    assert tokens.invalidations == 1
    assert [s.headers["x-amz-access-token"] for s in http.seen] == ["Atza|tok-1", "Atza|tok-2"]


def test_403_twice_names_the_missing_role(client: AmazonBusinessClient, http: FakeHttp, tokens: StubTokens) -> None:
    http.queue(*[Reply(403, json_body=errors("Unauthorized", "Access to requested resource is denied."))] * 2)
    with pytest.raises(AuthError) as caught:
        client.get_report("R")
    err = caught.value
    assert err.status == 403
    assert "not an expired token" in err.message and "Business Purchase Reconciliation" in err.message
    assert err.message.startswith("Access to requested resource is denied.")
    assert len(http.seen) == 2 and tokens.invalidations == 2
    # The refused token is never sent again: the next call carries a new one.
    http.queue(Reply(200, json_body={"reportId": "R", "processingStatus": "DONE"}))
    client.get_report("R")
    assert http.seen[-1].headers["x-amz-access-token"] == "Atza|tok-3"


def test_401_retry_is_outside_the_retry_budget(http: FakeHttp, tokens: StubTokens, sleeps: Sleeps) -> None:
    client = make(http, tokens, sleeps, retry=RetryPolicy(max_attempts=2))
    http.queue(Reply(401), Reply(503), Reply(200, json_body={"reportId": "R", "processingStatus": "DONE"}))
    assert client.get_report("R").reportId == "R"
    assert len(http.seen) == 3 and len(sleeps.calls) == 1


def test_redirects_not_followed(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(307, headers={"Location": "https://evil.example/steal"}))
    with pytest.raises(ApiError) as caught:
        client.get_report("R")
    assert caught.value.status == 307
    assert len(http.seen) == 1


# --- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_statuses_then_success(
    client: AmazonBusinessClient, http: FakeHttp, sleeps: Sleeps, status: int
) -> None:
    done = Reply(200, json_body={"reportId": "R", "processingStatus": "DONE"})
    http.queue(Reply(status), Reply(status), done)
    assert client.get_report("R").processingStatus is ReportProcessingStatus.DONE
    assert len(http.seen) == 3
    assert len(sleeps.calls) == 2
    assert client.api_calls == {"getReport": 3}


@pytest.mark.parametrize(
    "failure",
    [requests.ConnectionError("reset"), requests.ReadTimeout("slow"), requests.ConnectTimeout("slow")],
)
def test_connection_failures_are_retried(
    client: AmazonBusinessClient, http: FakeHttp, sleeps: Sleeps, failure: Exception
) -> None:
    http.queue(failure, Reply(200, json_body={"reportId": "R", "processingStatus": "DONE"}))
    client.get_report("R")
    assert len(http.seen) == 2 and len(sleeps.calls) == 1


@pytest.mark.parametrize(
    "answer",
    [
        Reply(500, json_body=errors("InternalFailure", "try again")),
        Reply(503),
        requests.ConnectionError("reset"),
        requests.ReadTimeout("slow"),
        Reply(202, body=b'{"reportId": "R'),
        Reply(202, json_body={}),
    ],
)
def test_create_report_is_not_repeated_when_its_answer_is_lost(
    client: AmazonBusinessClient, http: FakeHttp, sleeps: Sleeps, answer: Any
) -> None:
    # Amazon may have made the report: a blind retry would make a second one.
    http.queue(answer, Reply(202, json_body={"reportId": "SECOND"}))
    with pytest.raises(AnswerLostError):
        client.create_report("X", ["M"])
    assert client.api_calls == {"createReport": 1} and sleeps.calls == []


def test_create_report_retries_what_was_not_processed(
    client: AmazonBusinessClient, http: FakeHttp, sleeps: Sleeps
) -> None:
    http.queue(Reply(429), requests.ConnectTimeout("slow"), Reply(202, json_body={"reportId": "R"}))
    assert client.create_report("X", ["M"]) == "R"
    assert client.api_calls == {"createReport": 3}


def test_throttled_after_budget(http: FakeHttp, tokens: StubTokens, sleeps: Sleeps) -> None:
    client = make(http, tokens, sleeps, retry=RetryPolicy(max_attempts=3, base_delay=1, max_delay=10))
    http.queue(
        *[
            Reply(
                429,
                json_body=errors("QuotaExceeded", "You exceeded your quota"),
                headers={"Retry-After": "4"},
            )
        ]
        * 3
    )
    with pytest.raises(ThrottledError) as caught:
        client.create_report("X", ["M"])
    err = caught.value
    assert (err.status, err.code, err.retry_after_seconds) == (429, "QuotaExceeded", 4.0)
    assert sleeps.calls == [4.0, 4.0]
    assert client.api_calls == {"createReport": 3}


def test_retry_after_is_capped(http: FakeHttp, tokens: StubTokens, sleeps: Sleeps) -> None:
    client = make(http, tokens, sleeps, retry=RetryPolicy(max_attempts=2, base_delay=1, max_delay=10))
    http.queue(
        Reply(503, headers={"Retry-After": "3600"}),
        Reply(200, json_body={"reportId": "R", "processingStatus": "DONE"}),
    )
    client.get_report("R")
    assert sleeps.calls == [10]


def test_unparseable_retry_after_uses_backoff(http: FakeHttp, tokens: StubTokens, sleeps: Sleeps) -> None:
    client = make(http, tokens, sleeps, retry=RetryPolicy(max_attempts=2, base_delay=1, max_delay=10))
    http.queue(
        Reply(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        Reply(200, json_body={"reportId": "R", "processingStatus": "DONE"}),
    )
    client.get_report("R")
    assert len(sleeps.calls) == 1 and 0 <= sleeps.calls[0] <= 1


def test_server_error_after_budget(http: FakeHttp, tokens: StubTokens, sleeps: Sleeps) -> None:
    client = make(http, tokens, sleeps, retry=RetryPolicy(max_attempts=4))
    http.queue(*[Reply(500, json_body=errors("InternalFailure", "boom"))] * 4)
    with pytest.raises(ServerError) as caught:
        client.get_invoice_details([key(1)])
    assert (caught.value.status, caught.value.code) == (500, "InternalFailure")
    assert len(http.seen) == 4 and len(sleeps.calls) == 3


def test_connection_error_after_budget(http: FakeHttp, tokens: StubTokens, sleeps: Sleeps) -> None:
    client = make(http, tokens, sleeps, retry=RetryPolicy(max_attempts=2))
    http.queue(requests.ConnectionError("down"), requests.ReadTimeout("slow"))
    with pytest.raises(ServerError) as caught:
        client.get_report("R")
    assert caught.value.status is None
    assert caught.value.code == "ReadTimeout"


def test_backoff_is_full_jitter_capped(
    http: FakeHttp, tokens: StubTokens, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    bounds: list[tuple[float, float]] = []

    def top(low: float, high: float) -> float:
        bounds.append((low, high))
        return high

    monkeypatch.setattr(random, "uniform", top)
    client = make(http, tokens, sleeps, retry=RetryPolicy(max_attempts=6, base_delay=1.0, max_delay=5.0))
    http.queue(*[Reply(503)] * 6)
    with pytest.raises(ServerError):
        client.get_report("R")
    assert bounds == [(0.0, 1.0), (0.0, 2.0), (0.0, 4.0), (0.0, 5.0), (0.0, 5.0)]
    assert sleeps.calls == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_real_jitter_stays_within_bounds() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=0.5, max_delay=3.0)
    delays = [policy.delay(attempt) for attempt in range(1, 10) for _ in range(50)]
    assert all(0.0 <= d <= 3.0 for d in delays)
    assert len(set(delays)) > 10  # actually random
    assert all(d <= 0.5 for d in (policy.delay(1) for _ in range(100)))


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(base_delay=-1)


# --- download ------------------------------------------------------------------------------------

DOC_URL = "https://d34o8swod1owfl.cloudfront.net/doc?X-Amz-Signature=SIGNATURE123"


def test_download_sends_no_token_and_keeps_encoding(client: AmazonBusinessClient, http: FakeHttp) -> None:
    packed = gzip.compress(PDF)
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/pdf"}
    http.queue(Reply(200, body=packed, headers=headers))
    assert client.download(DOC_URL, max_bytes=10_000) == packed  # still gzip: not decoded by requests
    (seen,) = http.seen
    assert "x-amz-access-token" not in {h.lower() for h in seen.headers}
    assert seen.headers["Accept-Encoding"] == "identity"
    assert seen.stream is True
    assert seen.url == DOC_URL  # untouched, not truncated
    assert client.api_calls == {"downloadDocument": 1}


def test_download_url_is_sent_byte_for_byte(client: AmazonBusinessClient, http: FakeHttp) -> None:
    # The tutorial's URL: encoded and literal "+" must both survive; the URL is never re-encoded or cut.
    url = "https://d34o8swod1owfl.cloudfront.net/SampleResult%2BKey%3DSample%2BINITVEC%3D58+fa+bf+a7+08+11"
    url += "&X-Amz-Signature=" + "f" * 600
    http.queue(Reply(200, body=PDF))
    client.download(url, max_bytes=1000)
    assert http.seen[0].url == url


def test_download_too_large_by_header(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(200, body=b"x" * 100, headers={"Content-Length": "100"}))
    with pytest.raises(DocumentError, match="limit"):
        client.download(DOC_URL, max_bytes=99)


class UnreadableStream(io.RawIOBase):
    """Fails the test if the body is read at all."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise AssertionError("body was read although Content-Length already exceeded the cap")


def test_download_too_large_by_header_not_read(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(200, headers={"Content-Length": str(10**9)}, raw_factory=UnreadableStream))
    with pytest.raises(DocumentError, match="1000000000 bytes"):
        client.download(DOC_URL, max_bytes=1000)


def test_download_redirect_not_followed(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(302, headers={"Location": "http://plain.example/doc"}))
    with pytest.raises(DocumentError, match="HTTP 302"):
        client.download(DOC_URL, max_bytes=1000)
    assert len(http.seen) == 1


def test_download_too_large_without_length(client: AmazonBusinessClient, http: FakeHttp) -> None:
    # No Content-Length: the cap is enforced while streaming.
    http.queue(Reply(200, raw_factory=lambda: io.BytesIO(b"y" * 200_000)))
    with pytest.raises(DocumentError, match="larger than"):
        client.download(DOC_URL, max_bytes=100_000)


def test_download_exactly_at_limit(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(200, body=b"z" * 100))
    assert client.download(DOC_URL, max_bytes=100) == b"z" * 100


@pytest.mark.parametrize("status", [403, 400])
def test_download_expired_url(client: AmazonBusinessClient, http: FakeHttp, status: int) -> None:
    body = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    http.queue(Reply(status, body=body))
    with pytest.raises(DocumentUrlExpiredError) as caught:
        client.download(DOC_URL, max_bytes=1000)
    assert caught.value.status == status
    assert "SIGNATURE123" not in str(caught.value)
    assert len(http.seen) == 1


def test_download_not_found_is_plain_document_error(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(404))
    with pytest.raises(DocumentError) as caught:
        client.download(DOC_URL, max_bytes=1000)
    assert not isinstance(caught.value, DocumentUrlExpiredError)


def test_download_empty(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(200, body=b""))
    with pytest.raises(DocumentError, match="empty"):
        client.download(DOC_URL, max_bytes=1000)


def test_download_retries_server_errors(client: AmazonBusinessClient, http: FakeHttp, sleeps: Sleeps) -> None:
    http.queue(Reply(503), requests.ConnectionError("reset"), Reply(200, body=PDF))
    assert client.download(DOC_URL, max_bytes=1000) == PDF
    assert len(sleeps.calls) == 2
    assert client.api_calls == {"downloadDocument": 3}


class BreakingStream(io.RawIOBase):
    """Gives some bytes, then fails like a dropped connection."""

    def __init__(self) -> None:
        self.calls = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self.calls += 1
        if self.calls > 1:
            raise urllib3.exceptions.ProtocolError("Connection broken")
        buffer[:4] = b"%PDF"
        return 4


def test_download_retries_broken_stream(client: AmazonBusinessClient, http: FakeHttp, sleeps: Sleeps) -> None:
    http.queue(Reply(200, raw_factory=BreakingStream), Reply(200, body=PDF))
    assert client.download(DOC_URL, max_bytes=1000) == PDF
    assert len(sleeps.calls) == 1


def test_download_gives_up_after_budget(http: FakeHttp, tokens: StubTokens, sleeps: Sleeps) -> None:
    client = make(http, tokens, sleeps, retry=RetryPolicy(max_attempts=2))
    http.queue(Reply(500), Reply(429))
    with pytest.raises(ThrottledError):
        client.download(DOC_URL, max_bytes=1000)


@pytest.mark.parametrize("url", ["http://bucket.s3.amazonaws.com/doc", "file:///etc/passwd", "not a url"])
def test_download_refuses_insecure_urls(client: AmazonBusinessClient, http: FakeHttp, url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        client.download(url, max_bytes=1000)
    assert http.seen == []
    assert url not in str(caught.value) or url == "not a url"


def test_download_needs_a_positive_cap(client: AmazonBusinessClient) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        client.download(DOC_URL, max_bytes=0)
