"""The client's download against a real loopback HTTP server: Amazon's `Content-Encoding: gzip` on a gzip file is
read as raw bytes (no double decompression), and no access token goes to the presigned URL."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from unit_fakes import Sleeps, StubTokens

from abrecon.client import AmazonBusinessClient

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


class _Handler(BaseHTTPRequestHandler):
    payload = gzip.compress(PDF)
    seen_headers: list[dict[str, str]] = []  # noqa: RUF012 - shared with the test on purpose

    def do_GET(self) -> None:
        type(self).seen_headers.append(dict(self.headers))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_download_over_real_http_keeps_gzip(loopback: str) -> None:
    _Handler.seen_headers.clear()
    client = AmazonBusinessClient(loopback, StubTokens(), sleep=Sleeps())
    data = client.download(f"{loopback}/doc.gz?sig=1", max_bytes=10_000)
    assert data == _Handler.payload
    assert data[:2] == b"\x1f\x8b"
    (headers,) = _Handler.seen_headers
    assert "x-amz-access-token" not in {h.lower() for h in headers}
