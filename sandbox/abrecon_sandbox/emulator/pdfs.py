"""Real, deterministic one-page PDFs for invoices and credit memos, and report packing."""

from __future__ import annotations

import gzip
import io
import threading
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from fpdf import FPDF

from .config import RegionProfile
from .dataset import STANDARD, Document

_FIXED_DATE = datetime(2024, 1, 1, tzinfo=UTC)
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)


def _money(value: Decimal, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def _latin1(text: str) -> str:
    # The core fonts are Latin-1 only.
    return text.encode("latin-1", "replace").decode("latin-1")


def render_document(doc: Document, profile: RegionProfile) -> bytes:
    """Render one invoice or credit memo as a one-page PDF (same input, same bytes)."""
    is_invoice = doc.kind == STANDARD
    pdf = FPDF(format="letter")
    pdf.set_creation_date(_FIXED_DATE)
    pdf.set_producer("abrecon Amazon Business emulator")
    pdf.set_title(f"{'Invoice' if is_invoice else 'Credit Memo'} {doc.number}")
    pdf.set_author(profile.seller_name)
    pdf.set_auto_page_break(auto=False)
    pdf.add_page()

    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(0, 10, "Invoice" if is_invoice else "Credit Memo", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    header = [
        f"{'Invoice' if is_invoice else 'Credit memo'} number: {doc.number}",
        f"{'Invoice' if is_invoice else 'Credit memo'} date: {doc.date:%Y-%m-%d}",
        f"Order ID: {doc.order_id}    Order date: {doc.order_date:%Y-%m-%d}",
        f"Shipment ID: {doc.shipment_id}",
    ]
    if doc.associated_invoice_number and doc.associated_invoice_date:
        header.append(f"Original invoice: {doc.associated_invoice_number} of {doc.associated_invoice_date:%Y-%m-%d}")
    for line in header:
        pdf.cell(0, 6, _latin1(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    top = pdf.get_y()
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(95, 6, "Bill to", new_x="RIGHT", new_y="TOP")
    pdf.cell(95, 6, "Sold by", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for line in doc.bill_to.lines():
        pdf.cell(95, 5, _latin1(line), new_x="LMARGIN", new_y="NEXT")
    bottom = pdf.get_y()
    pdf.set_xy(pdf.l_margin + 95, top + 6)
    for line in (profile.seller_name, *profile.seller_address):
        pdf.cell(95, 5, _latin1(line), new_x="LEFT", new_y="NEXT")
    pdf.set_xy(pdf.l_margin, max(bottom, pdf.get_y()) + 6)

    widths = (26, 92, 14, 28, 30)
    aligns = ("L", "L", "R", "R", "R")
    pdf.set_font("Helvetica", "B", 9)
    titles = ("ASIN", "Description", "Qty", "Unit price", "Amount")
    for width, title, align in zip(widths, titles, aligns, strict=True):
        pdf.cell(width, 7, title, border="B", align=align)
    pdf.ln(7)
    pdf.set_font("Helvetica", size=9)
    for item in doc.lines:
        title = item.title if len(item.title) <= 52 else item.title[:51] + "..."
        cells = (item.asin, title, str(item.quantity), f"{item.unit_price:,.2f}", f"{item.amount:,.2f}")
        for width, text, align in zip(widths, cells, aligns, strict=True):
            pdf.cell(width, 6, _latin1(text), align=align)
        pdf.ln(6)
    pdf.ln(4)

    totals = [
        ("Subtotal", doc.subtotal),
        ("Shipping", doc.shipping),
        ("Tax", doc.tax),
        ("Total refunded" if not is_invoice else "Invoice total", doc.total),
    ]
    for index, (label, value) in enumerate(totals):
        last = index == len(totals) - 1
        pdf.set_font("Helvetica", "B" if last else "", 10)
        pdf.cell(sum(widths[:4]), 6, label, align="R")
        pdf.cell(widths[4], 6, _money(value, doc.currency), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_font("Helvetica", "I", 8)
    note = "Payment terms: Pay by Invoice, net 30." if is_invoice else "This amount is credited to your account."
    pdf.cell(0, 5, note, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def pack_report(files: Sequence[tuple[str, bytes]]) -> bytes:
    """gzip(zip(files)) as Amazon serves GET_AB_INVOICE_PDF documents; deterministic bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, content)
    return gzip.compress(buffer.getvalue(), mtime=0)


class PdfCache:
    """Renders each document's PDF once, on first use; thread-safe."""

    def __init__(self, documents: dict[str, Document], profile: RegionProfile) -> None:
        self._documents = documents
        self._profile = profile
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, number: str) -> bytes:
        """The PDF bytes of document ``number`` (KeyError if unknown)."""
        with self._lock:
            cached = self._cache.get(number)
            if cached is None:
                cached = render_document(self._documents[number], self._profile)
                self._cache[number] = cached
            return cached

    def files(self, docs: Sequence[Document]) -> list[tuple[str, bytes]]:
        """(file name, PDF bytes) for each document, in order."""
        return [(doc.file_name, self.get(doc.number)) for doc in docs]
