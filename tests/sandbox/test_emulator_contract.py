"""Every emulator answer, in NA and JP, against the response schemas of Amazon's API models.

Operations: getTransactions (every page, with and without dates on later pages),
getInvoiceDetailsByOrderLineItems (every line item), createReport, getReport in each status
(IN_QUEUE, IN_PROGRESS, DONE, CANCELLED, FATAL), getReports (every page, its filters, nextToken
alone), getReportDocument; error bodies 400, 401,
404/405, 429 and 500/503/504 for every operation. The LWA token endpoint has no model in
shared/api-models; its answers are checked against the shape FIELD-NOTES documents.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest
import requests
from emulator_helpers import DATES, MODELS, TIMEOUT, Api, Contract, all_keys, batches, make_config

from abrecon_sandbox.emulator import Emulator

pytestmark = pytest.mark.skipif(not MODELS.is_dir(), reason=f"API models not found at {MODELS}")

REGIONS = ["NA", "JP"]
OPERATIONS = [
    "getTransactions",
    "getInvoiceDetailsByOrderLineItems",
    "createReport",
    "getReport",
    "getReports",
    "getReportDocument",
]
REPORTS = "/reports/2021-09-30/reports"


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract()


@pytest.fixture(scope="module", params=REGIONS)
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    # speed 50 and 25 s latency: a report takes 0.5 s, long enough to see IN_QUEUE and IN_PROGRESS.
    config = make_config(region=request.param, speed=50.0, report_latency_seconds=(25.0, 25.0))
    with Emulator(config) as emulator:
        yield Api(emulator)


@pytest.fixture(scope="module")
def reports_api() -> Iterator[Api]:
    # speed 1000: getReports refills 22 a second, so these tests leave the shared `api` fixture's bucket alone.
    with Emulator(make_config(orders=4, speed=1000.0)) as emulator:
        yield Api(emulator)


def call(api: Api, operation: str, *, broken: bool = False) -> requests.Response:
    """One request per operation: a valid one, or (broken) one the emulator must refuse with 400."""
    invoice = sorted(api.emulator.invoice_numbers())[0]
    if operation == "getTransactions":
        return api.transactions(**({"feedStartDate": "yesterday", "feedEndDate": "today"} if broken else DATES))
    if operation == "getInvoiceDetailsByOrderLineItems":
        keys = all_keys(api.emulator)
        return api.invoice_details(keys[:26] if broken else keys[:1])
    if operation == "createReport":
        return (
            api.create_report(invoice, documentType="Invoice", invoiceType="PBI_INVOICE")
            if broken
            else (api.create_report(invoice))
        )
    if operation == "getReport":
        return api.report("badReportId1")
    if operation == "getReports":
        statuses = "BAD_VALUE,IN_PROGRESS" if broken else "DONE"
        return api.get(REPORTS, reportTypes="GET_AB_INVOICE_PDF", processingStatuses=statuses)
    return api.document("badDocumentId1")


# ----- the validator itself must catch what it is for ---------------------------------------------


def test_validator_rejects_missing_required_fields_and_wrong_types(api: Api, contract: Contract) -> None:
    response = api.invoice_details(all_keys(api.emulator)[:1])
    body = response.json()
    contract.check("getInvoiceDetailsByOrderLineItems", 200, body)
    detail = body["invoiceDetailsByOrderLineItems"][0]["invoiceDetails"][0]
    breakages: list[tuple[str, Any]] = [
        ("invoiceNumber", None),
        ("invoiceDate", "not a date"),
        ("invoiceType", "PROFORMA"),
    ]
    if api.emulator.config.region == "JP":
        breakages += [
            ("billToAddress.addressType", None),
            ("sellerInformation.registrationNumber", None),
            ("transactionDataItems.0.unit", "3"),
            ("transactionDataItems.0.discount", None),
            ("tax.0.amount.amount", 264),
            ("fees", {"not": "a list"}),
            ("billToAddress.countryCode", "Japan"),
            ("invoiceTotl", "1"),  # unknown field: a typo must not pass silently
        ]
    for path, value in breakages:
        broken = copy.deepcopy(body)
        node: Any = broken["invoiceDetailsByOrderLineItems"][0]["invoiceDetails"][0]
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is None:
            del node[leaf]  # missing
        else:
            node[leaf] = value
        with pytest.raises(AssertionError):
            contract.check("getInvoiceDetailsByOrderLineItems", 200, broken)
    assert detail["invoiceNumber"]
    with pytest.raises(AssertionError):
        contract.check("getReport", 200, {"reportId": "1", "processingStatus": "DONE", "reportType": "X"})
    with pytest.raises(AssertionError):
        contract.check("createReport", 400, {"errors": [{"code": 400, "message": "m"}]})


def test_unlisted_success_status_is_a_contract_violation(contract: Contract) -> None:
    with pytest.raises(AssertionError):
        contract.check("createReport", 200, {"reportId": "1"})


# ----- successful answers -------------------------------------------------------------------------


@pytest.mark.parametrize("dates_on_later_pages", [False, True])
def test_get_transactions_every_page(api: Api, contract: Contract, dates_on_later_pages: bool) -> None:
    params = dict(DATES)
    pages = 0
    while True:
        response = api.transactions(**params)
        assert response.status_code == 200, response.text
        body = response.json()
        contract.check("getTransactions", 200, body)
        pages += 1
        token = body.get("nextPageToken")
        if not token:
            break
        params = {**DATES, "nextPageToken": token} if dates_on_later_pages else {"nextPageToken": token}
    assert pages > 2


def test_get_invoice_details_every_line_item(api: Api, contract: Contract) -> None:
    answered = 0
    for batch in batches(all_keys(api.emulator)):
        response = api.invoice_details(batch)
        assert response.status_code == 200, response.text
        contract.check("getInvoiceDetailsByOrderLineItems", 200, response.json())
        answered += len(response.json()["invoiceDetailsByOrderLineItems"])
    assert answered == api.emulator.line_item_count()


def test_report_lifecycle_in_every_status(api: Api, contract: Contract) -> None:
    emulator = api.emulator
    with_memos = next(n for n, docs in sorted(emulator.expected_documents().items()) if len(docs) > 1)
    without = next(n for n, docs in sorted(emulator.expected_documents().items()) if len(docs) == 1)
    created = {
        "DONE": api.create_report(with_memos),
        "CANCELLED": api.create_report(without, documentType="Credits"),
    }
    seen: dict[str, dict[str, Any]] = {}
    for expected_end, response in created.items():
        assert response.status_code == 202, response.text
        contract.check("createReport", 202, response.json())
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            answer = api.report(response.json()["reportId"])
            assert answer.status_code == 200, answer.text
            report = answer.json()
            contract.check("getReport", 200, report)
            seen.setdefault(report["processingStatus"], report)
            if report["processingStatus"] == expected_end:
                break
            time.sleep(0.02)
    assert {"IN_QUEUE", "IN_PROGRESS", "DONE", "CANCELLED"} <= set(seen)
    document = api.document(seen["DONE"]["reportDocumentId"])
    assert document.status_code == 200
    contract.check("getReportDocument", 200, document.json())


@pytest.mark.parametrize("region", REGIONS)
def test_fatal_report_and_mislabelled_document(contract: Contract, region: str) -> None:
    with Emulator(make_config(region=region, orders=12, speed=1000.0, faults="fatal-reports")) as emulator:
        api = Api(emulator)
        fatal = next(n for n, kind in emulator.affected_invoices().items() if kind == "report-fatal")
        report = api.wait(api.report_id(fatal))
        assert report["processingStatus"] == "FATAL"
        contract.check("getReport", 200, report)
    with Emulator(make_config(region=region, orders=12, speed=1000.0, faults="bad-documents")) as emulator:
        api = Api(emulator)
        mislabelled = next(
            n for n, kind in emulator.affected_invoices().items() if kind == "bad-document:mislabelled-compression"
        )
        document = api.fresh_url(api.wait(api.report_id(mislabelled))["reportDocumentId"])
        assert "compressionAlgorithm" not in document
        contract.check("getReportDocument", 200, document)


def list_all(api: Api, contract: Contract, **filters: str) -> list[dict[str, Any]]:
    """Every report getReports selects, following nextToken (sent alone); each page checked against the model."""
    params = {"reportTypes": "GET_AB_INVOICE_PDF", **filters}
    reports: list[dict[str, Any]] = []
    while True:
        response = api.get(REPORTS, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        contract.check("getReports", 200, body)
        reports += body["reports"]
        if "nextToken" not in body:
            return reports
        params = {"nextToken": body["nextToken"]}


@pytest.mark.parametrize("listed_options", [True, False])
def test_get_reports_pages_and_filters(contract: Contract, listed_options: bool) -> None:
    config = make_config(orders=12, speed=1000.0, report_options_listed=listed_options)
    with Emulator(config) as emulator:
        api = Api(emulator)
        invoices = sorted(emulator.invoice_numbers())[:5]
        before = datetime.now(UTC) - timedelta(seconds=1)
        made = {api.report_id(number): number for number in invoices}
        reports = list_all(api, contract, pageSize="2", createdSince=before.isoformat())
        assert [r["reportId"] for r in reports] == sorted(made, key=int, reverse=True)  # newest first, each once
        for report in reports:
            if listed_options:
                assert report["reportOptions"]["invoiceId"] == made[report["reportId"]]
            else:
                assert "reportOptions" not in report
        later = datetime.now(UTC) + timedelta(seconds=1)
        window = {"createdSince": later.isoformat(), "createdUntil": (later + timedelta(hours=1)).isoformat()}
        assert list_all(api, contract, **window) == []
        assert list_all(api, contract, reportTypes="GET_FLAT_FILE_OPEN_LISTINGS_DATA") == []
        assert list_all(api, contract, marketplaceIds="A1F83G8C2ARO7P") == []
        done = api.wait(next(iter(made)))
        listed_done = list_all(api, contract, processingStatuses=done["processingStatus"])
        assert done["reportId"] in {r["reportId"] for r in listed_done}
        assert all(r["processingStatus"] == done["processingStatus"] for r in listed_done)
        if done["processingStatus"] == "DONE":
            match = next(r for r in listed_done if r["reportId"] == done["reportId"])
            assert match["reportDocumentId"] == done["reportDocumentId"]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"processingStatuses": "DONE"},
        {"reportTypes": ",".join(f"T{n}" for n in range(11))},
        {"reportTypes": "GET_AB_INVOICE_PDF", "pageSize": "0"},
        {"reportTypes": "GET_AB_INVOICE_PDF", "pageSize": "101"},
        {"reportTypes": "GET_AB_INVOICE_PDF", "createdSince": "yesterday"},
        {"reportTypes": "GET_AB_INVOICE_PDF", "nextToken": "abc"},
        {"nextToken": "not-a-token-the-emulator-gave"},
    ],
)
def test_get_reports_refuses_what_the_model_forbids(
    reports_api: Api, contract: Contract, params: dict[str, str]
) -> None:
    response = reports_api.get(REPORTS, **params)
    assert response.status_code == 400, response.text
    contract.check("getReports", 400, response.json())


def test_get_reports_token_with_filters_is_refused(reports_api: Api, contract: Contract) -> None:
    api = reports_api
    for number in sorted(api.emulator.invoice_numbers())[:2]:
        api.report_id(number)
    first = api.retrying(lambda: api.get(REPORTS, reportTypes="GET_AB_INVOICE_PDF", pageSize="1"))
    token = first["nextToken"]
    refused = api.get(REPORTS, nextToken=token, reportTypes="GET_AB_INVOICE_PDF")
    assert refused.status_code == 400
    contract.check("getReports", 400, refused.json())
    contract.check("getReports", 200, api.retrying(lambda: api.get(REPORTS, nextToken=token)))


def test_get_reports_published_rate_limit() -> None:
    # Burst 10, then 429 (the refill, 0.0222/s, adds under 0.05 tokens in the test's time).
    with Emulator(make_config(orders=2, speed=1.0)) as emulator:
        api = Api(emulator)
        answers = [api.get(REPORTS, reportTypes="GET_AB_INVOICE_PDF") for _ in range(11)]
    assert [a.status_code for a in answers] == [200] * 10 + [429]
    assert answers[0].headers["x-amzn-RateLimit-Limit"] == "0.0222"


# ----- error answers ------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", OPERATIONS)
def test_400_bodies(api: Api, contract: Contract, operation: str) -> None:
    response = call(api, operation, broken=True)
    assert response.status_code == 400, response.text
    contract.check(operation, 400, response.json())


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("token", [None, "Atza|made-up"])
def test_401_bodies(api: Api, contract: Contract, operation: str, token: str | None) -> None:
    saved = api.headers
    api.headers = {} if token is None else {"x-amz-access-token": token}
    try:
        response = call(api, operation)
    finally:
        api.headers = saved
    assert response.status_code == 401, response.text
    contract.check(operation, 401, response.json())


@pytest.mark.parametrize(
    ("method", "path", "operation", "status"),
    [
        ("GET", "/reports/2021-09-30/nothing-here", "getReport", 404),
        ("GET", "/reconciliation/2021-01-08/nothing-here", "getTransactions", 404),
        ("DELETE", "/reports/2021-09-30/reports/123", "getReport", 405),
        ("GET", "/reconciliation/2021-01-08/invoices", "getInvoiceDetailsByOrderLineItems", 405),
    ],
)
def test_404_and_405_bodies(api: Api, contract: Contract, method: str, path: str, operation: str, status: int) -> None:
    response = requests.request(method, api.base + path, headers=api.headers, timeout=TIMEOUT)
    assert response.status_code == status
    model, _ = contract.schema_name(operation, 404)
    contract.check_definition(model, "ErrorList", response.json())


@pytest.mark.parametrize("region", REGIONS)
def test_429_bodies(contract: Contract, region: str) -> None:
    with Emulator(make_config(region=region, orders=2, speed=1.0)) as emulator:
        api = Api(emulator)
        for operation in OPERATIONS:
            emulator.drain(operation)
            response = call(api, operation)
            assert response.status_code == 429, (operation, response.text)
            contract.check(operation, 429, response.json())


@pytest.mark.parametrize("region", REGIONS)
def test_5xx_bodies(contract: Contract, region: str) -> None:
    with Emulator(make_config(region=region, orders=2, speed=1000.0, faults="server-errors")) as emulator:
        api = Api(emulator)
        statuses: set[int] = set()
        for operation in OPERATIONS:
            for _ in range(40):
                response = call(api, operation)
                if response.status_code >= 500:
                    contract.check(operation, response.status_code, response.json())
                    statuses.add(response.status_code)
        assert statuses == {500, 503, 504}


# ----- LWA (no model in shared/api-models: the shape FIELD-NOTES documents) -----------------------

LWA_TOKEN = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in"],
    "properties": {
        "access_token": {"type": "string", "pattern": r"^Atza\|"},
        "refresh_token": {"type": "string"},
        "token_type": {"enum": ["bearer"]},
        "expires_in": {"type": "integer"},
    },
}
LWA_ERROR = {
    "type": "object",
    "required": ["error", "error_description"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}


def test_lwa_answers(api: Api) -> None:
    form = {"grant_type": "refresh_token", **api.emulator.credentials}
    jsonschema.Draft4Validator(LWA_TOKEN).validate(requests.post(api.emulator.lwa_url, data=form, timeout=5).json())
    for change in ({"refresh_token": "Atzr|revoked"}, {"client_secret": "x"}, {"grant_type": "password"}):
        refused = requests.post(api.emulator.lwa_url, data={**form, **change}, timeout=5)
        assert refused.status_code == 400
        jsonschema.Draft4Validator(LWA_ERROR).validate(refused.json())
