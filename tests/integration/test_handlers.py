"""Each handler run in-process against moto (resources from template.yaml) and the Amazon Business emulator."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime

import pytest
from helpers import FakeContext, function_environment, load_event, load_handler

from abrecon.errors import ConfigurationError, InvalidInputError
from abrecon.runtime import get_runtime
from abrecon_sandbox.aws.local_aws import LocalAws
from abrecon_sandbox.emulator import Emulator


@pytest.fixture
def as_function(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Give the test process exactly the environment the template gives one function (a fresh execution
    environment each time: the secret is read anew)."""
    with ExitStack() as contexts:
        yield lambda logical_id: contexts.enter_context(function_environment(local_aws, monkeypatch, logical_id))


def _transaction_line_items(emulator: Emulator) -> int:
    config = emulator.config
    transactions = emulator.dataset.transactions_between(config.window_start, config.window_end)
    return sum(len(t["transactionLineItems"]) for t in transactions)


def _window(emulator: Emulator) -> dict[str, str]:
    return {"from": emulator.config.window_start.isoformat(), "to": emulator.config.window_end.isoformat()}


def test_handlers_take_a_window_to_stored_pdfs(
    emulator: Emulator, local_aws: LocalAws, as_function: Callable[[str], None]
) -> None:
    """fetch-transactions -> fetch-invoices -> create/check/download per invoice -> summarize-run, with events/."""
    assert local_aws.stack is not None
    event = load_event("fetch-transactions") | {"request": _window(emulator), "runId": "handler-test"}
    as_function("FetchTransactionsFunction")
    run = load_handler("fetch-transactions")(event, FakeContext())
    assert run["lineItemCount"] == _transaction_line_items(emulator)
    assert run["pollSeconds"] == 15  # the event's default, as the state machine passes it

    as_function("FetchInvoicesFunction")
    run = load_handler("fetch-invoices")(run, FakeContext())
    targets = get_runtime().store.get_json(run["invoicesKey"])
    assert {t["invoiceNumber"] for t in targets} == emulator.invoice_numbers()

    s3 = local_aws.client("s3")
    bucket = local_aws.stack.output("DocumentBucket")
    key_arn = local_aws.stack.output("DocumentKey", "Arn")
    expected = emulator.expected_documents()
    for target in targets:
        number = target["invoiceNumber"]
        as_function("CreateReportFunction")
        report = load_handler("create-report")({"invoice": target, "runId": "handler-test"}, FakeContext())
        assert report["status"] == "REQUESTED"
        again = load_handler("create-report")({"invoice": target, "runId": "handler-test"}, FakeContext())
        assert again["reportId"] == report["reportId"], "a second call must reuse the reportId in the ledger"
        as_function("CheckReportFunction")
        check = {
            "invoiceNumber": number,
            "reportId": report["reportId"],
            "polls": 0,
            "maxPolls": 50,
            "runId": "handler-test",
        }
        deadline = time.monotonic() + 30
        while (status := load_handler("check-report")(check, FakeContext()))["status"] != "DONE":
            assert status["status"] in ("IN_QUEUE", "IN_PROGRESS") and time.monotonic() < deadline
            check["polls"] = status["polls"]
            time.sleep(0.1)
        as_function("DownloadDocumentFunction")
        stored = load_handler("download-document")(
            {"invoiceNumber": number, "reportDocumentId": status["reportDocumentId"], "runId": "handler-test"},
            FakeContext(),
        )
        assert len(stored["s3Keys"]) == len(expected[number])
        for key, (name, content) in zip(sorted(stored["s3Keys"]), sorted(expected[number]), strict=True):
            assert key.endswith(name)
            head = s3.head_object(Bucket=bucket, Key=key)
            assert head["ServerSideEncryption"] == "aws:kms"
            assert head["SSEKMSKeyId"] == key_arn
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == content

    as_function("CheckPaymentsFunction")
    progress = load_handler("check-payments")(run, FakeContext())
    assert progress["done"] == progress["total"] == len(emulator.invoice_numbers()) and not progress["more"]
    assert sum(progress["statuses"].values()) == progress["total"]
    run = run | {"payments": progress}

    as_function("SummarizeRunFunction")
    note = load_handler("summarize-run")(run, FakeContext())
    summary = note["summary"]
    assert summary["invoices"] == len(targets)
    assert summary["documentsStored"] == sum(len(docs) for docs in expected.values())
    assert summary["failed"] == 0 and summary["pending"] == 0
    assert f"{summary['invoices']} invoices" in note["subject"] and note["subject"].endswith("nothing missing")
    assert len(note["subject"]) <= 100 and summary["outcome"] == "OK"
    for key, kind in ((summary["reportKey"], "text/csv"), (summary["reportHtmlKey"], "text/html")):
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentType"].startswith(kind) and head["SSEKMSKeyId"] == key_arn
    report = s3.get_object(Bucket=bucket, Key=summary["reportKey"])["Body"].read().decode("utf-8-sig")
    rows = report.splitlines()
    aging = [row for row in rows if row.startswith("AGING,")]  # one per currency with unpaid invoices
    assert len(rows) == 1 + summary["lineItems"] + 2 + len(aging)  # header, line items, a blank row, one TOTAL
    assert all(",STORED," in row for row in rows[1 : 1 + summary["lineItems"]])
    assert sum(summary["paymentStatus"].values()) == len(emulator.invoice_numbers())
    stored_summary = json.loads(s3.get_object(Bucket=bucket, Key=summary["summaryKey"])["Body"].read())
    assert stored_summary["documentsStored"] == summary["documentsStored"]


def test_bad_input_is_a_typed_error_naming_the_field(as_function: Callable[[str], None]) -> None:
    as_function("CheckReportFunction")
    event = load_event("check-report")
    del event["reportId"]
    with pytest.raises(InvalidInputError, match="reportId"):
        load_handler("check-report")(event, FakeContext())


def test_backfill_window_must_be_ordered(as_function: Callable[[str], None]) -> None:
    as_function("FetchTransactionsFunction")
    event = load_event("fetch-transactions") | {"request": {"from": "2026-11-02", "to": "2026-11-01"}}
    with pytest.raises(InvalidInputError, match="request"):
        load_handler("fetch-transactions")(event, FakeContext())


def test_malformed_secret_names_the_secret_and_hides_its_value(
    local_aws: LocalAws, as_function: Callable[[str], None]
) -> None:
    assert local_aws.stack is not None
    secret_id = local_aws.stack.output("LwaSecret")
    secrets = local_aws.client("secretsmanager")
    good = secrets.get_secret_value(SecretId=secret_id)["SecretString"]
    secrets.put_secret_value(SecretId=secret_id, SecretString='{"client_id": "amzn1.sekrit-value"}')
    try:
        as_function("FetchTransactionsFunction")
        event = load_event("fetch-transactions") | {
            "request": {
                "from": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
                "to": datetime(2026, 1, 2, tzinfo=UTC).isoformat(),
            }
        }
        with pytest.raises(ConfigurationError) as caught:
            load_handler("fetch-transactions")(event, FakeContext())
        assert secret_id in str(caught.value)
        assert "sekrit" not in str(caught.value)
    finally:
        secrets.put_secret_value(SecretId=secret_id, SecretString=good)


def test_missing_setting_is_a_configuration_error(
    as_function: Callable[[str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    as_function("FetchTransactionsFunction")
    monkeypatch.delenv("DOCUMENT_BUCKET")
    with pytest.raises(ConfigurationError, match="DOCUMENT_BUCKET"):
        load_handler("fetch-transactions")(load_event("fetch-transactions"), FakeContext())


def test_a_window_too_big_for_one_invocation_continues_from_the_page_token(
    emulator: Emulator, local_aws: LocalAws, as_function: Callable[[str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With less time left than the margin, every invocation reads one page and hands the next token on; then
    fetch-invoices, with as little time, asks one batch of 25 line items an invocation, keeping its progress in
    S3, and ends with what one invocation with time to spare lists."""
    as_function("FetchTransactionsFunction")
    event = load_event("fetch-transactions") | {"request": _window(emulator), "runId": "paging-test"}
    run = load_handler("fetch-transactions")(event, FakeContext(timeout_seconds=1))
    invocations = 1
    while run["nextPageToken"]:
        run = load_handler("fetch-transactions")(event | {"resume": run}, FakeContext(timeout_seconds=1))
        invocations += 1
    config = emulator.config
    transactions = emulator.dataset.transactions_between(config.window_start, config.window_end)
    assert invocations >= 2
    assert run["transactionCount"] == len(transactions)
    assert run["lineItemCount"] == _transaction_line_items(emulator)

    as_function("FetchInvoicesFunction")
    ample = load_handler("fetch-invoices")(run, FakeContext())
    assert ample["invoicesKey"] is not None  # one invocation with time to spare does it all
    lookups, short = 1, load_handler("fetch-invoices")(run, FakeContext(timeout_seconds=1))
    while short["invoicesKey"] is None:
        assert short["invoiceLookupKey"]
        short = load_handler("fetch-invoices")(short, FakeContext(timeout_seconds=1))
        lookups += 1
    assert lookups == -(-run["lineItemCount"] // 25) + 1  # and one to list the targets with a budget of its own
    assert ample["invoiceLookupKey"] is None and short["invoiceLookupKey"]
    assert {k: v for k, v in short.items() if k != "invoiceLookupKey"} == {
        k: v for k, v in ample.items() if k != "invoiceLookupKey"
    }


def test_line_items_still_waiting_for_an_invoice_are_asked_about_again_next_run(
    emulator: Emulator, local_aws: LocalAws, as_function: Callable[[str], None]
) -> None:
    """A line item left PENDING by an earlier run is carried into the next run, even outside its window."""
    from abrecon.storage import LineItemState, line_item_pk

    as_function("FetchInvoicesFunction")
    config = emulator.config
    transaction = emulator.dataset.transactions_between(config.window_start, config.window_end)[0]
    item = transaction["transactionLineItems"][0]
    row = {
        "transactionId": transaction["transactionId"],
        "orderId": item["orderId"],
        "orderLineItemId": item["orderLineItemId"],
        "shipmentId": item["shipmentId"],
    }
    pk = line_item_pk(item["orderId"], item["orderLineItemId"], item["shipmentId"])
    runtime = get_runtime()
    runtime.ledger.put_line_items([(pk, LineItemState.PENDING, {"row": row})], "an-earlier-run")
    runtime.store.put_json("runs/carry-test/line-items.json", [])  # this run's window has no transactions
    run = load_event("fetch-invoices") | {
        "runId": "carry-test",
        "lineItemsKey": "runs/carry-test/line-items.json",
        "transactionCount": 0,
        "lineItemCount": 0,
    }

    result = load_handler("fetch-invoices")(run, FakeContext())

    assert result["carriedOver"] == 1 and result["lineItemCount"] == 1
    matches = runtime.store.get_json("runs/carry-test/matches.json")
    assert matches[f"{item['orderId']}|{item['orderLineItemId']}|{item['shipmentId']}"]
    assert runtime.ledger.open_items("LINE") == [], "once its invoice is known the line item leaves the open index"
