"""extract_pdfs: formats by magic bytes, nesting, limits, corrupt input and safe names."""

from __future__ import annotations

import builtins
import gzip
import io
import os
import re
import struct
import tempfile
import tracemalloc
import zipfile
from typing import Any

import pytest

from abrecon.errors import DocumentError
from abrecon.unpack import PdfDocument, UnpackLimits, extract_pdfs

MIB = 1024 * 1024


def pdf(tag: str, size: int = 0) -> bytes:
    body = b"%PDF-1.4\n% " + tag.encode() + b"\n"
    return body + b"0" * max(0, size - len(body) - 6) + b"%%EOF\n"


def make_zip(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as archive:
        for name, content in entries:
            info = zipfile.ZipInfo(name, date_time=(2026, 11, 1, 0, 0, 0))
            archive.writestr(info, content, compress_type=method)
    return buf.getvalue()


def gz(data: bytes, filename: str = "") -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename=filename, mode="wb", fileobj=buf, mtime=0) as stream:
        stream.write(data)
    return buf.getvalue()


def names(docs: list[PdfDocument]) -> list[str]:
    return [d.name for d in docs]


# --- formats -------------------------------------------------------------------------------------


def test_bare_pdf() -> None:
    content = pdf("bare")
    (doc,) = extract_pdfs(content)
    assert doc == PdfDocument("document.pdf", content)


def test_gzipped_pdf_takes_name_from_gzip_header() -> None:
    content = pdf("gz")
    assert extract_pdfs(gz(content, filename="INV-1.pdf")) == [PdfDocument("INV-1.pdf", content)]
    assert extract_pdfs(gzip.compress(content)) == [PdfDocument("document.pdf", content)]


def test_zip_of_several_pdfs_takes_every_entry() -> None:
    entries = [("INV-1.pdf", pdf("invoice")), ("CM-1.pdf", pdf("memo 1")), ("CM-2.pdf", pdf("memo 2"))]
    docs = extract_pdfs(make_zip(entries))
    assert [(d.name, d.content) for d in docs] == entries


def test_amazon_packing_zip_then_gzip() -> None:
    entries = [("INV-1.pdf", pdf("invoice")), ("CM-1.pdf", pdf("memo"))]
    docs = extract_pdfs(gz(make_zip(entries), filename="report.zip"))
    assert [(d.name, d.content) for d in docs] == entries


def test_double_gzip_as_after_content_encoding_mixup() -> None:
    entries = [("a.pdf", pdf("a"))]
    assert names(extract_pdfs(gzip.compress(gzip.compress(make_zip(entries))))) == ["a.pdf"]


def test_stored_zip_entries() -> None:
    assert names(extract_pdfs(make_zip([("s.pdf", pdf("s"))], method=zipfile.ZIP_STORED))) == ["s.pdf"]


def test_multi_member_gzip_is_one_stream() -> None:
    content = pdf("two members", size=5000)
    data = gzip.compress(content[:2000]) + gzip.compress(content[2000:])
    assert extract_pdfs(data)[0].content == content


def test_gzip_with_zero_padding_is_accepted() -> None:
    content = pdf("padded")
    assert extract_pdfs(gzip.compress(content) + b"\x00" * 16)[0].content == content


def test_nesting_depth_is_limited() -> None:
    data = pdf("deep")
    for _ in range(4):
        data = gzip.compress(data)
    assert len(extract_pdfs(data)) == 1
    with pytest.raises(DocumentError, match="nested"):
        extract_pdfs(gzip.compress(gzip.compress(data)))


def test_directories_are_skipped() -> None:
    docs = extract_pdfs(make_zip([("invoices/", b""), ("invoices/INV-1.pdf", pdf("x"))]))
    assert names(docs) == ["INV-1.pdf"]


# --- rejects -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"hello world", "neither PDF"),
        (b"%PDF", "neither PDF"),  # too short for the magic
        (b"PK\x05\x06" + b"\x00" * 18, "neither PDF"),  # empty zip: nothing to store
        (b"<html>AccessDenied</html>", "neither PDF"),
        (gzip.compress(b""), "empty after decompression"),
        (gzip.compress(b"just text"), "neither PDF"),
    ],
)
def test_not_a_document(data: bytes, fragment: str) -> None:
    with pytest.raises(DocumentError, match=fragment):
        extract_pdfs(data)


def test_zip_entry_that_is_not_a_pdf_is_named() -> None:
    data = make_zip([("INV-1.pdf", pdf("ok")), ("notes/readme.txt", b"hello")])
    with pytest.raises(DocumentError, match=re.escape("readme.txt")):
        extract_pdfs(data)


def test_zip_entry_labelled_pdf_but_not_pdf() -> None:
    with pytest.raises(DocumentError, match=re.escape("fake.pdf")):
        extract_pdfs(make_zip([("fake.pdf", b"<html>error</html>")]))


def test_nested_archive_inside_zip_is_rejected() -> None:
    with pytest.raises(DocumentError, match=re.escape("inner.zip")):
        extract_pdfs(make_zip([("inner.zip", make_zip([("a.pdf", pdf("a"))]))]))


def test_zip_with_only_directories() -> None:
    with pytest.raises(DocumentError, match="no PDF"):
        extract_pdfs(make_zip([("empty/", b"")]))


@pytest.mark.parametrize("cut", [8, 30, 0.5])
def test_truncated_gzip(cut: float) -> None:
    data = gz(make_zip([("a.pdf", pdf("a", size=20_000))]))
    end = int(len(data) * cut) if isinstance(cut, float) else len(data) - int(cut)
    with pytest.raises(DocumentError, match="gzip"):
        extract_pdfs(data[:end])


def test_corrupt_gzip() -> None:
    data = bytearray(gzip.compress(pdf("x", size=5000)))
    data[20:30] = b"\xff" * 10
    with pytest.raises(DocumentError, match="gzip"):
        extract_pdfs(bytes(data))


def test_trailing_garbage_after_gzip() -> None:
    with pytest.raises(DocumentError, match="after the end"):
        extract_pdfs(gzip.compress(pdf("x")) + b"garbage")


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.1])
def test_truncated_zip(keep: float) -> None:
    data = make_zip([("a.pdf", pdf("a", size=10_000)), ("b.pdf", pdf("b", size=10_000))])
    with pytest.raises(DocumentError, match="zip"):
        extract_pdfs(data[: int(len(data) * keep)])


def test_zip_crc_mismatch() -> None:
    content = pdf("crc", size=2000)
    data = bytearray(make_zip([("a.pdf", content)], method=zipfile.ZIP_STORED))
    at = data.index(content) + 100
    data[at] ^= 0xFF
    with pytest.raises(DocumentError, match=re.escape("a.pdf")):
        extract_pdfs(bytes(data))


def _set_flag_bits(data: bytes, bits: int) -> bytes:
    out = bytearray(data)
    local = out.index(b"PK\x03\x04")
    central = out.index(b"PK\x01\x02")
    for offset in (local + 6, central + 8):
        (flags,) = struct.unpack_from("<H", out, offset)
        struct.pack_into("<H", out, offset, flags | bits)
    return bytes(out)


def test_encrypted_zip_entry() -> None:
    data = _set_flag_bits(make_zip([("secret.pdf", pdf("s"))], method=zipfile.ZIP_STORED), 0x1)
    with pytest.raises(DocumentError, match=re.escape("secret.pdf")):
        extract_pdfs(data)


# --- limits --------------------------------------------------------------------------------------


def test_input_limit() -> None:
    with pytest.raises(DocumentError, match="limit"):
        extract_pdfs(pdf("big", size=2000), UnpackLimits(max_input_bytes=1000))


def test_gzip_bomb_stops_at_limit_without_inflating_everything() -> None:
    bomb = gzip.compress(b"%PDF-" + b"\x00" * (64 * MIB), compresslevel=9)
    assert len(bomb) < MIB
    tracemalloc.start()
    try:
        with pytest.raises(DocumentError, match="more than"):
            extract_pdfs(bomb, UnpackLimits(max_total_bytes=MIB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MIB


def test_zip_bomb_entry_beyond_limit() -> None:
    data = make_zip([("huge.pdf", pdf("huge", size=3 * MIB))])
    assert len(data) < 100_000
    with pytest.raises(DocumentError, match=re.escape("huge.pdf")):
        extract_pdfs(data, UnpackLimits(max_total_bytes=MIB))


def test_limit_counts_all_entries_together() -> None:
    entries = [(f"{n}.pdf", pdf(str(n), size=400_000)) for n in range(3)]
    data = make_zip(entries)
    assert len(extract_pdfs(data, UnpackLimits(max_total_bytes=2 * MIB))) == 3
    with pytest.raises(DocumentError):
        extract_pdfs(data, UnpackLimits(max_total_bytes=MIB))


def _declare_size(data: bytes, size: int) -> bytes:
    """Rewrite the uncompressed size in the central directory (what zipfile trusts)."""
    out = bytearray(data)
    central = out.index(b"PK\x01\x02")
    struct.pack_into("<I", out, central + 24, size)
    return bytes(out)


def test_zip_entry_lying_about_its_size() -> None:
    content = pdf("liar", size=50_000)
    data = _declare_size(make_zip([("liar.pdf", content)]), 100)
    with pytest.raises(DocumentError, match=re.escape("liar.pdf")):
        extract_pdfs(data)


def test_entry_count_limit() -> None:
    data = make_zip([(f"{n}.pdf", pdf(str(n))) for n in range(5)])
    assert len(extract_pdfs(data, UnpackLimits(max_entries=5))) == 5
    with pytest.raises(DocumentError, match="entries"):
        extract_pdfs(data, UnpackLimits(max_entries=4))


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("../../etc/cron.d/evil.pdf", "evil.pdf"),
        ("/absolute/path/abs.pdf", "abs.pdf"),
        ("C:\\Users\\x\\win.pdf", "win.pdf"),
        ("dir\\..\\..\\back.pdf", "back.pdf"),
        ("..", "document-1.pdf"),
        ("x/..", "document-1.pdf"),
        ("請求書 JP218PV8HMOI.pdf", "請求書 JP218PV8HMOI.pdf"),
        ("tab\tand\nnewline.pdf", "tabandnewline.pdf"),
        ("C:drive.pdf", "Cdrive.pdf"),
        (".hidden.pdf", "hidden.pdf"),
    ],
)
def test_entry_names_are_sanitised(entry: str, expected: str) -> None:
    (doc,) = extract_pdfs(make_zip([(entry, pdf("n"))]))
    assert doc.name == expected
    assert "/" not in doc.name and "\\" not in doc.name and doc.name not in ("", ".", "..")


def test_duplicate_names_are_made_unique() -> None:
    entries = [("a/x.pdf", pdf("1")), ("b/x.pdf", pdf("2")), ("x.pdf", pdf("3")), ("x-2.pdf", pdf("4"))]
    data = make_zip(entries)
    docs = extract_pdfs(data)
    assert names(docs) == ["x.pdf", "x-2.pdf", "x-3.pdf", "x-2-2.pdf"]
    assert [d.content for d in docs] == [pdf("1"), pdf("2"), pdf("3"), pdf("4")]


def test_gzip_header_name_is_sanitised() -> None:
    (doc,) = extract_pdfs(gz(pdf("x"), filename="../../x.pdf"))
    assert doc.name == "x.pdf"


def test_repr_does_not_dump_content() -> None:
    doc = PdfDocument("a.pdf", pdf("secret content"))
    assert "secret" not in repr(doc)
    assert "a.pdf" in repr(doc)


# --- memory only ---------------------------------------------------------------------------------


def test_never_touches_the_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    data = gz(make_zip([("a.pdf", pdf("a")), ("b.pdf", pdf("b"))]))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("disk access")

    for module, name in [
        (builtins, "open"),
        (io, "open"),
        (os, "open"),
        (tempfile, "TemporaryFile"),
        (tempfile, "NamedTemporaryFile"),
        (tempfile, "SpooledTemporaryFile"),
        (tempfile, "mkstemp"),
    ]:
        monkeypatch.setattr(module, name, refuse)
    assert names(extract_pdfs(data)) == ["a.pdf", "b.pdf"]
