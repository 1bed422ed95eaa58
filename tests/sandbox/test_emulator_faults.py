"""Fault profiles: each injects what it says, is counted in stats(), and is reproducible for a seed."""

from __future__ import annotations

import gzip
import io
import itertools
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from emulator_helpers import DATES, TERMINAL, Api, all_keys, make_config, raw_download, unpack

from abrecon.errors import DocumentError
from abrecon.models import InvoiceDetailsByOrderLineItemsResponse, TransactionsPage
from abrecon.unpack import extract_pdfs
from abrecon_sandbox.emulator import FAULT_PROFILES, Emulator, EmulatorConfig
from abrecon_sandbox.emulator.faults import (
    DOCUMENT_FAULTS,
    PROTECTED_FIELDS,
    RECOVERABLE_DOCUMENT_FAULTS,
    fault_rates,
)
from abrecon_sandbox.emulator.pdfs import TRAVERSAL_NAME, ZIP_BOMB_INFLATED_BYTES

FAST = {"speed": 1000.0}


def emulator_for(profile: str, **overrides: Any) -> Emulator:
    return Emulator(make_config(faults=profile, orders=overrides.pop("orders", 6), **{**FAST, **overrides}))


def outcome(send: Callable[[], requests.Response]) -> str:
    """ok, malformed (cut-off JSON), reset (no answer) or the error status."""
    try:
        response = send()
    except requests.ConnectionError:
        return "reset"
    if response.status_code not in (200, 202):
        return str(response.status_code)
    try:
        response.json()
    except ValueError:
        return "malformed"
    return "ok"


def probe(api: Api, rounds: int = 30) -> list[str]:
    """A fixed sequence of calls to every operation; one outcome per call."""
    keys = all_keys(api.emulator)[:3]
    invoice = sorted(api.emulator.invoice_numbers())[0]
    calls: list[Callable[[], requests.Response]] = [
        lambda: api.transactions(**DATES),
        lambda: api.invoice_details(keys),
        lambda: api.create_report(invoice),
        lambda: api.report(f"{50_000_000_000 + api.emulator.config.seed * 1_000_000 + 1}"),
        lambda: api.document("badDocumentId1"),
    ]
    outcomes = []
    for _ in range(rounds):
        for send in calls:
            outcomes.append(outcome(send))
            if outcomes[-1] == "401":  # a revoked token (chaos): log in again, as a client would
                api.headers = {"x-amz-access-token": api.token()}
    return outcomes


def run_probe(profile: str, seed: int = 7) -> tuple[list[str], dict[str, Any]]:
    # Buckets refill fast enough at this speed that no 429 depends on timing: outcomes are the faults only.
    with emulator_for(profile, seed=seed, speed=100_000.0) as emulator:
        api = Api(emulator)
        api.report_id(sorted(emulator.invoice_numbers())[0])  # so getReport has one to answer
        before = emulator.stats()
        outcomes = probe(api)
        stats = emulator.stats()
        # Only what the probe itself met.
        stats["faultsInjected"] = dict(Counter(stats["faultsInjected"]) - Counter(before["faultsInjected"]))
        stats["throttled429"] -= before["throttled429"]
        return outcomes, stats


def test_profiles_are_listed_and_validated() -> None:
    assert set(FAULT_PROFILES) == {
        "none", "throttle-storm", "server-errors", "connection-resets", "slow", "fatal-reports",
        "cancelled-reports", "stuck-reports", "expired-urls", "bad-documents", "malformed-json",
        "missing-fields", "token-revoked", "invalid-grant", "lost-report-answers", "lost-report-answers-unlabelled",
        "aged-reports", "missing-shipment-ids", "repeated-transactions", "token-expiry-403", "chaos",
    }  # fmt: skip
    assert all(text and "\n" not in text for text in FAULT_PROFILES.values())
    assert EmulatorConfig().faults == "none"
    with pytest.raises(ValueError, match="fault profile"):
        EmulatorConfig(faults="gremlins")


def test_no_faults_without_a_profile() -> None:
    outcomes, stats = run_probe("none")
    assert set(outcomes) <= {"ok", "400"}
    assert stats["faultsInjected"] == {}
    assert Emulator(make_config()).affected_invoices() == {}


# ----- per-call faults ----------------------------------------------------------------------------

PER_CALL = {
    # profile: (outcomes that count as the fault, expected share of calls, faultsInjected kinds)
    "throttle-storm": ({"429"}, (0.2, 0.4), {"throttle-429"}),
    "server-errors": ({"500", "503", "504"}, (0.12, 0.3), {"server-500", "server-503", "server-504"}),
    "connection-resets": ({"reset"}, (0.04, 0.18), {"connection-reset"}),
    "malformed-json": ({"malformed"}, (0.03, 0.15), {"malformed-json"}),
}


@pytest.mark.parametrize("profile", sorted(PER_CALL))
def test_per_call_faults_are_injected_counted_and_reproducible(profile: str) -> None:
    faulty, (low, high), kinds = PER_CALL[profile]
    outcomes, stats = run_probe(profile)
    hits = sum(o in faulty for o in outcomes)
    assert low * len(outcomes) <= hits <= high * len(outcomes), Counter(outcomes)
    assert set(stats["faultsInjected"]) == kinds
    injected = sum(stats["faultsInjected"].values())
    if profile == "server-errors":
        # Half of createReport's errors come after the report was made: not every one is an answer we saw.
        assert hits <= injected
    else:
        assert hits == injected
    if profile == "throttle-storm":
        assert stats["throttled429"] == hits
    again, stats_again = run_probe(profile)
    assert again == outcomes and stats_again["faultsInjected"] == stats["faultsInjected"]
    other, _ = run_probe(profile, seed=8)
    assert other != outcomes


def test_server_errors_sometimes_come_after_the_report_was_created() -> None:
    with emulator_for("server-errors") as emulator:
        api = Api(emulator)
        invoice = sorted(emulator.invoice_numbers())[0]
        answers = [api.create_report(invoice).status_code for _ in range(40)]
        assert {500, 503, 504} & set(answers)
        # More reports exist than createReport calls that answered 202.
        assert len(emulator.state.reports) > answers.count(202)
        assert len(emulator.state.reports) < 40


def test_injected_faults_are_thread_safe() -> None:
    def count_429(parallel: bool) -> tuple[int, dict[str, Any]]:
        with emulator_for("throttle-storm") as emulator:
            api = Api(emulator)

            def call(_: int) -> int:
                return api.report("1").status_code

            if parallel:
                with ThreadPoolExecutor(max_workers=8) as pool:
                    statuses = list(pool.map(call, range(120)))
            else:
                statuses = [call(i) for i in range(120)]
            return statuses.count(429), emulator.stats()

    sequential, _ = count_429(parallel=False)
    concurrent, stats = count_429(parallel=True)
    # Decisions hang on the n-th call of an operation, so the same calls give the same number of 429s.
    assert concurrent == sequential == stats["faultsInjected"]["throttle-429"] == stats["throttled429"]


def test_slow_answers() -> None:
    with emulator_for("slow", speed=100.0) as emulator:
        api = Api(emulator)
        durations = []
        for _ in range(5):
            start = time.monotonic()
            assert api.report("1").status_code == 400
            durations.append(time.monotonic() - start)
        assert all(0.01 <= d < 0.5 for d in durations), durations
        assert emulator.stats()["faultsInjected"] == {"slow": 5}


def test_missing_fields() -> None:
    def answers(profile: str) -> list[Any]:
        with emulator_for(profile, region="JP", orders=10) as emulator:
            api = Api(emulator)
            bodies: list[Any] = [api.transactions(**DATES).json(), api.invoice_details(all_keys(emulator)[:25]).json()]
            report = api.wait(api.report_id(sorted(emulator.invoice_numbers())[0]))
            bodies.append(report)
            if "reportDocumentId" in report:
                bodies.append(api.fresh_url(report["reportDocumentId"]))
            return bodies

    def fields(node: Any, path: str = "") -> Counter[str]:
        found: Counter[str] = Counter()
        if isinstance(node, dict):
            for key, value in node.items():
                found[key if value is not None else f"{key}=null"] += 1
                found += fields(value)
        elif isinstance(node, list):
            for value in node:
                found += fields(value)
        return found

    clean, stripped = answers("none"), answers("missing-fields")
    clean_fields, stripped_fields = fields(clean), fields(stripped)
    for name in PROTECTED_FIELDS & set(clean_fields):
        assert stripped_fields[name] == clean_fields[name], name
    lost = {name for name in clean_fields if stripped_fields[name] < clean_fields[name]}
    assert {"registrationNumber", "addressType", "reportType", "taxRate", "unit"} & lost  # model-required ones
    assert {"transactionDate", "asin", "city"} & lost  # optional ones
    assert any(name.endswith("=null") for name in stripped_fields)
    # The pipeline's tolerant models still read what is left.
    TransactionsPage.model_validate(stripped[0])
    InvoiceDetailsByOrderLineItemsResponse.model_validate(stripped[1])


def test_missing_fields_counts_every_stripped_answer() -> None:
    with emulator_for("missing-fields") as emulator:
        api = Api(emulator)
        for _ in range(5):
            assert api.transactions(**DATES).status_code == 200
        assert emulator.stats()["faultsInjected"] == {"missing-fields": 5}


# ----- LWA ----------------------------------------------------------------------------------------


def test_token_revoked_mid_run() -> None:
    with emulator_for("token-revoked") as emulator:
        api = Api(emulator)
        statuses = [api.report("1").status_code for _ in range(12)]
        first_401 = statuses.index(401)
        assert 2 <= first_401 <= 7 and set(statuses[:first_401]) == {400} and set(statuses[first_401:]) == {401}
        api.headers = {"x-amz-access-token": api.token()}
        assert {api.report("1").status_code for _ in range(30)} == {400}
        assert emulator.stats()["faultsInjected"] == {"token-revoked": 1}


def test_token_expiry_403_refuses_every_token_after_a_few_calls() -> None:
    with emulator_for("token-expiry-403") as emulator:
        api = Api(emulator)
        answers = [api.report("1") for _ in range(14)]
        statuses = [a.status_code for a in answers]
        first_403 = statuses.index(403)
        assert 1 <= first_403 <= 3 and set(statuses[:first_403]) == {400} and set(statuses[first_403:]) == {403}
        assert answers[first_403].json()["errors"][0]["details"] == "Expired Token"
        api.headers = {"x-amz-access-token": api.token()}  # a fresh token works for a few calls again
        assert api.report("1").status_code == 400
        assert emulator.stats()["faultsInjected"] == {"token-expired-403": 14 - first_403}


def _all_pages(api: Api) -> list[list[dict[str, Any]]]:
    pages = [api.transactions(**DATES).json()]
    while token := pages[-1].get("nextPageToken"):
        pages.append(api.transactions(nextPageToken=token).json())
    return [page["transactions"] for page in pages]


def test_repeated_transactions_start_a_page_with_the_previous_pages_last_ones() -> None:
    with emulator_for("repeated-transactions", orders=10) as emulator:
        pages = _all_pages(Api(emulator))
        listed = [t["transactionId"] for page in pages for t in page]
        window = emulator.dataset.transactions_between(emulator.config.window_start, emulator.config.window_end)
        assert set(listed) == {t["transactionId"] for t in window}, "nothing skipped"
        assert len(listed) - len(set(listed)) == emulator.stats()["faultsInjected"]["repeated-transactions"] > 0
        assert max(len(page) for page in pages) == 4
        for previous, page in itertools.pairwise(pages):
            repeated = [t for t in page if t in previous]
            assert repeated == previous[len(previous) - len(repeated) :] == page[: len(repeated)]


def test_missing_shipment_ids_until_the_shipments_ship() -> None:
    with emulator_for("missing-shipment-ids", orders=10) as emulator:
        api = Api(emulator)
        before = [t for page in _all_pages(api) for t in page]
        unshipped = {
            (t["transactionId"], line["orderLineItemId"])
            for t in before
            for line in t["transactionLineItems"]
            if "shipmentId" not in line
        }
        assert len(unshipped) == emulator.dataset.unshipped_line_items() > 0
        assert emulator.stats()["faultsInjected"] == {"shipment-id-missing": len(unshipped)}
        held = {n for n, d in emulator.dataset.documents.items() if d.kind == "STANDARD"} - emulator.invoice_numbers()
        assert held, "no invoice exists for a shipment that has not shipped"
        assert all(emulator.dataset.report_documents(n, None) == [] for n in held)
        assert all(
            "shipmentDate" not in line for t in before for line in t["transactionLineItems"] if "shipmentId" not in line
        )

        assert emulator.ship_unshipped() == len(unshipped)
        after = {t["transactionId"]: t for page in _all_pages(api) for t in page}
        assert set(after) == {t["transactionId"] for t in before}, "the same transactions, now with the shipment"
        shipped = [
            (line["orderId"], line["orderLineItemId"], line["shipmentId"])
            for tx, line_id in unshipped
            for line in after[tx]["transactionLineItems"]
            if line["orderLineItemId"] == line_id
        ]
        assert len(shipped) == len(unshipped)
        answer = api.invoice_details(shipped[:25]).json()["invoiceDetailsByOrderLineItems"]
        assert {d["invoiceNumber"] for a in answer for d in a["invoiceDetails"]} <= held
        assert held <= emulator.invoice_numbers()


def test_invalid_grant_on_every_exchange() -> None:
    with emulator_for("invalid-grant") as emulator:
        form = {"grant_type": "refresh_token", **emulator.credentials}
        for _ in range(3):
            refused = requests.post(emulator.lwa_url, data=form, timeout=5)
            assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
        bad_client = requests.post(emulator.lwa_url, data={**form, "client_secret": "x"}, timeout=5)
        assert bad_client.json()["error"] == "invalid_client"
        assert emulator.stats()["faultsInjected"] == {"invalid-grant": 3}


# ----- reports ------------------------------------------------------------------------------------


def report_ends(api: Api, invoices: list[str], budget: float = 0.3) -> dict[str, str]:
    """invoice -> processingStatus once all ended or the budget ran out, one new report each."""
    ids = {n: api.report_id(n) for n in invoices}
    deadline = time.monotonic() + budget
    ends: dict[str, str] = {}
    while True:
        for number, report_id in ids.items():
            if ends.get(number) not in TERMINAL:
                ends[number] = api.retrying(lambda rid=report_id: api.report(rid))["processingStatus"]
        if all(status in TERMINAL for status in ends.values()) or time.monotonic() > deadline:
            return ends
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("profile", "kind", "status"),
    [("cancelled-reports", "report-cancelled", "CANCELLED"), ("stuck-reports", "report-stuck", "IN_PROGRESS")],
)
def test_reports_that_never_succeed(profile: str, kind: str, status: str) -> None:
    with emulator_for(profile, orders=10) as emulator:
        api = Api(emulator)
        invoices = sorted(emulator.invoice_numbers())
        affected = emulator.affected_invoices()
        assert affected and set(affected.values()) == {kind}
        assert len(affected) <= 0.5 * len(invoices)
        for _ in range(2):  # a second report does not help
            ends = report_ends(api, invoices)
            assert {n for n, s in ends.items() if s == status} == set(affected)
            assert {s for n, s in ends.items() if n not in affected} == {"DONE"}
        assert emulator.stats()["faultsInjected"] == {kind: 2 * len(affected)}
        assert Emulator(make_config(faults=profile, orders=10, **FAST)).affected_invoices() == affected


def test_fatal_reports_mostly_succeed_on_a_second_report() -> None:
    with emulator_for("fatal-reports", orders=20) as emulator:
        api = Api(emulator)
        invoices = sorted(emulator.invoice_numbers())
        first = report_ends(api, invoices)
        fatal = sorted(n for n, s in first.items() if s == "FATAL")
        permanent = {n for n, kind in emulator.affected_invoices().items() if kind == "report-fatal"}
        assert set(emulator.affected_invoices().values()) == {"report-fatal"}
        assert permanent and permanent < set(fatal) and len(fatal) <= 0.5 * len(invoices)
        assert {s for n, s in first.items() if n not in fatal} == {"DONE"}
        second = report_ends(api, fatal)
        assert {n for n, s in second.items() if s == "FATAL"} == permanent
        assert {s for n, s in second.items() if n not in permanent} == {"DONE"}
        assert emulator.stats()["faultsInjected"] == {"report-fatal": len(fatal) + len(permanent)}


# ----- downloads ----------------------------------------------------------------------------------


def test_first_download_of_every_document_is_expired() -> None:
    with emulator_for("expired-urls", speed=100.0) as emulator:  # URLs live 3 s: only the fault expires them
        api = Api(emulator)
        invoice = sorted(emulator.invoice_numbers())[0]
        for round_ in (1, 2):  # two reports, two documents: each one's first download is refused
            document_id = api.wait(api.report_id(invoice))["reportDocumentId"]
            url = api.fresh_url(document_id)["url"]
            for _ in range(2):  # that URL stays expired
                refused = raw_download(url)
                assert refused.status_code == 403 and b"Request has expired" in refused.content
            fresh = raw_download(api.fresh_url(document_id)["url"])
            assert fresh.status_code == 200
            assert unpack(fresh.content) == emulator.expected_documents()[invoice]
            assert emulator.stats()["faultsInjected"] == {"expired-url": round_}


def inflated_size(data: bytes, stop_after: int) -> int:
    """Bytes a gzip stream inflates to, in bounded memory, stopping past ``stop_after``."""
    inflater = zlib.decompressobj(31)
    total = 0
    pending = data
    while pending and total <= stop_after:
        total += len(inflater.decompress(pending, 16 * 1024 * 1024))
        pending = inflater.unconsumed_tail
    return total


@pytest.fixture(scope="module")
def bad_downloads() -> dict[str, Any]:
    """invoice -> (variant or None, document answer, download response, expected files) for every invoice."""
    with emulator_for("bad-documents", orders=8, speed=100.0) as emulator:  # URLs live 3 s
        api = Api(emulator)
        affected = emulator.affected_invoices()
        served: dict[str, Any] = {}
        for invoice in sorted(emulator.invoice_numbers()):
            document = api.fresh_url(api.wait(api.report_id(invoice))["reportDocumentId"])
            variant = affected.get(invoice, "").removeprefix("bad-document:") or None
            served[invoice] = (variant, document, raw_download(document["url"]), emulator.expected_documents()[invoice])
        return {"served": served, "stats": emulator.stats(), "affected": affected}


def test_bad_documents_cover_every_variant(bad_downloads: dict[str, Any]) -> None:
    affected = bad_downloads["affected"]
    assert sorted(affected.values()) == sorted(f"bad-document:{v}" for v in DOCUMENT_FAULTS)
    assert bad_downloads["stats"]["faultsInjected"] == {f"bad-document:{v}": 1 for v in DOCUMENT_FAULTS}
    unaffected = [s for n, s in bad_downloads["served"].items() if n not in affected]
    assert unaffected
    for _, document, download, expected in unaffected:
        assert document["compressionAlgorithm"] == "GZIP" and unpack(download.content) == expected


def test_each_bad_document_is_broken_as_described(bad_downloads: dict[str, Any]) -> None:
    by_variant = {s[0]: s[1:] for s in bad_downloads["served"].values() if s[0]}
    document, download, expected = by_variant["mislabelled-compression"]
    assert "compressionAlgorithm" not in document and unpack(download.content) == expected

    _, download, expected = by_variant["content-encoding-gzip"]
    assert download.headers["Content-Encoding"] == "gzip" and unpack(download.content) == expected

    _, download, _ = by_variant["truncated-gzip"]
    with pytest.raises(EOFError):
        gzip.decompress(download.content)

    _, download, _ = by_variant["corrupt-zip"]
    inner = gzip.decompress(download.content)
    assert inner[:4] == b"PK\x03\x04"
    with pytest.raises((zipfile.BadZipFile, zlib.error)), zipfile.ZipFile(io.BytesIO(inner)) as archive:
        for name in archive.namelist():
            archive.read(name)

    _, download, _ = by_variant["not-a-pdf"]
    (name, content), *_ = unpack(download.content)
    assert name.endswith(".pdf") and not content.startswith(b"%PDF-")

    _, download, expected = by_variant["path-traversal"]
    files = unpack(download.content)
    assert files[0] == (TRAVERSAL_NAME, expected[0][1]) and files[1:] == expected[1:]

    _, download, _ = by_variant["zip-bomb"]
    assert len(download.content) < 2 * 1024 * 1024
    assert inflated_size(download.content, stop_after=1 << 30) > 1 << 30
    assert ZIP_BOMB_INFLATED_BYTES > 1 << 30


def test_pipeline_unpacker_survives_exactly_the_recoverable_variants(bad_downloads: dict[str, Any]) -> None:
    for variant, _, download, expected in bad_downloads["served"].values():
        if variant is None or variant in RECOVERABLE_DOCUMENT_FAULTS:
            pdfs = extract_pdfs(download.content)
            assert [pdf.content for pdf in pdfs] == [content for _, content in expected], variant
            assert all("/" not in pdf.name and ".." not in pdf.name for pdf in pdfs)
        else:
            with pytest.raises(DocumentError):
                extract_pdfs(download.content)


# ----- chaos --------------------------------------------------------------------------------------


def test_chaos_is_a_seeded_mix_of_transient_faults() -> None:
    assert fault_rates("chaos", 7) != fault_rates("chaos", 8)
    assert fault_rates("chaos", 7) == fault_rates("chaos", 7)
    outcomes, stats = run_probe("chaos")
    assert len(stats["faultsInjected"]) >= 3, stats["faultsInjected"]
    assert set(stats["faultsInjected"]) <= {
        "throttle-429", "server-500", "server-503", "server-504", "connection-reset", "slow",
        "malformed-json", "expired-url", "report-fatal", "token-revoked",
    }  # fmt: skip
    assert Emulator(make_config(faults="chaos")).affected_invoices() == {}
    again, stats_again = run_probe("chaos")
    assert again == outcomes and stats_again["faultsInjected"] == stats["faultsInjected"]


@pytest.mark.parametrize("profile", ["lost-report-answers", "lost-report-answers-unlabelled"])
def test_lost_report_answers_leave_reports_that_get_reports_lists(profile: str) -> None:
    with Emulator(make_config(orders=12, speed=1000.0, faults=profile)) as emulator:
        api = Api(emulator)
        lost = 0
        for number in sorted(emulator.invoice_numbers())[:6]:
            try:
                response = api.create_report(number)
            except requests.ConnectionError:
                lost += 1
                continue
            try:
                answered = response.status_code == 202 and "reportId" in response.json()
            except ValueError:  # a cut-off body
                answered = False
            lost += not answered
        made = list(emulator.state.reports.values())
        unanswered = [r for r in made if not r.answered]
        assert len(made) == 6 and len(unanswered) == lost >= 1
        listed = api.retrying(lambda: api.get("/reports/2021-09-30/reports", reportTypes="GET_AB_INVOICE_PDF"))
        assert {r["reportId"] for r in listed["reports"]} >= {r.report_id for r in unanswered}
        labelled = profile == "lost-report-answers"
        assert all(("reportOptions" in r) is labelled for r in listed["reports"])


def test_aged_reports_answer_404_and_leave_the_listing() -> None:
    with Emulator(make_config(orders=12, speed=1000.0, faults="aged-reports")) as emulator:
        api = Api(emulator)
        number = sorted(emulator.invoice_numbers())[0]
        old = api.report_id(number)
        emulator.age_reports()
        assert api.report(old).status_code == 404
        assert api.report(old).json()["errors"][0]["code"] == "NotFound"
        listed = api.retrying(lambda: api.get("/reports/2021-09-30/reports", reportTypes="GET_AB_INVOICE_PDF"))
        assert old not in {r["reportId"] for r in listed["reports"]}
        new = api.report_id(number)
        assert api.wait(new)["processingStatus"] in ("DONE", "IN_PROGRESS")
        assert emulator.stats()["faultsInjected"]["report-aged"] == 1
