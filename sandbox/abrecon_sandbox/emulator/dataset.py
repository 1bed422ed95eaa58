"""Seeded, deterministic Amazon Business data: orders, transactions, invoices, credit memos.

One CHARGE transaction and one invoice per shipment (so the line items of a shipment
share an invoice); about 10% of orders get refunds, each a REFUND transaction plus a
credit memo that points at the shipment's invoice. Every transaction's feedDate lies
inside the configured window.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .config import BillTo, EmulatorConfig, RegionProfile

STANDARD = "STANDARD"
CREDIT_MEMO = "CREDIT_MEMO"
CENT = Decimal("0.01")
REFUND_SHARE = 0.10

LineKey = tuple[str, str, str]  # (orderId, orderLineItemId, shipmentId)
Json = dict[str, Any]

_PRODUCTS: tuple[tuple[str, str, int, int], ...] = (
    # title, UNSPSC, min and max unit price in cents
    ("Ticonderoga Neon Pencils, #2 Pre-Sharpened Wood Pencils, 18-Count", "44121700", 399, 899),
    ("Amazon Basics Multipurpose Copy Printer Paper, 8.5 x 11 Inch, 10 Ream Case", "14111500", 3999, 5899),
    ("Post-it Super Sticky Notes, 3x3 in, 24 Pads, Assorted Colors", "14111800", 1899, 2999),
    ("HP 67XL Black High-yield Ink Cartridge", "44103100", 2999, 4499),
    ("Logitech MK270 Wireless Keyboard and Mouse Combo", "43211700", 2499, 3499),
    ("Sharpie Permanent Markers, Fine Point, Black, 36 Count", "44121700", 1999, 2899),
    ("Swingline Stapler, Commercial Desk Stapler, 20 Sheet Capacity", "44121600", 1299, 1999),
    ("Clorox Disinfecting Wipes Value Pack, 3 Pack, 225 Wipes", "47131800", 1149, 1699),
    ("Bankers Box SmoothMove Classic Moving Boxes, 10 Pack", "24112400", 2499, 3899),
    ("Anker USB-C to USB-C Cable 6 ft, 2 Pack", "26121600", 1199, 1799),
    ("AmazonCommercial Nitrile Exam Gloves, Large, Box of 100", "42132200", 899, 1499),
    ("Scotch Heavy Duty Shipping Packaging Tape, 1.88 in x 54.6 yd, 6 Rolls", "31201500", 1799, 2599),
    ("Dell 27 Inch Monitor, FHD IPS, 100Hz", "43211900", 12999, 18999),
    ("Brother Genuine TN760 High Yield Toner Cartridge", "44103100", 6999, 8999),
    ("Fellowes Powershred 8Cd Cross-Cut Shredder", "44101600", 5999, 7999),
    ("Avery Easy Peel Printable Address Labels, 1 x 2-5/8 in, 3000 Labels", "55121600", 2299, 3299),
    ("Keurig K-Cup Pods, Medium Roast Coffee, 96 Count", "50201700", 3999, 5499),
    ("Duracell Coppertop AA Batteries, 24 Count", "26111700", 1599, 2399),
    ("Rubbermaid Commercial Step-On Trash Can, 18 Gallon", "47121700", 6999, 9999),
    ("Expo Low Odor Dry Erase Markers, Chisel Tip, 12 Count", "44121700", 999, 1599),
)

_FIRST = ("Alex", "Jordan", "Priya", "Sam", "Morgan", "Chen", "Taylor", "Maria", "Omar", "Grace")
_LAST = ("Nguyen", "Patel", "Kim", "Garcia", "Smith", "Okafor", "Rossi", "Larsen", "Cohen", "Silva")
_REFUND_REASONS = ("Customer return", "Item damaged in transit", "Wrong item shipped", "Order cancelled")


@dataclass(frozen=True)
class Buyer:
    """A requisitioner of the business account."""

    id: str
    name: str
    email: str

    def as_json(self) -> Json:
        """The model's Customer object."""
        return {"id": self.id, "name": self.name, "email": self.email}


@dataclass(frozen=True)
class LineItem:
    """One ordered product line, shipped in exactly one shipment."""

    order_id: str
    order_line_item_id: str
    shipment_id: str
    asin: str
    title: str
    unspsc: str
    quantity: int
    unit_price: Decimal
    tax_rate: Decimal
    shipping: Decimal

    @property
    def key(self) -> LineKey:
        """The (orderId, orderLineItemId, shipmentId) triple."""
        return (self.order_id, self.order_line_item_id, self.shipment_id)

    @property
    def principal(self) -> Decimal:
        """Unit price times quantity."""
        return self.unit_price * self.quantity

    @property
    def tax(self) -> Decimal:
        """Sales tax on principal and shipping."""
        return ((self.principal + self.shipping) * self.tax_rate).quantize(CENT, ROUND_HALF_UP)

    @property
    def total(self) -> Decimal:
        """Principal plus shipping plus tax."""
        return self.principal + self.shipping + self.tax


@dataclass(frozen=True)
class DocumentLine:
    """One line printed on an invoice or credit memo."""

    asin: str
    title: str
    quantity: int
    unit_price: Decimal
    shipping: Decimal
    tax: Decimal

    @property
    def amount(self) -> Decimal:
        """Unit price times quantity."""
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class Document:
    """An invoice (STANDARD) or credit memo (CREDIT_MEMO) with what its PDF shows."""

    number: str
    kind: str
    date: datetime
    order_id: str
    order_date: datetime
    shipment_id: str
    bill_to: BillTo
    currency: str
    lines: tuple[DocumentLine, ...]
    associated_invoice_number: str | None = None
    associated_invoice_date: datetime | None = None

    @property
    def file_name(self) -> str:
        """The entry name inside the report's ZIP."""
        prefix = "Invoice" if self.kind == STANDARD else "CreditMemo"
        return f"{prefix}_{self.number}.pdf"

    @property
    def subtotal(self) -> Decimal:
        """Sum of line amounts."""
        return sum((line.amount for line in self.lines), Decimal(0))

    @property
    def shipping(self) -> Decimal:
        """Sum of shipping charges."""
        return sum((line.shipping for line in self.lines), Decimal(0))

    @property
    def tax(self) -> Decimal:
        """Sum of tax."""
        return sum((line.tax for line in self.lines), Decimal(0))

    @property
    def total(self) -> Decimal:
        """Grand total (positive for credit memos too)."""
        return self.subtotal + self.shipping + self.tax

    def detail_json(self) -> Json:
        """This document as a getInvoiceDetailsByOrderLineItems InvoiceDetail (NA shape)."""
        detail: Json = {"invoiceNumber": self.number, "invoiceDate": iso_millis(self.date), "invoiceType": self.kind}
        if self.associated_invoice_number is not None and self.associated_invoice_date is not None:
            detail["associatedInvoiceNumber"] = self.associated_invoice_number
            detail["associatedInvoiceDate"] = iso_millis(self.associated_invoice_date)
        return detail


@dataclass(frozen=True)
class FeedTransaction:
    """A transaction as getTransactions serves it, with its feedDate for filtering."""

    feed_date: datetime
    body: Json


def iso_millis(value: datetime) -> str:
    """ISO 8601 UTC with milliseconds, as Amazon writes most timestamps."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def iso_seconds(value: datetime) -> str:
    """ISO 8601 UTC without fractions."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_amount(value: Decimal, rng: random.Random) -> str:
    """The same value written with Amazon's varying precision: "12.50", "12.5", "13", "13.0"."""
    cents = value.quantize(CENT)
    style = rng.random()
    if style < 0.55:
        return f"{cents:.2f}"
    plain = format(cents.normalize(), "f")
    if style < 0.85 or "." in plain:
        return plain
    return plain + ".0"


class Dataset:
    """All generated data for one (seed, orders, region, window)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.profile: RegionProfile = config.profile
        self.transactions: list[FeedTransaction] = []
        self.documents: dict[str, Document] = {}
        self.credit_memos_of: dict[str, list[str]] = {}
        self.details_by_key: dict[LineKey, list[Json]] = {}
        self._rng = random.Random(f"abrecon-emulator/{config.seed}/{config.region}")  # noqa: S311 - test data
        self._used: set[str] = set()
        self._generate()

    # ----- public queries -------------------------------------------------------------

    def invoice_numbers(self) -> set[str]:
        """Numbers of all STANDARD invoices (one per shipment in the window)."""
        return {n for n, doc in self.documents.items() if doc.kind == STANDARD}

    def line_item_count(self) -> int:
        """Distinct (orderId, orderLineItemId, shipmentId) triples in the window's transactions."""
        return len(self.details_by_key)

    def report_documents(self, invoice_id: str, document_type: str | None) -> list[Document]:
        """Documents a GET_AB_INVOICE_PDF report serves; empty means CANCELLED (no data).

        ``document_type`` is None (invoice and credit memos), "Invoice" or "Credits".
        """
        doc = self.documents.get(invoice_id)
        if doc is None:
            return []
        if doc.kind == CREDIT_MEMO:
            return [] if document_type == "Invoice" else [doc]
        memos = [self.documents[n] for n in self.credit_memos_of.get(invoice_id, [])]
        if document_type == "Invoice":
            return [doc]
        if document_type == "Credits":
            return memos
        return [doc, *memos]

    def transactions_between(self, start: datetime, end: datetime) -> list[Json]:
        """Transactions with start <= feedDate < end, oldest feedDate first."""
        return [t.body for t in self.transactions if start <= t.feed_date < end]

    # ----- generation -----------------------------------------------------------------

    def _unique(self, make: Callable[[], str]) -> str:
        while True:
            value = make()
            if value not in self._used:
                self._used.add(value)
                return value

    def _chars(self, alphabet: str, n: int) -> str:
        return "".join(self._rng.choice(alphabet) for _ in range(n))

    def _digits(self, n: int) -> str:
        return self._chars(string.digits, n)

    def _order_id(self) -> str:
        return self._unique(
            lambda: f"{self._rng.choice(self.profile.order_prefixes)}-{self._digits(7)}-{self._digits(7)}"
        )

    def _invoice_number(self) -> str:
        alphabet = string.ascii_uppercase + string.digits
        return self._unique(lambda: "-".join(self._chars(alphabet, 4) for _ in range(3)))

    def _amount(self, value: Decimal) -> Json:
        return {"currencyCode": self.profile.currency, "amount": format_amount(value, self._rng)}

    def _zero_amount(self) -> Json:
        # Amazon sometimes sends a zero amount with an empty currency code.
        if self._rng.random() < 0.3:
            return {"currencyCode": "", "amount": "0"}
        return self._amount(Decimal(0))

    def _moment(self, start: datetime, end: datetime) -> datetime:
        span = (end - start).total_seconds()
        offset = self._rng.uniform(0, span)
        moment = start + timedelta(seconds=offset)
        return moment.replace(microsecond=(moment.microsecond // 1000) * 1000)

    def _generate(self) -> None:
        rng = self._rng
        profile = self.profile
        start, end = self.config.window_start, self.config.window_end
        alnum = string.ascii_letters + string.digits
        catalog = [
            (self._unique(lambda: "B0" + self._chars(string.ascii_uppercase + string.digits, 8)), *product)
            for product in _PRODUCTS
        ]
        customer = profile.customers[self.config.seed % len(profile.customers)]
        buyers = [
            Buyer(
                id="amzn1.account." + self._chars(string.ascii_uppercase + string.digits, 28),
                name=f"{first} {last}",
                email=f"{first.lower()}.{last.lower()}@{customer.company.split()[0].lower()}.example",
            )
            for first, last in zip(rng.sample(_FIRST, 4), rng.sample(_LAST, 4), strict=True)
        ]
        pending: list[FeedTransaction] = []
        for _ in range(self.config.orders):
            order_id = self._order_id()
            buyer = rng.choice(buyers)
            n_items = rng.randint(1, 4)
            n_ship = min(n_items, rng.randint(1, 2))
            # Every shipment's CHARGE lands in the window; keep room for refunds after it.
            feeds = sorted(self._moment(start, start + (end - start) * 0.9) for _ in range(n_ship))
            ship_dates = [f - timedelta(seconds=rng.randint(600, 6 * 3600)) for f in feeds]
            order_date = ship_dates[0] - timedelta(seconds=rng.randint(3600, 72 * 3600))
            shipment_ids = [self._unique(lambda: "D" + self._chars(alnum, 8)) for _ in range(n_ship)]
            assignment = list(range(n_ship)) + [rng.randrange(n_ship) for _ in range(n_items - n_ship)]
            items_by_ship: list[list[LineItem]] = [[] for _ in range(n_ship)]
            for ship_index in sorted(assignment):
                asin, title, unspsc, low, high = rng.choice(catalog)
                items_by_ship[ship_index].append(
                    LineItem(
                        order_id=order_id,
                        order_line_item_id=self._unique(lambda: self._digits(rng.choice((13, 14)))),
                        shipment_id=shipment_ids[ship_index],
                        asin=asin,
                        title=title,
                        unspsc=unspsc,
                        quantity=rng.choice((1, 1, 1, 2, 2, 3, 5, 10)),
                        unit_price=Decimal(rng.randint(low, high)) / 100,
                        tax_rate=rng.choice(profile.tax_rates),
                        shipping=rng.choice((Decimal(0), Decimal(0), Decimal("4.99"), Decimal("7.5"))),
                    )
                )
            refunded_order = rng.random() < REFUND_SHARE
            for ship_index in range(n_ship):
                items = items_by_ship[ship_index]
                invoice = Document(
                    number=self._invoice_number(),
                    kind=STANDARD,
                    date=ship_dates[ship_index] + timedelta(seconds=rng.randint(5, 900)),
                    order_id=order_id,
                    order_date=order_date,
                    shipment_id=shipment_ids[ship_index],
                    bill_to=customer,
                    currency=profile.currency,
                    lines=tuple(
                        DocumentLine(i.asin, i.title, i.quantity, i.unit_price, i.shipping, i.tax) for i in items
                    ),
                )
                self.documents[invoice.number] = invoice
                self.credit_memos_of[invoice.number] = []
                charge = self._charge(invoice, items, buyer, feeds[ship_index], ship_dates[ship_index], customer)
                pending.append(FeedTransaction(feeds[ship_index], charge))
                for item in items:
                    self.details_by_key[item.key] = [invoice.detail_json()]
                if refunded_order and ship_index == 0:
                    refunded = [items[0]]
                    if len(items) > 1 and rng.random() < 0.4:
                        refunded.append(items[1])
                    for item in refunded:
                        pending.append(self._refund(invoice, item, buyer, feeds[ship_index], charge, customer))
        pending.sort(key=lambda t: (t.feed_date, t.body["transactionId"]))
        self.transactions = pending

    def _line_json(self, item: LineItem, ship_date: datetime) -> Json:
        discount = self._zero_amount()
        body: Json = {
            "totalAmount": self._amount(item.total),
            "principalAmount": self._amount(item.principal),
            "shippingCharge": self._amount(item.shipping) if item.shipping else self._zero_amount(),
            "discount": discount,
            "tax": self._amount(item.tax),
            "unitPrice": self._amount(item.unit_price),
            "taxRate": format(item.tax_rate.normalize(), "f") if item.tax_rate else "0.00",
            "orderId": item.order_id,
            "unspsc": item.unspsc,
            "orderLineItemId": item.order_line_item_id,
            "purchaseOrderNumber": "" if self._rng.random() < 0.5 else f"PO-{self._digits(6)}",
            "asin": item.asin,
            "productTitle": item.title,
            "itemQuantity": item.quantity,
            "shipmentId": item.shipment_id,
            "shipmentDate": iso_seconds(ship_date),
            "merchantLegalName": self.profile.seller_name,
            "businessOrderInfo": {"GL code": self._rng.choice(("535-office", "610-it", "720-facilities"))},
        }
        return body

    def _transaction_head(self, kind: str, feed: datetime, when: datetime, customer: BillTo, buyer: Buyer) -> Json:
        alnum = string.ascii_letters + string.digits
        return {
            "marketplaceId": self.profile.marketplace_id,
            "transactionDate": iso_millis(when),
            "feedDate": iso_millis(feed),
            "transactionType": kind,
            "transactionId": self._unique(lambda: self._chars(alnum, 20)),
            "chargeIdentifier": self._unique(lambda: self._chars(string.ascii_uppercase + string.digits, 9)),
            "shipTaxRate": "0.00",
            "giftWrapTaxRate": "0.00",
            "legalEntityName": customer.company,
            "purchasingCustomerGroupName": self._rng.choice(("Operations", "Finance", "Facilities", "IT")),
            "paymentInstrumentType": "PayByInvoice",
            "buyer": buyer.as_json(),
            "payer": buyer.as_json(),
            "associatedTransactionDetails": [],
        }

    def _charge(
        self,
        invoice: Document,
        items: list[LineItem],
        buyer: Buyer,
        feed: datetime,
        ship_date: datetime,
        customer: BillTo,
    ) -> Json:
        body = self._transaction_head("CHARGE", feed, ship_date, customer, buyer)
        if self._rng.random() < 0.5:  # only some transactions carry the invoice number
            body["invoiceNumber"] = invoice.number
        body["amount"] = self._amount(sum((i.total for i in items), Decimal(0)))
        body["transactionLineItems"] = [self._line_json(i, ship_date) for i in items]
        return body

    def _refund(
        self, invoice: Document, item: LineItem, buyer: Buyer, charge_feed: datetime, charge: Json, customer: BillTo
    ) -> FeedTransaction:
        rng = self._rng
        end = self.config.window_end
        feed = self._moment(charge_feed + (end - charge_feed) * 0.2, end - timedelta(milliseconds=1))
        when = feed - timedelta(seconds=rng.randint(60, 3600))
        quantity = rng.randint(1, item.quantity)
        principal = item.unit_price * quantity
        tax = (principal * item.tax_rate).quantize(CENT, ROUND_HALF_UP)
        memo = Document(
            number=self._invoice_number(),
            kind=CREDIT_MEMO,
            date=when,
            order_id=item.order_id,
            order_date=invoice.order_date,
            shipment_id=item.shipment_id,
            bill_to=invoice.bill_to,
            currency=invoice.currency,
            lines=(DocumentLine(item.asin, item.title, quantity, item.unit_price, Decimal(0), tax),),
            associated_invoice_number=invoice.number,
            associated_invoice_date=invoice.date,
        )
        self.documents[memo.number] = memo
        self.credit_memos_of[invoice.number].append(memo.number)
        self.details_by_key[item.key].append(memo.detail_json())
        body = self._transaction_head("REFUND", feed, when, customer, buyer)
        if rng.random() < 0.5:
            body["invoiceNumber"] = memo.number
        body["associatedTransactionDetails"] = [{"associatedTransactionId": charge["transactionId"]}]
        body["amount"] = self._amount(-memo.total)
        line = self._line_json(item, when)
        line.update(
            {
                "refundReason": rng.choice(_REFUND_REASONS),
                "itemQuantity": quantity,
                "totalAmount": self._amount(-memo.total),
                "principalAmount": self._amount(-principal),
                "shippingCharge": self._zero_amount(),
                "tax": self._amount(-tax),
            }
        )
        line["shipmentDate"] = charge["transactionLineItems"][0]["shipmentDate"]
        body["transactionLineItems"] = [line]
        return FeedTransaction(feed, body)
