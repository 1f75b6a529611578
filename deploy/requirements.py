"""Requirements of the project plus chosen extras, read from pyproject.toml.

The images install third-party dependencies from this list in a layer of
their own, before the source is copied, so that a code change does not
reinstall TensorFlow. Self-references (``likeness[embedder]`` inside another
extra) are followed.

Usage: ``python requirements.py pyproject.toml EXTRA [EXTRA ...] > requirements.txt``.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_SELF_REFERENCE = re.compile(r"^\s*(?P<name>[A-Za-z0-9_.-]+)\s*\[(?P<extras>[^\]]*)\]\s*$")


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """Core dependencies plus those of ``extras`` (deduplicated, in first-seen
    order). Raises KeyError for an extra the project does not declare."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    own_name = project["name"].lower()
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    out: list[str] = list(project.get("dependencies", []))
    seen_extras: set[str] = set()
    pending = list(extras)
    while pending:
        extra = pending.pop(0)
        if extra in seen_extras:
            continue
        seen_extras.add(extra)
        for requirement in optional[extra]:
            match = _SELF_REFERENCE.match(requirement)
            if match and match["name"].lower() == own_name:
                pending.extend(name.strip() for name in match["extras"].split(","))
            elif requirement not in out:
                out.append(requirement)
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the requirements, one per line; exit status 2 on an unknown extra."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        sys.stderr.write(__doc__.strip().splitlines()[-1] + "\n")
        return 2
    try:
        lines = requirements(Path(args[0]), args[1:])
    except KeyError as missing:
        sys.stderr.write(f"unknown extra {missing}\n")
        return 2
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
