"""Benchmark of ``likeness cluster`` against dlib's Chinese Whispers.

    .venv/bin/python -m bench.bench_cluster [--people N] [--scale N] [LFW]

LFW defaults to ../shared/datasets/lfw (``images_deepfunneled`` and
``peopleDevTest.txt``). The photos: every photo of the DevTest people (the
first ``--people`` of them in file order; 0 = all 1711, 3708 photos), copied
flat into one folder under names that hide the person.

1. ours: ``likeness cluster`` (the CLI command, through typer) against an
   in-process Embedder with the served settings (shipped model), then
   Chinese Whispers at the threshold of the model's strictest operating
   point (what the command does);
2. dlib: what dlib's ``face_clustering.py`` example does: HOG (upsample 1),
   68 landmarks, ResNet descriptor of every face, then
   ``dlib.chinese_whispers_clustering(descriptors, 0.5)`` (Euclidean
   distance, the example's value);
3. the same dlib-resnet descriptors clustered by ``likeness.clustering`` at
   the dlib-resnet backend's calibrated threshold (cosine; the served
   backend's ``default_threshold``): the two algorithms on identical vectors.

Every face of every photo takes part in the clustering; the scores are over
the largest face of each photo (the labelled person; a photo without a
detected face counts as a missed photo, reported). Pairwise precision and
recall over same-cluster pairs; BCubed precision, recall and F (Amigó et al.
2009); clusters (holding at least one scored face) against people. Times per
1,000 faces: end to end (embedding included) and the grouping alone.

``--scale N``: also time ``likeness.clustering.cluster`` alone on N
synthetic 128-d faces (N/5 people of 5 faces each, noise at the level of
real same-person scores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from likeness import clustering
from likeness_cli._cluster_faces import FoundFace, all_faces, load_cache, matrix

DEFAULT_LFW = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lfw"
DLIB_EXAMPLE_THRESHOLD = 0.5


def devtest_photos(lfw: Path, people: int) -> list[tuple[str, Path]]:
    """(person, photo) of every photo of the first ``people`` DevTest people."""
    lines = (lfw / "peopleDevTest.txt").read_text().split("\n")[1:]
    rows = [line.split("\t") for line in lines if line.strip()]
    if people:
        rows = rows[:people]
    return [
        (name, lfw / "images_deepfunneled" / name / f"{name}_{i:04d}.jpg")
        for name, count in rows
        for i in range(1, int(count) + 1)
    ]


def scores(truth: Sequence[str], labels: Sequence[int]) -> dict[str, float]:
    """Pairwise precision/recall and BCubed precision/recall/F of ``labels``
    against ``truth`` (one entry per scored face)."""
    pairs = Counter(zip(truth, labels, strict=True))
    by_cluster = Counter(labels)
    by_person = Counter(truth)

    def same(counts: Counter[object]) -> int:
        return sum(n * (n - 1) // 2 for n in counts.values())

    both, in_cluster, in_person = same(pairs), same(by_cluster), same(by_person)  # type: ignore[arg-type]
    n = len(truth)
    b_prec = sum(c * c / by_cluster[k[1]] for k, c in pairs.items()) / n
    b_rec = sum(c * c / by_person[k[0]] for k, c in pairs.items()) / n
    return {
        "pairwise_precision": both / in_cluster if in_cluster else 1.0,
        "pairwise_recall": both / in_person if in_person else 1.0,
        "bcubed_precision": b_prec,
        "bcubed_recall": b_rec,
        "bcubed_f": 2 * b_prec * b_rec / (b_prec + b_rec),
        "clusters": float(len(by_cluster)),
        "people": float(len(by_person)),
    }


def _largest(boxes: dict[str, list[tuple[int, Sequence[int]]]]) -> dict[str, int]:
    """Per file, the index of its largest face."""
    return {
        file: max(faces, key=lambda f: (f[1][2] - f[1][0]) * (f[1][3] - f[1][1]))[0]
        for file, faces in boxes.items()
    }


def run_ours(folder: Path, work: Path, person_of: dict[str, str]) -> dict[str, float]:
    from typer.testing import CliRunner

    from embedder.server import create_server
    from embedder.settings import EmbedderSettings
    from likeness_cli import app

    server = create_server(EmbedderSettings(host="127.0.0.1", port=0))
    server.start()
    try:
        out = work / "ours.json"
        env = {"LIKENESS_EMBEDDER_ADDRESS": f"127.0.0.1:{server.port}"}
        start = time.perf_counter()
        result = CliRunner().invoke(
            app, ["cluster", str(folder), "--out", str(out), "--workers", "4"], env=env
        )
        elapsed = time.perf_counter() - start
    finally:
        server.stop(0)
    if result.exit_code != 0:
        raise RuntimeError(result.output)
    doc = json.loads(out.read_text())
    boxes: dict[str, list[tuple[int, Sequence[int]]]] = {}
    label_of: list[int] = []
    for cid, cluster in enumerate(doc["clusters"]):
        for face in cluster["faces"]:
            boxes.setdefault(face["file"], []).append((len(label_of), face["box"]))
            label_of.append(cid)
    # The grouping alone, on the faces the run cached.
    faces = list(all_faces(list(load_cache(out.with_name(out.name + ".faces.jsonl")).values())))
    vectors = matrix(faces, len(faces[0].vector))
    start = time.perf_counter()
    clustering.cluster(vectors, float(doc["threshold"]))
    grouping = time.perf_counter() - start
    _sweep("shipped model", faces, vectors, person_of, SWEEP_OURS)
    return _summary(boxes, label_of, person_of, len(label_of), elapsed, grouping)


def _summary(
    boxes: dict[str, list[tuple[int, Sequence[int]]]],
    label_of: Sequence[int],
    person_of: dict[str, str],
    faces: int,
    elapsed: float,
    grouping: float,
) -> dict[str, float]:
    largest = _largest(boxes)
    files = sorted(largest)
    result = scores([person_of[f] for f in files], [label_of[largest[f]] for f in files])
    result.update(
        faces=float(faces),
        photos_without_face=float(len(person_of) - len(files)),
        s_per_1000_faces=elapsed / faces * 1000,
        grouping_s_per_1000_faces=grouping / faces * 1000,
    )
    return result


def dlib_descriptors(
    folder: Path, files: Sequence[str]
) -> tuple[list[object], dict[str, list[tuple[int, Sequence[int]]]], float]:
    import dlib

    from embedder.dlib_models import RESNET, SHAPE_68, dlib_model_path

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_path(SHAPE_68)))
    net = dlib.face_recognition_model_v1(str(dlib_model_path(RESNET)))
    descriptors: list[object] = []
    boxes: dict[str, list[tuple[int, Sequence[int]]]] = {}
    start = time.perf_counter()
    for file in files:
        image = dlib.load_rgb_image(str(folder / file))
        for det in detector(image, 1):
            shape = predictor(image, det)
            boxes.setdefault(file, []).append(
                (len(descriptors), (det.left(), det.top(), det.right(), det.bottom()))
            )
            descriptors.append(net.compute_face_descriptor(image, shape))
    return descriptors, boxes, time.perf_counter() - start


def run_dlib(folder: Path, person_of: dict[str, str]) -> tuple[dict[str, float], dict[str, float]]:
    import dlib

    files = sorted(person_of)
    saved = folder.parent / "dlib.json"
    if saved.exists():
        data = json.loads(saved.read_text())
        descriptors = [dlib.vector(v) for v in data["vectors"]]
        boxes = {f: [(i, b) for i, b in faces] for f, faces in data["boxes"].items()}
        embed_s = float(data["seconds"])
    else:
        descriptors, boxes, embed_s = dlib_descriptors(folder, files)
        saved.write_text(
            json.dumps(
                {"vectors": [list(d) for d in descriptors], "boxes": boxes, "seconds": embed_s}  # type: ignore[call-overload]
            )
        )
    start = time.perf_counter()
    labels = dlib.chinese_whispers_clustering(descriptors, DLIB_EXAMPLE_THRESHOLD)
    dlib_group = time.perf_counter() - start
    n = len(descriptors)
    dlib_result = _summary(boxes, labels, person_of, n, embed_s + dlib_group, dlib_group)
    # Ours on the same vectors, at the served dlib-resnet threshold.
    from embedder.server import create_server
    from embedder.settings import EmbedderSettings
    from likeness.client import LikenessClient

    server = create_server(EmbedderSettings(host="127.0.0.1", port=0, backend="dlib-resnet"))
    server.start()
    try:
        address = f"127.0.0.1:{server.port}"
        with LikenessClient(address, address) as client:
            threshold = client.info().default_threshold
    finally:
        server.stop(0)
    vectors = np.asarray([list(d) for d in descriptors], dtype=np.float32)  # type: ignore[call-overload]
    start = time.perf_counter()
    ours = clustering.cluster(vectors, threshold)
    ours_group = time.perf_counter() - start
    same = _summary(boxes, ours.tolist(), person_of, n, embed_s + ours_group, ours_group)
    same["threshold"] = threshold
    for cut in SWEEP:
        labels_at = clustering.cluster(vectors, cut).tolist()
        row = _summary(boxes, labels_at, person_of, n, 0.0, 0.0)
        print(f"sweep dlib-resnet cosine {cut}: " + _short(row))
    return dlib_result, same


SWEEP_OURS = (0.68, 0.72, 0.76, 0.80, 0.84)


def _sweep(
    name: str,
    faces: Sequence[FoundFace],
    vectors: np.ndarray,
    person_of: dict[str, str],
    cuts: Sequence[float],
) -> None:
    boxes: dict[str, list[tuple[int, Sequence[int]]]] = {}
    for i, face in enumerate(faces):
        boxes.setdefault(face.file, []).append((i, face.box))
    for cut in cuts:
        labels = clustering.cluster(vectors, cut).tolist()
        row = _summary(boxes, labels, person_of, len(faces), 0.0, 0.0)
        print(f"sweep {name} cosine {cut}: " + _short(row))


SWEEP = (0.92, 0.93, 0.94, 0.95, 0.96)


def _short(row: dict[str, float]) -> str:
    keys = ("pairwise_precision", "pairwise_recall", "bcubed_f", "clusters")
    return ", ".join(f"{k} {row[k]:.4g}" for k in keys)


def scale(n: int) -> float:
    rng = np.random.default_rng(0)
    people = max(n // 5, 1)
    centres = clustering.unit_rows(rng.normal(size=(people, 128)))
    noise = rng.normal(size=(n, 128)).astype(np.float32) * 0.02
    vectors = np.repeat(centres, 5, axis=0)[:n] + noise
    start = time.perf_counter()
    labels = clustering.cluster(vectors, 0.9)
    elapsed = time.perf_counter() - start
    print(f"scale: {n} faces, {people} people -> {len(set(labels.tolist()))} clusters")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("lfw", nargs="?", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--people", type=int, default=0)
    parser.add_argument("--scale", type=int, default=0)
    parser.add_argument("--skip-lfw", action="store_true")
    parser.add_argument(
        "--work", type=Path, help="Keep photos, caches and descriptors here (reused by a rerun)."
    )
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus; {time.strftime('%F %T %Z')}")
    if not args.skip_lfw:
        photos = devtest_photos(args.lfw, args.people)
        with tempfile.TemporaryDirectory() as tmp:
            work = args.work or Path(tmp)
            folder = work / "photos"
            folder.mkdir(parents=True, exist_ok=True)
            person_of: dict[str, str] = {}
            for i, (person, photo) in enumerate(photos):
                name = f"{i:05d}.jpg"
                if not (folder / name).exists():  # a rerun keeps the caches valid
                    shutil.copy(photo, folder / name)
                person_of[name] = person
            print(f"{len(photos)} photos of {len(set(person_of.values()))} people")
            rows = {"likeness cluster (shipped model)": run_ours(folder, work, person_of)}
            dlib_row, same_row = run_dlib(folder, person_of)
            rows["dlib CW, dlib-resnet, 0.5 (dlib example)"] = dlib_row
            rows[f"likeness CW, dlib-resnet, {same_row.pop('threshold'):.4f}"] = same_row
        keys = list(next(iter(rows.values())))
        print("| variant | " + " | ".join(keys) + " |")
        print("|---" * (len(keys) + 1) + "|")
        for name, row in rows.items():
            print(f"| {name} | " + " | ".join(f"{row[k]:.4g}" for k in keys) + " |")
    if args.scale:
        print(f"scale: grouping {args.scale} faces took {scale(args.scale):.1f} s")


if __name__ == "__main__":
    main()
