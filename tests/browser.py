"""Headless Chromium for the tests that look at a page as a person would (Debian's chromium, `make browser`)."""

from __future__ import annotations

import html
import json
import re
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
# No network, no first-run or background work, no sandbox (tests run as root in a container), a fresh profile.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
TIMEOUT_SECONDS = 90

# Measures every report row as laid out: its box, whether CSS hides it, whether it fits the page's width.
_MEASURE = """
<script>
(() => {
  const page = document.documentElement;
  const rows = [...document.querySelectorAll("tbody tr.line")].map((row) => {
    const box = row.getBoundingClientRect();
    const style = getComputedStyle(row);
    return {
      id: row.id,
      text: row.innerText,
      width: box.width,
      height: box.height,
      top: box.top + window.scrollY,
      left: box.left,
      right: box.right,
      shown: style.display !== "none" && style.visibility !== "hidden" && Number(style.opacity) > 0,
    };
  });
  // The sections in the order a reader meets them, and the past-due invoices' rows where they are laid out.
  const sections = [...document.querySelectorAll("h2")].map((h) => ({
    text: h.innerText, top: h.getBoundingClientRect().top + window.scrollY}));
  const pastDue = [...document.querySelectorAll("tr.pastdue-row")].map((row) => ({
    text: row.innerText, top: row.getBoundingClientRect().top + window.scrollY,
    shown: getComputedStyle(row).display !== "none" && row.getBoundingClientRect().height > 0}));
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify(
    {scrollWidth: page.scrollWidth, scrollHeight: page.scrollHeight, rows, sections, pastDue});
  document.body.appendChild(out);
})();
</script>
"""


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    if not CHROMIUM.is_file():
        raise AssertionError(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    return subprocess.run(  # our fixed flags and a file we wrote
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=True,
    )


def measure_rows(page: Path, width: int) -> dict[str, Any]:
    """Lay the page out at `width` pixels and measure each row; the page itself is left as it is.

    The measuring script goes into a copy (the report's Content-Security-Policy rightly refuses scripts).
    """
    text = page.read_text(encoding="utf-8")
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text)
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / page.name
        copy.write_text(text.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
        done = _run([f"--window-size={width},900", "--dump-dom", copy.as_uri()], Path(scratch) / "profile")
    found = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:]
    measured: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return measured


def screenshot(page: Path, png: Path, width: int, height: int) -> tuple[int, int]:
    """A screenshot of the page as it is (scripts and all refused), the whole page tall; its PNG size."""
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        _run([f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()], Path(scratch) / "profile")
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    size: tuple[int, int] = struct.unpack(">II", header[16:24])
    return size
