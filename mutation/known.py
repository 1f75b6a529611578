"""The 21 known mutations of issue 25, each put in alone and the test files
that should catch it run (``make mutation-known``; results on stdout and in
``mutation/known-results.json``). Every mutation is one small bug a user
would notice; the source is restored after each run, whatever happens.

Usage: python mutation/known.py [--only ID ...] [--list]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    id: str
    what: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]  # pytest arguments


MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "wal-off",
        "edge store WAL off",
        "server/store/_edge_shards.py",
        "wal_enabled=True,",
        "wal_enabled=False,",
        ("tests/test_registry_reliability.py", "-k", "kill_9_mid_stream"),
    ),
    Mutation(
        "ack-before-write",
        "Enroll acknowledged 50 ms before the write",
        "server/service/enrolment.py",
        "        self._store.upsert_faces(config.name, writes)\n",
        "        __import__('threading').Timer(0.05, self._store.upsert_faces,"
        " (config.name, writes)).start()\n",
        ("tests/test_registry_reliability.py", "-k", "kill_9_mid_stream"),
    ),
    Mutation(
        "mirror-permutation",
        "mirror permutation of the 68 landmarks broken (eyes not swapped)",
        "embedder/landmarks.py",
        "    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes\n",
        "    pairs += [(36, 36), (37, 37), (38, 38), (39, 39), (40, 40), (41, 41),"
        " (42, 42), (43, 43), (44, 44), (45, 45), (46, 46), (47, 47)]\n",
        ("tests/test_embedder_pipeline.py", "-k", "flip or mirror"),
    ),
    Mutation(
        "litert-untrained",
        "LiteRT exported without the trained weights",
        "trainer/export.py",
        "    model = load_model(config, weights)\n    signature",
        "    model = __import__('embedder.model', fromlist=['x']).build_model(config)\n"
        "    signature",
        ("tests/test_training.py", "-k", "litert or exported_model_serves"),
    ),
    Mutation(
        "resume-no-optimizer",
        "resume without the optimizer state",
        "trainer/train.py",
        "    for i, var in enumerate(optimizer.variables):\n        var.assign(opt_state",
        "    for i, var in enumerate(optimizer.variables[:0]):\n        var.assign(opt_state",
        ("tests/test_checkpoint_save.py",),
    ),
    Mutation(
        "stale-stubs",
        "stale stubs (a committed stub differs from a fresh generation)",
        "likeness/v1/common_pb2.pyi",
        "class Quality(",
        "class QualityStale(",
        ("tests/test_proto_stubs.py",),
    ),
    Mutation(
        "batcher-rows",
        "batcher hands rows to the wrong callers",
        "embedder/batcher.py",
        "future.set_result(vectors[start : start + len(items)])",
        "future.set_result(vectors[: len(items)])",
        ("tests/test_batcher.py", "tests/test_embedder_service.py", "-k", "own_rows"),
    ),
    Mutation(
        "enroll-default-selection",
        "Enroll's default selection changed (REQUIRE_SINGLE -> LARGEST)",
        "server/servicer.py",
        "from_pb(request.selection, FaceSelection.REQUIRE_SINGLE)",
        "from_pb(request.selection, FaceSelection.LARGEST)",
        ("tests/test_registry_promises.py", "tests/test_cli.py", "-k", "selection or from_dir"),
    ),
    Mutation(
        "verify-auth-gallery",
        "Verify's authorization ignores the gallery",
        "server/servicer.py",
        "        call = authorize(context, gallery, request.subject_id)\n"
        "        authorize_probe(call, gallery, request.probe)\n"
        "        result = self._service.verify(",
        "        call = authorize(context, None, request.subject_id)\n"
        "        authorize_probe(call, gallery, request.probe)\n"
        "        result = self._service.verify(",
        ("tests/test_authorization_table.py",),
    ),
    Mutation(
        "identify-no-auth",
        "Identify skips authorization",
        "server/servicer.py",
        "        call = authorize(context, gallery)\n"
        "        authorize_probe(call, gallery, request.probe)\n"
        "        result = self._service.identify(",
        "        call = __import__('server.guard', fromlist=['x']).call_of(context)\n"
        "        result = self._service.identify(",
        ("tests/test_authorization_table.py",),
    ),
    Mutation(
        "export-needs-read",
        "ExportGallery needs only read",
        "server/auth.py",
        '_R + "ExportGallery": Role.ADMIN,',
        '_R + "ExportGallery": Role.READ,',
        ("tests/test_authorization_table.py",),
    ),
    Mutation(
        "delete-subject-needs-read",
        "DeleteSubject needs only read",
        "server/auth.py",
        '_R + "DeleteSubject": Role.ENROLL,',
        '_R + "DeleteSubject": Role.READ,',
        ("tests/test_authorization_table.py",),
    ),
    Mutation(
        "identify-worst-face",
        "Identify keeps each subject's worst face",
        "server/service/matching.py",
        "hit.score > best[hit.subject_id].score",
        "hit.score < best[hit.subject_id].score",
        ("tests/test_registry_promises.py", "tests/test_registry_service.py"),
    ),
    Mutation(
        "identify-rank-by-id",
        "Identify ranks candidates by subject id",
        "server/service/matching.py",
        "key=lambda h: (-h.score, h.subject_id)",
        "key=lambda h: h.subject_id",
        ("tests/test_registry_promises.py", "tests/test_registry_service.py"),
    ),
    Mutation(
        "yaw-gate-off",
        "yaw gate removed",
        "server/service/_base.py",
        "if config.max_abs_yaw_deg > 0 and abs(quality.yaw_deg)",
        "if False and abs(quality.yaw_deg)",
        ("tests/test_registry_promises.py", "tests/test_registry_service.py"),
    ),
    Mutation(
        "sharpness-gate-off",
        "sharpness gate removed",
        "server/service/_base.py",
        "if config.min_sharpness > 0 and quality.sharpness",
        "if False and quality.sharpness",
        ("tests/test_registry_promises.py", "tests/test_registry_service.py"),
    ),
    Mutation(
        "all-sent-as-largest",
        "FACE_SELECTION_ALL sent as LARGEST",
        "likeness/selection.py",
        'return cast("common_pb2.FaceSelection", int(selection))',
        'return cast("common_pb2.FaceSelection", int(FaceSelection.LARGEST'
        " if selection is FaceSelection.ALL else selection))",
        ("tests/test_client.py", "tests/test_cli.py", "-k", "selection or from_dir"),
    ),
    Mutation(
        "key-store-no-flock",
        "the API-key store's flock removed",
        "server/auth.py",
        "            fcntl.flock(fd, fcntl.LOCK_EX)\n",
        "            pass\n",
        ("tests/test_key_store_concurrency.py",),
    ),
    Mutation(
        "enroll-no-subject-lock",
        "Enroll's per-subject lock removed",
        "server/service/enrolment.py",
        "        with self._lock(name, subject):\n            return self._write_enrolment(",
        "        with __import__('contextlib').nullcontext():\n"
        "            return self._write_enrolment(",
        ("tests/test_registry_promises.py", "tests/test_registry_service.py"),
    ),
    Mutation(
        "nan-check-dropped",
        "NaN check dropped in the registry's vector validation",
        "server/_validate.py",
        "    if not np.all(np.isfinite(array)):\n",
        "    if False:\n",
        ("tests/test_registry_promises.py",),
    ),
    Mutation(
        "tflite-hash-unchecked",
        "model.tflite hash no longer checked",
        "embedder/manifest.py",
        "        if actual != expected:\n",
        "        if actual != expected and not name.endswith('.tflite'):\n",
        ("tests/test_embedder_pipeline.py", "-k", "tampered"),
    ),
)


def run_one(m: Mutation, timeout_s: float) -> dict[str, object]:
    path = ROOT / m.file
    original = path.read_text()
    if original.count(m.old) != 1:
        return {"id": m.id, "result": f"not applied: the text occurs {original.count(m.old)}x"}
    started = time.monotonic()
    try:
        path.write_text(original.replace(m.old, m.new))
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-rf",
            "-p",
            "no:cacheprovider",
            *m.tests,
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        try:
            proc = subprocess.run(
                cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s
            )
            lines = (proc.stdout + proc.stderr).strip().splitlines()
            tail = lines[-1:]
            failed = [ln.split()[1] for ln in lines if ln.startswith("FAILED ")]
            result = "caught" if proc.returncode == 1 else f"NOT caught (exit {proc.returncode})"
            summary = tail[0] if tail else ""
        except subprocess.TimeoutExpired:
            result, summary, failed = "timed out (not counted as caught)", "", []
    finally:
        path.write_text(original)
    return {
        "id": m.id,
        "what": m.what,
        "tests": " ".join(m.tests),
        "result": result,
        "summary": summary,
        "caught_by": failed,
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--skip", nargs="*", default=[])
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--out", type=Path, default=ROOT / "mutation" / "known-results.json")
    args = parser.parse_args()
    chosen = [
        m for m in MUTATIONS if (args.only is None or m.id in args.only) and m.id not in args.skip
    ]
    if args.list:
        for m in chosen:
            sys.stdout.write(f"{m.id}: {m.what} -> {' '.join(m.tests)}\n")
        return
    results = []
    for m in chosen:
        row = run_one(m, args.timeout)
        results.append(row)
        sys.stdout.write(json.dumps(row) + "\n")
        sys.stdout.flush()
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
