"""Measure disk bytes per enrolled face in the Qdrant engine (capacity planning).

Writes N synthetic faces (128-d unit float32 vectors, cosine, a payload shaped
like the registry's) into a throwaway qdrant-edge shard, runs the optimizer
(which builds the HNSW index and, when asked, the int8 scalar quantization),
and reports the shard's disk use. Two sizes are written so that fixed costs
(WAL segments, empty segment files) cancel out of the per-face slope.

Usage: ``.venv/bin/python deploy/measure_storage.py [--faces 20000 40000]``.
The numbers quoted in docs/OPERATIONS.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import qdrant_edge as qe

_DIM = 128
# Every indexing threshold is exceeded so the optimizer builds HNSW (and the
# quantized copy) as a server would once a gallery outgrows a plain segment.
_INDEXING_THRESHOLD_KB = 1


@dataclass(frozen=True)
class Measurement:
    """Disk use of one shard holding ``faces`` faces, bytes."""

    faces: int
    quantized: bool
    allocated_bytes: int
    apparent_bytes: int
    allocated_without_wal_bytes: int


def _disk_use(root: Path) -> tuple[int, int, int]:
    """(allocated, apparent, allocated excluding the WAL) bytes under ``root``."""
    allocated = apparent = wal = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            stat = (Path(dirpath) / name).stat()
            blocks = stat.st_blocks * 512
            allocated += blocks
            apparent += stat.st_size
            if "wal" in Path(dirpath).relative_to(root).parts:
                wal += blocks
    return allocated, apparent, allocated - wal


def _payload(rng: np.random.Generator, index: int) -> dict[str, object]:
    """A payload shaped like the registry's (subject id, fingerprint, time, quality)."""
    return {
        "subject_id": f"customer-{index // 2:08d}",
        "model_fingerprint": "sha256:" + "ab" * 32,
        "created_at": 1_795_000_000.0 + index,
        "metadata": {"source": "kiosk-3"},
        "quality": {
            "face_size_px": float(rng.uniform(80, 400)),
            "sharpness": float(rng.uniform(0, 1)),
            "yaw_deg": float(rng.normal(0, 10)),
            "pitch_deg": float(rng.normal(0, 10)),
            "roll_deg": float(rng.normal(0, 5)),
        },
    }


def measure(faces: int, quantized: bool, workdir: Path, seed: int = 0) -> Measurement:
    """Write ``faces`` faces into a new shard under ``workdir``; return its disk use."""
    quantization = (
        qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99) if quantized else None
    )
    config = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=_DIM, distance=qe.Distance.Cosine),
        quantization_config=quantization,
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=_INDEXING_THRESHOLD_KB),
    )
    path = workdir / f"shard-{faces}-{int(quantized)}"
    shard = qe.EdgeShard.create(str(path), config)
    shard.update(qe.UpdateOperation.create_field_index("subject_id", qe.PayloadSchemaType.Keyword))
    rng = np.random.default_rng(seed)
    batch = 1000
    for start in range(0, faces, batch):
        count = min(batch, faces - start)
        vectors = rng.standard_normal((count, _DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        points = [
            qe.Point(
                str(uuid.UUID(int=start + i + 1)), vectors[i].tolist(), _payload(rng, start + i)
            )
            for i in range(count)
        ]
        shard.update(qe.UpdateOperation.upsert_points(points))
    shard.optimize()
    shard.flush()
    shard.close()
    allocated, apparent, without_wal = _disk_use(path)
    return Measurement(faces, quantized, allocated, apparent, without_wal)


def main() -> None:
    """Print one JSON line per measurement and the per-face slope between sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, nargs=2, default=[20_000, 40_000])
    args = parser.parse_args()
    small, large = sorted(args.faces)
    with tempfile.TemporaryDirectory(prefix="likeness-storage-") as tmp:
        for quantized in (False, True):
            low = measure(small, quantized, Path(tmp))
            high = measure(large, quantized, Path(tmp))
            span = high.faces - low.faces
            report = {
                "low": asdict(low),
                "high": asdict(high),
                "quantized": quantized,
                "bytes_per_face_allocated": (high.allocated_bytes - low.allocated_bytes) / span,
                "bytes_per_face_without_wal": (
                    high.allocated_without_wal_bytes - low.allocated_without_wal_bytes
                )
                / span,
            }
            print(json.dumps(report))  # noqa: T201 - a command-line tool's output


if __name__ == "__main__":
    main()
