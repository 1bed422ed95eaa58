"""Japan: registration-number check digits, the JP catalog and tax-qualified invoice arithmetic.

What a consistent generated JP invoice (or credit memo) satisfies:

- Prices are tax-inclusive whole yen. A transaction data item's ``totalAmount`` is
  ``unitTaxInclusivePrice * unit + discount`` (discount <= 0); ``unitTaxExclusivePrice`` is
  ``unitTaxInclusivePrice / (1 + rate)`` rounded half up and ``unitTaxAmount`` the difference.
- Fees are charged at the standard 10% rate: invoice-level fees (SHIPPING, GIFTWRAPPING, OTHER)
  and line-level GIFTWRAPPING. A fee contributes its tax-inclusive amount plus its discount
  (<= 0; "free shipping" is a fee with an equal negative discount) to the 10% tax line.
- Per rate: ``inclusiveTotal`` = the items' ``totalAmount`` at that rate + the fee contributions
  at that rate; ``amount`` = floor(inclusiveTotal * rate / (1 + rate)), rounded once per rate
  and invoice as the qualified-invoice rules require; ``exclusiveTotal`` = inclusive - amount.
- ``invoiceTotal`` = the sum of the tax lines' ``inclusiveTotal``. Credit memo totals are positive.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

YEN = Decimal(1)
ZERO = Decimal(0)
STANDARD_RATE = Decimal("0.1")
REDUCED_RATE = Decimal("0.08")
FEE_TYPES = ("SHIPPING", "GIFTWRAPPING", "OTHER")


def corporate_check_digit(base: str) -> int:
    """Check digit of a Japanese corporate number (法人番号) from its 12-digit base.

    9 - (sum of P_n * Q_n mod 9), P_n the n-th digit counted from the least significant one,
    Q_n 1 for odd n and 2 for even n. The check digit is written first: T + check + base.
    """
    if len(base) != 12 or not base.isdigit():
        raise ValueError("a corporate number base has exactly 12 digits")
    total = sum(int(digit) * (1 if n % 2 else 2) for n, digit in enumerate(reversed(base), start=1))
    return 9 - total % 9


def registration_number(base: str) -> str:
    """The qualified-invoice registration number "T" + 13 digits for a 12-digit base."""
    return f"T{corporate_check_digit(base)}{base}"


def is_valid_registration_number(value: str) -> bool:
    """True for "T" + 13 digits whose first digit is the corporate-number check digit."""
    if len(value) != 14 or value[0] != "T" or not value[1:].isdigit():
        return False
    return int(value[1]) == corporate_check_digit(value[2:])


@dataclass(frozen=True)
class Party:
    """An invoice issuer or seller: name as the API writes it, romanised for the PDF, registration number."""

    name: str
    romaji: str
    registration_number: str

    def as_json(self) -> dict[str, Any]:
        """The model's InvoiceIssuerDetail / MerchantDetail."""
        return {"name": self.name, "registrationNumber": self.registration_number}


AMAZON_JAPAN = Party("アマゾンジャパン合同会社", "Amazon Japan G.K.", "T3040001028447")
# Fictional third-party sellers with valid (generated) registration numbers.
JP_SELLERS: tuple[Party, ...] = (
    AMAZON_JAPAN,
    Party("株式会社みどり文具", "Midori Bungu Co., Ltd.", registration_number("010401123456")),
    Party("有限会社ひかり食品", "Hikari Shokuhin Ltd.", registration_number("120002098765")),
    Party("合同会社さくらオフィス", "Sakura Office LLC", registration_number("011103045678")),
    Party("株式会社東洋事務機", "Toyo Jimuki Co., Ltd.", registration_number("180001033210")),
)

# title, UNSPSC, min and max unit price in yen (tax included), consumption tax rate.
# Food and non-alcoholic drinks carry the reduced 8% rate.
JP_PRODUCTS: tuple[tuple[str, str, int, int, Decimal], ...] = (
    ("Kokuyo Campus Notebook B5 Dotted A-Ruled, 5 Pack", "14111500", 480, 820, STANDARD_RATE),
    ("Pilot FriXion Ball Knock 0.5mm Gel Pen, Black, 10 Pack", "44121700", 1480, 2200, STANDARD_RATE),
    ("Plus Copy Paper A4 High White, 2500 Sheets", "14111500", 2380, 3400, STANDARD_RATE),
    ("Canon Genuine Ink BCI-381+380/5MP Multipack", "44103100", 5480, 7800, STANDARD_RATE),
    ("Elecom Wireless BlueLED Mouse, 5 Buttons, Black", "43211700", 1780, 2980, STANDARD_RATE),
    ("Sanwa Supply USB-C Hub, 4 Ports", "43201800", 2480, 3800, STANDARD_RATE),
    ("Kao Attack Zero Laundry Detergent Refill 1620g", "47131800", 880, 1400, STANDARD_RATE),
    ("Scotch Super Strong Packaging Tape, 6 Rolls", "31201500", 1780, 2600, STANDARD_RATE),
    ("Nippon Paper Crecia Kimwipes S-200, 5 Boxes", "14111700", 1280, 1900, STANDARD_RATE),
    ("Suntory Tennensui Mineral Water 2L x 9", "50202300", 880, 1300, REDUCED_RATE),
    ("Ito En Oi Ocha Green Tea 525ml x 24 Bottles", "50201700", 2380, 3300, REDUCED_RATE),
    ("UCC Shokunin no Coffee Drip Assortment, 100 Bags", "50201700", 1980, 2900, REDUCED_RATE),
    ("Calbee Potato Chips Usushio 60g x 12 Bags", "50192100", 1380, 1900, REDUCED_RATE),
    ("Meiji Chocolate Kouka Cacao 72%, 6 Boxes", "50161800", 2580, 3500, REDUCED_RATE),
    ("Nissin Cup Noodle Assortment, 20 Cups", "50192500", 2980, 4200, REDUCED_RATE),
    ("Kikkoman Soy Milk 200ml x 18", "50131700", 1180, 1700, REDUCED_RATE),
)


def included_tax(inclusive: Decimal, rate: Decimal) -> Decimal:
    """Consumption tax contained in a tax-inclusive yen amount, rounded down."""
    return (inclusive * rate / (1 + rate)).to_integral_value(ROUND_DOWN)


@dataclass(frozen=True)
class TaxLine:
    """One ``tax[]`` entry: everything charged at ``rate``."""

    rate: Decimal
    inclusive: Decimal
    exclusive: Decimal
    amount: Decimal


@dataclass(frozen=True)
class JpItem:
    """One transaction data item: ``units`` of one order line item at a tax-inclusive unit price."""

    order_line_item_id: str
    asin: str
    title: str
    rate: Decimal
    units: int
    unit_price: Decimal
    discount: Decimal = ZERO
    gift_wrap: Decimal = ZERO  # per-unit tax-inclusive GIFTWRAPPING fee; 0 means none
    split: int = 0  # units on the first of two apportionment lines; 0 means one line

    @property
    def unit_exclusive(self) -> Decimal:
        """Unit price without tax, rounded half up to the yen."""
        return (self.unit_price / (1 + self.rate)).quantize(YEN, ROUND_HALF_UP)

    @property
    def unit_tax(self) -> Decimal:
        """Tax contained in one unit."""
        return self.unit_price - self.unit_exclusive

    @property
    def total(self) -> Decimal:
        """Tax-inclusive price of all units plus the (negative) discount."""
        return self.unit_price * self.units + self.discount

    @property
    def fee_total(self) -> Decimal:
        """Tax-inclusive line-level gift wrapping (charged at 10%)."""
        return self.gift_wrap * self.units


@dataclass(frozen=True)
class JpFee:
    """An invoice-level fee, charged at 10%; ``discount`` <= 0 (free shipping: discount = -amount)."""

    kind: str
    amount: Decimal
    discount: Decimal = ZERO
    rate: Decimal = STANDARD_RATE

    @property
    def net(self) -> Decimal:
        """What the fee adds to its tax line."""
        return self.amount + self.discount

    @property
    def tax(self) -> Decimal:
        """Tax contained in the fee before discount."""
        return included_tax(self.amount, self.rate)


@dataclass(frozen=True)
class JpInvoice:
    """The tax-qualified part of a JP invoice or credit memo."""

    issuer: Party
    seller: Party
    items: tuple[JpItem, ...]
    fees: tuple[JpFee, ...] = ()
    consolidated_pending: bool = False

    def tax_lines(self) -> list[TaxLine]:
        """One line per rate that has items or a non-zero fee, highest rate first."""
        by_rate: dict[Decimal, Decimal] = {}
        for item in self.items:
            by_rate[item.rate] = by_rate.get(item.rate, ZERO) + item.total
            if item.fee_total:
                by_rate[STANDARD_RATE] = by_rate.get(STANDARD_RATE, ZERO) + item.fee_total
        for fee in self.fees:
            if fee.net:
                by_rate[fee.rate] = by_rate.get(fee.rate, ZERO) + fee.net
        lines = []
        for rate in sorted(by_rate, reverse=True):
            inclusive = by_rate[rate]
            tax = included_tax(inclusive, rate)
            lines.append(TaxLine(rate, inclusive, inclusive - tax, tax))
        return lines

    @property
    def total(self) -> Decimal:
        """invoiceTotal: the sum of the tax lines' inclusive totals."""
        return sum((line.inclusive for line in self.tax_lines()), ZERO)
