"""Unpack a downloaded report document into its PDFs, in memory, by magic bytes.

Amazon packs the invoice download twice (ZIP, then gzip) and the compression label has been
wrong in the field, so the format is read from the first bytes, never from a label:
``1f 8b`` gzip (possibly nested), ``PK\\x03\\x04`` zip (every entry must be a PDF), ``%PDF-`` PDF.
Nothing is written to disk: reports hold sensitive data.
"""

from __future__ import annotations

import io
import lzma
import zipfile
import zlib
from dataclasses import dataclass

from abrecon.errors import DocumentError

__all__ = ["GZIP_MAGIC", "PDF_MAGIC", "ZIP_MAGIC", "PdfDocument", "UnpackLimits", "extract_pdfs"]

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
PDF_MAGIC = b"%PDF-"

_MIB = 1024 * 1024
_CHUNK = 64 * 1024
_MAX_NESTING = 4  # gzip in gzip in ... : real documents have one gzip layer
_DEFAULT_NAME = "document.pdf"
_MAX_NAME_CHARS = 200
_GZIP_FEXTRA = 0x04
_GZIP_FNAME = 0x08
# RuntimeError: encrypted entry; NotImplementedError: unsupported compression method; LZMAError (not an
# OSError, unlike bz2's): a corrupt LZMA entry; IndexError: zipfile's repr() of an entry with an empty name
# (in the "is encrypted" message).
_ZIP_READ_ERRORS = (
    zipfile.BadZipFile,
    lzma.LZMAError,
    IndexError,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


@dataclass(frozen=True, repr=False)
class PdfDocument:
    """One PDF: a file name safe to use as the last part of a storage key, and its bytes."""

    name: str
    content: bytes

    def __repr__(self) -> str:
        return f"PdfDocument(name={self.name!r}, {len(self.content)} bytes)"


@dataclass(frozen=True)
class UnpackLimits:
    """Safety limits. ``max_total_bytes`` bounds every byte produced by decompression, all layers
    together, so a gzip or zip bomb stops there. ``max_entries`` bounds zip entries and gzip members alike."""

    max_input_bytes: int = 50 * _MIB
    max_total_bytes: int = 200 * _MIB
    max_entries: int = 200


class _Budget:
    """Bytes that decompression may still produce."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, count: int) -> None:
        self.used += count
        if self.used > self.limit:
            raise DocumentError(f"document unpacks to more than {self.limit} bytes")


def extract_pdfs(data: bytes, limits: UnpackLimits = UnpackLimits()) -> list[PdfDocument]:
    """All PDFs in ``data`` (a PDF, a zip of PDFs, or either gzipped, possibly more than once).

    Raises DocumentError for empty, truncated or corrupt input, a zip entry that is not a PDF,
    anything else that is not gzip/zip/PDF, and input or output beyond ``limits``.
    Entry names are reduced to a safe base name (no directories, no '..'), unique in the result.
    """
    if not data:
        raise DocumentError("document is empty")
    if len(data) > limits.max_input_bytes:
        raise DocumentError(f"document is {len(data)} bytes, more than the limit of {limits.max_input_bytes}")
    documents = _extract(bytes(data), _DEFAULT_NAME, limits, _Budget(limits.max_total_bytes), depth=0)
    return _with_unique_names(documents)


def _extract(data: bytes, name: str, limits: UnpackLimits, budget: _Budget, depth: int) -> list[PdfDocument]:
    if depth > _MAX_NESTING:
        raise DocumentError("document is nested too deeply")
    if data.startswith(PDF_MAGIC):
        return [PdfDocument(name, data)]
    if data.startswith(GZIP_MAGIC):
        inner = _gunzip(data, budget, limits.max_entries)
        inner_name = _gzip_original_name(data) or name
        return _extract(inner, inner_name, limits, budget, depth + 1)
    if data.startswith(ZIP_MAGIC):
        return _unzip(data, limits, budget)
    if not data:
        raise DocumentError("document is empty after decompression")
    raise DocumentError(f"document is neither PDF, gzip nor zip (starts with {data[:8].hex(' ')})")


def _gunzip(data: bytes, budget: _Budget, max_members: int) -> bytes:
    """Decompress every gzip member, a bounded chunk at a time, so a bomb stops at the budget."""
    out = bytearray()
    member = data
    members = 0
    while True:
        # Each member copies the rest of the input (unused_data): without a cap, many tiny members are quadratic.
        members += 1
        if members > max_members:
            raise DocumentError(f"gzip stream has more than {max_members} members")
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # 16+: expect a gzip header and trailer
        pending = member
        try:
            while not inflater.eof:
                chunk = inflater.decompress(pending, _CHUNK)
                pending = inflater.unconsumed_tail
                if chunk:
                    budget.take(len(chunk))
                    out += chunk
                elif not pending and not inflater.eof:
                    # All input consumed, no more output, and no end-of-stream marker.
                    raise DocumentError("gzip data is truncated")
        except zlib.error as exc:
            raise DocumentError(f"gzip data is corrupt ({exc})") from None
        rest = inflater.unused_data
        if rest.startswith(GZIP_MAGIC):
            member = rest  # concatenated gzip members form one stream
            continue
        if rest.strip(b"\x00"):
            raise DocumentError("unexpected data after the end of the gzip stream")
        return bytes(out)


def _gzip_original_name(data: bytes) -> str | None:
    """The FNAME field of the gzip header, if any (used as the name of a gzipped bare PDF)."""
    try:
        flags = data[3]
        pos = 10
        if flags & _GZIP_FEXTRA:
            pos += 2 + int.from_bytes(data[10:12], "little")
        if not flags & _GZIP_FNAME:
            return None
        end = data.index(b"\x00", pos)
        raw = data[pos:end].decode("latin-1")  # RFC 1952: ISO 8859-1
    except (IndexError, ValueError):
        return None
    name = _safe_name(raw)
    if name and name.lower().endswith((".zip", ".gz")):
        return None
    return name


def _unzip(data: bytes, limits: UnpackLimits, budget: _Budget) -> list[PdfDocument]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (*_ZIP_READ_ERRORS, zipfile.LargeZipFile) as exc:  # NotImplementedError: "zip file version 8.4"
        raise DocumentError(f"zip archive is corrupt or truncated ({exc})") from None
    documents: list[PdfDocument] = []
    with archive:
        entries = archive.infolist()
        if len(entries) > limits.max_entries:
            limit = limits.max_entries
            raise DocumentError(f"zip archive has {len(entries)} entries, more than the limit of {limit}")
        for index, info in enumerate(entries, start=1):
            # Not info.is_dir(): it raises IndexError on an empty name (a name starting with NUL reads as "").
            if info.filename.endswith("/"):
                continue
            label = _safe_name(info.filename) or f"entry {index}"
            content = _read_entry(archive, info, label, budget)
            if not content.startswith(PDF_MAGIC):
                raise DocumentError(f"zip entry {label!r} is not a PDF")
            documents.append(PdfDocument(_safe_name(info.filename) or f"document-{index}.pdf", content))
    if not documents:
        raise DocumentError("zip archive holds no PDF")
    return documents


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, budget: _Budget) -> bytes:
    # The declared size may lie; it can only make us stop earlier, never read more.
    if info.file_size > budget.limit - budget.used:
        raise DocumentError(f"zip entry {label!r} declares {info.file_size} bytes, beyond the unpack limit")
    out = bytearray()
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                budget.take(len(chunk))
                out += chunk
    except DocumentError:
        raise
    except _ZIP_READ_ERRORS as e:
        raise DocumentError(f"zip entry {label!r} cannot be read ({type(e).__name__}: {e})") from None
    return bytes(out)


def _safe_name(raw: str) -> str:
    """Base name only: no directories, no drive letters, no '..', no control characters."""
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable() and ch not in ':*?"<>|')
    cleaned = cleaned.strip().lstrip(".").strip()
    return cleaned[-_MAX_NAME_CHARS:] if cleaned else ""


def _with_unique_names(documents: list[PdfDocument]) -> list[PdfDocument]:
    # Two entries "a/x.pdf" and "b/x.pdf" both become "x.pdf": keep both, distinctly named.
    seen: set[str] = set()
    result = []
    for doc in documents:
        name = doc.name
        if name in seen:
            stem, dot, ext = name.rpartition(".")
            if not dot:
                stem, ext = name, ""
            counter = 2
            while name in seen:
                name = f"{stem}-{counter}.{ext}" if ext else f"{stem}-{counter}"
                counter += 1
        seen.add(name)
        result.append(doc if name == doc.name else PdfDocument(name, doc.content))
    return result
