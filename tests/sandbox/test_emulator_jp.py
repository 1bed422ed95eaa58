"""The JP region: tax-qualified invoice details, registration numbers, credit memos, PDFs, deliberate breakage."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pypdf
import pytest
from emulator_helpers import Api, all_keys, batches, make_config, raw_download, unpack

from abrecon.models import InvoiceDetailsByOrderLineItemsResponse
from abrecon_sandbox.emulator import Emulator, EmulatorConfig
from abrecon_sandbox.emulator.dataset import JP_DEFECTS, Dataset
from abrecon_sandbox.emulator.jp import (
    JP_PRODUCTS,
    JP_SELLERS,
    REDUCED_RATE,
    corporate_check_digit,
    is_valid_registration_number,
    registration_number,
)

Json = dict[str, Any]


@pytest.fixture(scope="module")
def jp() -> Dataset:
    return Dataset(make_config(region="JP", orders=120))


def details_by_number(dataset: Dataset) -> dict[str, Json]:
    return {d["invoiceNumber"]: d for details in dataset.details_by_key.values() for d in details}


def yen(money: Json) -> Decimal:
    return Decimal(money["amount"])


def problems(detail: Json, invoice_dates: dict[str, str]) -> list[str]:
    """Everything wrong with a JP invoice detail, checked independently of the emulator's code."""
    found = _registration_problems(detail)
    total = Decimal(detail["invoiceTotal"])
    if total <= 0:
        found.append("invoice-total not positive")
    lines = {Decimal(t["rate"]): t for t in detail["tax"]}
    if sum((yen(t["inclusiveTotal"]) for t in detail["tax"]), Decimal(0)) != total:
        found.append("invoice-total")
    charged: dict[Decimal, Decimal] = defaultdict(Decimal)
    for item in detail["transactionDataItems"]:
        found += _item_problems(item)
        charged[Decimal(item["taxRate"])] += yen(item["totalAmount"])
        for fee in item["fees"]:
            charged[Decimal(fee["tax"]["rate"])] += yen(fee["tax"]["inclusiveTotal"]) + yen(fee["discount"])
    for fee in detail["fees"]:
        tax_detail = fee["tax"]
        if yen(tax_detail["exclusiveTotal"]) + yen(tax_detail["amount"]) != yen(tax_detail["inclusiveTotal"]):
            found.append("fee tax")
        charged[Decimal(tax_detail["rate"])] += yen(tax_detail["inclusiveTotal"]) + yen(fee["discount"])
    found += _tax_line_problems(lines, charged)
    if (
        detail["invoiceType"] == "CREDIT_MEMO"
        and invoice_dates.get(detail["associatedInvoiceNumber"]) != (detail["associatedInvoiceDate"])
    ):
        found.append("credit memo points nowhere")
    return found


def _registration_problems(detail: Json) -> list[str]:
    """The issuer's and the seller's registration numbers: T + 13 digits, with the right check digit."""
    found: list[str] = []
    for party in ("invoiceIssuer", "sellerInformation"):
        number = detail[party]["registrationNumber"]
        if not (len(number) == 14 and number[0] == "T" and number[1:].isdigit()):
            found.append(f"registration-format {party}")
        elif not is_valid_registration_number(number):
            found.append(f"registration-check-digit {party}")
    return found


def _item_problems(item: Json) -> list[str]:
    """One transaction data item: its unit amounts and total add up, its apportionment covers its units in order."""
    found: list[str] = []
    price, excl = yen(item["unitTaxInclusivePrice"]), yen(item["unitTaxExclusivePrice"])
    tax = yen(item["unitTaxAmount"])
    if excl + tax != price or yen(item["totalAmount"]) != price * item["unit"] + yen(item["discount"]):
        found.append("item-totals")
    if sum(a["units"] for a in item["apportionment"]) != item["unit"]:
        found.append("apportionment units")
    if [a["lineNumber"] for a in item["apportionment"]] != list(range(1, len(item["apportionment"]) + 1)):
        found.append("apportionment lineNumber")
    return found


def _tax_line_problems(lines: dict[Decimal, Json], charged: dict[Decimal, Decimal]) -> list[str]:
    """The tax lines against what was charged per rate, and each line's own arithmetic and rounding."""
    found: list[str] = []
    charged = {rate: value for rate, value in charged.items() if value}
    if set(charged) != set(lines) or any(yen(lines[r]["inclusiveTotal"]) != v for r, v in charged.items()):
        found.append("item-totals vs tax lines")
    for rate, line in lines.items():
        inclusive, exclusive, amount = (yen(line[k]) for k in ("inclusiveTotal", "exclusiveTotal", "amount"))
        if exclusive + amount != inclusive:
            found.append("tax-line-arithmetic")
        elif amount != (inclusive * rate / (1 + rate)).to_integral_value(rounding="ROUND_DOWN"):
            found.append("tax-line rounding")
    return found


# ----- registration numbers -----------------------------------------------------------------------


def test_check_digit_matches_the_reference_facts() -> None:
    assert is_valid_registration_number("T3040001028447")  # the issuer in Amazon's JP example
    assert not is_valid_registration_number("T3040001028123")  # the seller there: wrong check digit
    assert corporate_check_digit("040001028447") == 3
    assert is_valid_registration_number("T7000012050002")  # National Tax Agency's own corporate number
    for bad in ("3040001028447", "T304000102844", "T30400010284470", "TX040001028447", "T304000102844A"):
        assert not is_valid_registration_number(bad)


def test_every_other_check_digit_fails() -> None:
    for base in ("040001028447", "000012050002", "123456789012", "999999999999", "000000000000"):
        good = registration_number(base)
        assert is_valid_registration_number(good)
        assert [d for d in range(10) if is_valid_registration_number(f"T{d}{base}")] == [int(good[1])]
    with pytest.raises(ValueError):
        corporate_check_digit("12345")


def test_sellers_and_catalog() -> None:
    assert all(is_valid_registration_number(p.registration_number) for p in JP_SELLERS)
    assert {rate for *_, rate in JP_PRODUCTS} == {Decimal("0.1"), REDUCED_RATE}


# ----- the data set -------------------------------------------------------------------------------


def test_every_detail_is_consistent(jp: Dataset) -> None:
    details = details_by_number(jp)
    dates = {n: d["invoiceDate"] for n, d in details.items() if d["invoiceType"] == "STANDARD"}
    assert set(details) == set(jp.documents)
    for number, detail in details.items():
        assert problems(detail, dates) == [], number
        assert detail["currencyCode"] == "JPY"
        assert detail["billToAddress"]["addressType"] == "PhysicalAddress"
        for key in ("invoiceIssuer", "sellerInformation", "orderDate", "invoiceTotal", "tax", "transactionDataItems"):
            assert key in detail, (number, key)
        assert Decimal(detail["invoiceTotal"]) == jp.documents[number].total


def test_dataset_covers_the_interesting_cases(jp: Dataset) -> None:
    details = list(details_by_number(jp).values())
    amounts = [m["amount"] for d in details for t in d["tax"] for m in (t["inclusiveTotal"], t["amount"])]
    assert any("." not in a for a in amounts)
    assert any(a.endswith(".0") for a in amounts) and any(a.endswith(".00") for a in amounts)
    assert {t["rate"] for d in details for t in d["tax"]} == {"0.1", "0.08"}
    assert any(len(d["tax"]) == 2 for d in details)
    assert {f["feeType"] for d in details for f in d["fees"]} == {"SHIPPING", "GIFTWRAPPING", "OTHER"}
    assert any(f["feeType"] == "SHIPPING" and Decimal(f["discount"]["amount"]) < 0 for d in details for f in d["fees"])
    assert any(i["fees"] for d in details for i in d["transactionDataItems"])
    assert any(len(i["apportionment"]) > 1 for d in details for i in d["transactionDataItems"])
    assert any(Decimal(i["discount"]["amount"]) < 0 for d in details for i in d["transactionDataItems"])
    assert any(d.get("consolidatedInvoiceDetails") == {"invoiceNumber": "Pending"} for d in details)
    assert len({d["sellerInformation"]["name"] for d in details}) > 2
    memos = [d for d in details if d["invoiceType"] == "CREDIT_MEMO"]
    assert memos and all(Decimal(m["invoiceTotal"]) > 0 for m in memos)
    standard = [d for d in details if d["invoiceType"] == "STANDARD"]
    assert not any("associatedInvoiceNumber" in d for d in standard)
    # Food and drink are 8%, everything else 10%.
    reduced_titles = {title for title, *_, rate in JP_PRODUCTS if rate == REDUCED_RATE}
    for item in (i for d in details for i in d["transactionDataItems"]):
        assert (item["taxRate"] == "0.08") == (item["title"] in reduced_titles)


def test_credit_memos_point_at_existing_invoices(jp: Dataset) -> None:
    for details in jp.details_by_key.values():
        invoice, *memos = details
        assert invoice["invoiceType"] == "STANDARD"
        for memo in memos:
            assert memo["invoiceType"] == "CREDIT_MEMO"
            assert memo["associatedInvoiceNumber"] == invoice["invoiceNumber"] in jp.invoice_numbers()
            assert memo["associatedInvoiceDate"] == invoice["invoiceDate"]
            assert memo["invoiceDate"] > invoice["invoiceDate"]


def test_transactions_match_the_invoices(jp: Dataset) -> None:
    details = {key: d[0] for key, d in jp.details_by_key.items()}
    for transaction in (t.body for t in jp.transactions):
        assert transaction["marketplaceId"] == "A1VC38T7YXB528"
        lines = transaction["transactionLineItems"]
        amount = Decimal(transaction["amount"]["amount"])
        assert sum((Decimal(line["totalAmount"]["amount"]) for line in lines), Decimal(0)) == amount
        if transaction["transactionType"] == "CHARGE":
            invoice = details[(lines[0]["orderId"], lines[0]["orderLineItemId"], lines[0]["shipmentId"])]
            assert amount == Decimal(invoice["invoiceTotal"])
        else:
            assert amount < 0


def test_the_pipeline_models_read_jp_details(jp: Dataset) -> None:
    triple = ("orderId", "orderLineItemId", "shipmentId")
    answer = {
        "invoiceDetailsByOrderLineItems": [
            {"orderLineItem": dict(zip(triple, key, strict=True)), "invoiceDetails": details}
            for key, details in jp.details_by_key.items()
        ]
    }
    parsed = InvoiceDetailsByOrderLineItemsResponse.model_validate(answer)
    for entry in parsed.invoiceDetailsByOrderLineItems:
        for detail in entry.invoiceDetails:
            assert detail.invoiceTotal == jp.documents[detail.invoiceNumber].total
            inclusive = [t.inclusiveTotal.amount for t in detail.tax if t.inclusiveTotal]
            assert sum(inclusive, Decimal(0)) == detail.invoiceTotal


def test_jp_is_deterministic_and_differs_from_na() -> None:
    first, second = Dataset(make_config(region="JP")), Dataset(make_config(region="JP"))
    assert first.details_by_key == second.details_by_key
    assert [t.body for t in first.transactions] == [t.body for t in second.transactions]
    na = Dataset(make_config())
    assert all(n.startswith("JP") and len(n) == 14 for n in first.documents)
    assert all(n.count("-") == 2 for n in na.documents)
    assert {t.body["marketplaceId"] for t in na.transactions} == {"ATVPDKIKX0DER"}


# ----- deliberate inconsistencies -----------------------------------------------------------------


def test_inconsistent_invoices_are_exactly_the_broken_ones(jp: Dataset) -> None:
    broken = Dataset(make_config(region="JP", orders=120, jp_inconsistent_invoices=7))
    told = broken.inconsistencies
    assert len(told) == 7 and set(told) <= broken.invoice_numbers()
    assert [kind.split(":")[0] for kind in told.values()] == [JP_DEFECTS[i % len(JP_DEFECTS)] for i in range(7)]
    details = details_by_number(broken)
    dates = {n: d["invoiceDate"] for n, d in details.items() if d["invoiceType"] == "STANDARD"}
    flagged = {n for n, d in details.items() if problems(d, dates)}
    assert flagged == set(told)
    for number, description in told.items():
        kind = description.split(":")[0]
        assert any(p.startswith(kind) for p in problems(details[number], dates)), (number, description)
    # Everything else is exactly what the same seed gives without breakage.
    clean = details_by_number(jp)
    assert {n: d for n, d in details.items() if n not in told} == {n: d for n, d in clean.items() if n not in told}


def test_broken_check_digit_is_on_the_pdf_too() -> None:
    with Emulator(make_config(region="JP", orders=10, jp_inconsistent_invoices=1)) as emulator:
        ((number, description),) = emulator.deliberate_inconsistencies().items()
        bad = description.split()[2]
        assert not is_valid_registration_number(bad)
        (_, pdf), *_ = emulator.expected_documents()[number]
        assert bad in pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text()


def test_inconsistency_knob_is_validated() -> None:
    with pytest.raises(ValueError, match="JP"):
        EmulatorConfig(jp_inconsistent_invoices=1)
    with pytest.raises(ValueError, match="negative"):
        EmulatorConfig(region="JP", jp_inconsistent_invoices=-1)
    with pytest.raises(ValueError, match="only"):
        Dataset(make_config(region="JP", orders=1, jp_inconsistent_invoices=5))
    assert Emulator(make_config(region="JP", orders=3)).deliberate_inconsistencies() == {}


# ----- over HTTP ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    with Emulator(make_config(region="JP", orders=20)) as emulator:
        yield Api(emulator)


def test_invoice_details_over_http(api: Api) -> None:
    served: dict[str, Json] = {}
    for batch in batches(all_keys(api.emulator)):
        response = api.invoice_details(batch)
        assert response.status_code == 200
        for entry in response.json()["invoiceDetailsByOrderLineItems"]:
            for detail in entry["invoiceDetails"]:
                served[detail["invoiceNumber"]] = detail
    assert served == details_by_number(api.emulator.dataset)


def test_report_download_in_jp(api: Api) -> None:
    emulator = api.emulator
    invoice = next(n for n, docs in sorted(emulator.expected_documents().items()) if len(docs) > 1)
    report = api.wait(api.report_id(invoice))
    assert report["processingStatus"] == "DONE"
    assert report["marketplaceIds"] == ["A1VC38T7YXB528"]
    document = api.fresh_url(report["reportDocumentId"])
    files = unpack(raw_download(document["url"]).content)
    assert files == emulator.expected_documents()[invoice]
    jp_doc = emulator.dataset.documents[invoice].jp
    assert jp_doc is not None
    for name, content in files:
        text = pypdf.PdfReader(io.BytesIO(content)).pages[0].extract_text()
        assert name.removesuffix(".pdf").split("_")[1] in text
        assert "T3040001028447" in text and jp_doc.seller.registration_number in text
        assert ("Qualified Invoice" if name.startswith("Invoice") else "Qualified Return Invoice") in text
        assert "JPY" in text


def test_jp_accepts_only_its_marketplaces(api: Api) -> None:
    invoice = sorted(api.emulator.invoice_numbers())[0]
    api.marketplace = "ATVPDKIKX0DER"
    try:
        assert api.create_report(invoice).status_code == 400
    finally:
        api.marketplace = "A1VC38T7YXB528"
