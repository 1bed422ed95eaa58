"""Seeded, deterministic Amazon Business data: orders, transactions, invoices, credit memos.

One CHARGE transaction and one invoice per shipment (so the line items of a shipment
share an invoice); about 10% of orders get refunds, each a REFUND transaction plus a
credit memo that points at the shipment's invoice. Every transaction's feedDate lies
inside the configured window.

Some shipments may not have shipped yet (``unshipped_share``, or the missing-shipment-ids fault profile): their
CHARGE is listed with line items that carry no shipmentId (nor shipmentDate, nor the transaction an
invoiceNumber), and no invoice exists for them, until ``ship_unshipped`` ships them; then the same transactions
are listed with their shipment and the invoices exist.

In JP the invoice details also carry the tax-qualified fields (see ``jp`` for their arithmetic);
``jp_inconsistent_invoices`` breaks that many of them on purpose (``inconsistencies``).
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .config import BillTo, EmulatorConfig, RegionProfile
from .faults import fault_rates
from .jp import JP_PRODUCTS, STANDARD_RATE, JpFee, JpInvoice, JpItem, included_tax

STANDARD = "STANDARD"
CREDIT_MEMO = "CREDIT_MEMO"
CENT = Decimal("0.01")
REFUND_SHARE = 0.10
PENDING_CONSOLIDATION_SHARE = 0.1

# Deliberate inconsistencies of jp_inconsistent_invoices, handed out in this order.
JP_DEFECTS = (
    "registration-check-digit",
    "tax-line-arithmetic",
    "invoice-total",
    "item-totals",
    "registration-format",
)

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
_JP_FIRST = ("Haruto", "Yui", "Sota", "Aoi", "Ren", "Hina", "Yuto", "Mei", "Kaito", "Sakura")
_JP_LAST = ("Sato", "Suzuki", "Takahashi", "Tanaka", "Ito", "Watanabe", "Yamamoto", "Nakamura", "Kobayashi", "Kato")
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
    jp: JpItem | None = None  # JP: tax-inclusive yen prices, discount, gift wrapping

    @property
    def key(self) -> LineKey:
        """The (orderId, orderLineItemId, shipmentId) triple."""
        return (self.order_id, self.order_line_item_id, self.shipment_id)

    @property
    def principal(self) -> Decimal:
        """Unit price times quantity (JP: without the tax the price includes)."""
        if self.jp is not None:
            return self.jp.unit_exclusive * self.quantity
        return self.unit_price * self.quantity

    @property
    def tax(self) -> Decimal:
        """Sales tax on principal and shipping (JP: the tax the unit prices include)."""
        if self.jp is not None:
            return self.jp.unit_tax * self.quantity
        return ((self.principal + self.shipping) * self.tax_rate).quantize(CENT, ROUND_HALF_UP)

    @property
    def total(self) -> Decimal:
        """Principal plus shipping plus tax (JP: plus the negative discount)."""
        if self.jp is not None:
            return self.jp.total
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
    jp: JpInvoice | None = None

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
        """Grand total (positive for credit memos too); JP: the invoiceTotal."""
        if self.jp is not None:
            return self.jp.total
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


def format_yen(value: Decimal, rng: random.Random) -> str:
    """Whole yen written with Amazon's varying precision: "882", "2910.0", "970.00"."""
    whole = int(value)
    style = rng.random()
    if style < 0.4:
        return str(whole)
    if style < 0.75:
        return f"{whole}.0"
    return f"{whole}.00"


def format_rate(rate: Decimal) -> str:
    """A tax rate as the JP examples write it: "0.1", "0.08"."""
    return format(rate.normalize(), "f")


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
        self.inconsistencies: dict[str, str] = {}
        self._numbers_by_key: dict[LineKey, list[str]] = {}
        self._rng = random.Random(f"abrecon-emulator/{config.seed}/{config.region}")  # noqa: S311 - test data
        self._used: set[str] = set()
        self._unshipped: set[str] = set()  # shipmentIds of shipments that have not shipped yet
        self._held_details: dict[LineKey, list[Json]] = {}  # their invoice details, served once shipped
        self._generate()
        self._finish()
        self._hold_unshipped()

    @property
    def is_jp(self) -> bool:
        """True when invoices carry the JP tax-qualified fields."""
        return self.profile.issuer is not None

    # ----- public queries -------------------------------------------------------------

    def invoice_numbers(self) -> set[str]:
        """Numbers of all STANDARD invoices (one per shipment in the window that has shipped)."""
        return {
            n for n, doc in self.documents.items() if doc.kind == STANDARD and doc.shipment_id not in self._unshipped
        }

    def unshipped_line_items(self) -> int:
        """Line items listed without a shipmentId because their shipment has not shipped yet."""
        return len(self._held_details)

    def ship_unshipped(self, listed_again_at: datetime | None = None) -> int:
        """Ship every shipment still waiting: its line items are listed with their shipmentId from now on and its
        invoice exists. With ``listed_again_at``, Amazon lists the updated transactions again in the feed of that
        moment (their feedDate moves there). Returns how many line items shipped."""
        shipped = len(self._held_details)
        if listed_again_at is not None:
            self.transactions = sorted(
                (
                    replace(t, feed_date=listed_again_at)
                    if any(line.get("shipmentId") in self._unshipped for line in t.body["transactionLineItems"])
                    else t
                    for t in self.transactions
                ),
                key=lambda t: (t.feed_date, t.body["transactionId"]),
            )
        self.details_by_key.update(self._held_details)
        self._held_details.clear()
        self._unshipped.clear()
        return shipped

    def line_item_count(self) -> int:
        """Distinct (orderId, orderLineItemId, shipmentId) triples in the window's transactions."""
        return len(self.details_by_key)

    def report_documents(self, invoice_id: str, document_type: str | None) -> list[Document]:
        """Documents a GET_AB_INVOICE_PDF report serves; empty means CANCELLED (no data).

        ``document_type`` is None (invoice and credit memos), "Invoice" or "Credits".
        """
        doc = self.documents.get(invoice_id)
        if doc is None or doc.shipment_id in self._unshipped:  # not shipped, so not invoiced yet
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
        """Transactions with start <= feedDate < end, oldest feedDate first (as listed now: see ``_unshipped``)."""
        return [self._as_listed(t.body) for t in self.transactions if start <= t.feed_date < end]

    def _as_listed(self, body: Json) -> Json:
        """The transaction as Amazon lists it: without the shipment of line items that have not shipped yet."""
        lines = body["transactionLineItems"]
        if not any(line.get("shipmentId") in self._unshipped for line in lines):
            return body
        listed = {k: v for k, v in body.items() if k != "invoiceNumber"}  # no invoice exists yet
        listed["transactionLineItems"] = [
            {k: v for k, v in line.items() if k not in ("shipmentId", "shipmentDate")}
            if line.get("shipmentId") in self._unshipped
            else line
            for line in lines
        ]
        return listed

    def _hold_unshipped(self) -> None:
        """Pick the shipments that have not shipped yet (never one with a refund: a refund follows a shipment)."""
        share = max(self.config.unshipped_share, fault_rates(self.config.faults, self.config.seed).unshipped)
        if share <= 0:
            return
        picker = random.Random(f"abrecon-emulator/unshipped/{self.config.seed}")  # noqa: S311 - test data
        candidates = sorted(
            n for n, doc in self.documents.items() if doc.kind == STANDARD and not self.credit_memos_of.get(n)
        )
        chosen = [n for n in candidates if picker.random() < share] or candidates[:1]
        self._unshipped = {self.documents[n].shipment_id for n in chosen}
        for key in [k for k in self.details_by_key if k[2] in self._unshipped]:
            self._held_details[key] = self.details_by_key.pop(key)

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
        if self.is_jp:  # like the JP guide's "JP36BXXXXXXXXX"
            return self._unique(lambda: "JP" + self._chars(alphabet, 12))
        return self._unique(lambda: "-".join(self._chars(alphabet, 4) for _ in range(3)))

    def _amount(self, value: Decimal) -> Json:
        if self.profile.currency == "JPY":
            return {"currencyCode": "JPY", "amount": format_yen(value, self._rng)}
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
        products: list[tuple[str, str, int, int, Decimal | None]] = (
            list(JP_PRODUCTS) if self.is_jp else [(*p, None) for p in _PRODUCTS]
        )
        catalog = [
            (self._unique(lambda: "B0" + self._chars(string.ascii_uppercase + string.digits, 8)), *product)
            for product in products
        ]
        customer = profile.customers[self.config.seed % len(profile.customers)]
        first_names, last_names = (_JP_FIRST, _JP_LAST) if self.is_jp else (_FIRST, _LAST)
        buyers = [
            Buyer(
                id="amzn1.account." + self._chars(string.ascii_uppercase + string.digits, 28),
                name=f"{first} {last}",
                email=f"{first.lower()}.{last.lower()}@{customer.company.split()[0].lower()}.example",
            )
            for first, last in zip(rng.sample(first_names, 4), rng.sample(last_names, 4), strict=True)
        ]
        pending: list[FeedTransaction] = []
        for _ in range(self.config.orders):
            order_id = self._order_id()
            buyer = rng.choice(buyers)
            n_items = rng.randint(1, self.config.max_items_per_order)
            n_ship = min(n_items, rng.randint(1, 2))
            # Every shipment's CHARGE lands in the window; keep room for refunds after it.
            feeds = sorted(self._moment(start, start + (end - start) * 0.9) for _ in range(n_ship))
            ship_dates = [f - timedelta(seconds=rng.randint(600, 6 * 3600)) for f in feeds]
            order_date = ship_dates[0] - timedelta(seconds=rng.randint(3600, 72 * 3600))
            shipment_ids = [self._unique(lambda: "D" + self._chars(alnum, 8)) for _ in range(n_ship)]
            assignment = list(range(n_ship)) + [rng.randrange(n_ship) for _ in range(n_items - n_ship)]
            items_by_ship: list[list[LineItem]] = [[] for _ in range(n_ship)]
            for ship_index in sorted(assignment):
                product = rng.choice(catalog)
                items_by_ship[ship_index].append(self._line_item(order_id, shipment_ids[ship_index], product))
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
                        DocumentLine(i.asin, i.title, i.quantity, i.principal / i.quantity, i.shipping, i.tax)
                        for i in items
                    ),
                    jp=self._jp_invoice(items) if self.is_jp else None,
                )
                self.documents[invoice.number] = invoice
                self.credit_memos_of[invoice.number] = []
                charge = self._charge(invoice, items, buyer, feeds[ship_index], ship_dates[ship_index], customer)
                pending.append(FeedTransaction(feeds[ship_index], charge))
                for item in items:
                    self._numbers_by_key[item.key] = [invoice.number]
                if refunded_order and ship_index == 0:
                    refunded = [items[0]]
                    if len(items) > 1 and rng.random() < 0.4:
                        refunded.append(items[1])
                    for item in refunded:
                        pending.append(self._refund(invoice, item, buyer, feeds[ship_index], charge, customer))
        pending.sort(key=lambda t: (t.feed_date, t.body["transactionId"]))
        self.transactions = pending

    def _line_item(
        self, order_id: str, shipment_id: str, product: tuple[str, str, str, int, int, Decimal | None]
    ) -> LineItem:
        rng = self._rng
        asin, title, unspsc, low, high, jp_rate = product
        line_id = self._unique(lambda: self._digits(rng.choice((13, 14))))
        quantity = rng.choice((1, 1, 1, 2, 2, 3, 5, 10))
        if jp_rate is None:  # NA: prices in cents, sales tax on top, shipping per line
            unit_price = Decimal(rng.randint(low, high)) / 100
            tax_rate = rng.choice(self.profile.tax_rates)
            shipping = rng.choice((Decimal(0), Decimal(0), Decimal("4.99"), Decimal("7.5")))
            jp = None
        else:  # JP: tax-inclusive whole yen; shipping is an invoice-level fee.
            unit_price = Decimal(rng.randint(low, high))
            discount = -Decimal(rng.choice((50, 100, 200, 300))) if rng.random() < 0.15 else Decimal(0)
            gift_wrap = Decimal(rng.choice((110, 220))) if rng.random() < 0.08 else Decimal(0)
            split = rng.randint(1, quantity - 1) if quantity > 1 and rng.random() < 0.2 else 0
            tax_rate, shipping = jp_rate, Decimal(0)
            jp = JpItem(line_id, asin, title, jp_rate, quantity, unit_price, discount, gift_wrap, split)
        return LineItem(
            order_id=order_id,
            order_line_item_id=line_id,
            shipment_id=shipment_id,
            asin=asin,
            title=title,
            unspsc=unspsc,
            quantity=quantity,
            unit_price=unit_price,
            tax_rate=tax_rate,
            shipping=shipping,
            jp=jp,
        )

    def _jp_invoice(self, items: list[LineItem]) -> JpInvoice:
        rng = self._rng
        issuer, sellers = self.profile.issuer, self.profile.sellers
        assert issuer is not None and sellers
        fees: list[JpFee] = []
        shipping = rng.random()
        if shipping < 0.25:  # free shipping: charged, then discounted to zero, as in Amazon's example
            fees.append(JpFee("SHIPPING", Decimal(410), Decimal(-410)))
        elif shipping < 0.5:
            fees.append(JpFee("SHIPPING", Decimal(rng.choice((350, 410, 550)))))
        if rng.random() < 0.08:
            fees.append(JpFee("GIFTWRAPPING", Decimal(330)))
        if rng.random() < 0.05:
            fees.append(JpFee("OTHER", Decimal(330)))  # cash-on-delivery fee
        seller = sellers[0] if rng.random() < 0.6 else rng.choice(sellers[1:])
        return JpInvoice(
            issuer=issuer,
            seller=seller,
            items=_jp_items(items),
            fees=tuple(fees),
            consolidated_pending=rng.random() < PENDING_CONSOLIDATION_SHARE,
        )

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

    def _jp_line_json(self, item: LineItem, ship_date: datetime, invoice: JpInvoice, fees: tuple[JpFee, ...]) -> Json:
        """A JP charge line; the first line of a charge also carries the invoice-level fees."""
        assert item.jp is not None
        body = self._line_json(item, ship_date)
        shipping = sum((f.net for f in fees if f.kind == "SHIPPING"), Decimal(0))
        gift_wrap = item.jp.fee_total + sum((f.net for f in fees if f.kind == "GIFTWRAPPING"), Decimal(0))
        other = sum((f.net for f in fees if f.kind == "OTHER"), Decimal(0))
        body["totalAmount"] = self._amount(item.total + shipping + gift_wrap + other)
        body["shippingCharge"] = self._amount(shipping) if shipping else self._zero_amount()
        if gift_wrap:
            body["giftWrappingCharge"] = self._amount(gift_wrap)
        if item.jp.discount:
            body["discount"] = self._amount(item.jp.discount)
        body["merchantLegalName"] = invoice.seller.name
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
        if invoice.jp is None:
            body["amount"] = self._amount(sum((i.total for i in items), Decimal(0)))
            body["transactionLineItems"] = [self._line_json(i, ship_date) for i in items]
        else:
            # The charge is the invoice total: items plus invoice-level fees (on the first line).
            body["amount"] = self._amount(invoice.total)
            body["transactionLineItems"] = [
                self._jp_line_json(i, ship_date, invoice.jp, invoice.jp.fees if n == 0 else ())
                for n, i in enumerate(items)
            ]
        return body

    def _refund(
        self, invoice: Document, item: LineItem, buyer: Buyer, charge_feed: datetime, charge: Json, customer: BillTo
    ) -> FeedTransaction:
        rng = self._rng
        end = self.config.window_end
        feed = self._moment(charge_feed + (end - charge_feed) * 0.2, end - timedelta(milliseconds=1))
        when = feed - timedelta(seconds=rng.randint(60, 3600))
        quantity = rng.randint(1, item.quantity)
        memo_jp: JpInvoice | None = None
        if invoice.jp is not None and item.jp is not None:
            # A JP credit memo returns whole units at their tax-inclusive price, no fees.
            returned = JpItem(item.order_line_item_id, item.asin, item.title, item.tax_rate, quantity, item.unit_price)
            memo_jp = JpInvoice(issuer=invoice.jp.issuer, seller=invoice.jp.seller, items=(returned,))
            unit_price = returned.unit_exclusive
            principal, tax = unit_price * quantity, returned.unit_tax * quantity
        else:
            unit_price, principal = item.unit_price, item.unit_price * quantity
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
            lines=(DocumentLine(item.asin, item.title, quantity, unit_price, Decimal(0), tax),),
            associated_invoice_number=invoice.number,
            associated_invoice_date=invoice.date,
            jp=memo_jp,
        )
        self.documents[memo.number] = memo
        self.credit_memos_of[invoice.number].append(memo.number)
        self._numbers_by_key[item.key].append(memo.number)
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
        if memo_jp is not None:
            line["merchantLegalName"] = memo_jp.seller.name
        line["shipmentDate"] = charge["transactionLineItems"][0]["shipmentDate"]
        body["transactionLineItems"] = [line]
        return FeedTransaction(feed, body)

    # ----- invoice details ------------------------------------------------------------

    def _finish(self) -> None:
        """Build the invoice details served per line item (JP: after the deliberate breakage)."""
        jp_details: dict[str, Json] = {}
        if self.is_jp:
            defects = self._pick_defects()
            self._break_registration(defects)
            # One dict per document: every line item of an invoice sees the same JSON.
            jp_details = {number: self._jp_detail_json(doc) for number, doc in self.documents.items()}
            self._break_details(defects, jp_details)
            self.inconsistencies = {n: self.inconsistencies[n] for n in defects}  # in the order handed out
        for key, numbers in self._numbers_by_key.items():
            self.details_by_key[key] = [
                jp_details[n] if self.is_jp else self.documents[n].detail_json() for n in numbers
            ]

    def _pick_defects(self) -> dict[str, tuple[str, int]]:
        """invoiceNumber -> (defect, offset) for jp_inconsistent_invoices invoices."""
        count = self.config.jp_inconsistent_invoices
        standard = sorted(self.invoice_numbers())
        if count > len(standard):
            raise ValueError(f"jp_inconsistent_invoices={count} but there are only {len(standard)} invoices")
        # Own stream, so the consistent invoices look the same whatever the knob says.
        picker = random.Random(f"abrecon-emulator/jp-defects/{self.config.seed}")  # noqa: S311 - test data
        chosen = picker.sample(standard, count)
        return {n: (JP_DEFECTS[i % len(JP_DEFECTS)], picker.randint(1, 8)) for i, n in enumerate(chosen)}

    def _break_registration(self, defects: dict[str, tuple[str, int]]) -> None:
        # A wrong seller check digit is on the document itself, so the PDF shows it too.
        for number, (defect, offset) in defects.items():
            doc = self.documents[number]
            if defect != "registration-check-digit" or doc.jp is None:
                continue
            good = doc.jp.seller.registration_number
            bad = f"T{(int(good[1]) + offset) % 10}{good[2:]}"
            seller = replace(doc.jp.seller, registration_number=bad)
            self.documents[number] = replace(doc, jp=replace(doc.jp, seller=seller))
            self.inconsistencies[number] = (
                f"{defect}: sellerInformation.registrationNumber {bad} fails the corporate-number check digit"
            )

    def _break_details(self, defects: dict[str, tuple[str, int]], details: dict[str, Json]) -> None:
        for number, (defect, offset) in defects.items():
            detail = details[number]
            if defect == "tax-line-arithmetic":
                line = detail["tax"][0]
                line["amount"]["amount"] = str(int(Decimal(line["amount"]["amount"])) + offset)
                message = f"tax[0] (rate {line['rate']}): exclusiveTotal + amount != inclusiveTotal"
            elif defect == "invoice-total":
                wrong = int(Decimal(detail["invoiceTotal"])) + 10 * offset
                detail["invoiceTotal"] = str(wrong)
                message = f"invoiceTotal {wrong} != the sum of tax[].inclusiveTotal"
            elif defect == "item-totals":
                item = detail["transactionDataItems"][0]
                item["totalAmount"]["amount"] = str(int(Decimal(item["totalAmount"]["amount"])) + offset)
                message = (
                    f"transactionDataItems[0].totalAmount != unitTaxInclusivePrice * unit + discount, and the "
                    f"items at rate {item['taxRate']} no longer add up to their tax line"
                )
            elif defect == "registration-format":
                wrong = detail["invoiceIssuer"]["registrationNumber"][:-1]
                detail["invoiceIssuer"]["registrationNumber"] = wrong
                message = f"invoiceIssuer.registrationNumber {wrong} is not T + 13 digits"
            else:
                continue
            self.inconsistencies[number] = f"{defect}: {message}"

    def _jp_detail_json(self, doc: Document) -> Json:
        """A JP InvoiceDetail with the tax-qualified fields, keys in the order of Amazon's example."""
        jp = doc.jp
        assert jp is not None
        detail: Json = {"invoiceNumber": doc.number, "invoiceDate": iso_millis(doc.date)}
        if jp.consolidated_pending:
            detail["consolidatedInvoiceDetails"] = {"invoiceNumber": "Pending"}
        detail["invoiceType"] = doc.kind
        if doc.associated_invoice_number is not None and doc.associated_invoice_date is not None:
            detail["associatedInvoiceNumber"] = doc.associated_invoice_number
            detail["associatedInvoiceDate"] = iso_millis(doc.associated_invoice_date)
        detail["invoiceIssuer"] = jp.issuer.as_json()
        detail["billToAddress"] = _address_json(doc.bill_to)
        detail["sellerInformation"] = jp.seller.as_json()
        detail["orderDate"] = iso_seconds(doc.order_date)
        detail["currencyCode"] = doc.currency
        detail["invoiceTotal"] = format_yen(jp.total, self._rng)
        detail["tax"] = [self._tax_json(t.rate, t.inclusive, t.exclusive, t.amount) for t in jp.tax_lines()]
        detail["transactionDataItems"] = [self._jp_item_json(item) for item in jp.items]
        detail["fees"] = [self._jp_fee_json(fee) for fee in jp.fees]
        return detail

    def _tax_json(self, rate: Decimal, inclusive: Decimal, exclusive: Decimal, amount: Decimal) -> Json:
        return {
            "rate": format_rate(rate),
            "inclusiveTotal": self._amount(inclusive),
            "exclusiveTotal": self._amount(exclusive),
            "amount": self._amount(amount),
        }

    def _jp_item_json(self, item: JpItem) -> Json:
        shares = [item.split, item.units - item.split] if item.split else [item.units]
        fees: list[Json] = []
        if item.gift_wrap:
            fee_tax = included_tax(item.gift_wrap, STANDARD_RATE)
            fees.append(
                {
                    "feeType": "GIFTWRAPPING",
                    "tax": self._tax_json(
                        STANDARD_RATE,
                        item.fee_total,
                        (item.gift_wrap - fee_tax) * item.units,
                        fee_tax * item.units,
                    ),
                    "discount": self._zero_amount(),
                    "apportionment": [
                        {
                            "associatedOrderLineItemId": item.order_line_item_id,
                            "units": item.units,
                            "unitTaxExclusiveFee": self._amount(item.gift_wrap - fee_tax),
                            "unitTaxAmount": self._amount(fee_tax),
                        }
                    ],
                }
            )
        return {
            "taxRate": format_rate(item.rate),
            "unit": item.units,
            "asin": item.asin,
            "title": item.title,
            "unitTaxInclusivePrice": self._amount(item.unit_price),
            "unitTaxExclusivePrice": self._amount(item.unit_exclusive),
            "unitTaxAmount": self._amount(item.unit_tax),
            "totalAmount": self._amount(item.total),
            "discount": self._amount(item.discount) if item.discount else self._zero_amount(),
            # Like Amazon's example: unitPrice without tax, taxAmount per unit.
            "apportionment": [
                {
                    "orderLineItemId": item.order_line_item_id,
                    "lineNumber": n,
                    "units": units,
                    "unitPrice": self._amount(item.unit_exclusive),
                    "taxAmount": self._amount(item.unit_tax),
                }
                for n, units in enumerate(shares, start=1)
            ],
            "fees": fees,
        }

    def _jp_fee_json(self, fee: JpFee) -> Json:
        # The fee's tax detail is before its discount, as in Amazon's free-shipping example.
        return {
            "feeType": fee.kind,
            "tax": self._tax_json(fee.rate, fee.amount, fee.amount - fee.tax, fee.tax),
            "discount": self._amount(fee.discount) if fee.discount else self._zero_amount(),
            "apportionment": [
                {"taxExclusiveFee": self._amount(fee.amount - fee.tax), "taxAmount": self._amount(fee.tax)}
            ],
        }


_PREFECTURES = {"Tokyo": "東京都", "Osaka": "大阪府", "Hokkaido": "北海道"}


def _address_json(bill_to: BillTo) -> Json:
    """The bill-to as a PhysicalAddress (addressType is model-required, though Amazon's example omits it)."""
    address: Json = {
        "addressType": "PhysicalAddress",
        "fullName": bill_to.full_name,
        "companyName": bill_to.company,
        "addressLine1": bill_to.address_line1,
        "city": bill_to.city,
        "stateOrRegion": _PREFECTURES.get(bill_to.state, bill_to.state),
        "postalCode": bill_to.postal_code,
        "countryCode": bill_to.country_code,
    }
    if bill_to.phone:
        address["phoneNumber"] = bill_to.phone
    return address


def _jp_items(items: list[LineItem]) -> tuple[JpItem, ...]:
    jp_items = tuple(i.jp for i in items if i.jp is not None)
    if len(jp_items) != len(items):
        raise ValueError("every line item of a JP invoice needs its JP data")
    return jp_items
