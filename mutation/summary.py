"""Summarise cosmic-ray sessions: per module, mutants run, killed, survived,
timed out, still pending, skipped (annotation-only mutants apart from the
lines out of scope), the score (killed / run), and each survivor as
``line: operator`` with the mutated line.

Usage: python mutation/summary.py /tmp/likeness-mutation/results/*.sqlite
       python mutation/summary.py --reset-survivors SESSION.sqlite  (run them again)
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path


def summarise(db_path: Path) -> str:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    rows = db.execute(
        "SELECT s.module_path, s.operator_name, s.occurrence, s.start_pos_row,"
        " r.worker_outcome, r.test_outcome, r.diff, r.output"
        " FROM mutation_specs s LEFT JOIN work_results r ON r.job_id = s.job_id"
    ).fetchall()
    counts = {
        "killed": 0,
        "survived": 0,
        "timeout": 0,
        "pending": 0,
        "skipped": 0,
        "annotation": 0,
    }
    survivors = []
    for module, operator, occurrence, line, worker, test, diff, output in rows:
        if worker is None:
            counts["pending"] += 1
        elif worker.endswith("SKIPPED") and (output or "").startswith("Filtered annotation"):
            counts["annotation"] += 1
        elif worker.endswith("SKIPPED"):
            counts["skipped"] += 1
        elif test is not None and test.endswith("SURVIVED"):
            counts["survived"] += 1
            added = [d[1:].strip() for d in (diff or "").splitlines() if d.startswith("+ ")]
            survivors.append(f"  {module}:{line} {operator} #{occurrence}: {' | '.join(added)}")
        elif worker.endswith("ABNORMAL") or (test or "").endswith("INCOMPETENT"):
            counts["timeout"] += 1
        else:
            counts["killed"] += 1
    run = counts["killed"] + counts["survived"] + counts["timeout"]
    score = f"{(counts['killed'] + counts['timeout']) / run:.1%}" if run else "n/a"
    head = (
        f"{db_path.stem}: run {run}, killed {counts['killed']}, survived {counts['survived']}, "
        f"timeout/incompetent {counts['timeout']}, pending {counts['pending']} "
        f"(annotations, equivalent: {counts['annotation']}; out of scope: {counts['skipped']});"
        f" score {score}"
    )
    return "\n".join([head, *sorted(survivors)])


def reset_survivors(db_path: Path) -> int:
    """Forget the results of the surviving mutants, so that ``cosmic-ray
    exec`` runs them again; their count."""
    db = sqlite3.connect(db_path)
    with db:
        cursor = db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'")
    return cursor.rowcount


if __name__ == "__main__":
    if sys.argv[1:2] == ["--reset-survivors"]:
        for arg in sys.argv[2:]:
            sys.stdout.write(f"{arg}: {reset_survivors(Path(arg))} survivors to run again\n")
    else:
        for arg in sys.argv[1:]:
            sys.stdout.write(summarise(Path(arg)) + "\n")
