"""JP tax-qualified invoice checks: registration numbers and the tax arithmetic, against Amazon's examples,
and hand-made breakages (the emulator's JP data set: tests/integration/test_jp_checks_emulator.py)."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from abrecon.jp_checks import (
    check_invoice,
    check_invoices,
    corporate_check_digit,
    registration_number_problem,
)
from abrecon.models import InvoiceDetail, InvoiceDetailsByOrderLineItemsResponse

SHARED = Path(__file__).parents[2].parent / "shared"


def _tutorial() -> dict[str, Any]:
    text = (SHARED / "reference" / "003_2c91d96ba5059a7e.txt").read_text()
    value, _ = json.JSONDecoder().raw_decode(text[text.index('{\n"invoiceDetailsByOrderLineItems"') :])
    data: dict[str, Any] = value
    return data


TUTORIAL = _tutorial()
TUTORIAL_INVOICE: dict[str, Any] = TUTORIAL["invoiceDetailsByOrderLineItems"][0]["invoiceDetails"][0]
TUTORIAL_MEMO: dict[str, Any] = TUTORIAL["invoiceDetailsByOrderLineItems"][0]["invoiceDetails"][1]


def _consistent() -> dict[str, Any]:
    """The JP guide's invoice with its seller's registration number corrected: everything adds up."""
    invoice = copy.deepcopy(TUTORIAL_INVOICE)
    invoice["sellerInformation"]["registrationNumber"] = "T3040001028447"
    return invoice


def _reasons(raw: dict[str, Any]) -> list[str]:
    return check_invoice(InvoiceDetail.model_validate(raw))


# --- registration numbers -------------------------------------------------------------------------


def test_reference_registration_numbers() -> None:
    # /work/shared/reference/README.md: the issuer's number passes, the seller's fails.
    assert registration_number_problem("T3040001028447") is None
    problem = registration_number_problem("T3040001028123")
    assert problem is not None and "check digit" in problem
    assert corporate_check_digit("040001028447") == 3


@pytest.mark.parametrize(
    "value",
    [
        "3040001028447",  # no T
        "t3040001028447",  # lower-case t
        "T304000102844",  # 12 digits
        "T30400010284470",  # 14 digits
        "T304000102844X",
        "T３０４０００１０２８４４７",  # full-width digits: isdigit() would accept them
        "",
    ],
)
def test_malformed_registration_numbers(value: str) -> None:
    problem = registration_number_problem(value)
    assert problem is not None and "T + 13 digits" in problem


def test_every_check_digit_is_the_only_valid_one() -> None:
    base = "010401123456"
    valid = [d for d in range(10) if registration_number_problem(f"T{d}{base}") is None]
    assert valid == [corporate_check_digit(base)]


# --- Amazon's own examples ---------------------------------------------------------------------------


def test_jp_guide_example_flags_only_the_sellers_registration_number() -> None:
    answer = InvoiceDetailsByOrderLineItemsResponse.model_validate(TUTORIAL)
    result = check_invoices(d for e in answer.invoiceDetailsByOrderLineItems for d in e.invoiceDetails)
    assert result.checked == 2
    assert [(f.invoice_number, f.reason) for f in result.flags] == [
        (
            "JP36BXXXXXXXXX",
            "sellerInformation.registrationNumber T3040001028123 fails the corporate-number check digit (expected 5)",
        )
    ]


def test_credit_memo_of_the_guide_adds_up() -> None:
    assert _reasons(TUTORIAL_MEMO) == []


def test_consistent_invoice_passes_with_varying_precision_and_blank_currencies() -> None:
    # "2910.0" against "2910.0", "882" against "882.0", unitTaxAmount {"currencyCode": "", "amount": "0"}.
    assert _reasons(_consistent()) == []
    raw = _consistent()
    raw["invoiceTotal"] = "2910"
    raw["tax"][0]["inclusiveTotal"]["amount"] = "2910.00"
    raw["fees"][0]["discount"]["amount"] = "-410"
    assert _reasons(raw) == []


def test_two_rates_and_an_item_level_fee_add_up() -> None:
    raw = _consistent()
    raw["transactionDataItems"].append(
        {
            "taxRate": "0.08",
            "unit": 2,
            "unitTaxInclusivePrice": {"currencyCode": "JPY", "amount": "1080"},
            "totalAmount": {"currencyCode": "JPY", "amount": "2060"},
            "discount": {"currencyCode": "JPY", "amount": "-100"},
            "fees": [
                {
                    "feeType": "GIFTWRAPPING",
                    "tax": {"rate": "0.1", "inclusiveTotal": {"currencyCode": "JPY", "amount": "220"}},
                    "discount": {"currencyCode": "", "amount": "0"},
                }
            ],
        }
    )
    raw["tax"][0]["inclusiveTotal"]["amount"] = "3130"  # 2910 + 220 gift wrapping
    raw["tax"][0]["exclusiveTotal"]["amount"] = "2846"
    raw["tax"][0]["amount"]["amount"] = "284"
    raw["tax"].append(
        {
            "rate": "0.08",
            "inclusiveTotal": {"currencyCode": "JPY", "amount": "2060"},
            "exclusiveTotal": {"currencyCode": "JPY", "amount": "1908"},
            "amount": {"currencyCode": "JPY", "amount": "152"},
        }
    )
    raw["invoiceTotal"] = "5190.0"
    assert _reasons(raw) == []


# --- each rule, broken on its own -----------------------------------------------------------------


def test_tax_line_that_does_not_add_up() -> None:
    raw = _consistent()
    raw["tax"][0]["amount"]["amount"] = "265.0"
    assert _reasons(raw) == ["tax line 10%: exclusiveTotal 2646 + amount 265 != inclusiveTotal 2910"]


def test_invoice_total_that_is_not_the_sum_of_the_tax_lines() -> None:
    raw = _consistent()
    raw["invoiceTotal"] = "2920.0"
    assert _reasons(raw) == ["invoiceTotal 2920 != the tax lines' inclusiveTotal sum 2910"]


def test_item_total_that_does_not_match_its_units() -> None:
    raw = _consistent()
    raw["transactionDataItems"][0]["totalAmount"]["amount"] = "2911.0"
    assert _reasons(raw) == [
        "transactionDataItems[0]: totalAmount 2911 != unitTaxInclusivePrice 970 x 3 + discount 0",
        "items and fees at 10% add up to 2911, the tax line's inclusiveTotal is 2910",
    ]


def test_fee_that_is_not_in_the_tax_line() -> None:
    raw = _consistent()
    raw["fees"][0]["discount"]["amount"] = "-400.0"  # shipping no longer free: 10 yen more at 10%
    assert _reasons(raw) == ["items and fees at 10% add up to 2920, the tax line's inclusiveTotal is 2910"]


def test_rate_charged_without_a_tax_line() -> None:
    raw = _consistent()
    raw["transactionDataItems"][0]["taxRate"] = "0.08"
    assert _reasons(raw) == [
        "items and fees at 10% add up to 0, the tax line's inclusiveTotal is 2910",
        "items and fees at 8% add up to 2910, the tax line's inclusiveTotal is 0 (no tax line)",
    ]


def test_several_problems_are_reported_together_in_one_flag() -> None:
    raw = _consistent()
    raw["invoiceIssuer"]["registrationNumber"] = "T304000102844"
    raw["invoiceTotal"] = "1.0"
    result = check_invoices([InvoiceDetail.model_validate(raw)])
    assert result.checked == 1 and result.flagged == 1
    reason = result.flags[0].reason
    assert "invoiceIssuer.registrationNumber 'T304000102844' is not T + 13 digits" in reason
    assert "invoiceTotal 1 != the tax lines' inclusiveTotal sum 2910" in reason


def test_missing_data_is_a_flag_not_a_crash() -> None:
    bare = {"invoiceNumber": "JP1", "invoiceDate": "2024-01-01T00:00:00Z"}
    assert _reasons(bare) == ["invoiceTotal is missing"]
    raw = _consistent()
    raw["tax"][0]["exclusiveTotal"] = None
    raw["fees"][0]["tax"] = None
    raw["transactionDataItems"][0]["totalAmount"] = None
    reasons = _reasons(raw)
    assert "tax line 10% lacks exclusiveTotal or amount" in reasons
    assert "fees[0] (SHIPPING) has no tax rate or no inclusiveTotal" in reasons
    assert "transactionDataItems[0] has no taxRate or no totalAmount" in reasons


def test_absent_registration_numbers_are_tolerated() -> None:
    # Amazon's own examples leave registrationNumber out although the model marks it required.
    raw = _consistent()
    del raw["invoiceIssuer"]["registrationNumber"]
    raw["sellerInformation"]["registrationNumber"] = None
    assert _reasons(raw) == []


def test_amounts_stay_decimal() -> None:
    detail = InvoiceDetail.model_validate(_consistent())
    assert isinstance(detail.invoiceTotal, Decimal)
    assert detail.tax[0].inclusiveTotal is not None and isinstance(detail.tax[0].inclusiveTotal.amount, Decimal)
