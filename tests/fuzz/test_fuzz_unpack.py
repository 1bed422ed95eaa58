"""Fuzzing abrecon.unpack.extract_pdfs: whatever the bytes, the answer is a list of safely named PDFs or a
DocumentError; never another exception, a hang, or memory beyond the input plus a fixed headroom.

Inputs: random bytes (with and without a magic prefix), and gzip/zip structures built from strategies: nested,
concatenated, truncated, bit-flipped, mislabelled (a zip named .pdf, a PDF named .zip), many entries, traversal
and control-character names, every zip compression method, declared sizes that lie, and bombs.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib

import pytest
from fuzz_support import FUZZ, MIB, run_bounded
from hypothesis import example, given, settings
from hypothesis import strategies as st

from abrecon.errors import DocumentError
from abrecon.unpack import GZIP_MAGIC, PDF_MAGIC, ZIP_MAGIC, PdfDocument, UnpackLimits, extract_pdfs

pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")]

# Small limits, so a bomb reaches them quickly and the memory bound below is meaningful.
LIMITS = UnpackLimits(max_input_bytes=2 * MIB, max_total_bytes=8 * MIB, max_entries=40)
# Decompression may hold the layers it produced (each at most max_total_bytes) and a copy of each.
HEADROOM = 4 * LIMITS.max_total_bytes + 16 * MIB

PDF_BODY = b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def check(data: bytes, limits: UnpackLimits = LIMITS) -> list[PdfDocument] | None:
    """extract_pdfs under the memory bound; the documents, or None after a DocumentError."""
    documents, error = run_bounded(lambda: extract_pdfs(data, limits), input_size=len(data), headroom=HEADROOM)
    if error is not None:
        if not isinstance(error, DocumentError):
            raise AssertionError(f"{type(error).__name__} escaped extract_pdfs: {error}") from error
        assert str(error), "a DocumentError without a message"
        return None
    assert documents, "extract_pdfs returned no document and raised nothing"
    names = [d.name for d in documents]
    assert len(set(names)) == len(names), names
    for doc in documents:
        assert doc.content.startswith(PDF_MAGIC)
        assert doc.name and len(doc.name) <= 200 + 8, doc.name
        assert "/" not in doc.name and "\\" not in doc.name and not doc.name.startswith("."), doc.name
        assert all(ch.isprintable() for ch in doc.name), doc.name
    assert sum(len(d.content) for d in documents) <= limits.max_total_bytes + len(data)
    return documents


# --- strategies ----------------------------------------------------------------------------------------------------

NAME_PARTS = st.sampled_from(
    ["invoice.pdf", "..", ".", "../../etc/passwd", "/abs/x.pdf", "C:\\win\\x.pdf", "a/b/c.pdf", "\x00x.pdf",
     "\x1b[31m.pdf", "über.pdf", ".hidden.pdf", "CON", "x" * 300 + ".pdf", " ", "a:b*c?.pdf", "dir/", ""]
)  # fmt: skip
names = st.one_of(NAME_PARTS, st.text(max_size=40), st.lists(NAME_PARTS, max_size=4).map("/".join))
pdfs = st.binary(max_size=300).map(lambda b: PDF_BODY + b)
junk = st.binary(max_size=300)
COMPRESSION = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]


def gzip_bytes(payload: bytes, name: str | None, level: int) -> bytes:
    out = io.BytesIO()
    raw_name = (name or "").encode("latin-1", "replace")
    with gzip.GzipFile(filename=raw_name.decode("latin-1"), mode="wb", fileobj=out, compresslevel=level, mtime=0) as f:
        f.write(payload)
    return out.getvalue()


def zip_bytes(entries: list[tuple[str, bytes, int]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, payload, method in entries:
            info = zipfile.ZipInfo(name or "unnamed")
            info.compress_type = method
            archive.writestr(info, payload)
    return out.getvalue()


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """The bytes as made, or truncated, bit-flipped, with trailing junk, or spliced."""
    how = draw(st.sampled_from(["as is", "as is", "truncate", "flip", "trail", "splice"]))
    if not data or how == "as is":
        return data
    at = draw(st.integers(0, len(data) - 1))
    if how == "truncate":
        return data[:at]
    if how == "flip":
        return data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1 :]
    if how == "trail":
        return data + draw(st.binary(min_size=1, max_size=64))
    return data[:at] + draw(st.binary(max_size=64)) + data[at:]


def documents(max_leaves: int = 8) -> st.SearchStrategy[bytes]:
    """A PDF, junk, or gzip/zip (possibly nested) of documents, each layer possibly damaged."""

    def extend(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
        gz = st.builds(gzip_bytes, children, st.none() | names, st.integers(0, 9))
        concatenated = st.lists(gz, min_size=2, max_size=4).map(b"".join)
        entry = st.tuples(names, children, st.sampled_from(COMPRESSION))
        zipped = st.lists(entry, min_size=0, max_size=5).map(zip_bytes)
        return st.one_of(gz, concatenated, zipped).flatmap(mutated)

    return st.recursive(pdfs | junk, extend, max_leaves=max_leaves)


def _with_central_field(data: bytes, offset: int, value: int) -> bytes:
    """Rewrite a 2-byte field of every central directory record (the copy zipfile believes)."""
    out = bytearray(data)
    pos = out.find(b"PK\x01\x02")
    while pos != -1 and pos + offset + 2 <= len(out):
        out[pos + offset : pos + offset + 2] = struct.pack("<H", value)
        pos = out.find(b"PK\x01\x02", pos + 4)
    return bytes(out)


def _with_central_method(data: bytes, method: int) -> bytes:
    return _with_central_field(data, 10, method)


# Regressions found by these tests (fixed in abrecon.unpack):
# an LZMA entry with bad properties raised lzma.LZMAError, which is no OSError;
LZMA_GARBAGE_ZIP = _with_central_method(zip_bytes([("a.pdf", b"\x00" * 64, zipfile.ZIP_STORED)]), zipfile.ZIP_LZMA)
# a name starting with NUL reads as "", on which ZipInfo.is_dir() raised IndexError;
EMPTY_NAME_ZIP = zip_bytes([("\x00x.pdf", PDF_BODY, zipfile.ZIP_STORED)])
# a "version needed to extract" above 6.3 made zipfile.ZipFile() raise NotImplementedError;
FUTURE_VERSION_ZIP = _with_central_field(zip_bytes([("a.pdf", PDF_BODY, zipfile.ZIP_STORED)]), 6, 84)
# an encrypted entry with an empty name: zipfile's "is encrypted" message repr()s it, and that raised IndexError.
ENCRYPTED_EMPTY_NAME_ZIP = _with_central_field(EMPTY_NAME_ZIP, 8, 1)


def _patch_zip_sizes(data: bytes, declared: int, where: str) -> bytes:
    """Rewrite every uncompressed-size field (local headers, central directory, or both)."""
    out = bytearray(data)
    if where in ("local", "both"):
        pos = out.find(ZIP_MAGIC)
        while pos != -1 and pos + 26 <= len(out):
            out[pos + 22 : pos + 26] = struct.pack("<I", declared)
            pos = out.find(ZIP_MAGIC, pos + 4)
    if where in ("central", "both"):
        pos = out.find(b"PK\x01\x02")
        while pos != -1 and pos + 28 <= len(out):
            out[pos + 24 : pos + 28] = struct.pack("<I", declared)
            pos = out.find(b"PK\x01\x02", pos + 4)
    return bytes(out)


# --- properties ----------------------------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=4096))
@example(b"")
@example(GZIP_MAGIC)
@example(ZIP_MAGIC)
@example(PDF_MAGIC)
@example(b"\x1f\x8b\x08\xff" + b"\x00" * 6)  # every gzip header flag set, nothing after
def test_random_bytes(data: bytes) -> None:
    check(data)


@FUZZ
@given(
    st.sampled_from([GZIP_MAGIC, GZIP_MAGIC + b"\x08", ZIP_MAGIC, PDF_MAGIC, b"PK\x05\x06"]), st.binary(max_size=2048)
)
def test_random_bytes_behind_a_magic_number(magic: bytes, rest: bytes) -> None:
    check(magic + rest)


@FUZZ
@given(documents())
@example(LZMA_GARBAGE_ZIP)
@example(EMPTY_NAME_ZIP)
@example(gzip.compress(EMPTY_NAME_ZIP))
@example(FUTURE_VERSION_ZIP)
@example(ENCRYPTED_EMPTY_NAME_ZIP)
def test_built_gzip_and_zip_structures(data: bytes) -> None:
    check(data)


def test_regressions_give_the_expected_answer() -> None:
    assert check(LZMA_GARBAGE_ZIP) is None
    assert check(FUTURE_VERSION_ZIP) is None
    assert check(ENCRYPTED_EMPTY_NAME_ZIP) is None
    found = check(EMPTY_NAME_ZIP)
    assert found is not None and [d.name for d in found] == ["document-1.pdf"]


@FUZZ
@given(st.lists(st.tuples(names, pdfs | junk, st.sampled_from(COMPRESSION)), min_size=1, max_size=8), st.data())
def test_zip_names_and_contents(entries: list[tuple[str, bytes, int]], data: st.DataObject) -> None:
    archive = zip_bytes(entries)
    found = check(archive)
    if found is not None:  # intact, all PDFs: one document per file entry, none lost to a name clash
        # As zipfile.ZipInfo stores a name: cut at the first NUL; a trailing "/" makes a directory.
        files = [e for e in entries if not (e[0] or "unnamed").split("\x00")[0].endswith("/")]
        assert len(found) == len(files)
    check(data.draw(mutated(archive)))


@settings(FUZZ, max_examples=min(FUZZ.max_examples, 40))
@given(st.integers(LIMITS.max_entries - 2, LIMITS.max_entries + 30), st.sampled_from(COMPRESSION))
def test_many_entries(count: int, method: int) -> None:
    archive = zip_bytes([(f"{i}.pdf", PDF_BODY, method) for i in range(count)])
    found = check(archive)
    assert (found is not None) == (count <= LIMITS.max_entries)


@settings(FUZZ, max_examples=min(FUZZ.max_examples, 40))
@given(
    st.integers(1, 3 * LIMITS.max_total_bytes),
    st.sampled_from(["gzip", "gzip-gzip", "zip", "zip-in-gzip", "zip-of-many"]),
)
def test_bombs_stop_at_the_budget(size: int, shape: str) -> None:
    payload = PDF_BODY + b"\x00" * size
    if shape == "gzip":
        data = gzip.compress(payload, 9)
    elif shape == "gzip-gzip":
        data = gzip.compress(gzip.compress(payload, 9), 9)
    elif shape == "zip":
        data = zip_bytes([("bomb.pdf", payload, zipfile.ZIP_DEFLATED)])
    elif shape == "zip-in-gzip":
        data = gzip.compress(zip_bytes([("bomb.pdf", payload, zipfile.ZIP_DEFLATED)]), 9)
    else:
        part = PDF_BODY + b"\x00" * (size // 8)
        data = zip_bytes([(f"{i}.pdf", part, zipfile.ZIP_DEFLATED) for i in range(8)])
    found = check(data)
    produced = len(payload) if shape != "zip-of-many" else 8 * (len(PDF_BODY) + size // 8)
    if produced > LIMITS.max_total_bytes:
        assert found is None


@FUZZ
@given(
    st.lists(st.tuples(names, pdfs, st.sampled_from(COMPRESSION)), min_size=1, max_size=4),
    st.sampled_from([0, 1, 2**31, 2**32 - 1]),
    st.sampled_from(["local", "central", "both"]),
)
def test_zip_declared_sizes_that_lie(entries: list[tuple[str, bytes, int]], declared: int, where: str) -> None:
    check(_patch_zip_sizes(zip_bytes(entries), declared, where))


@FUZZ
@given(
    st.lists(st.tuples(names, pdfs | junk, st.sampled_from(COMPRESSION)), min_size=1, max_size=4),
    st.sampled_from([*COMPRESSION, 1, 6, 9, 98, 99, 0xFFFF]),
)
def test_zip_compression_method_that_lies(entries: list[tuple[str, bytes, int]], method: int) -> None:
    check(_with_central_method(zip_bytes(entries), method))


@FUZZ
@given(
    st.lists(st.tuples(names, pdfs, st.sampled_from(COMPRESSION)), min_size=1, max_size=3),
    st.sampled_from([4, 6, 8, 12, 14, 16, 26, 28, 30, 32]),  # offsets of the 2-byte fields of a central record
    st.integers(0, 0xFFFF),
)
def test_zip_central_directory_fields_that_lie(entries: list[tuple[str, bytes, int]], offset: int, value: int) -> None:
    check(_with_central_field(zip_bytes(entries), offset, value))


@FUZZ
@given(st.binary(max_size=200), st.integers(0, 2**32 - 1))
def test_gzip_declared_size_that_lies(payload: bytes, isize: int) -> None:
    data = bytearray(gzip.compress(PDF_BODY + payload))
    data[-4:] = struct.pack("<I", isize)
    check(bytes(data))


@FUZZ
@given(st.sampled_from(["zip-as-pdf", "pdf-as-zip", "gzip-named-zip", "raw-deflate", "zlib"]), pdfs)
def test_mislabelled(shape: str, pdf: bytes) -> None:
    if shape == "zip-as-pdf":
        data = gzip_bytes(zip_bytes([("a.pdf", pdf, zipfile.ZIP_DEFLATED)]), "invoice.pdf", 6)
    elif shape == "pdf-as-zip":
        data = gzip_bytes(pdf, "invoices.zip", 6)
    elif shape == "gzip-named-zip":
        data = zip_bytes([("inner.zip", gzip.compress(pdf), zipfile.ZIP_STORED)])
    elif shape == "raw-deflate":
        squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
        data = squeeze.compress(pdf) + squeeze.flush()
    else:
        data = zlib.compress(pdf)
    check(data)


@settings(FUZZ, max_examples=min(FUZZ.max_examples, 5))
@given(st.integers(LIMITS.max_entries + 1, LIMITS.max_input_bytes // 20))
@example(LIMITS.max_input_bytes // 20)  # 2 MiB of empty 20-byte members
def test_many_concatenated_gzip_members_end_quickly(members: int) -> None:
    """Each member used to copy the rest of the input: quadratic in the member count (about 3 s for 2 MiB here,
    half an hour for the 50 MiB a Lambda accepts). Now more members than max_entries is a DocumentError."""
    assert check(gzip.compress(PDF_BODY) + gzip.compress(b"") * members) is None
