"""The Makefile's test tiers are the folders under tests/: each folder with tests in exactly one tier, so
`make test-unit`, `make test-integration` and `make test-e2e` together run what `make unit` runs."""

from __future__ import annotations

import re

from helpers import ROOT

TIERS = ("UNIT_TESTS", "INTEGRATION_TESTS", "E2E_TESTS")


def tier_folders() -> dict[str, list[str]]:
    """Each tier's folders, as the Makefile lists them."""
    makefile = (ROOT / "Makefile").read_text()
    folders = {}
    for tier in TIERS:
        match = re.search(rf"^{tier} := (.+)$", makefile, re.MULTILINE)
        assert match, f"the Makefile has no {tier}"
        folders[tier] = match.group(1).split()
    return folders


def test_every_test_folder_is_in_exactly_one_tier() -> None:
    listed = [folder for folders in tier_folders().values() for folder in folders]
    with_tests = sorted({str(path.parent.relative_to(ROOT)) for path in (ROOT / "tests").rglob("test_*.py")})
    assert sorted(listed) == with_tests, {"in the Makefile": sorted(listed), "under tests/": with_tests}


def test_only_the_e2e_tier_needs_chromium() -> None:
    makefile = (ROOT / "Makefile").read_text()
    needs_browser = re.findall(r"^(test-[a-z0-9]+):[^#]*\bbrowser\b", makefile, re.MULTILINE)
    assert needs_browser == ["test-e2e"]
