"""FIELD-NOTES quirks not covered elsewhere: one report per invoice (reportOptions without documentType), and
429s with Amazon's rate-limit header but no Retry-After. docs/fidelity.md's table maps every quirk to its test.
"""

from __future__ import annotations

import random

import pytest
from unit_fakes import FakeHttp, Reply, Sleeps, StubTokens

from abrecon.client import AmazonBusinessClient, RetryPolicy
from abrecon.contracts import ReportTarget
from abrecon.errors import ThrottledError
from abrecon.models import InvoiceDetail
from abrecon.steps import report_targets

API = "https://na.business-api.amazon.com"


def _detail(number: str, kind: str = "STANDARD", original: str | None = None) -> InvoiceDetail:
    return InvoiceDetail.model_validate(
        {
            "invoiceNumber": number,
            "invoiceDate": "2026-11-02T10:00:00Z",
            "invoiceType": kind,
            "associatedInvoiceNumber": original,
        }
    )


# --- reportOptions: neither documentType nor invoiceType brings the invoice and its credit memos together ---


def test_one_report_per_invoice_carries_its_credit_memos() -> None:
    details = [
        _detail("INV-1"),
        _detail("CM-1", "CREDIT_MEMO", "INV-1"),  # comes with INV-1's report
        _detail("INV-2"),
        _detail("INV-1"),  # the same invoice seen from another line item
    ]
    assert report_targets(details) == [ReportTarget(invoice_number="INV-1"), ReportTarget(invoice_number="INV-2")]
    assert all(t.document_type is None for t in report_targets(details))


def test_credit_memo_of_an_invoice_outside_the_run_gets_its_own_credits_report() -> None:
    details = [_detail("INV-9"), _detail("CM-7", "CREDIT_MEMO", "INV-OLD"), _detail("CM-8", "CREDIT_MEMO", None)]
    assert report_targets(details) == [
        ReportTarget(invoice_number="INV-9"),
        ReportTarget(invoice_number="CM-7", document_type="Credits"),
        ReportTarget(invoice_number="CM-8", document_type="Credits"),
    ]


# --- 429: Retry-After honoured when present; Amazon's rate-limit header is not a wait time ---


def _client(http: FakeHttp, tokens: StubTokens, sleeps: Sleeps, attempts: int = 3) -> AmazonBusinessClient:
    policy = RetryPolicy(max_attempts=attempts, base_delay=1.0, max_delay=30.0)
    return AmazonBusinessClient(API, tokens, session=http.session, retry=policy, sleep=sleeps)


DONE = {"reportId": "R", "processingStatus": "DONE"}


def test_429_with_retry_after_waits_that_long(http: FakeHttp, tokens: StubTokens, sleeps: Sleeps) -> None:
    http.queue(Reply(429, headers={"Retry-After": "7"}), Reply(200, json_body=DONE))
    _client(http, tokens, sleeps).get_report("R")
    assert sleeps.calls == [7.0]


def test_429_without_retry_after_backs_off_with_jitter_and_ignores_the_rate_limit_header(
    http: FakeHttp, tokens: StubTokens, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    ceilings: list[float] = []

    def top(low: float, high: float) -> float:
        ceilings.append(high)
        return high

    monkeypatch.setattr(random, "uniform", top)
    limited = {"x-amzn-RateLimit-Limit": "0.0167"}
    http.queue(Reply(429, headers=limited), Reply(429), Reply(200, json_body=DONE, headers={**limited}))
    report = _client(http, tokens, sleeps).get_report("R")
    assert report.reportId == "R"
    assert sleeps.calls == ceilings == [1.0, 2.0]  # full jitter under 1 s, then 2 s; not 1/0.0167 = 60 s


def test_429_after_the_budget_is_a_throttled_error_keeping_retry_after(
    http: FakeHttp, tokens: StubTokens, sleeps: Sleeps
) -> None:
    http.queue(Reply(429), Reply(429, headers={"Retry-After": "12"}))
    with pytest.raises(ThrottledError) as caught:
        _client(http, tokens, sleeps, attempts=2).create_report("INV-1", ["ATVPDKIKX0DER"])
    assert caught.value.retry_after_seconds == 12.0
    assert caught.value.status == 429 and len(http.seen) == 2
