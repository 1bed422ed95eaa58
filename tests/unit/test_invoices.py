"""fetch_invoice_details: batching, matching on the triple, deduplication, unmatched items."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from abrecon.invoices import fetch_invoice_details
from abrecon.models import InvoiceDetailsOfOrderLineItem, OrderLineItemKey

API_MODELS = Path(__file__).parents[2].parent / "shared" / "api-models"


def key(n: int, shipment: str | None = None) -> OrderLineItemKey:
    return OrderLineItemKey(orderId=f"O{n}", orderLineItemId=f"L{n}", shipmentId=shipment or f"S{n}")


def detail(number: str, invoice_type: str = "STANDARD", associated: str | None = None) -> dict[str, Any]:
    return {
        "invoiceNumber": number,
        "invoiceDate": "2026-11-02T10:00:00Z",
        "invoiceType": invoice_type,
        "associatedInvoiceNumber": associated,
    }


def entry(k: OrderLineItemKey, *details: dict[str, Any]) -> InvoiceDetailsOfOrderLineItem:
    raw = {"orderLineItem": k.model_dump(), "invoiceDetails": details}
    return InvoiceDetailsOfOrderLineItem.model_validate(raw)


Answer = Callable[[list[OrderLineItemKey]], list[InvoiceDetailsOfOrderLineItem]]


class FakeClient:
    """Answers each batch through ``answer`` and records the batches."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.batches: list[list[OrderLineItemKey]] = []

    def get_invoice_details(self, items: Sequence[OrderLineItemKey]) -> list[InvoiceDetailsOfOrderLineItem]:
        assert len(items) <= 25
        self.batches.append(list(items))
        return self.answer(list(items))


def one_invoice_each_reversed(items: list[OrderLineItemKey]) -> list[InvoiceDetailsOfOrderLineItem]:
    return [entry(k, detail(f"INV-{k.orderId}")) for k in reversed(items)]


def test_batches_of_25_and_matching_out_of_order() -> None:
    keys = [key(n) for n in range(60)]
    client = FakeClient(one_invoice_each_reversed)
    lookup = fetch_invoice_details(client, keys)
    assert [len(b) for b in client.batches] == [25, 25, 10]
    assert [k for b in client.batches for k in b] == keys
    assert lookup.unmatched == []
    for k in keys:
        assert [d.invoiceNumber for d in lookup.by_line_item[k]] == [f"INV-{k.orderId}"]
    assert len(lookup.invoices) == 60


def test_invoice_and_credit_memos_of_one_line_item() -> None:
    k = key(1)
    client = FakeClient(
        lambda items: [
            entry(
                k,
                detail("INV-1"),
                detail("CM-1", "CREDIT_MEMO", "INV-1"),
                detail("CM-2", "CREDIT_MEMO", "INV-1"),
            )
        ]
    )
    lookup = fetch_invoice_details(client, [k])
    assert [d.invoiceNumber for d in lookup.by_line_item[k]] == ["INV-1", "CM-1", "CM-2"]
    assert set(lookup.invoices) == {"INV-1", "CM-1", "CM-2"}
    assert lookup.invoices["CM-2"].is_credit_memo
    assert lookup.invoices["CM-2"].associatedInvoiceNumber == "INV-1"


def test_shared_invoice_is_deduplicated_across_line_items_and_batches() -> None:
    keys = [key(n, shipment="SHIP") for n in range(30)]  # 2 batches, one shipment, one invoice
    client = FakeClient(lambda items: [entry(k, detail("SHARED")) for k in items])
    lookup = fetch_invoice_details(client, keys)
    assert list(lookup.invoices) == ["SHARED"]
    shared = lookup.invoices["SHARED"]
    assert all(lookup.by_line_item[k] == [shared] and lookup.by_line_item[k][0] is shared for k in keys)


def test_same_invoice_listed_twice_for_one_item_appears_once() -> None:
    k = key(1)
    memo = detail("CM", "CREDIT_MEMO")
    client = FakeClient(lambda items: [entry(k, detail("I")), entry(k, detail("I"), memo)])
    lookup = fetch_invoice_details(client, [k])
    assert [d.invoiceNumber for d in lookup.by_line_item[k]] == ["I", "CM"]


def test_unmatched_items_not_answered_or_without_invoices() -> None:
    keys = [key(n) for n in range(4)]

    def answer(items: list[OrderLineItemKey]) -> list[InvoiceDetailsOfOrderLineItem]:
        # key 0: invoice; key 1: empty list (not shipped yet); keys 2, 3: not in the answer.
        return [entry(items[1]), entry(items[0], detail("I0"))]

    lookup = fetch_invoice_details(FakeClient(answer), keys)
    assert list(lookup.by_line_item) == [keys[0]]
    assert lookup.unmatched == [keys[1], keys[2], keys[3]]


def test_answers_for_items_not_asked_for_are_ignored() -> None:
    asked = key(1)
    client = FakeClient(lambda items: [entry(key(99), detail("STRAY")), entry(asked, detail("I1"))])
    lookup = fetch_invoice_details(client, [asked])
    assert list(lookup.invoices) == ["I1"]
    assert key(99) not in lookup.by_line_item


def test_partial_triple_match_is_not_a_match() -> None:
    asked = key(1)
    other_shipment = OrderLineItemKey(orderId="O1", orderLineItemId="L1", shipmentId="OTHER")
    client = FakeClient(lambda items: [entry(other_shipment, detail("WRONG"))])
    lookup = fetch_invoice_details(client, [asked])
    assert lookup.by_line_item == {}
    assert lookup.unmatched == [asked]


def test_padded_ids_in_the_answer_still_match() -> None:
    asked = key(1, shipment="XXXXXXXXX")
    padded = OrderLineItemKey(orderId="O1", orderLineItemId="L1", shipmentId=" XXXXXXXXX")
    lookup = fetch_invoice_details(FakeClient(lambda items: [entry(padded, detail("I1"))]), [asked])
    assert [d.invoiceNumber for d in lookup.by_line_item[asked]] == ["I1"]


def test_repeated_input_keys_are_asked_once() -> None:
    client = FakeClient(one_invoice_each_reversed)
    lookup = fetch_invoice_details(client, [key(1), key(2), key(1)])
    assert client.batches == [[key(1), key(2)]]
    assert lookup.unmatched == []


def test_no_keys_no_calls() -> None:
    client = FakeClient(one_invoice_each_reversed)
    lookup = fetch_invoice_details(client, [])
    assert client.batches == []
    assert (lookup.by_line_item, lookup.invoices, lookup.unmatched) == ({}, {}, [])


def test_blank_invoice_numbers_are_skipped() -> None:
    k = key(1)
    lookup = fetch_invoice_details(FakeClient(lambda items: [entry(k, detail("  "))]), [k])
    assert lookup.invoices == {}
    assert lookup.unmatched == [k]


def test_amazon_sandbox_example() -> None:
    spec = json.loads((API_MODELS / "Reconciliation_API.json").read_text())
    operation = spec["paths"]["/reconciliation/2021-01-08/invoices"]["post"]
    example = operation["responses"]["200"]["x-amzn-api-sandbox"]["static"][0]
    request_items = example["request"]["parameters"]["body"]["value"]["orderLineItems"]
    asked = [OrderLineItemKey.model_validate(i) for i in request_items]
    entries = example["response"]["invoiceDetailsByOrderLineItems"]
    answer = [InvoiceDetailsOfOrderLineItem.model_validate(e) for e in entries]
    lookup = fetch_invoice_details(FakeClient(lambda items: answer), asked)
    first, second = asked  # 503-... was asked first but is answered second
    assert [d.invoiceNumber for d in lookup.by_line_item[first]] == ["JP25EF9G0FUI", "JP22C9G0FUC"]
    assert [d.invoiceNumber for d in lookup.by_line_item[second]] == [
        "JP218PV8HMOI",
        "JP22E0VEIAJGKI",
        "JP21UV8HMOC",
        "JP2SRUXAJGKC",
        "JP2SPSMAJGKC",
    ]
    assert len(lookup.invoices) == 7
    memos = sorted(n for n, d in lookup.invoices.items() if d.is_credit_memo)
    assert memos == ["JP21UV8HMOC", "JP22C9G0FUC", "JP2SPSMAJGKC", "JP2SRUXAJGKC"]
    assert lookup.unmatched == []
