"""Mark as skipped the cosmic-ray mutants that only rewrite a type annotation.

Every module mutated here starts with ``from __future__ import annotations``,
so annotations are stored as strings and never evaluated: ``float | None``
written ``float - None`` changes nothing a caller can see. Such mutants are
equivalent by construction; running the tests for each costs minutes and
kills none. They are recorded as SKIPPED with the output
``Filtered annotation`` (``mutation/summary.py`` counts them apart).

Usage: python mutation/filter_annotations.py SESSION.sqlite
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult

FILTERED = "Filtered annotation"


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) of every annotation, as (line 1-based, column 0-based)."""
    tree = ast.parse(source)
    if not any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
        for node in tree.body
    ):
        return []  # annotations are evaluated: a mutant there is not equivalent
    nodes: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            nodes.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            nodes.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            nodes.append(node.annotation)
    return [
        ((n.lineno, n.col_offset), (n.end_lineno or n.lineno, n.end_col_offset or 0)) for n in nodes
    ]


def _inside(pos: tuple[int, int], spans: list[tuple[tuple[int, int], tuple[int, int]]]) -> bool:
    return any(start <= pos < end for start, end in spans)


def skip_annotation_mutants(db: WorkDB) -> int:
    """Mark the pending mutants inside annotations as skipped; their count."""
    spans: dict[Path, list[tuple[tuple[int, int], tuple[int, int]]]] = {}
    skipped = []
    for item in db.pending_work_items:
        for mutation in item.mutations:
            path = Path(mutation.module_path)
            if path not in spans:
                spans[path] = annotation_spans(path.read_text(encoding="utf-8"))
            if _inside(tuple(mutation.start_pos), spans[path]):
                skipped.append(item.job_id)
    if skipped:
        db.set_multiple_results(
            skipped, WorkResult(output=FILTERED, worker_outcome=WorkerOutcome.SKIPPED)
        )
    return len(skipped)


if __name__ == "__main__":
    with use_db(sys.argv[1]) as work_db:
        count = skip_annotation_mutants(work_db)
    sys.stdout.write(f"{count} annotation mutants skipped\n")
