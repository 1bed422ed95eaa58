"""Check that JSON and YAML files parse (the pre-commit hooks' syntax check): `check_syntax.py FILE...`.

YAML is read with the safe loader, so CloudFormation's short tags (!Ref, !Sub) do not load: template.yaml is
left to cfn-lint, which reads them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def problem(path: Path) -> str | None:
    """Why the file does not parse, or None when it does."""
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            json.loads(text)
        else:
            yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        return f"{path}: {error}"
    return None


def main(paths: list[str]) -> int:
    """Print one line per file that does not parse; exit 1 if any."""
    problems = [found for found in (problem(Path(name)) for name in paths) if found]
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
