"""The shape of the house: size limits and which package may import which.

Limits (issue 24): no class over 300 lines and no module over 500 lines in
server/, embedder/ and the core (likeness/, generated stubs aside). The core
is the ground floor: it imports none of the packages built on it; the CLI
is the top floor; the embedder and the registry reach each other only over
gRPC.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 300
LIMITED = ("server", "embedder", "gateway", "likeness")

#: package -> the project's packages it must never import.
NEVER = {
    "likeness": {"server", "embedder", "gateway", "trainer", "likeness_cli", "bench", "deploy"},
    "server": {"embedder", "gateway", "trainer", "likeness_cli"},
    "embedder": {"server", "gateway", "trainer", "likeness_cli"},
    "gateway": {"server", "embedder", "trainer", "likeness_cli"},
}


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "v1" not in p.parts)


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", LIMITED)
def test_modules_and_classes_stay_small(package: str) -> None:
    too_big = []
    for path in _modules(package):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > MAX_MODULE_LINES:
            too_big.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    too_big.append(f"{path.relative_to(ROOT)}: class {node.name} {size} lines")
    assert not too_big, too_big


@pytest.mark.parametrize("package", sorted(NEVER))
def test_packages_import_only_downwards(package: str) -> None:
    wrong = []
    for path in _modules(package):
        bad = _imported(ast.parse(path.read_text(encoding="utf-8"))) & NEVER[package]
        if bad:
            wrong.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not wrong, wrong
