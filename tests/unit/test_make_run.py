"""`make run` leaves the report at hand: its command line exports the run's report and PDFs under .sandbox/."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from helpers import ROOT

from abrecon_cli.main import build_parser


def test_make_run_exports_the_report_under_the_sandbox_folder() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^run:.*\n\t(.+)$", makefile, re.MULTILINE)
    assert recipe, "no run target"
    words = shlex.split(recipe.group(1))
    assert words[0] == "$(BIN)/abrecon"
    args = build_parser().parse_args(words[1:])
    assert args.export is not None and args.export.parts[0] == ".sandbox"
    assert args.summary == Path(".sandbox/summary.json")
