"""Every relative link in README.md and docs/*.md names a file or folder that exists (anchors are not checked)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import ROOT

# [text](target) and [text](target "title"); images too. Reference-style links are not used in these pages.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def relative_targets(page: Path) -> list[str]:
    """The page's link targets that point into the repository (no scheme, no bare #anchor), anchors cut off."""
    targets = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    missing = [target for target in relative_targets(page) if not (page.parent / target).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_the_readme_links_every_docs_page() -> None:
    linked = {(ROOT / target).resolve() for target in relative_targets(ROOT / "README.md")}
    unlinked = [page.name for page in PAGES[1:] if page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"
