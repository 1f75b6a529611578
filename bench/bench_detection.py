"""Detection benchmark: the embedder's detection cascade against one HOG pass.

    .venv/bin/python -m bench.bench_detection [--sources 60] [--plain 300] [LFW]

LFW defaults to ../shared/datasets/lfw (the folder holding peopleDevTest.txt
and images_deepfunneled/). Only photos of the View 1 test people
(peopleDevTest.txt) are used, drawn with a fixed seed, so a rerun builds the
same images.

Sets (every image built in memory, nothing written):

- **scaled**: each source photo scaled so that its face box is 20-200 px
  wide (buckets 20-30, 30-40, 40-60, 60-100, 100-200; one face width per
  source and bucket, drawn), turned in the image plane by up to 15 degrees,
  and placed at a random position on a 320-800 px canvas of noise; the
  request asks for the largest face (LARGEST), as selfies and ID photos do.
- **group**: 2-4 source photos of faces 40-120 px wide (as far as each photo
  fits its slot) placed side by side,
  without overlap, on a 640-960 px canvas; the request asks for every face
  (FACE_SELECTION_ALL).
- **quarter-turned**: a source photo (faces 60-150 px) turned by 90, 180 or
  270 degrees, as a phone photo without EXIF orientation; LARGEST.
- **plain**: the LFW photos as they are (250x250), any face counts.

Ground truth: a source's face box is the box today's pass (HOG, upsample 1)
finds on the unaltered photo (sources without one are skipped); it moves
with the scaling, shift and turn. A face counts as found when a detection's
centre lies inside its box and the widths differ by at most a factor 2.

Variants: ``today`` (HOG, upsample 1, on a copy of at most 1024 px: the
single pass before the cascade) and the cascade settings in ``VARIANTS``
("without second opinion": weak HOG boxes are not checked by the CNN, the
default before 2026-12-03 12:30 UTC).
Reported: faces found per set and face-width bucket (with the two sums the
acceptance asks for: faces of 40 px and more upright, scaled and group; and
faces of 20-40 px), and median and p90 milliseconds per image (detection
with the 68 landmarks of each face found, as served).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from embedder.cascade import CascadeConfig, DetectionCascade
from embedder.decode import decode_image
from embedder.detect import FaceDetector

DEFAULT_LFW = Path("../shared/datasets/lfw")
SEED = 20261203
BUCKETS: tuple[tuple[int, int], ...] = ((20, 30), (30, 40), (40, 60), (60, 100), (100, 200))
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Case:
    """One benchmark image: RGB uint8, its true face boxes (left, top,
    right, bottom, pixels), whether the request asks for every face, and the
    set and bucket it is reported under."""

    image: np.ndarray
    boxes: tuple[Box, ...]
    every_face: bool
    group: str


def devtest_photos(lfw: Path) -> list[Path]:
    """Every photo of the View 1 test people, sorted."""
    lines = (lfw / "peopleDevTest.txt").read_text().split("\n")[1:]
    names = [line.split("\t")[0] for line in lines if line.strip()]
    root = lfw / "images_deepfunneled"
    return sorted(p for name in names for p in (root / name).glob("*.jpg"))


def noise_canvas(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random background (no faces), RGB uint8."""
    coarse = rng.integers(40, 216, size=(max(2, height // 40), max(2, width // 40), 3))
    return cv2.resize(coarse.astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)


def place(
    canvas: np.ndarray, photo: np.ndarray, box: Box, scale: float, angle: float, at: tuple[int, int]
) -> Box:
    """Paste ``photo`` scaled by ``scale`` and turned by ``angle`` degrees
    (counter-clockwise) with its top-left corner at ``at`` (x, y) onto
    ``canvas`` (in place); returns where ``box`` (a square face box) lands."""
    h, w = photo.shape[:2]
    centre = (w / 2, h / 2)
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    out_w, out_h = round(w * scale), round(h * scale)
    matrix[0, 2] += out_w / 2 - centre[0]
    matrix[1, 2] += out_h / 2 - centre[1]
    patch = cv2.warpAffine(photo, matrix, (out_w, out_h), borderMode=cv2.BORDER_REFLECT)
    x, y = at
    canvas[y : y + out_h, x : x + out_w] = patch
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    nx, ny = matrix @ np.array([cx, cy, 1.0])
    half = (box[2] - box[0]) * scale / 2
    return (x + nx - half, y + ny - half, x + nx + half, y + ny + half)


def build_cases(sources: Sequence[tuple[np.ndarray, Box]], rng: np.random.Generator) -> list[Case]:
    cases: list[Case] = []
    for photo, box in sources:
        width = box[2] - box[0]
        for low, high in BUCKETS:
            target = rng.uniform(low, high)
            scale = target / width
            side = int(rng.integers(320, 801))
            canvas = noise_canvas(rng, side, side)
            size = round(250 * scale)
            if size >= side:
                continue
            at = (int(rng.integers(0, side - size)), int(rng.integers(0, side - size)))
            angle = float(rng.uniform(-15, 15))
            true = place(canvas, photo, box, scale, angle, at)
            cases.append(Case(canvas, (true,), False, f"scaled {low}-{high} px"))
    for start in range(0, len(sources) - 1, 3):
        group = sources[start : start + int(rng.integers(2, 5))]
        height, width = int(rng.integers(640, 961)), int(rng.integers(640, 961))
        canvas = noise_canvas(rng, height, width)
        boxes = []
        x = 0
        slot = width // len(group)
        for photo, box in group:
            # Faces of 40-120 px, as far as the whole photo fits its slot.
            scale = min(rng.uniform(40, 120) / (box[2] - box[0]), 0.95 * slot / 250)
            size = round(250 * scale)
            left = x + int(rng.integers(0, max(1, slot - size)))
            top = int(rng.integers(0, height - size))
            boxes.append(place(canvas, photo, box, scale, 0.0, (left, top)))
            x += slot
        cases.append(Case(canvas, tuple(boxes), True, "group (every face)"))
    for i, (photo, box) in enumerate(sources):
        scale = rng.uniform(60, 150) / (box[2] - box[0])
        side = 500
        canvas = noise_canvas(rng, side, side)
        size = round(250 * scale)
        at = (int(rng.integers(0, side - size)), int(rng.integers(0, side - size)))
        true = place(canvas, photo, box, scale, 0.0, at)
        turns = 1 + i % 3
        turned = np.ascontiguousarray(np.rot90(canvas, turns))
        cases.append(Case(turned, (_turn_box(true, turns, side),), False, "quarter-turned"))
    return cases


def _turn_box(box: Box, quarter_turns: int, side: int) -> Box:
    left, top, right, bottom = box
    for _ in range(quarter_turns):  # np.rot90: counter-clockwise, x' = y, y' = side - x
        left, top, right, bottom = top, side - right, bottom, side - left
    return (left, top, right, bottom)


def found(truth: Box, boxes: Sequence[tuple[int, int, int, int]]) -> bool:
    width = truth[2] - truth[0]
    for box in boxes:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        ratio = (box[2] - box[0]) / width
        if truth[0] <= cx <= truth[2] and truth[1] <= cy <= truth[3] and 0.5 <= ratio <= 2:
            return True
    return False


@dataclass
class Tally:
    faces: int = 0
    found: int = 0
    images: int = 0
    times: list[float] | None = None

    def add(self, faces: int, hits: int, seconds: float) -> None:
        self.faces += faces
        self.found += hits
        self.images += 1
        self.times = [*(self.times or []), seconds]


def timed(
    detect: Callable[[np.ndarray, bool], list[tuple[int, int, int, int]]], case: Case
) -> tuple[list[tuple[int, int, int, int]], float]:
    """Boxes and seconds of one detection (the 68 landmarks of each face
    found are included, as the service computes them: a pass that finds
    more faces pays for their landmarks)."""
    start = time.perf_counter()
    boxes = detect(case.image, case.every_face)
    return boxes, time.perf_counter() - start


def cascade_variant(
    cascade: DetectionCascade,
) -> Callable[[np.ndarray, bool], list[tuple[int, int, int, int]]]:
    return lambda image, every: [d.box for d in cascade.detect(image, thorough=every).detections]


VARIANTS: dict[str, Callable[[], DetectionCascade]] = {
    "today (HOG upsample 1)": lambda: DetectionCascade.single(
        "hog", FaceDetector("hog", 1, 0.0, 1024)
    ),
    "cascade (default)": lambda: DetectionCascade.of(CascadeConfig()),
    "cascade without second opinion": lambda: DetectionCascade.of(
        CascadeConfig(weak_threshold=None)
    ),
    "cascade without CNN": lambda: DetectionCascade.of(CascadeConfig(cnn=False)),
    "cascade + rotations": lambda: DetectionCascade.of(CascadeConfig(rotations=True)),
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lfw", nargs="?", type=Path, default=DEFAULT_LFW)
    parser.add_argument(
        "--sources", type=int, default=60, help="source photos of the synthetic sets"
    )
    parser.add_argument("--plain", type=int, default=300, help="plain LFW photos")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = parser.parse_args(argv)
    load_start = os.getloadavg()[0]

    photos = devtest_photos(args.lfw)
    pick = random.Random(SEED).sample(photos, args.sources + args.plain)
    reference = FaceDetector("hog", 1, 0.0, 1024)
    sources = []
    for path in pick[: args.sources]:
        image = decode_image(path.read_bytes())
        dets = reference.detect(image)
        if dets:
            left, top, right, bottom = dets[0].box
            side = max(right - left, bottom - top)
            cx, cy = (left + right) / 2, (top + bottom) / 2
            sources.append((image, (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)))
    cases = build_cases(sources, np.random.default_rng(SEED))
    plain = [decode_image(p.read_bytes()) for p in pick[args.sources :]]

    groups = sorted({c.group for c in cases}, key=lambda g: [c.group for c in cases].index(g))
    results: dict[str, dict[str, Tally]] = {}
    for name in args.variants:
        detect = cascade_variant(VARIANTS[name]())
        tallies: dict[str, Tally] = {g: Tally() for g in [*groups, "plain LFW"]}
        for case in cases:
            boxes, seconds = timed(detect, case)
            hits = sum(found(t, boxes) for t in case.boxes)
            tallies[case.group].add(len(case.boxes), hits, seconds)
        for image in plain:
            start = time.perf_counter()
            boxes = detect(image, False)
            tallies["plain LFW"].add(1, int(bool(boxes)), time.perf_counter() - start)
        results[name] = tallies
        print(f"done: {name}", flush=True)

    print(
        f"\nSources: {len(sources)} of {args.sources} photos of LFW View 1 test people "
        f"(seed {SEED}); plain photos: {len(plain)}; synthetic images: {len(cases)}."
    )
    print(
        f"CPUs: {os.cpu_count()} {platform.processor() or ''}; load average at start / end: "
        f"{load_start:.1f} / {os.getloadavg()[0]:.1f}.\n"
    )
    names = list(results)
    print("| set | faces | " + " | ".join(f"{n}: found" for n in names) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in names) + " |")
    for g in [*groups, "plain LFW"]:
        t0 = results[names[0]][g]
        cells = [
            f"{results[n][g].found} ({100 * results[n][g].found / max(1, t0.faces):.1f}%)"
            for n in names
        ]
        print(f"| {g} | {t0.faces} | " + " | ".join(cells) + " |")
    big = [f"scaled {lo}-{hi} px" for lo, hi in BUCKETS if lo >= 40] + ["group (every face)"]
    small = [f"scaled {lo}-{hi} px" for lo, hi in BUCKETS if hi <= 40]
    sums = {
        "upright faces of 40 px and more (scaled 40-200, group)": big,
        "faces of 20-40 px (scaled 20-30, 30-40)": small,
    }
    for label, parts in sums.items():
        faces = sum(results[names[0]][g].faces for g in parts)
        cells = []
        for n in names:
            hits = sum(results[n][g].found for g in parts)
            cells.append(f"**{hits} ({100 * hits / max(1, faces):.1f}%)**")
        print(f"| {label} | {faces} | " + " | ".join(cells) + " |")
    print("\nMilliseconds per image, median / p90:\n")
    print("| set | " + " | ".join(names) + " |")
    print("| --- | " + " | ".join("---:" for _ in names) + " |")
    for g in [*groups, "plain LFW"]:
        cells = []
        for n in names:
            times = np.array(results[n][g].times or [0.0]) * 1000
            cells.append(f"{np.median(times):.0f} / {np.percentile(times, 90):.0f}")
        print(f"| {g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
