"""Checks of Japan's tax-qualified invoice data (適格請求書) as getInvoiceDetailsByOrderLineItems sends it.

What a consistent JP invoice or credit memo satisfies (Amazon's JP guide and its example; all in ``Decimal``,
compared exactly, so "2910.0", "2910.00" and "2910" are the same yen):

- ``invoiceIssuer.registrationNumber`` and ``sellerInformation.registrationNumber``, where present, are "T"
  followed by 13 digits whose first digit is the corporate-number check digit (法人番号, National Tax Agency
  rule). Absent numbers are tolerated: Amazon's own examples leave them out.
- Every tax line: ``exclusiveTotal`` + ``amount`` = ``inclusiveTotal``.
- ``invoiceTotal`` = the sum of the tax lines' ``inclusiveTotal``.
- Every transaction data item: ``totalAmount`` = ``unitTaxInclusivePrice`` x ``unit`` + ``discount`` (<= 0),
  unless the unit price is the zero-with-blank-currency Amazon sends for a value it leaves out.
- Per rate, the items' ``totalAmount`` plus each fee's tax-inclusive amount and its discount (item-level and
  invoice-level fees; "free shipping" is a fee with an equal negative discount) = that rate's ``inclusiveTotal``.

A mismatch is a reason in the result, never an exception: one odd invoice must not stop a run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from abrecon.models import InvoiceDetail, Money, TaxDetail

__all__ = [
    "InvoiceCheckFlag",
    "InvoiceChecks",
    "check_invoice",
    "check_invoices",
    "corporate_check_digit",
    "registration_number_problem",
]

ZERO = Decimal(0)


class InvoiceCheckFlag(BaseModel):
    """An invoice whose tax-qualified data does not add up, and why."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    invoice_number: str = Field(alias="invoiceNumber")
    reason: str


class InvoiceChecks(BaseModel):
    """What a run checked: how many invoices, and the ones flagged (one entry per invoice, reasons joined)."""

    model_config = ConfigDict(populate_by_name=True)

    checked: int = 0
    flags: list[InvoiceCheckFlag] = Field(default_factory=list)

    @property
    def flagged(self) -> int:
        """Invoices with at least one problem."""
        return len(self.flags)


def corporate_check_digit(base: str) -> int:
    """Check digit of a Japanese corporate number from its 12-digit base.

    9 - (sum of P_n x Q_n mod 9), P_n the n-th digit counted from the right, Q_n 1 for odd n and 2 for even n.
    """
    if len(base) != 12 or not base.isascii() or not base.isdigit():
        raise ValueError("a corporate number base has exactly 12 digits")
    total = sum(int(digit) * (1 if n % 2 else 2) for n, digit in enumerate(reversed(base), start=1))
    return 9 - total % 9


def registration_number_problem(value: str) -> str | None:
    """None for a valid qualified-invoice registration number ("T" + check digit + 12 digits), else what is wrong."""
    if len(value) != 14 or value[0] != "T" or not value[1:].isascii() or not value[1:].isdigit():
        return f"{value!r} is not T + 13 digits"
    expected = corporate_check_digit(value[2:])
    if int(value[1]) != expected:
        return f"{value} fails the corporate-number check digit (expected {expected})"
    return None


def check_invoices(details: Iterable[InvoiceDetail]) -> InvoiceChecks:
    """Check every invoice; flags are sorted by invoice number."""
    result = InvoiceChecks()
    for detail in details:
        result.checked += 1
        reasons = check_invoice(detail)
        if reasons:
            result.flags.append(InvoiceCheckFlag(invoice_number=detail.invoiceNumber, reason="; ".join(reasons)))
    result.flags.sort(key=lambda flag: flag.invoice_number)
    return result


def check_invoice(detail: InvoiceDetail) -> list[str]:
    """Every problem found in one invoice's tax-qualified data (empty when it adds up)."""
    reasons: list[str] = []
    for field, party in (("invoiceIssuer", detail.invoiceIssuer), ("sellerInformation", detail.sellerInformation)):
        if party is not None and party.registrationNumber is not None:
            problem = registration_number_problem(party.registrationNumber.strip())
            if problem:
                reasons.append(f"{field}.registrationNumber {problem}")
    lines = _tax_lines(detail.tax, reasons)
    tax_total = sum(lines.values(), ZERO)
    if detail.invoiceTotal is None:
        reasons.append("invoiceTotal is missing")
    elif detail.invoiceTotal != tax_total:
        shown = f"{_yen(tax_total)}" if lines else "0 (no tax lines)"
        reasons.append(f"invoiceTotal {_yen(detail.invoiceTotal)} != the tax lines' inclusiveTotal sum {shown}")
    charged = _charged_by_rate(detail, reasons)
    for rate in sorted(set(lines) | set(charged), reverse=True):
        line, parts = lines.get(rate, ZERO), charged.get(rate, ZERO)
        if line != parts:
            reasons.append(
                f"items and fees at {_percent(rate)} add up to {_yen(parts)}, "
                f"the tax line's inclusiveTotal is {_yen(line)}" + ("" if rate in lines else " (no tax line)")
            )
    return reasons


def _tax_lines(tax: list[TaxDetail], reasons: list[str]) -> dict[Decimal, Decimal]:
    """Inclusive total per rate; incomplete or inconsistent lines are reported."""
    lines: dict[Decimal, Decimal] = {}
    for index, line in enumerate(tax):
        inclusive, exclusive, amount = _amount(line.inclusiveTotal), _amount(line.exclusiveTotal), _amount(line.amount)
        if line.rate is None or inclusive is None:
            reasons.append(f"tax[{index}] has no rate or no inclusiveTotal")
            continue
        label = f"tax line {_percent(line.rate)}"
        if exclusive is None or amount is None:
            reasons.append(f"{label} lacks exclusiveTotal or amount")
        elif exclusive + amount != inclusive:
            reasons.append(
                f"{label}: exclusiveTotal {_yen(exclusive)} + amount {_yen(amount)} != inclusiveTotal {_yen(inclusive)}"
            )
        lines[line.rate] = lines.get(line.rate, ZERO) + inclusive
    return lines


def _charged_by_rate(detail: InvoiceDetail, reasons: list[str]) -> dict[Decimal, Decimal]:
    """What the items and fees charge per rate (tax included, discounts taken off)."""
    charged: dict[Decimal, Decimal] = {}

    def add(rate: Decimal, value: Decimal) -> None:
        charged[rate] = charged.get(rate, ZERO) + value

    for index, item in enumerate(detail.transactionDataItems):
        total, unit_price = _amount(item.totalAmount), _given(item.unitTaxInclusivePrice)
        discount = _amount(item.discount) or ZERO
        if item.taxRate is None or total is None:
            reasons.append(f"transactionDataItems[{index}] has no taxRate or no totalAmount")
            continue
        if unit_price is not None and item.unit is not None and unit_price * item.unit + discount != total:
            reasons.append(
                f"transactionDataItems[{index}]: totalAmount {_yen(total)} != unitTaxInclusivePrice "
                f"{_yen(unit_price)} x {item.unit} + discount {_yen(discount)}"
            )
        add(item.taxRate, total)
        for fee_index, fee in enumerate(item.fees):
            _add_fee(f"transactionDataItems[{index}].fees[{fee_index}]", fee.tax, fee.discount, add, reasons)
    for index, invoice_fee in enumerate(detail.fees):
        _add_fee(f"fees[{index}] ({invoice_fee.feeType})", invoice_fee.tax, invoice_fee.discount, add, reasons)
    return charged


def _add_fee(
    where: str,
    tax: TaxDetail | None,
    discount: Money | None,
    add: Callable[[Decimal, Decimal], None],
    reasons: list[str],
) -> None:
    inclusive = _amount(tax.inclusiveTotal) if tax is not None else None
    if tax is None or tax.rate is None or inclusive is None:
        reasons.append(f"{where} has no tax rate or no inclusiveTotal")
        return
    add(tax.rate, inclusive + (_amount(discount) or ZERO))


def _amount(money: Money | None) -> Decimal | None:
    return None if money is None else money.amount


def _given(money: Money | None) -> Decimal | None:
    """Like _amount, but {"currencyCode": "", "amount": "0"} means "not given": Amazon's examples send that
    for unit prices they leave out (an item of 1751 yen at a unit price of 0)."""
    if money is None or (money.amount == ZERO and money.currencyCode is None):
        return None
    return money.amount


def _yen(value: Decimal) -> str:
    """A yen amount as people write it: no exponent, no trailing ".0"."""
    return format(value.normalize(), "f")


def _percent(rate: Decimal) -> str:
    return format((rate * 100).normalize(), "f") + "%"
