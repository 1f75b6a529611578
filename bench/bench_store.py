"""Benchmark of the edge store backend (qdrant-edge in-process).

    .venv/bin/python -m bench.bench_store [--sizes 10000,100000,1000000]

Per gallery size, on unit vectors of dim 128:

- ingest: ``upsert_faces`` in batches of 256 (embeddings/s), background HNSW
  builds running as they would in production, then the wait for the last one;
- search latency p50/p99 at 1 and 32 concurrent threads, Identify (top-10 over
  the whole gallery) and Verify (top-1 filtered to one subject);
- recall@1 and recall@10 of the HNSW search against exact (numpy) search,
  on "clustered" data (10 faces per synthetic identity: a random centre plus
  noise, probes are new noisy samples of enrolled identities; what a face
  gallery looks like) and on uniformly random vectors (the hard case for
  HNSW; only up to --random-max faces, to bound the run time);
- bytes on disk per face (allocated blocks of the store directory).

Targets: ingest >= 2,000/s; Verify p99 <= 10 ms at 100k; Identify p50 <= 20 ms
at 1M; recall@1 >= 0.99.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from server.domain import GalleryConfig, StoredFace
from server.store.edge import EdgeStore

DIM = 128
FACES_PER_ID = 10
NOISE = 0.8  # norm of the per-face noise around an identity's unit centre
BATCH = 256


@dataclass
class Result:
    data: str
    faces: int
    ingest_per_s: float
    build_wait_s: float
    indexed: int
    segments: int
    disk_bytes_per_face: float
    identify_1t_p50_ms: float | None = None
    identify_1t_p99_ms: float | None = None
    identify_32t_p50_ms: float | None = None
    identify_32t_p99_ms: float | None = None
    verify_1t_p50_ms: float | None = None
    verify_1t_p99_ms: float | None = None
    verify_32t_p50_ms: float | None = None
    verify_32t_p99_ms: float | None = None
    recall_at_1: float = 0.0
    recall_at_10: float = 0.0
    #: hnsw_ef -> (recall@1, recall@10, Identify p50 ms at 1 thread)
    ef_sweep: dict[int, tuple[float, float, float]] | None = None


def _unit(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
    return out


def _clustered(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = _unit(rng.normal(size=(max(1, n // FACES_PER_ID), DIM)))
    ids = np.arange(n) // FACES_PER_ID
    noise = rng.normal(size=(n, DIM)).astype(np.float32) * (NOISE / np.sqrt(DIM))
    return _unit(centres[ids] + noise), centres


def _probes(
    kind: str, centres: np.ndarray, n_ids: int, q: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(probe vectors, the identity each probe is of); random probes get a
    random identity to verify against."""
    who = rng.integers(0, n_ids, size=q)
    if kind == "random":
        return _unit(rng.normal(size=(q, DIM))), who
    noise = rng.normal(size=(q, DIM)).astype(np.float32) * (NOISE / np.sqrt(DIM))
    return _unit(centres[who] + noise), who


def _disk_bytes(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def _latencies(fn: Callable[[int], object], count: int, threads: int) -> tuple[float, float]:
    """(p50, p99) in ms of ``count`` calls fn(i) spread over ``threads``."""

    def timed(i: int) -> float:
        start = time.perf_counter()
        fn(i)
        return (time.perf_counter() - start) * 1e3

    if threads == 1:
        samples = [timed(i) for i in range(count)]
    else:
        with ThreadPoolExecutor(threads) as pool:
            samples = list(pool.map(timed, range(count)))
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 99))


def _subject(i: int) -> str:
    return f"id-{i:08d}"


def run(
    kind: str,
    n: int,
    workdir: Path,
    *,
    queries: int,
    build_timeout_s: float,
    hnsw_min_faces: int,
    latency: bool,
    ef_sweep: list[int],
    log: Callable[[str], None],
) -> Result:
    rng = np.random.default_rng(n + (1 if kind == "random" else 0))
    if kind == "random":
        vectors = _unit(rng.normal(size=(n, DIM)))
        centres = vectors[::FACES_PER_ID]
    else:
        vectors, centres = _clustered(n, rng)
    root = workdir / f"{kind}-{n}"
    shutil.rmtree(root, ignore_errors=True)
    store = EdgeStore(root, hnsw_min_faces=hnsw_min_faces)
    try:
        store.create_gallery(GalleryConfig("bench", "bench-fp", DIM, 0.5, time.time()))
        now = time.time()
        start = time.perf_counter()
        for lo in range(0, n, BATCH):
            batch = [
                StoredFace(
                    face_id=str(uuid.UUID(int=i + 1)),
                    subject_id=_subject(i // FACES_PER_ID),
                    gallery="bench",
                    vector=vectors[i],
                    model_fingerprint="bench-fp",
                    created_at=now,
                    metadata={"source": "bench"},
                )
                for i in range(lo, min(n, lo + BATCH))
            ]
            store.upsert_faces("bench", batch)
            if lo and lo % 100_000 < BATCH:
                log(f"  {kind} {n}: {lo} faces in {time.perf_counter() - start:.0f} s")
        ingest = n / (time.perf_counter() - start)
        log(f"  {kind} {n}: ingest {ingest:.0f}/s; waiting for HNSW builds")
        start = time.perf_counter()
        if not store.wait_for_builds(build_timeout_s):
            log(f"  {kind} {n}: builds still running after {build_timeout_s:.0f} s")
        build_wait = time.perf_counter() - start
        info = store.index_info("bench")
        result = Result(
            data=kind,
            faces=n,
            ingest_per_s=ingest,
            build_wait_s=build_wait,
            indexed=info.indexed,
            segments=info.segments,
            disk_bytes_per_face=_disk_bytes(root) / n,
        )
        log(f"  {kind} {n}: build wait {build_wait:.0f} s, {info}")

        probes, who = _probes(kind, centres, len(centres), queries, rng)
        exact = np.argsort(-(vectors @ probes.T), axis=0)[:10].T
        result.recall_at_1, result.recall_at_10 = _recall(store, probes, exact)
        if latency:

            def identify(i: int) -> object:
                return store.search("bench", probes[i % queries], 10)

            def verify(i: int) -> object:
                j = i % queries
                return store.search("bench", probes[j], 1, subject_id=_subject(int(who[j])))

            for name, fn in (("identify", identify), ("verify", verify)):
                fn(0)  # warm the page cache of the first segments touched
                for threads in (1, 32):
                    p50, p99 = _latencies(fn, queries if threads == 1 else 4 * queries, threads)
                    setattr(result, f"{name}_{threads}t_p50_ms", p50)
                    setattr(result, f"{name}_{threads}t_p99_ms", p99)
        if ef_sweep:
            result.ef_sweep = {}
            for ef in ef_sweep:
                store.close()
                store = EdgeStore(root, hnsw_min_faces=hnsw_min_faces, hnsw_ef=ef)
                r1, r10 = _recall(store, probes, exact)
                p50, _ = _latencies(functools.partial(_identify, store, probes), queries, 1)
                result.ef_sweep[ef] = (r1, r10, p50)
        log(f"  {kind} {n}: {result}")
        return result
    finally:
        store.close()
        shutil.rmtree(root, ignore_errors=True)


def _identify(store: EdgeStore, probes: np.ndarray, i: int) -> object:
    return store.search("bench", probes[i % len(probes)], 10)


def _recall(store: EdgeStore, probes: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """(recall@1, recall@10) of the store's top-10 against exact top-10 row indices."""
    found = [store.search("bench", p, 10) for p in probes]
    hnsw = [[uuid.UUID(h.face_id).int - 1 for h in hits] for hits in found]
    pairs = list(zip(hnsw, exact, strict=True))
    at1 = float(np.mean([h[0] == e[0] for h, e in pairs]))
    at10 = float(np.mean([len(set(h) & set(e)) / 10 for h, e in pairs]))
    return at1, at10


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(results: list[Result]) -> str:
    """The results as the tables of docs/BENCHMARKS.md."""
    lines = [
        "| data | faces | ingest /s | build wait s | disk B/face | recall@1 | recall@10 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.data} | {r.faces:,} | {r.ingest_per_s:,.0f} | {r.build_wait_s:.0f} "
            f"| {r.disk_bytes_per_face:,.0f} | {r.recall_at_1:.3f} | {r.recall_at_10:.3f} |"
        )
    lines += [
        "",
        "| faces | Identify p50/p99 ms (1 thr) | Identify p50/p99 ms (32 thr) "
        "| Verify p50/p99 ms (1 thr) | Verify p50/p99 ms (32 thr) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.identify_1t_p50_ms is None:
            continue
        lines.append(
            f"| {r.faces:,} "
            f"| {_fmt(r.identify_1t_p50_ms)} / {_fmt(r.identify_1t_p99_ms)} "
            f"| {_fmt(r.identify_32t_p50_ms)} / {_fmt(r.identify_32t_p99_ms)} "
            f"| {_fmt(r.verify_1t_p50_ms)} / {_fmt(r.verify_1t_p99_ms)} "
            f"| {_fmt(r.verify_32t_p50_ms)} / {_fmt(r.verify_32t_p99_ms)} |"
        )
    sweeps = [r for r in results if r.ef_sweep]
    if sweeps:
        lines += [
            "",
            "| data | faces | hnsw_ef | recall@1 | recall@10 | Identify p50 ms (1 thr) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in sweeps:
            for ef, (r1, r10, p50) in sorted((r.ef_sweep or {}).items()):
                lines.append(
                    f"| {r.data} | {r.faces:,} | {ef} | {r1:.3f} | {r10:.3f} | {p50:.2f} |"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--random-max", type=int, default=100_000)
    parser.add_argument("--hnsw-min-faces", type=int, default=20_000)
    parser.add_argument("--build-timeout", type=float, default=1800.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument(
        "--ef-sweep",
        default="",
        help="comma-separated hnsw_ef values to re-measure recall with (e.g. 256,512)",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]

    def log(message: str) -> None:
        print(message, flush=True)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-store-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    started = time.time()
    for n in sizes:
        kinds = ["clustered"] + (["random"] if n <= args.random_max else [])
        for kind in kinds:
            results.append(
                run(
                    kind,
                    n,
                    workdir,
                    queries=args.queries,
                    build_timeout_s=args.build_timeout,
                    hnsw_min_faces=args.hnsw_min_faces,
                    latency=kind == "clustered",
                    ef_sweep=[int(e) for e in args.ef_sweep.split(",") if e],
                    log=log,
                )
            )
            if args.json:
                args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    log(f"total {time.time() - started:.0f} s; medians of per-query latencies in ms")
    log(markdown(results))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
