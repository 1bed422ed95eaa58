"""pip-audit over the locked runtime and dev requirements (uv.lock), with a summary that says what was audited.

pip-audit looks every pinned version up in PyPI's JSON API (``/pypi/NAME/VERSION/json``). A package it cannot
look up there is *skipped*, not audited, and pip-audit still says "No known vulnerabilities found". So this prints
how many packages were really audited, and with ``--strict`` fails when any was skipped. A known vulnerability
always fails, unless its id is in IGNORED below with the reason.

Usage: python tools/pip_audit_lock.py [--strict]
"""

from __future__ import annotations

import json
import subprocess  # nosec B404 # runs uv and pip-audit from this venv only
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Advisory id -> why it is ignored (no fixed version yet, not reachable from this code, ...). Empty: none.
IGNORED: dict[str, str] = {}


def main(argv: list[str]) -> int:
    """Export the lock, audit it, print a summary; the exit code is the verdict."""
    strict = "--strict" in argv
    with tempfile.TemporaryDirectory(prefix="pip-audit-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        report = Path(tmp) / "report.json"
        # Hashed and fully pinned, so pip-audit needs neither pip nor a resolver (--disable-pip).
        exported = subprocess.run(  # noqa: S603  # nosec B603 # fixed argv, our own venv
            [str(BIN / "uv"), "export", "--frozen", "--all-groups", "--no-emit-project", "--no-header", "--quiet"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        requirements.write_text(exported.stdout)
        command = [
            str(BIN / "pip-audit"),
            "--requirement",
            str(requirements),
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--format",
            "json",
            "--output",
            str(report),
        ]
        for advisory in IGNORED:
            command += ["--ignore-vuln", advisory]
        audit = subprocess.run(command, cwd=ROOT, check=False, capture_output=True, text=True)  # noqa: S603  # nosec B603
        if not report.exists():
            sys.stderr.write(audit.stdout + audit.stderr)
            print("pip-audit: did not run to the end (see above)")
            return 1
        dependencies = json.loads(report.read_text())["dependencies"]

    skipped = [d for d in dependencies if "skip_reason" in d]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    audited = len(dependencies) - len(skipped)
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version"
            print(f"VULNERABLE {dep['name']}=={dep['version']}: {vuln['id']} (fixed in: {fixes})")
    for advisory, reason in IGNORED.items():
        print(f"ignored {advisory}: {reason}")
    print(
        f"pip-audit: {len(dependencies)} locked packages, {audited} audited, {len(vulnerable)} with known"
        f" vulnerabilities, {len(skipped)} not audited"
    )
    if skipped:
        reasons = sorted({d["skip_reason"].split(":", 1)[0] for d in skipped})
        print(f"  not audited because: {'; '.join(reasons)}")
        print(f"  e.g. {', '.join(d['name'] for d in skipped[:5])}")
        if audited == 0:
            print("  (PyPI's per-version JSON API answered for no package: nothing was audited on this network)")
    if vulnerable or audit.returncode not in (0, 1):
        return 1
    if strict and skipped:
        print("pip-audit: --strict and some packages were not audited")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
