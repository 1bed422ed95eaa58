"""Real, deterministic one-page PDFs for invoices and credit memos, report packing, broken packings for faults."""

from __future__ import annotations

import functools
import gzip
import io
import struct
import threading
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from fpdf import FPDF

from .config import RegionProfile
from .dataset import STANDARD, Document
from .jp import REDUCED_RATE, JpInvoice

_FIXED_DATE = datetime(2024, 1, 1, tzinfo=UTC)
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)


def _money(value: Decimal, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def _latin1(text: str) -> str:
    # The core fonts are Latin-1 only.
    return text.encode("latin-1", "replace").decode("latin-1")


def _new_page(page_format: str, title: str, author: str) -> FPDF:
    """A one-page document with fixed metadata, so the same input always gives the same bytes."""
    pdf = FPDF(format=page_format)
    pdf.set_creation_date(_FIXED_DATE)
    pdf.set_producer("abrecon Amazon Business emulator")
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.set_auto_page_break(auto=False)
    pdf.add_page()
    return pdf


def _header_and_parties(pdf: FPDF, header: Sequence[str], bill_to: Iterable[str], seller: Iterable[str]) -> None:
    """The header lines, then "Bill to" and "Sold by" side by side; leaves the cursor below the longer one."""
    for line in header:
        pdf.cell(0, 6, _latin1(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    top = pdf.get_y()
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(95, 6, "Bill to", new_x="RIGHT", new_y="TOP")
    pdf.cell(95, 6, "Sold by", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for line in bill_to:
        pdf.cell(95, 5, _latin1(line), new_x="LMARGIN", new_y="NEXT")
    bottom = pdf.get_y()
    pdf.set_xy(pdf.l_margin + 95, top + 6)
    for line in seller:
        pdf.cell(95, 5, _latin1(line), new_x="LEFT", new_y="NEXT")
    pdf.set_xy(pdf.l_margin, max(bottom, pdf.get_y()) + 6)


def _document_lines(doc: Document, word: str) -> list[str]:
    """The header lines every document has: its number and date, its order and shipment, the invoice it refunds."""
    lines = [
        f"{word} number: {doc.number}",
        f"{word} date: {doc.date:%Y-%m-%d}",
        f"Order ID: {doc.order_id}    Order date: {doc.order_date:%Y-%m-%d}",
        f"Shipment ID: {doc.shipment_id}",
    ]
    if doc.associated_invoice_number and doc.associated_invoice_date:
        lines.append(f"Original invoice: {doc.associated_invoice_number} of {doc.associated_invoice_date:%Y-%m-%d}")
    return lines


def _shorten(title: str, limit: int) -> str:
    return title if len(title) <= limit else title[: limit - 1] + "..."


def _table(
    pdf: FPDF, widths: Sequence[int], aligns: Sequence[str], titles: Sequence[str], rows: Iterable[Sequence[str]]
) -> None:
    """The line items: a bold header row underlined, then one row each; leaves a gap below."""
    pdf.set_font("Helvetica", "B", 9)
    for width, title, align in zip(widths, titles, aligns, strict=True):
        pdf.cell(width, 7, title, border="B", align=align)
    pdf.ln(7)
    pdf.set_font("Helvetica", size=9)
    for row in rows:
        for width, text, align in zip(widths, row, aligns, strict=True):
            pdf.cell(width, 6, _latin1(text), align=align)
        pdf.ln(6)
    pdf.ln(4)


def render_document(doc: Document, profile: RegionProfile) -> bytes:
    """Render one invoice or credit memo as a one-page PDF (same input, same bytes)."""
    if doc.jp is not None:
        return render_jp_document(doc, doc.jp)
    is_invoice = doc.kind == STANDARD
    pdf = _new_page("letter", f"{'Invoice' if is_invoice else 'Credit Memo'} {doc.number}", profile.seller_name)

    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(0, 10, "Invoice" if is_invoice else "Credit Memo", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    header = _document_lines(doc, "Invoice" if is_invoice else "Credit memo")
    _header_and_parties(pdf, header, doc.bill_to.lines(), (profile.seller_name, *profile.seller_address))

    widths = (26, 92, 14, 28, 30)
    rows = [
        (item.asin, _shorten(item.title, 52), str(item.quantity), f"{item.unit_price:,.2f}", f"{item.amount:,.2f}")
        for item in doc.lines
    ]
    _table(pdf, widths, ("L", "L", "R", "R", "R"), ("ASIN", "Description", "Qty", "Unit price", "Amount"), rows)

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


def _yen(value: Decimal) -> str:
    return f"{int(value):,} JPY"


_FEE_LABELS = {"SHIPPING": "Shipping", "GIFTWRAPPING": "Gift wrapping", "OTHER": "Cash on delivery fee"}


def render_jp_document(doc: Document, jp: JpInvoice) -> bytes:
    """A JP qualified invoice (or return invoice): issuer and registration numbers, totals per tax rate."""
    is_invoice = doc.kind == STANDARD
    title = "Invoice (Qualified Invoice)" if is_invoice else "Credit Memo (Qualified Return Invoice)"
    pdf = _new_page("A4", f"{title} {doc.number}", jp.issuer.romaji)

    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    header = [
        f"Issued by {jp.issuer.romaji}, registration number {jp.issuer.registration_number}",
        *_document_lines(doc, "Invoice" if is_invoice else "Credit memo"),
    ]
    if jp.consolidated_pending:
        header.append("Consolidated invoice: Pending")
    seller = (jp.seller.romaji, f"Registration number: {jp.seller.registration_number}")
    _header_and_parties(pdf, header, doc.bill_to.lines(), seller)

    widths = (24, 84, 12, 28, 12, 30)
    titles = ("ASIN", "Description", "Qty", "Unit (tax incl.)", "Rate", "Amount")
    _table(pdf, widths, ("L", "L", "R", "R", "R", "R"), titles, _jp_rows(jp))

    label_width, value_width = sum(widths[:5]), widths[5]
    for tax_line in jp.tax_lines():
        label = f"{tax_line.rate * 100:.0f}% items: {_yen(tax_line.inclusive)} incl. tax {_yen(tax_line.amount)}"
        pdf.cell(label_width, 6, _latin1(label), align="R")
        pdf.cell(value_width, 6, _yen(tax_line.exclusive) + " excl.", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(label_width, 7, "Invoice total (tax incl.)" if is_invoice else "Total refunded (tax incl.)", align="R")
    pdf.cell(value_width, 7, _yen(jp.total), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("Helvetica", "I", 8)
    if any(item.rate == REDUCED_RATE for item in jp.items):
        pdf.cell(0, 5, "* Reduced tax rate (8%) item.", new_x="LMARGIN", new_y="NEXT")
    note = "Payment terms: Pay by Invoice, end of next month." if is_invoice else "This amount is credited to you."
    pdf.cell(0, 5, note, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _jp_rows(jp: JpInvoice) -> list[tuple[str, str, str, str, str, str]]:
    """Each item with its discount and gift wrapping under it, then each fee with its discount."""
    rows: list[tuple[str, str, str, str, str, str]] = []
    for item in jp.items:
        mark = " *" if item.rate == REDUCED_RATE else ""
        rate = f"{item.rate * 100:.0f}%"
        amount = item.unit_price * item.units
        name = _shorten(item.title, 44) + mark
        rows.append((item.asin, name, str(item.units), f"{int(item.unit_price):,}", rate, _yen(amount)))
        if item.discount:
            rows.append(("", "  Discount", "", "", rate, _yen(item.discount)))
        if item.gift_wrap:
            wrap = f"{int(item.gift_wrap):,}"
            rows.append(("", "  Gift wrapping", str(item.units), wrap, "10%", _yen(item.fee_total)))
    for fee in jp.fees:
        label = _FEE_LABELS.get(fee.kind, fee.kind)
        rows.append(("", label, "", "", "10%", _yen(fee.amount)))
        if fee.discount:
            rows.append(("", f"  {label} discount", "", "", "10%", _yen(fee.discount)))
    return rows


def zip_files(files: Sequence[tuple[str, bytes]]) -> bytes:
    """A deterministic ZIP of (name, content) entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def pack_report(files: Sequence[tuple[str, bytes]]) -> bytes:
    """gzip(zip(files)) as Amazon serves GET_AB_INVOICE_PDF documents; deterministic bytes."""
    return gzip.compress(zip_files(files), mtime=0)


# ----- broken documents (fault injection) -------------------------------------------------

NOT_A_PDF = (
    b"<html><head><title>Document unavailable</title></head>"
    b"<body><h1>We're sorry</h1><p>This document is temporarily unavailable.</p></body></html>\n"
)
TRAVERSAL_NAME = "../../etc/evil.pdf"


def pack_broken(variant: str, files: Sequence[tuple[str, bytes]]) -> bytes:
    """A download broken the bad-documents way: truncated-gzip, corrupt-zip, not-a-pdf or path-traversal."""
    first, rest = files[0], list(files[1:])
    if variant == "truncated-gzip":
        packed = pack_report(files)
        return packed[: len(packed) * 3 // 5]
    if variant == "corrupt-zip":
        return gzip.compress(_corrupt_first_entry(zip_files(files)), mtime=0)
    if variant == "not-a-pdf":  # the entry keeps its .pdf name; the content is an HTML error page
        return pack_report([(first[0], NOT_A_PDF), *rest])
    if variant == "path-traversal":
        return pack_report([(TRAVERSAL_NAME, first[1]), *rest])
    raise ValueError(f"no packing for {variant!r}")


def _corrupt_first_entry(archive: bytes) -> bytes:
    # Flip bytes inside the first entry's compressed data: the zip still opens, reading it fails.
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        info = opened.infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data = bytearray(archive)
    begin = start + info.compress_size // 4
    for index in range(begin, begin + max(1, min(64, info.compress_size // 2))):
        data[index] ^= 0xFF
    return bytes(data)


ZIP_BOMB_INFLATED_BYTES = 1025 * 1024 * 1024  # 1 GiB + 1 MiB
_BOMB_BLOCK = 1024 * 1024
_BOMB_NAME = b"Invoice_bomb.pdf"


def zip_bomb_chunks() -> Iterator[bytes]:
    """A gzip stream (about 1 MB) inflating to ZIP_BOMB_INFLATED_BYTES: a zip entry header, "%PDF-", zeros.

    Produced block by block and never inflated here: after a full flush deflate starts afresh,
    so every 1 MiB zero block compresses to the same bytes, which are simply repeated.
    """
    entry_size = ZIP_BOMB_INFLATED_BYTES - 30 - len(_BOMB_NAME)
    head = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, 0, entry_size, entry_size, len(_BOMB_NAME), 0)
    first = head + _BOMB_NAME + b"%PDF-1.7\n"
    first += bytes(_BOMB_BLOCK - len(first))
    zeros = bytes(_BOMB_BLOCK)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    yield b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # gzip header: deflate, mtime 0, best compression
    yield deflate.compress(first) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(first)
    repeated = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    for _ in range(ZIP_BOMB_INFLATED_BYTES // _BOMB_BLOCK - 1):
        crc = zlib.crc32(zeros, crc)
        yield repeated
    yield deflate.flush() + struct.pack("<II", crc, ZIP_BOMB_INFLATED_BYTES & 0xFFFFFFFF)


@functools.cache
def zip_bomb() -> bytes:
    """The zip bomb's compressed bytes, generated once per process."""
    return b"".join(zip_bomb_chunks())


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
