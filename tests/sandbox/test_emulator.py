"""The Amazon Business emulator, exercised over HTTP with requests."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pypdf
import pytest
import requests
from emulator_helpers import MODELS, TIMEOUT, WINDOW_END, WINDOW_START, make_config, unpack

from abrecon_sandbox.emulator import Emulator
from abrecon_sandbox.emulator.dataset import Dataset


def login(emulator: Emulator) -> dict[str, str]:
    """Exchange the refresh token; return the API headers."""
    response = requests.post(
        emulator.lwa_url, data={"grant_type": "refresh_token", **emulator.credentials}, timeout=TIMEOUT
    )
    response.raise_for_status()
    return {"x-amz-access-token": response.json()["access_token"]}


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(make_config()) as running:
        yield running


@pytest.fixture(scope="module")
def headers(emulator: Emulator) -> dict[str, str]:
    return login(emulator)


class Models:
    """Validates bodies against the Swagger definitions in shared/api-models."""

    def __init__(self) -> None:
        jsonschema = pytest.importorskip("jsonschema")
        if not MODELS.is_dir():
            pytest.skip(f"API models not found at {MODELS}")
        self._jsonschema = jsonschema
        self._definitions = {
            name: json.loads((MODELS / f"{name}.json").read_text())["definitions"]
            for name in ("Reconciliation_API", "Document_API_v1")
        }

    def check(self, model: str, definition: str, body: Any) -> None:
        """Raise if ``body`` does not validate against ``#/definitions/<definition>``."""
        schema = {"$ref": f"#/definitions/{definition}", "definitions": self._definitions[model]}
        self._jsonschema.Draft4Validator(schema).validate(body)


@pytest.fixture(scope="module")
def models() -> Models:
    return Models()


def all_pages(emulator: Emulator, headers: dict[str, str], *, dates_on_later_pages: bool) -> list[list[Any]]:
    """Every page of getTransactions over the config window."""
    url = f"{emulator.base_url}/reconciliation/2021-01-08/transactions"
    dates = {"feedStartDate": "2025-03-01T00:00:00Z", "feedEndDate": "2025-03-08T00:00:00Z"}
    params: dict[str, str] = dict(dates)
    pages = []
    while True:
        response = requests.get(url, params=params, headers=headers, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["transactions"])
        token = body.get("nextPageToken")
        if not token:
            return pages
        params = {**dates, "nextPageToken": token} if dates_on_later_pages else {"nextPageToken": token}


def create_report(emulator: Emulator, headers: dict[str, str], invoice_id: str, **options: str) -> requests.Response:
    return requests.post(
        f"{emulator.base_url}/reports/2021-09-30/reports",
        json={
            "reportType": "GET_AB_INVOICE_PDF",
            "marketplaceIds": ["ATVPDKIKX0DER"],
            "reportOptions": {"invoiceId": invoice_id, **options},
        },
        headers=headers,
        timeout=TIMEOUT,
    )


def wait_for_report(emulator: Emulator, headers: dict[str, str], report_id: str) -> tuple[dict[str, Any], set[str]]:
    """Poll getReport until a terminal status; return the last report and every status seen."""
    seen: set[str] = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        response = requests.get(
            f"{emulator.base_url}/reports/2021-09-30/reports/{report_id}", headers=headers, timeout=TIMEOUT
        )
        assert response.status_code == 200, response.text
        report = response.json()
        seen.add(report["processingStatus"])
        if report["processingStatus"] in ("DONE", "CANCELLED", "FATAL"):
            return report, seen
        time.sleep(0.01)
    raise AssertionError("report did not finish")


def fetch_document(emulator: Emulator, headers: dict[str, str], document_id: str) -> dict[str, Any]:
    response = requests.get(
        f"{emulator.base_url}/reports/2021-09-30/documents/{document_id}", headers=headers, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def download_report(emulator: Emulator, headers: dict[str, str], invoice_id: str, **options: str) -> Any:
    """createReport -> getReport until done -> getReportDocument -> download; files or the final status."""
    response = create_report(emulator, headers, invoice_id, **options)
    assert response.status_code == 202, response.text
    report, _ = wait_for_report(emulator, headers, response.json()["reportId"])
    if report["processingStatus"] != "DONE":
        return report["processingStatus"]
    document = fetch_document(emulator, headers, report["reportDocumentId"])
    return unpack(requests.get(document["url"], timeout=TIMEOUT).content)


def invoice_with_credit_memos(emulator: Emulator) -> str:
    return next(n for n, docs in sorted(emulator.expected_documents().items()) if len(docs) > 1)


# ----- LWA and the access token -------------------------------------------------------


def test_token_exchange(emulator: Emulator) -> None:
    response = requests.post(
        emulator.lwa_url, data={"grant_type": "refresh_token", **emulator.credentials}, timeout=TIMEOUT
    )
    assert response.status_code == 200
    body = response.json()
    assert body["access_token"].startswith("Atza|")
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["refresh_token"] == emulator.credentials["refresh_token"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"refresh_token": "Atzr|revoked"}, "invalid_grant"),
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"client_id": "amzn1.application-oa2-client.other"}, "invalid_client"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
    ],
)
def test_token_rejected(emulator: Emulator, change: dict[str, str], error: str) -> None:
    form = {"grant_type": "refresh_token", **emulator.credentials, **change}
    response = requests.post(emulator.lwa_url, data=form, timeout=TIMEOUT)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert "error_description" in response.json()


def test_api_calls_need_a_valid_token(emulator: Emulator, models: Models) -> None:
    url = f"{emulator.base_url}/reports/2021-09-30/reports/1"
    for headers in ({}, {"x-amz-access-token": "Atza|made-up"}):
        response = requests.get(url, headers=headers, timeout=TIMEOUT)
        assert response.status_code == 401
        assert response.json()["errors"][0]["code"] == "Unauthorized"
        models.check("Document_API_v1", "ErrorList", response.json())


def test_expired_token_is_refused() -> None:
    with Emulator(make_config(orders=2)) as emulator:
        headers = login(emulator)
        url = f"{emulator.base_url}/reports/2021-09-30/reports/1"
        assert requests.get(url, headers=headers, timeout=TIMEOUT).status_code == 400  # unknown report
        emulator.expire_access_tokens()
        assert requests.get(url, headers=headers, timeout=TIMEOUT).status_code == 401


# ----- Reconciliation API -------------------------------------------------------------


@pytest.mark.parametrize("dates_on_later_pages", [False, True])
def test_transactions_paginate(
    emulator: Emulator, headers: dict[str, str], models: Models, dates_on_later_pages: bool
) -> None:
    pages = all_pages(emulator, headers, dates_on_later_pages=dates_on_later_pages)
    assert len(pages) > 2
    assert all(len(page) <= 10 for page in pages)
    transactions = [t for page in pages for t in page]
    assert len({t["transactionId"] for t in transactions}) == len(transactions) == len(emulator.dataset.transactions)
    for page in pages:
        models.check("Reconciliation_API", "TransactionsResponse", {"transactions": page})
    triples = {
        (line["orderId"], line["orderLineItemId"], line["shipmentId"])
        for t in transactions
        for line in t["transactionLineItems"]
    }
    assert len(triples) == emulator.line_item_count()
    assert {t["transactionType"] for t in transactions} == {"CHARGE", "REFUND"}
    for t in transactions:
        assert WINDOW_START <= datetime.fromisoformat(t["feedDate"]) < WINDOW_END


def test_transactions_window_filters_by_feed_date(emulator: Emulator, headers: dict[str, str]) -> None:
    start, end = WINDOW_START + timedelta(days=2), WINDOW_START + timedelta(days=3)
    response = requests.get(
        f"{emulator.base_url}/reconciliation/2021-01-08/transactions",
        params={"feedStartDate": start.isoformat(), "feedEndDate": end.isoformat()},
        headers=headers,
        timeout=TIMEOUT,
    )
    expected = [t.body["transactionId"] for t in emulator.dataset.transactions if start <= t.feed_date < end]
    got = [t["transactionId"] for t in response.json()["transactions"]]
    assert got == expected[:10]
    assert 0 < len(expected) < len(emulator.dataset.transactions)


@pytest.mark.parametrize(
    "params",
    [
        {"feedStartDate": "incorrectFormatDate", "feedEndDate": "2020-08-01T00:00:00"},
        {"feedStartDate": "2025-03-01T00:00:00Z"},
        {"nextPageToken": "not-a-token"},
    ],
)
def test_transactions_bad_parameters(
    emulator: Emulator, headers: dict[str, str], models: Models, params: dict[str, str]
) -> None:
    response = requests.get(
        f"{emulator.base_url}/reconciliation/2021-01-08/transactions", params=params, headers=headers, timeout=TIMEOUT
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "INVALID_REQUEST_PARAMETER"
    models.check("Reconciliation_API", "ErrorList", response.json())


def test_invoice_details_out_of_order(emulator: Emulator, headers: dict[str, str], models: Models) -> None:
    keys = list(emulator.dataset.details_by_key)[:25]
    request_items = [{"orderId": o, "orderLineItemId": i, "shipmentId": s} for o, i, s in keys]
    response = requests.post(
        f"{emulator.base_url}/reconciliation/2021-01-08/invoices",
        json={"orderLineItems": request_items},
        headers=headers,
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    models.check("Reconciliation_API", "InvoiceDetailsByOrderLineItemsResponse", body)
    answered = [entry["orderLineItem"] for entry in body["invoiceDetailsByOrderLineItems"]]
    assert answered != request_items
    assert sorted(answered, key=str) == sorted(request_items, key=str)
    for entry in body["invoiceDetailsByOrderLineItems"]:
        details = entry["invoiceDetails"]
        assert details[0]["invoiceType"] == "STANDARD"
        assert details[0]["invoiceNumber"] in emulator.invoice_numbers()
        for memo in details[1:]:
            assert memo["invoiceType"] == "CREDIT_MEMO"
            assert memo["associatedInvoiceNumber"] == details[0]["invoiceNumber"]


def test_invoice_details_omit_unknown_line_items(emulator: Emulator, headers: dict[str, str]) -> None:
    known = next(iter(emulator.dataset.details_by_key))
    items = [
        {"orderId": known[0], "orderLineItemId": known[1], "shipmentId": known[2]},
        {"orderId": "111-0000000-0000000", "orderLineItemId": "1", "shipmentId": "Dnothing1"},
    ]
    response = requests.post(
        f"{emulator.base_url}/reconciliation/2021-01-08/invoices",
        json={"orderLineItems": items},
        headers=headers,
        timeout=TIMEOUT,
    )
    assert [e["orderLineItem"] for e in response.json()["invoiceDetailsByOrderLineItems"]] == items[:1]


def test_line_items_share_invoices_and_some_have_credit_memos(emulator: Emulator) -> None:
    details = emulator.dataset.details_by_key.values()
    numbers = [d[0]["invoiceNumber"] for d in details]
    assert len(set(numbers)) < len(numbers)
    assert set(numbers) == emulator.invoice_numbers()
    assert any(len(d) > 1 for d in details)


def test_invoice_details_limit_25(emulator: Emulator, headers: dict[str, str]) -> None:
    keys = list(emulator.dataset.details_by_key)[:26]
    response = requests.post(
        f"{emulator.base_url}/reconciliation/2021-01-08/invoices",
        json={"orderLineItems": [{"orderId": o, "orderLineItemId": i, "shipmentId": s} for o, i, s in keys]},
        headers=headers,
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert "25" in response.json()["errors"][0]["details"]


# ----- Document API -------------------------------------------------------------------


def test_create_report_answers_202(emulator: Emulator, headers: dict[str, str], models: Models) -> None:
    response = create_report(emulator, headers, sorted(emulator.invoice_numbers())[0])
    assert response.status_code == 202
    models.check("Document_API_v1", "CreateReportResponse", response.json())


@pytest.mark.parametrize(
    "body",
    [
        {"reportOptions": {"invoiceId": "X", "documentType": "Invoice", "invoiceType": "PBI_INVOICE"}},
        {"reportOptions": {"documentType": "Invoice"}},
        {"reportOptions": {"invoiceId": "X", "documentType": "Receipt"}},
        {"reportOptions": {"invoiceId": "X"}, "reportType": "GET_MERCHANT_LISTINGS_ALL_DATA"},
        {"reportOptions": {"invoiceId": "X"}, "marketplaceIds": []},
    ],
)
def test_create_report_rejects_invalid_requests(
    emulator: Emulator, headers: dict[str, str], models: Models, body: dict[str, Any]
) -> None:
    payload = {"reportType": "GET_AB_INVOICE_PDF", "marketplaceIds": ["ATVPDKIKX0DER"], **body}
    response = requests.post(
        f"{emulator.base_url}/reports/2021-09-30/reports", json=payload, headers=headers, timeout=TIMEOUT
    )
    assert response.status_code == 400
    models.check("Document_API_v1", "ErrorList", response.json())


def test_report_lifecycle_and_download(emulator: Emulator, headers: dict[str, str], models: Models) -> None:
    invoice = invoice_with_credit_memos(emulator)
    created = create_report(emulator, headers, invoice)
    report, seen = wait_for_report(emulator, headers, created.json()["reportId"])
    models.check("Document_API_v1", "Report", report)
    assert report["processingStatus"] == "DONE"
    assert seen <= {"IN_QUEUE", "IN_PROGRESS", "DONE"}
    assert report["reportType"] == "GET_AB_INVOICE_PDF"
    document = fetch_document(emulator, headers, report["reportDocumentId"])
    models.check("Document_API_v1", "ReportDocument", document)
    assert document["compressionAlgorithm"] == "GZIP"
    assert document["url"].startswith(emulator.base_url + "/downloads/")
    assert len(document["url"]) > 512
    download = requests.get(document["url"], timeout=TIMEOUT)  # presigned: no access token
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert "Content-Encoding" not in download.headers
    files = unpack(download.content)
    assert files == emulator.expected_documents()[invoice]
    assert len(files) >= 2
    for name, content in files:
        number = name.rsplit("_", 1)[1].removesuffix(".pdf")
        assert content.startswith(b"%PDF-")
        text = pypdf.PdfReader(io.BytesIO(content)).pages[0].extract_text()
        assert number in text
        assert ("Credit Memo" if name.startswith("CreditMemo") else "Invoice") in text


def test_report_document_types(emulator: Emulator, headers: dict[str, str]) -> None:
    with_memos = invoice_with_credit_memos(emulator)
    without = next(n for n, docs in sorted(emulator.expected_documents().items()) if len(docs) == 1)
    expected = emulator.expected_documents()[with_memos]
    assert download_report(emulator, headers, with_memos, documentType="Invoice") == expected[:1]
    assert download_report(emulator, headers, with_memos, documentType="Credits") == expected[1:]
    assert download_report(emulator, headers, with_memos, invoiceType="PBI_INVOICE") == expected[:1]
    assert download_report(emulator, headers, without, documentType="Credits") == "CANCELLED"
    assert download_report(emulator, headers, "NOPE-NOPE-NOPE") == "CANCELLED"


def test_unknown_report_and_document(emulator: Emulator, headers: dict[str, str]) -> None:
    base = f"{emulator.base_url}/reports/2021-09-30"
    assert requests.get(f"{base}/reports/badReportId1", headers=headers, timeout=TIMEOUT).status_code == 400
    assert requests.get(f"{base}/documents/badDocumentId1", headers=headers, timeout=TIMEOUT).status_code == 400


def test_presigned_url_expires_and_is_tamper_proof() -> None:
    with Emulator(make_config(orders=3, speed=300.0)) as emulator:  # URLs live 1 s
        headers = login(emulator)
        invoice = sorted(emulator.invoice_numbers())[0]
        report, _ = wait_for_report(emulator, headers, create_report(emulator, headers, invoice).json()["reportId"])
        url = fetch_document(emulator, headers, report["reportDocumentId"])["url"]
        truncated = requests.get(url[:512], timeout=TIMEOUT)
        assert truncated.status_code == 403
        assert requests.get(url, timeout=TIMEOUT).status_code == 200
        time.sleep(1.05)
        expired = requests.get(url, timeout=TIMEOUT)
        assert expired.status_code == 403
        assert "<Code>AccessDenied</Code>" in expired.text
        assert "expired" in expired.text


# ----- rate limits --------------------------------------------------------------------


def test_429_once_the_bucket_is_empty(models: Models) -> None:
    with Emulator(make_config(orders=2, speed=1.0)) as emulator:
        headers = login(emulator)
        url = f"{emulator.base_url}/reconciliation/2021-01-08/transactions"
        params = {"feedStartDate": "2025-03-01T00:00:00Z", "feedEndDate": "2025-03-08T00:00:00Z"}
        statuses = [requests.get(url, params=params, headers=headers, timeout=TIMEOUT) for _ in range(11)]
        assert [r.status_code for r in statuses] == [200] * 10 + [429]
        assert statuses[0].headers["x-amzn-RateLimit-Limit"] == "0.5"
        throttled = statuses[-1]
        assert "Retry-After" not in throttled.headers
        assert "x-amzn-RateLimit-Limit" not in throttled.headers
        models.check("Reconciliation_API", "ErrorList", throttled.json())
        stats = emulator.stats()
        assert stats["apiCalls"]["getTransactions"] == 11
        assert stats["apiCalls"]["lwaToken"] == 1
        assert stats["throttled429"] == 1


def test_counters_are_thread_safe() -> None:
    with Emulator(make_config(orders=2, speed=1.0)) as emulator:
        headers = login(emulator)
        url = f"{emulator.base_url}/reconciliation/2021-01-08/transactions"
        params = {"feedStartDate": "2025-03-01T00:00:00Z", "feedEndDate": "2025-03-08T00:00:00Z"}

        def call(_: int) -> int:
            return requests.get(url, params=params, headers=headers, timeout=TIMEOUT).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(call, range(40)))
        assert statuses.count(200) in (10, 11)
        assert statuses.count(429) == 40 - statuses.count(200)
        stats = emulator.stats()
        assert stats["apiCalls"]["getTransactions"] == 40
        assert stats["throttled429"] == statuses.count(429)


def test_retry_after_on_request() -> None:
    with Emulator(make_config(orders=2, speed=1.0, retry_after=True)) as emulator:
        headers = login(emulator)
        emulator.drain("createReport")
        response = create_report(emulator, headers, sorted(emulator.invoice_numbers())[0])
        assert response.status_code == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 61


# ----- data set and lifecycle ---------------------------------------------------------


def test_dataset_is_deterministic_for_a_seed() -> None:
    first, second = Emulator(make_config()), Emulator(make_config())
    assert [t.body for t in first.dataset.transactions] == [t.body for t in second.dataset.transactions]
    assert first.expected_documents() == second.expected_documents()
    assert first.credentials == second.credentials
    other = Dataset(make_config(seed=8))
    assert [t.body for t in other.transactions] != [t.body for t in first.dataset.transactions]


def test_dataset_shape() -> None:
    dataset = Dataset(make_config(orders=200))
    orders = {key[0] for key in dataset.details_by_key}
    assert len(orders) == 200
    amounts = {line["totalAmount"]["amount"] for t in dataset.transactions for line in t.body["transactionLineItems"]}
    assert any(a.count(".") == 0 for a in amounts) and any(len(a.split(".")[-1]) == 1 for a in amounts)
    refunds = [t for t in dataset.transactions if t.body["transactionType"] == "REFUND"]
    assert 0.03 * 200 <= len(refunds) <= 0.25 * 200
    assert all(t.body["amount"]["amount"].startswith("-") for t in refunds)
    for order_id in orders:
        assert len(order_id) == 19 and order_id[3] == "-" and order_id[11] == "-"


def test_stop_really_shuts_down() -> None:
    emulator = Emulator(make_config(orders=2))
    emulator.start()
    session = requests.Session()  # keeps a keep-alive connection open across stop()
    assert session.post(emulator.lwa_url, data={}, timeout=TIMEOUT).status_code == 400
    url = emulator.lwa_url
    emulator.stop()
    with pytest.raises(requests.ConnectionError):
        session.post(url, data={}, timeout=TIMEOUT)
    with pytest.raises(requests.ConnectionError):
        requests.post(url, data={}, timeout=TIMEOUT)
