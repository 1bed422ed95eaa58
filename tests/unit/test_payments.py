"""Payment status and due dates: the client's getBatchInvoicePaymentDetails, its models, the check-payments step
(batches of 25, ERROR results, the lookback, continuation), the aging and past-due figures."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest
from unit_fakes import FakeHttp, Reply, Sleeps, StubTokens

from abrecon import reporting, steps
from abrecon.budget import TimeBudget
from abrecon.client import AmazonBusinessClient, RetryPolicy
from abrecon.contracts import LineItemRow, RunContext
from abrecon.errors import BadRequestError, ServerError
from abrecon.models import InvoiceDetail, InvoicePaymentDetailResult, InvoicePaymentDetailsResponse
from abrecon.payment_status import (
    AGING_BUCKETS,
    STATUS_ERROR,
    PaymentRecord,
    RunPayments,
    aging,
    aging_bucket,
    past_due,
    payment_pk,
)
from abrecon.runtime import Runtime
from abrecon.settings import Settings
from abrecon.storage import InvoiceRecord

API = "https://na.business-api.amazon.com"
PATH = "/reconciliation/2021-01-08/invoices/batch/paymentDetails"
TODAY = date(2026, 12, 1)


def success(number: str, status: str = "Issued", due: str = "2026-12-20T23:59:59Z") -> dict[str, Any]:
    return {"invoiceId": number, "resultType": "SUCCESS", "paymentDetails": {"status": status, "dueDate": due}}


def failure(number: str) -> dict[str, Any]:
    error = {"code": "PAYMENT_DETAILS_UNAVAILABLE", "message": "Not available.", "details": "Paid by card."}
    return {"invoiceId": number, "resultType": "ERROR", "error": error}


@pytest.fixture
def client(http: FakeHttp, tokens: StubTokens, sleeps: Sleeps) -> AmazonBusinessClient:
    return AmazonBusinessClient(API, tokens, session=http.session, retry=RetryPolicy(max_attempts=2), sleep=sleeps)


# ----- models and client -------------------------------------------------------------------------------------------


def test_models_read_both_result_types_and_tolerate_what_amazon_leaves_out() -> None:
    # The model's own sandbox example has neither paymentDetails nor error.
    body = {
        "invoicePaymentDetailsResults": [
            success("A", "Past Due", "2025-06-07T23:59:59Z"),
            failure("B"),
            {"invoiceId": "JP218PV8HMOI", "resultType": "SUCCESS"},
            success("C", "Written Off"),  # a status Amazon may add later stays readable
        ]
    }
    results = InvoicePaymentDetailsResponse.model_validate(body).invoicePaymentDetailsResults
    assert [r.succeeded for r in results] == [True, False, False, True]
    assert results[0].paymentDetails is not None and results[0].paymentDetails.dueDate == datetime(
        2025, 6, 7, 23, 59, 59, tzinfo=UTC
    )
    assert results[1].error is not None and results[1].error.code == "PAYMENT_DETAILS_UNAVAILABLE"
    assert results[3].paymentDetails is not None and results[3].paymentDetails.status == "Written Off"


def test_client_posts_the_ids_once_each_and_reads_every_result(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(200, json_body={"invoicePaymentDetailsResults": [failure("B"), success("A"), {"resultType": 1}]}))
    results = client.get_invoice_payment_details(["A", "B", "A"])
    (seen,) = http.seen
    assert (seen.method, seen.path, seen.json()) == ("POST", PATH, {"invoiceIds": ["A", "B"]})
    assert seen.headers["x-amz-access-token"] == "Atza|tok-1" and seen.timeout is not None
    assert {r.invoiceId: r.resultType for r in results} == {"A": "SUCCESS", "B": "ERROR"}  # the broken entry skipped
    assert client.api_calls["getBatchInvoicePaymentDetails"] == 1


@pytest.mark.parametrize("ids", [[f"I{n}" for n in range(26)], ["A", ""], ["x" * 256]])
def test_client_refuses_what_the_model_forbids_before_any_call(
    client: AmazonBusinessClient, http: FakeHttp, ids: list[str]
) -> None:
    with pytest.raises(BadRequestError):
        client.get_invoice_payment_details(ids)
    assert http.seen == []
    assert client.get_invoice_payment_details([]) == [] and http.seen == []


def test_client_retries_5xx_then_raises(client: AmazonBusinessClient, http: FakeHttp) -> None:
    http.queue(Reply(503, json_body={"errors": [{"code": "ServiceUnavailable", "message": "busy"}]}))
    http.queue(Reply(500, json_body={"errors": [{"code": "InternalFailure", "message": "oops"}]}))
    with pytest.raises(ServerError):
        client.get_invoice_payment_details(["A"])
    assert len(http.seen) == 2


# ----- aging and past due ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "bucket"), [(-5, 0), (0, 0), (1, 1), (30, 1), (31, 2), (60, 2), (61, 3), (90, 3), (91, 4), (400, 4)]
)
def test_aging_buckets_have_their_edges_where_finance_expects(days: int, bucket: int) -> None:
    assert aging_bucket(days) == AGING_BUCKETS[bucket]


def record(
    number: str, status: str, due: date | None, amount: str | None = "10.00", currency: str = "USD"
) -> PaymentRecord:
    return PaymentRecord(
        invoice_number=number,
        status=status,
        due_date=due,
        amount=Decimal(amount) if amount is not None else None,
        currency=currency,
        checked_at=datetime(2026, 12, 1, tzinfo=UTC),
    )


def test_aging_counts_unpaid_invoices_per_currency_relative_to_the_day() -> None:
    records = [
        record("A", "Issued", TODAY + timedelta(days=3)),
        record("B", "Past Due", TODAY - timedelta(days=1), "5.50"),
        record("C", "Past Due", TODAY - timedelta(days=45)),
        record("D", "Payment Processing", TODAY - timedelta(days=120)),
        record("E", "Closed", TODAY - timedelta(days=40)),  # paid: not aged
        record("F", STATUS_ERROR, TODAY - timedelta(days=40)),  # unknown: not aged
        record("G", "Past Due", TODAY - timedelta(days=70), "1000", "JPY"),
        record("H", "Issued", TODAY, None),
    ]
    usd, jpy = None, None
    for a in aging(records, TODAY):
        usd, jpy = (a, jpy) if a.currency == "USD" else (usd, a)
    assert usd is not None and jpy is not None
    assert usd.amounts == dict(zip(AGING_BUCKETS, map(Decimal, ["10.00", "5.50", "10.00", "0", "10.00"]), strict=True))
    assert usd.counts[AGING_BUCKETS[0]] == 2 and usd.without_amount == 1 and usd.total == Decimal("35.50")
    assert jpy.amounts[AGING_BUCKETS[3]] == Decimal(1000)


def test_past_due_figures_are_amazons_past_due_invoices_oldest_first() -> None:
    records = [
        record("A", "Past Due", TODAY - timedelta(days=2), "5.00"),
        record("B", "Past Due", TODAY - timedelta(days=9), "7.25"),
        record("C", "Issued", TODAY - timedelta(days=30)),  # Amazon has not called it past due: not counted
        record("D", "Past Due", TODAY - timedelta(days=1), "100", "JPY"),
    ]
    overdue = past_due(records)
    assert [r.invoice_number for r in overdue.records] == ["B", "A", "D"]
    assert overdue.totals == {"JPY": Decimal(100), "USD": Decimal("12.25")}
    assert overdue.oldest_due_date == TODAY - timedelta(days=9) and overdue.main_currency == "USD"
    assert past_due([]).count == 0 and past_due([]).oldest_due_date is None


def test_a_payment_entry_stays_in_the_open_index_until_closed() -> None:
    item = record("A", "Past Due", TODAY).as_item()
    assert item["pk"] == payment_pk("A") and item["openKind"] == "PAYMENT" and item["amount"] == Decimal("10.00")
    assert item["dueDate"] == TODAY.isoformat()
    assert "openKind" not in record("A", "Closed", TODAY).as_item()
    assert PaymentRecord.model_validate(item) == record("A", "Past Due", TODAY)


# ----- the check-payments step -------------------------------------------------------------------------------------


class FakeStore:
    def __init__(self, objects: dict[str, Any]) -> None:
        self.objects = objects

    def get_json(self, key: str) -> Any:
        return json.loads(json.dumps(self.objects[key]))

    def put_json(self, key: str, data: Any) -> None:
        self.objects[key] = json.loads(json.dumps(data, default=str))

    def get_json_many(self, keys: Any) -> dict[str, Any]:
        return {k: self.get_json(k) for k in keys}


@dataclass
class FakeLedger:
    items: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get_items(self, pks: Any) -> list[dict[str, Any]]:
        return [dict(self.items[pk]) for pk in pks if pk in self.items]

    def put_items(self, items: Any) -> None:
        for item in items:
            self.items[item["pk"]] = dict(item)

    def open_items(self, kind: str) -> list[dict[str, Any]]:
        return [dict(i) for i in self.items.values() if i.get("openKind") == kind]


class FakeApi:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.fail_first = fail_first

    def get_invoice_payment_details(self, ids: list[str]) -> list[InvoicePaymentDetailResult]:
        self.calls.append(list(ids))
        if len(self.calls) <= self.fail_first:
            raise ServerError("getBatchInvoicePaymentDetails", 503, "ServiceUnavailable", "busy")
        answers = [failure(i) if i.endswith("7") else success(i, "Past Due", "2026-11-20T23:59:59Z") for i in ids]
        answers = [a for a in answers if a["invoiceId"] != "INV-3"]  # Amazon leaves one out
        return [InvoicePaymentDetailResult.model_validate(a) for a in reversed(answers)]


RUN = "run-1"


def runtime(invoices: int, api: FakeApi, ledger: FakeLedger | None = None) -> Runtime:
    rows, matches, objects = [], {}, {}
    for n in range(invoices):
        number = f"INV-{n}"
        rows.append(
            {
                "transactionId": f"T{n}",
                "transactionType": "CHARGE",
                "orderId": f"O{n}",
                "orderLineItemId": "L1",
                "shipmentId": "S1",
                "amount": "12.50",
                "currency": "USD",
            }
        )
        matches[f"O{n}|L1|S1"] = [number, f"CM-{n}"] if n == 0 else [number]
        objects[f"invoice-details/{number}.json"] = {"invoiceNumber": number, "invoiceDate": "2026-11-25T10:00:00Z"}
    objects["invoice-details/CM-0.json"] = {
        "invoiceNumber": "CM-0",
        "invoiceDate": "2026-11-26T10:00:00Z",
        "invoiceType": "CREDIT_MEMO",
    }
    objects[f"runs/{RUN}/line-items.json"] = rows
    objects[f"runs/{RUN}/matches.json"] = matches
    settings = Settings.model_validate(
        {
            "AB_API_ENDPOINT": API,
            "AB_LWA_ENDPOINT": "https://api.amazon.com/auth/o2/token",
            "AB_LWA_SECRET_ID": "secret",
            "AB_MARKETPLACE_ID": "ATVPDKIKX0DER",
            "DOCUMENT_BUCKET": "bucket",
            "DOCUMENT_KEY_ARN": "arn:aws:kms:us-east-1:111122223333:key/k",
            "LEDGER_TABLE": "ledger",
            "PAYMENT_LOOKBACK_DAYS": "120",
        }
    )
    fake: Any = type("Rt", (), {})()
    fake.settings, fake.api, fake.store, fake.ledger = settings, api, FakeStore(objects), ledger or FakeLedger()
    fake.budget = TimeBudget.lambda_maximum(settings.time_margin_seconds)
    return cast(Runtime, fake)


def context(payments_progress: dict[str, Any] | None = None) -> RunContext:
    return RunContext.model_validate(
        {
            "runId": RUN,
            "windowStart": "2026-11-24T00:00:00Z",
            "windowEnd": "2026-12-01T00:00:00Z",
            "pollSeconds": 15,
            "maxPolls": 240,
            "transactionCount": 1,
            "lineItemCount": 1,
            "lineItemsKey": f"runs/{RUN}/line-items.json",
            "payments": payments_progress,
        }
    )


def test_every_invoice_of_the_run_is_asked_in_batches_of_25_and_recorded() -> None:
    api = FakeApi()
    rt = runtime(60, api)
    progress = steps.check_payments(context(), rt)
    assert [len(c) for c in api.calls] == [25, 25, 10]  # the credit memo is not asked about
    assert not progress.more and progress.done == progress.total == 60
    ledger = cast(FakeLedger, rt.ledger)
    records = {i["invoiceNumber"]: PaymentRecord.model_validate(i) for i in ledger.items.values()}
    assert set(records) == {f"INV-{n}" for n in range(60)}
    assert records["INV-0"].status == "Past Due" and records["INV-0"].due_date == date(2026, 11, 20)
    assert records["INV-0"].amount == Decimal("12.50") and records["INV-0"].invoice_date == date(2026, 11, 25)
    assert records["INV-7"].status == STATUS_ERROR
    assert records["INV-7"].reason == "PAYMENT_DETAILS_UNAVAILABLE: Not available. (Paid by card.)"
    assert records["INV-3"].status == STATUS_ERROR and "no result for this invoice" in (records["INV-3"].reason or "")
    assert progress.statuses == {"Past Due": 53, STATUS_ERROR: 7}  # INV-7, 17, ... 57 and INV-3
    assert progress.metrics() == {"PaymentsPastDue": 53.0, "PaymentsError": 7.0}


def test_a_failed_call_is_recorded_for_its_batch_and_the_run_goes_on() -> None:
    api = FakeApi(fail_first=1)
    ledger = FakeLedger()
    earlier = record("INV-1", "Issued", date(2026, 12, 20)).model_copy(update={"invoice_date": date(2026, 11, 25)})
    ledger.put_items([earlier.as_item()])
    rt = runtime(30, api, ledger)
    progress = steps.check_payments(context(), rt)
    assert not progress.more and len(api.calls) == 2
    first = PaymentRecord.model_validate(ledger.items[payment_pk("INV-1")])
    assert first.status == STATUS_ERROR and "getBatchInvoicePaymentDetails failed" in (first.reason or "")
    assert first.due_date == date(2026, 12, 20)  # the due date an earlier check found is kept
    assert PaymentRecord.model_validate(ledger.items[payment_pk("INV-9")]).status == "Past Due"


def test_earlier_unpaid_invoices_are_asked_again_within_the_lookback_only() -> None:
    api = FakeApi()
    ledger = FakeLedger()
    today = datetime.now(UTC).date()
    recent = record("OLD-1", "Past Due", today - timedelta(days=10)).model_copy(
        update={"invoice_date": today - timedelta(days=40)}
    )
    stale = record("OLD-2", "Issued", today - timedelta(days=100)).model_copy(
        update={"invoice_date": today - timedelta(days=121)}
    )
    paid = record("OLD-3", "Closed", today).model_copy(update={"invoice_date": today - timedelta(days=5)})
    ledger.put_items([recent.as_item(), stale.as_item(), paid.as_item()])
    rt = runtime(2, api, ledger)
    steps.check_payments(context(), rt)
    assert api.calls == [["INV-0", "INV-1", "OLD-1"]]
    assert "openKind" not in ledger.items[payment_pk("OLD-2")]  # out of the lookback: leaves the index
    assert "lookback" in ledger.items[payment_pk("OLD-2")]["reason"]
    asked_again = PaymentRecord.model_validate(ledger.items[payment_pk("OLD-1")])
    assert asked_again.amount == Decimal("10.00") and asked_again.run_id == RUN


def test_a_long_list_continues_in_the_next_invocation() -> None:
    api = FakeApi()
    rt = runtime(80, api)
    rt.budget = TimeBudget(lambda: 89_000, margin_seconds=90.0)  # under the margin: one batch, then hand over
    first = steps.check_payments(context(), rt)
    assert (first.done, first.more, len(api.calls)) == (25, True, 1)  # one batch, then hand over
    second = steps.check_payments(context(first.model_dump(mode="json", by_alias=True)), rt)
    assert (second.done, second.more, second.total) == (50, True, 80)
    rt.budget = TimeBudget(lambda: 600_000, margin_seconds=90.0)
    third = steps.check_payments(context(second.model_dump(mode="json", by_alias=True)), rt)
    assert (third.done, third.more) == (80, False)
    assert sorted(i for call in api.calls for i in call) == sorted(f"INV-{n}" for n in range(80))


# ----- what finance sees: the report's columns, the Past due section first, the message -----------------------------


def payment_report(payments_of_run: RunPayments | None) -> reporting.Report:
    rows = [
        LineItemRow.model_validate(
            {
                "transactionId": f"T{n}",
                "transactionType": "CHARGE",
                "transactionDate": f"2026-11-2{n} 10:00:00+00:00",
                "orderId": f"O{n}",
                "orderLineItemId": "L1",
                "shipmentId": "S1",
                "amount": "12.50",
                "currency": "USD",
            }
        )
        for n in range(3)
    ]
    details = {
        f"INV-{n}": InvoiceDetail.model_validate({"invoiceNumber": f"INV-{n}", "invoiceDate": "2026-11-20T12:00:00Z"})
        for n in range(3)
    }
    records = {
        f"INV-{n}": InvoiceRecord.model_validate({"invoiceNumber": f"INV-{n}", "state": "STORED", "runId": RUN})
        for n in range(3)
    }
    return reporting.build_report(
        run_id=RUN,
        window_start=datetime(2026, 11, 20, tzinfo=UTC),
        window_end=datetime(2026, 11, 27, tzinfo=UTC),
        generated_at=datetime(2026, 12, 1, 6, tzinfo=UTC),
        bucket="docs",
        csv_key=f"runs/{RUN}/report.csv",
        html_key=f"runs/{RUN}/report.html",
        line_items=rows,
        matches={f"O{n}|L1|S1": [f"INV-{n}"] for n in range(3)},
        details=details,
        records=records,
        targets=list(records),
        requested_this_run=list(records),
        failures=[],
        deferrals=[],
        payments=payments_of_run,
    )


def run_payments_example() -> RunPayments:
    entries = [
        record("INV-0", "Past Due", TODAY - timedelta(days=12), "12.50"),
        record("INV-1", "Issued", TODAY + timedelta(days=20), "12.50"),
        record("INV-2", STATUS_ERROR, None).model_copy(update={"reason": "PAYMENT_DETAILS_UNAVAILABLE: n/a"}),
        # an earlier run's invoice, still unpaid: listed although this run has no line item for it
        record("OLD-9", "Past Due", TODAY - timedelta(days=95), "40.00").model_copy(update={"run_id": "earlier"}),
    ]
    return RunPayments({r.invoice_number: r for r in entries}, TODAY)


def test_the_csv_has_payment_status_and_due_date_per_row_and_aging_rows() -> None:
    report = payment_report(run_payments_example())
    rows = list(csv.DictReader(io.StringIO(reporting.render_csv(report).decode("utf-8-sig"))))
    lines = {r["Document number(s)"]: r for r in rows if r["Transaction ID"]}
    assert (lines["INV-0"]["Payment status"], lines["INV-0"]["Due date"]) == ("Past Due", "2026-11-19")
    assert (lines["INV-1"]["Payment status"], lines["INV-1"]["Due date"]) == ("Issued", "2026-12-21")
    assert lines["INV-2"]["Payment status"] == "ERROR: PAYMENT_DETAILS_UNAVAILABLE: n/a"
    (aging_row,) = [r for r in rows if r["Transaction date (UTC)"] == "AGING"]
    assert aging_row["Currency"] == "USD"
    assert "Not yet due: 12.50; 1-30 days past due: 12.50;" in aging_row["Reason"]
    assert aging_row["Reason"].endswith("Over 90 days past due: 40.00")
    without = list(csv.reader(io.StringIO(reporting.render_csv(payment_report(None)).decode("utf-8-sig"))))
    assert "Payment status" not in without[0]  # a run that asked no payment status has no such columns


def test_the_page_starts_with_the_past_due_invoices_oldest_first() -> None:
    page = reporting.render_html(payment_report(run_payments_example())).decode()
    first_section = page.index("<h2>")
    assert page[first_section:].startswith("<h2>Past due</h2>")
    assert page.index('id="past-due"') < page.index('class="outcome') < page.index("<h2>Totals</h2>")
    assert page.index('id="pastdue-OLD-9"') < page.index('id="pastdue-INV-0"')  # oldest due date first
    assert "2 invoices past due</b>, 52.50 USD; the oldest was due 2026-08-28." in page
    assert "<td>USD</td>" in page and "Unpaid in all" in page
    assert "Amazon could not give the payment status of 1 invoice" in page
    assert "<h2>Past due</h2>" not in reporting.render_html(payment_report(None)).decode()


def test_the_message_says_how_many_are_past_due_their_total_and_the_oldest_due_date() -> None:
    message = reporting.finance_message(payment_report(run_payments_example()), summary_key="runs/x/summary.json")
    assert "Past due: 2 invoices, USD 52.50; the oldest was due 2026-08-28:" in message
    assert "    - OLD-9: due 2026-08-28, USD 40.00" in message
    assert "Payment status unavailable for 1 invoice" in message
    none_due = RunPayments({"INV-1": record("INV-1", "Issued", TODAY + timedelta(days=3))}, TODAY)
    assert "\nPast due: none.\n" in reporting.finance_message(payment_report(none_due), summary_key="k")
