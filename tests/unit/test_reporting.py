"""abrecon.reporting: the reconciliation report's rows, totals, CSV, HTML, and the finance message's wording."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from importlib.resources import files
from typing import Any

import pytest
from jinja2 import StrictUndefined, UndefinedError

from abrecon import reporting
from abrecon.contracts import LineItemRow
from abrecon.models import InvoiceDetail
from abrecon.reporting import Outcome, Status, page
from abrecon.storage import InvoiceRecord

RUN = "daily-2026-11-21T0600Z"
START = datetime(2026, 11, 14, tzinfo=UTC)
END = datetime(2026, 11, 21, tzinfo=UTC)


def _row(tx: str, order: str, line: str, ship: str, amount: str, *, kind: str = "CHARGE", **extra: Any) -> LineItemRow:
    return LineItemRow.model_validate(
        {
            "transactionId": tx,
            "transactionType": kind,
            "transactionDate": extra.pop("date", "2026-11-15 10:00:00+00:00"),
            "orderId": order,
            "orderLineItemId": line,
            "shipmentId": ship,
            "asin": extra.pop("asin", "B0TESTASIN"),
            "title": extra.pop("title", "Copy paper"),
            "quantity": extra.pop("quantity", 1),
            "amount": amount,
            "currency": extra.pop("currency", "USD"),
        }
    )


def _detail(number: str, **fields: Any) -> InvoiceDetail:
    return InvoiceDetail.model_validate({"invoiceNumber": number, "invoiceDate": "2026-11-15T12:00:00Z", **fields})


def _record(number: str, state: str, **fields: Any) -> InvoiceRecord:
    return InvoiceRecord.model_validate({"invoiceNumber": number, "state": state, "runId": RUN, **fields})


def _build(**overrides: Any) -> reporting.Report:
    args: dict[str, Any] = {
        "run_id": RUN,
        "window_start": START,
        "window_end": END,
        "generated_at": END,
        "bucket": "docs-bucket",
        "csv_key": f"runs/{RUN}/report.csv",
        "html_key": f"runs/{RUN}/report.html",
        "failures": [],
        "deferrals": [],
        **overrides,
    }
    return reporting.build_report(**args)


@pytest.fixture
def na_report() -> reporting.Report:
    """Two charges on one invoice, a refund with its credit memo, an earlier run's invoice, a failure, a deferral,
    and a line item Amazon has no invoice for yet."""
    rows = [
        _row("T1", "111-1", "L1", "S1", "10.5", date="2026-11-15 10:00:00+00:00"),
        _row("T1", "111-1", "L2", "S1", "20.00", date="2026-11-15 10:00:00+00:00", title='=HYPERLINK("x")'),
        _row("T2", "111-1", "L1", "S1", "-10.50", kind="REFUND", date="2026-11-18 09:00:00+00:00"),
        _row("T3", "222-2", "L1", "S2", "5.00", date="2026-11-14 08:00:00+00:00"),
        _row("T4", "333-3", "L1", "S3", "7.25", date="2026-11-16 08:00:00+00:00"),
        _row("T5", "444-4", "L1", "S4", "3.00", date="2026-11-17 08:00:00+00:00"),
        _row("T6", "555-5", "L1", "S5", "1.00", date="2026-11-19 08:00:00+00:00"),
    ]
    matches = {
        "111-1|L1|S1": ["INV-A", "CM-A"],
        "111-1|L2|S1": ["INV-A"],
        "222-2|L1|S2": ["INV-OLD"],
        "333-3|L1|S3": ["INV-BAD"],
        "444-4|L1|S4": ["INV-LATE"],
    }
    details = {
        "INV-A": _detail("INV-A", invoiceType="STANDARD"),
        "CM-A": _detail("CM-A", invoiceType="CREDIT_MEMO", associatedInvoiceNumber="INV-A"),
        "INV-OLD": _detail("INV-OLD", invoiceType="STANDARD"),
        "INV-BAD": _detail("INV-BAD", invoiceType="STANDARD"),
        "INV-LATE": _detail("INV-LATE", invoiceType="STANDARD"),
    }
    records = {
        "INV-A": _record(
            "INV-A", "STORED", s3Keys=["documents/US/INV-A/Invoice_INV-A.pdf", "documents/US/INV-A/CreditMemo_CM-A.pdf"]
        ),
        "INV-OLD": _record("INV-OLD", "STORED", s3Keys=["documents/US/INV-OLD/Invoice_INV-OLD.pdf"], runId="daily-1"),
        "INV-BAD": _record("INV-BAD", "FAILED", reason="report R9 ended FATAL without a document"),
        "INV-LATE": _record("INV-LATE", "DEFERRED", reason="report R7 still IN_PROGRESS after 240 polls"),
    }
    return _build(
        line_items=rows,
        matches=matches,
        details=details,
        records=records,
        targets=["INV-A", "INV-OLD", "INV-BAD", "INV-LATE"],
        requested_this_run={"INV-A", "INV-BAD", "INV-LATE"},
        failures=[{"invoiceNumber": "INV-BAD", "reason": "report R9 ended FATAL without a document"}],
        deferrals=[{"invoiceNumber": "INV-LATE", "reason": "report R7 still IN_PROGRESS after 240 polls"}],
    )


def _csv(report: reporting.Report) -> list[dict[str, str]]:
    data = reporting.render_csv(report)
    assert data.startswith("\ufeff".encode())  # Excel reads UTF-8 only with the byte order mark
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_every_line_item_is_one_row_with_its_documents_status_and_reason(na_report: reporting.Report) -> None:
    by_tx = {(line.transaction_id, line.order_line_item_id): line for line in na_report.lines}
    assert len(na_report.lines) == 7
    charge = by_tx[("T1", "L1")]
    assert [d.number for d in charge.documents] == ["INV-A"]  # the charge gets the invoice ...
    assert charge.status is Status.STORED and charge.documents[0].s3_keys == ("documents/US/INV-A/Invoice_INV-A.pdf",)
    refund = by_tx[("T2", "L1")]
    assert [d.number for d in refund.documents] == ["CM-A"]  # ... the refund the credit memo, from the same report
    assert refund.documents[0].s3_keys == ("documents/US/INV-A/CreditMemo_CM-A.pdf",)
    earlier = by_tx[("T3", "L1")]
    assert earlier.status is Status.STORED and "earlier run (daily-1)" in earlier.reason
    assert by_tx[("T4", "L1")].status is Status.FAILED
    assert by_tx[("T4", "L1")].reason == "report R9 ended FATAL without a document"
    assert by_tx[("T5", "L1")].status is Status.DEFERRED
    assert by_tx[("T6", "L1")].status is Status.NO_INVOICE_YET and not by_tx[("T6", "L1")].documents
    assert [line.transaction_id for line in na_report.lines] == ["T3", "T1", "T1", "T4", "T5", "T2", "T6"]  # by date
    assert na_report.outcome is Outcome.ACTION_NEEDED
    assert na_report.count(credit_memos=False, status=Status.STORED, stored_earlier=False) == 1
    assert na_report.count(credit_memos=True, status=Status.STORED, stored_earlier=False) == 1
    assert na_report.pdfs_stored == 2


def test_csv_has_the_columns_a_reconciliation_needs_and_totals(na_report: reporting.Report) -> None:
    rows = _csv(na_report)
    header = list(rows[0])
    for column in ("Transaction ID", "Transaction date (UTC)", "Order ID", "Order line item ID", "Shipment ID", "ASIN"):
        assert column in header
    for column in ("Title", "Amount", "Currency", "Document number(s)", "Document type(s)", "Status", "Reason"):
        assert column in header
    assert "Document S3 key(s)" in header
    assert not any(h.startswith(("Tax", "Taxable", "Document total")) for h in header)  # no JP data: no JP columns
    lines, blank, total = rows[:7], rows[7], rows[8]
    assert not any(blank.values())
    first = next(r for r in lines if r["Transaction ID"] == "T1" and r["Order line item ID"] == "L1")
    assert first["Amount"] == "10.50" and first["Currency"] == "USD"  # "10.5" in the currency's minor units
    assert first["Document number(s)"] == "INV-A" and first["Document type(s)"] == "Invoice"
    assert first["Document S3 key(s)"] == "s3://docs-bucket/documents/US/INV-A/Invoice_INV-A.pdf"
    assert first["Transaction date (UTC)"] == "2026-11-15 10:00:00"
    assert {r["Status"] for r in lines} == {"STORED", "FAILED", "DEFERRED", "NO_INVOICE_YET"}
    assert total["Transaction date (UTC)"] == "TOTAL" and total["Currency"] == "USD"
    assert total["Amount"] == "36.25"  # 10.50 + 20 - 10.50 + 5 + 7.25 + 3 + 1
    assert "7 line items" in total["Reason"] and "1 failed" in total["Reason"]


def test_csv_defuses_formulas_in_text_but_not_negative_amounts(na_report: reporting.Report) -> None:
    rows = _csv(na_report)
    titled = next(r for r in rows if r["Order line item ID"] == "L2")
    assert titled["Title"] == '\'=HYPERLINK("x")'
    refund = next(r for r in rows if r["Transaction ID"] == "T2")
    assert refund["Amount"] == "-10.50"


def _jp_tax(rate: str, incl: str, excl: str, tax: str) -> dict[str, Any]:
    money = lambda v: {"amount": v, "currencyCode": "JPY"}  # noqa: E731
    return {"rate": rate, "inclusiveTotal": money(incl), "exclusiveTotal": money(excl), "amount": money(tax)}


@pytest.fixture
def jp_report() -> reporting.Report:
    """A JP invoice at 10% and 8% over two line items, and a credit memo for a returned unit."""
    rows = [
        _row("J1", "503-1", "L1", "S1", "1100", currency="JPY", title="コピー用紙 A4"),
        _row("J1", "503-1", "L2", "S1", "1080", currency="JPY", title="緑茶 525ml"),
        _row("J2", "503-1", "L2", "S1", "-540", kind="REFUND", currency="JPY", date="2026-11-18 09:00:00+00:00"),
    ]
    details = {
        "JPINV1": _detail(
            "JPINV1",
            invoiceType="STANDARD",
            currencyCode="JPY",
            invoiceTotal="2180.0",
            tax=[_jp_tax("0.1", "1100", "1000", "100"), _jp_tax("0.08", "1080", "1000", "80")],
        ),
        "JPCM1": _detail(
            "JPCM1",
            invoiceType="CREDIT_MEMO",
            associatedInvoiceNumber="JPINV1",
            currencyCode="JPY",
            invoiceTotal="540",
            tax=[_jp_tax("0.08", "540", "500", "40")],
        ),
    }
    return _build(
        line_items=rows,
        matches={"503-1|L1|S1": ["JPINV1"], "503-1|L2|S1": ["JPINV1", "JPCM1"]},
        details=details,
        records={"JPINV1": _record("JPINV1", "STORED", s3Keys=["documents/JP/JPINV1/Invoice_JPINV1.pdf"])},
        targets=["JPINV1"],
        requested_this_run={"JPINV1"},
        checked=2,
        flags=[{"invoiceNumber": "JPCM1", "reason": "tax at 8%: 40 given, 39 computed"}],
    )


def test_jp_tax_breakdown_by_rate_appears_once_per_document_and_adds_up(jp_report: reporting.Report) -> None:
    assert jp_report.tax_rates == (Decimal("0.1"), Decimal("0.08"))
    rows = _csv(jp_report)
    header = list(rows[0])
    for column in ("Document total", "Taxable at 10% (excl. tax)", "Tax at 10%", "Total at 10% (incl. tax)"):
        assert column in header
    assert "Tax at 8%" in header and "Tax invoice check (JP)" in header
    first, second, refund, total = rows[0], rows[1], rows[2], rows[4]
    assert first["Document total"] == "2180" and first["Tax at 10%"] == "100" and first["Tax at 8%"] == "80"
    assert second["Document total"] == "" and second["Tax at 8%"] == ""  # the invoice's amounts are on its first row
    assert refund["Document total"] == "-540" and refund["Tax at 8%"] == "-40"  # credit memos count negative
    assert refund["Document number(s)"] == "JPCM1" and refund["Document type(s)"] == "Credit memo"
    assert total["Amount"] == "1640" and total["Document total"] == "1640"
    assert total["Tax at 8%"] == "40" and total["Taxable at 8% (excl. tax)"] == "500"
    assert "charged minus invoiced: 0" in total["Reason"]
    assert first["Tax invoice check (JP)"] == "OK"
    assert refund["Tax invoice check (JP)"] == "FLAGGED JPCM1: tax at 8%: 40 given, 39 computed"
    assert jp_report.outcome is Outcome.ACTION_NEEDED  # a flagged tax invoice needs a person
    (jpy,) = jp_report.totals
    assert jpy.difference == 0 and jpy.charged == Decimal(2180) and jpy.refunded == Decimal(-540)


def test_html_is_self_contained_escaped_and_has_a_row_per_line_item(jp_report: reporting.Report) -> None:
    page = reporting.render_html(jp_report).decode("utf-8")
    assert page.startswith("<!doctype html>") and '<meta charset="utf-8">' in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page  # no external assets
    assert page.count('<tr id="line-') == 3
    assert "コピー用紙 A4" in page and "2,180" in page  # grouped amounts, no yen decimals
    assert 'href="../../documents/JP/JPINV1/Invoice_JPINV1.pdf"' in page  # relative to the report's own key
    assert "@media print" in page and "Tax at 8%" in page
    assert "Flagged by the tax-qualified invoice checks" in page


def test_html_escapes_what_amazon_sends(na_report: reporting.Report) -> None:
    rows = [_row("T<1>", "111-1", "L1", "S1", "1.00", title='<img src=x onerror="alert(1)">')]
    report = _build(line_items=rows, matches={}, details={}, records={}, targets=[], requested_this_run=set())
    page = reporting.render_html(report).decode()
    assert "<img" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "T&lt;1&gt;" in page


def test_subject_says_the_outcome_first_in_ascii_within_100_characters(
    na_report: reporting.Report, jp_report: reporting.Report
) -> None:
    subject = reporting.finance_subject(na_report)
    assert (
        subject == "ACTION NEEDED: Amazon Business 14-20 Nov 2026: 1 invoice failed; 1 invoice + 1 credit memo stored"
    )
    assert len(subject) <= 100 and subject.isascii()
    assert reporting.finance_subject(jp_report) == (
        "ACTION NEEDED: Amazon Business 14-20 Nov 2026: 1 invoice flagged by JP tax checks"
    )
    crowded = replace(na_report, flags=jp_report.flags)  # failures and flags: the stored count gives way
    assert reporting.finance_subject(crowded) == (
        "ACTION NEEDED: Amazon Business 14-20 Nov 2026: 1 invoice failed, 1 invoice flagged by JP tax checks"
    )
    rows = [_row("T1", "1", "L1", "S1", "9.99")]
    ok = _build(
        line_items=rows,
        matches={"1|L1|S1": ["I1"]},
        details={"I1": _detail("I1")},
        records={"I1": _record("I1", "STORED", s3Keys=["documents/US/I1/Invoice_I1.pdf"])},
        targets=["I1"],
        requested_this_run={"I1"},
    )
    assert ok.outcome is Outcome.OK
    assert reporting.finance_subject(ok) == "Amazon Business 14-20 Nov 2026: 1 invoice stored, nothing missing"


def test_message_tells_window_counts_totals_problems_and_where_the_report_is(na_report: reporting.Report) -> None:
    message = reporting.finance_message(na_report, summary_key=f"runs/{RUN}/summary.json")
    assert message.startswith("Amazon Business invoices for 14 Nov 2026 to 20 Nov 2026 (UTC)")
    assert "Action needed: 1 invoice failed. 1 invoice and 1 credit memo stored (2 PDFs)." in message
    assert "USD: charged 46.75, refunded 10.50, net 36.25" in message
    assert "INV-BAD: report R9 ended FATAL without a document" in message
    assert "INV-LATE: report R7 still IN_PROGRESS after 240 polls" in message
    assert "1 line item without an invoice yet" in message
    assert "1 document of this period had been stored by earlier runs already." in message
    assert (
        f"s3://docs-bucket/runs/{RUN}/report.csv" in message and f"s3://docs-bucket/runs/{RUN}/report.html" in message
    )
    assert "abrecon invoices get" in message


def test_long_problem_lists_are_cut_with_a_pointer_to_the_report() -> None:
    failures = [{"invoiceNumber": f"INV-{n:03}", "reason": "FATAL"} for n in range(45)]
    report = _build(
        line_items=[], matches={}, details={}, records={}, targets=[], requested_this_run=set(), failures=failures
    )
    message = reporting.finance_message(report, summary_key="s.json")
    assert "INV-019: FATAL" in message and "INV-020" not in message
    assert "... and 25 more (see the report)" in message


def test_invoice_data_only_stacks_say_pdfs_were_not_requested() -> None:
    rows = [_row("T1", "1", "L1", "S1", "9.99")]
    report = _build(
        line_items=rows,
        matches={"1|L1|S1": ["I1"]},
        details={"I1": _detail("I1")},
        records={},
        targets=["I1"],
        requested_this_run=set(),
        pdfs_requested=False,
    )
    assert report.lines[0].status is Status.NOT_REQUESTED and report.outcome is Outcome.OK
    assert "1 invoice and 0 credit memos found (PDFs not requested)" in reporting.finance_message(
        report, summary_key="k"
    )


@pytest.mark.parametrize(
    ("start", "end", "text"),
    [
        (datetime(2026, 11, 14, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC), "14-20 Nov 2026"),
        (datetime(2026, 11, 18, 6, tzinfo=UTC), datetime(2026, 11, 21, 6, tzinfo=UTC), "18-21 Nov 2026"),
        (datetime(2026, 10, 28, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC), "28 Oct-3 Nov 2026"),
        (datetime(2025, 12, 28, tzinfo=UTC), datetime(2026, 1, 4, tzinfo=UTC), "28 Dec 2025-3 Jan 2026"),
        (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC), "20 Nov 2026"),
    ],
)
def test_subject_window_is_short(start: datetime, end: datetime, text: str) -> None:
    assert reporting.short_window(start, end) == text


@pytest.mark.parametrize(
    ("start", "end", "text"),
    [
        (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC), "1 Oct 2026 to 31 Oct 2026 (UTC)"),
        (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC), "20 Nov 2026 (UTC)"),
        (
            datetime(2026, 11, 18, 6, tzinfo=UTC),
            datetime(2026, 11, 21, 6, tzinfo=UTC),
            "18 Nov 2026 06:00 to 21 Nov 2026 06:00 (UTC)",
        ),
    ],
)
def test_window_reads_as_a_person_says_it(start: datetime, end: datetime, text: str) -> None:
    assert reporting.describe_window(start, end) == text


@pytest.mark.parametrize(
    ("value", "currency", "plain", "shown"),
    [
        ("12.5", "USD", "12.50", "12.50"),
        ("1234567.5", "USD", "1234567.50", "1,234,567.50"),
        ("882.00", "JPY", "882", "882"),
        ("2910.0", "JPY", "2910", "2,910"),
        ("-45", "EUR", "-45.00", "-45.00"),
        ("0.125", "USD", "0.125", "0.125"),  # never rounded away
    ],
)
def test_amounts_in_the_currencys_minor_units(value: str, currency: str, plain: str, shown: str) -> None:
    assert reporting.plain_amount(Decimal(value), currency) == plain
    assert reporting.format_amount(Decimal(value), currency) == shown


def test_html_escapes_every_value_by_default_invoice_numbers_reasons_and_links_included() -> None:
    hostile = "<script>alert('x')</script>&\"=cmd|"
    number = f"INV{hostile}"
    rows = [_row("T1", "1", "L1", "S1", "9.99", title=hostile, asin=hostile)]
    report = _build(
        line_items=rows,
        matches={"1|L1|S1": [number]},
        details={number: _detail(number)},
        records={number: _record(number, "STORED", s3Keys=[f"documents/US/{hostile}/Invoice.pdf"])},
        targets=[number],
        requested_this_run={number},
        run_id=f"run{hostile}",
        failures=[{"invoiceNumber": number, "reason": hostile}],
    )
    page = reporting.render_html(report).decode()
    assert "<script" not in page and "cmd|" in page  # the text is shown, as text
    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;=cmd|"
    assert f"<b>INV{escaped}</b>: {escaped}</li>" in page  # Needs attention: the number and the reason
    assert f'href="../../documents/US/{escaped}/Invoice.pdf">INV{escaped}</a>' in page  # the link and its text
    assert (
        f"run run{escaped} &middot;" in page and f'<td class="item">{escaped}<div class="small">{escaped}</div>' in page
    )


def test_the_page_template_escapes_by_default_and_fails_on_a_missing_value(na_report: reporting.Report) -> None:
    assert page.TEMPLATES.autoescape is True and page.TEMPLATES.undefined is StrictUndefined
    template = page.TEMPLATES.get_template(page.TEMPLATE)
    values = page.page_values(na_report)
    assert template.render(values).encode() == reporting.render_html(na_report)
    del values["window"]
    with pytest.raises(UndefinedError, match="'window' is undefined"):
        template.render(values)
    assert page.TEMPLATES.from_string("{{ text }}").render(text="<b>") == "&lt;b&gt;"


def test_the_page_inlines_its_css_so_the_exported_file_stands_alone(na_report: reporting.Report) -> None:
    css = (files("abrecon.reporting") / "templates" / "report.css").read_text(encoding="utf-8")
    html_page = reporting.render_html(na_report).decode()
    assert f"<style>\n{css}</style>" in html_page and "<link" not in html_page
