"""Shared helpers of the emulator tests: configs, a small HTTP client, unpacking, the API-model contract."""

from __future__ import annotations

import gzip
import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import requests

from abrecon_sandbox.emulator import Emulator, EmulatorConfig

WINDOW_START = datetime(2025, 3, 1, tzinfo=UTC)
WINDOW_END = datetime(2025, 3, 8, tzinfo=UTC)
DATES = {"feedStartDate": "2025-03-01T00:00:00Z", "feedEndDate": "2025-03-08T00:00:00Z"}
MODELS = Path(__file__).resolve().parents[3] / "shared" / "api-models"
TIMEOUT = 5.0
TERMINAL = ("DONE", "CANCELLED", "FATAL")


def make_config(**overrides: Any) -> EmulatorConfig:
    """A config over a fixed window, fast enough for tests."""
    values: dict[str, Any] = {
        "seed": 7,
        "orders": 30,
        "speed": 200.0,
        "report_latency_seconds": (2.0, 10.0),
        "window_start": WINDOW_START,
        "window_end": WINDOW_END,
    }
    values.update(overrides)
    return EmulatorConfig(**values)


class Api:
    """The emulator's API as a test client: one access token, helpers per operation."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.base = emulator.base_url
        self.marketplace = emulator.config.profile.marketplace_id
        self.headers = {"x-amz-access-token": self.token()}

    def token(self) -> str:
        """Exchange the refresh token for a fresh access token."""
        form = {"grant_type": "refresh_token", **self.emulator.credentials}
        response = requests.post(self.emulator.lwa_url, data=form, timeout=TIMEOUT)
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(self.base + path, params=params, headers=self.headers, timeout=TIMEOUT)

    def post(self, path: str, body: Any) -> requests.Response:
        return requests.post(self.base + path, json=body, headers=self.headers, timeout=TIMEOUT)

    def transactions(self, **params: str) -> requests.Response:
        return self.get("/reconciliation/2021-01-08/transactions", **params)

    def invoice_details(self, keys: list[tuple[str, str, str]]) -> requests.Response:
        items = [{"orderId": o, "orderLineItemId": i, "shipmentId": s} for o, i, s in keys]
        return self.post("/reconciliation/2021-01-08/invoices", {"orderLineItems": items})

    def payment_details(self, invoice_ids: list[str]) -> requests.Response:
        return self.post("/reconciliation/2021-01-08/invoices/batch/paymentDetails", {"invoiceIds": invoice_ids})

    def create_report(self, invoice_id: str, **options: str) -> requests.Response:
        body = {
            "reportType": "GET_AB_INVOICE_PDF",
            "marketplaceIds": [self.marketplace],
            "reportOptions": {"invoiceId": invoice_id, **options},
        }
        return self.post("/reports/2021-09-30/reports", body)

    def report(self, report_id: str) -> requests.Response:
        return self.get(f"/reports/2021-09-30/reports/{report_id}")

    def document(self, document_id: str) -> requests.Response:
        return self.get(f"/reports/2021-09-30/documents/{document_id}")

    def retrying(self, send: Callable[[], requests.Response], ok: int = 200) -> Any:
        """The JSON of ``send()``, retried through 429s, 5xx, resets and cut-off bodies."""
        for _ in range(300):
            try:
                response = send()
            except requests.ConnectionError:
                continue
            if response.status_code == 401:
                self.headers = {"x-amz-access-token": self.token()}
                continue
            if response.status_code == 429 or response.status_code >= 500:
                time.sleep(0.01)
                continue
            assert response.status_code == ok, response.text
            try:
                return response.json()
            except ValueError:
                continue
        raise AssertionError("no usable answer after 300 attempts")

    def report_id(self, invoice_id: str, **options: str) -> str:
        """createReport, through transient faults."""
        report_id: str = self.retrying(lambda: self.create_report(invoice_id, **options), ok=202)["reportId"]
        return report_id

    def wait(self, report_id: str, budget: float = 5.0) -> dict[str, Any]:
        """Poll getReport until a terminal status (or the budget runs out); the last report."""
        deadline = time.monotonic() + budget
        while True:
            report: dict[str, Any] = self.retrying(lambda: self.report(report_id))
            if report["processingStatus"] in TERMINAL or time.monotonic() > deadline:
                return report
            time.sleep(0.005)

    def fresh_url(self, document_id: str) -> dict[str, Any]:
        """getReportDocument, through transient faults."""
        body: dict[str, Any] = self.retrying(lambda: self.document(document_id))
        return body


def raw_download(url: str) -> requests.Response:
    """GET a presigned URL without letting requests undo a Content-Encoding."""
    response = requests.get(url, timeout=TIMEOUT, stream=True)
    response._content = response.raw.read(decode_content=False)
    return response


def unpack(data: bytes) -> list[tuple[str, bytes]]:
    """gunzip, then unzip every entry."""
    assert data[:2] == b"\x1f\x8b"
    inner = gzip.decompress(data)
    assert inner[:4] == b"PK\x03\x04"
    with zipfile.ZipFile(io.BytesIO(inner)) as archive:
        return [(name, archive.read(name)) for name in archive.namelist()]


def all_keys(emulator: Emulator) -> list[tuple[str, str, str]]:
    return list(emulator.dataset.details_by_key)


def batches(keys: list[tuple[str, str, str]], size: int = 25) -> Iterator[list[tuple[str, str, str]]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


# ----- the API-model contract ---------------------------------------------------------------------


def _without_extensions(node: Any) -> Any:
    """The Swagger document minus vendor ``x-`` keys (docgen tables, sandbox examples)."""
    if isinstance(node, dict):
        return {k: _without_extensions(v) for k, v in node.items() if not k.startswith("x-")}
    if isinstance(node, list):
        return [_without_extensions(v) for v in node]
    return node


class Contract:
    """Validates answers against the response schemas of shared/api-models (Swagger 2.0, draft-4 like).

    ``check(operation, status, body)`` picks the schema the model declares for that operation and
    status, resolves its $refs, validates with date-time formats checked, and also rejects fields
    the model does not define (typos would otherwise pass, every property being optional).
    """

    # Not in the model but echoed back in Amazon's own tutorial.
    EXTRA_FIELDS: ClassVar[set[tuple[str, str]]] = {("Report", "reportOptions")}

    def __init__(self) -> None:
        self.models: dict[str, dict[str, Any]] = {}
        self.responses: dict[tuple[str, int], tuple[str, str]] = {}
        for name in ("Reconciliation_API", "Document_API_v1"):
            model = _without_extensions(json.loads((MODELS / f"{name}.json").read_text()))
            self.models[name] = model
            for methods in model["paths"].values():
                for operation in methods.values():
                    if not isinstance(operation, dict) or "operationId" not in operation:
                        continue
                    for status, answer in operation["responses"].items():
                        ref = (answer.get("schema") or {}).get("$ref")
                        if ref:
                            self.responses[(operation["operationId"], int(status))] = (name, ref.rsplit("/", 1)[1])

    def model_of(self, operation: str) -> str:
        return next(model for (op, _), (model, _) in self.responses.items() if op == operation)

    def schema_name(self, operation: str, status: int) -> tuple[str, str]:
        """(model, definition) for an answer; a status the model does not list falls back to ErrorList."""
        found = self.responses.get((operation, status))
        if found is not None:
            return found
        assert status >= 400, f"{operation} answered {status}, which the model does not declare"
        return self.model_of(operation), "ErrorList"

    def check(self, operation: str, status: int, body: Any) -> None:
        """Raise AssertionError listing every violation of the declared schema."""
        model, definition = self.schema_name(operation, status)
        self.check_definition(model, definition, body)

    def check_definition(self, model: str, definition: str, body: Any) -> None:
        """Validate ``body`` against ``#/definitions/<definition>`` of ``model``."""
        definitions = self.models[model]["definitions"]
        schema = {"$ref": f"#/definitions/{definition}", "definitions": definitions}
        validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
        problems = [
            f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
            for error in validator.iter_errors(body)
        ]
        problems += self._unknown_fields(definitions, {"$ref": f"#/definitions/{definition}"}, body, definition, "")
        assert not problems, f"{definition}: " + "; ".join(problems[:10])

    def _unknown_fields(
        self, definitions: dict[str, Any], schema: dict[str, Any], body: Any, name: str, path: str
    ) -> list[str]:
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            schema = definitions[name]
        resolved = [_resolve(definitions, part) for part in [schema, *schema.get("allOf", [])]]
        if isinstance(body, dict):
            return self._unknown_keys(definitions, resolved, body, name, path)
        problems: list[str] = []
        if isinstance(body, list):
            items = next((part["items"] for part in resolved if "items" in part), None)
            if items is not None:
                for index, value in enumerate(body):
                    problems += self._unknown_fields(definitions, items, value, name, f"{path}/{index}")
        return problems

    def _unknown_keys(
        self, definitions: dict[str, Any], resolved: list[dict[str, Any]], body: dict[str, Any], name: str, path: str
    ) -> list[str]:
        """The keys of an object (and of the objects in it) that its schema's parts do not define."""
        properties: dict[str, Any] = {}
        for part in resolved:
            properties.update(part.get("properties", {}))
        if not properties:
            return []  # free-form map (businessOrderInfo, reportOptions)
        problems: list[str] = []
        for key, value in body.items():
            if key in properties:
                problems += self._unknown_fields(definitions, properties[key], value, name, f"{path}/{key}")
            elif (name, key) not in self.EXTRA_FIELDS:
                problems.append(f"{path or '<root>'}: {key!r} is not defined by {name}")
        return problems


def _resolve(definitions: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """A schema part with its $refs followed to the definition they name."""
    while "$ref" in part:
        part = definitions[part["$ref"].rsplit("/", 1)[1]]
    return part
