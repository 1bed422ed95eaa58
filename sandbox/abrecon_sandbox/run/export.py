"""`--export DIR`: the run's report and PDFs copied out of the local bucket."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from abrecon_sandbox.aws.local_aws import LocalAws
from abrecon_sandbox.run.options import SandboxError
from abrecon_sandbox.run.summary import Exported, Summary


def export_run(aws: LocalAws, summary: Summary, directory: Path, out: TextIO) -> Exported:
    """Copy the run's report (CSV, HTML) and its PDFs out of the bucket into directory, in the bucket's layout.

    The layout is the bucket's (runs/<run>/report.html, documents/...), so the report's links to the PDFs work,
    as they do in any copy of the bucket (aws s3 sync).
    """
    s3 = aws.client("s3")
    root = directory.resolve()
    assert summary.report_key is not None and summary.report_html_key is not None
    keys = [summary.report_key, summary.report_html_key, *summary.s3_keys]
    for key in keys:
        target = (root / key).resolve()
        if not target.is_relative_to(root):  # keys come from the run; never write outside the directory
            raise SandboxError(f"refusing to export {key!r} outside {root}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_object(Bucket=summary.bucket, Key=key)["Body"].read())
    exported = Exported(dir=str(root), csv=str(root / keys[0]), html=str(root / keys[1]), pdfs=len(keys) - 2)
    # The page's path comes last, where a newcomer looks: what finance would open.
    print(f"\nexported: spreadsheet {exported.csv}, {exported.pdfs} PDFs under {root / 'documents'}", file=out)
    print(f"report exported: open {exported.html}", file=out)
    return exported
