"""Runs the embedder's front end (decode, detect, 68 landmarks, align) once
over an image dataset and caches aligned crops, landmarks and, optionally,
dlib-resnet teacher descriptors in resumable shards.

A dataset is a folder of ``<person>/<image>`` (identity folders, e.g. LFW),
a folder with a ``path<TAB>identity`` list (:func:`list_listed`, e.g. the
CelebA crops), or a flat folder of unlabelled images (e.g. UTKFace crops;
every image is its own unknown person, label ""). Shards are ``shard-00000.npz`` ...; a shard that
exists is skipped, so a killed run continues where it stopped.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from embedder.align import align_face, map_points
from embedder.decode import decode_image
from embedder.detect import Detection, FaceDetector
from likeness.errors import InvalidArgument
from trainer.views import make_view, view_rng

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


@dataclass(frozen=True)
class CacheSpec:
    """What to cache: ``size`` is the crop side in pixels; ``centre_fallback``
    uses a central box when no face is detected (right for pre-cropped,
    centred datasets such as deep-funneled LFW); ``pick_centre`` keeps the
    face nearest the image centre instead of the largest (LFW labels the
    central face); ``teacher`` also computes dlib-resnet descriptors;
    ``template`` is the alignment template (embedder.align.TEMPLATES), which
    must be the model's; ``view_seed`` (None: the image as it is) caches a
    seeded random view of every image instead (trainer.views: mirrored,
    degraded, alignment jittered), the teacher computing on the same view;
    ``pad`` adds a border of that fraction of the image's longer side on
    every side (edge pixels repeated) and ``scale`` then resizes the image by
    that factor, both before detection: tight, small crops (CelebA's, about
    100 px forehead to chin) give HOG and the landmarks the margin and the
    pixels they need (0.3 and 2.0 found a face in 98% of 60 sampled CelebA
    crops, against 97% at scale 1.0)."""

    size: int = 112
    centre_fallback: bool = False
    pick_centre: bool = True
    teacher: bool = False
    upsample: int = 1
    template: str = "arcface"
    view_seed: int | None = None
    pad: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.pad <= 2.0 or not 0.25 <= self.scale <= 8.0:
            raise ValueError(
                f"pad {self.pad} must be in [0, 2] and scale {self.scale} in [0.25, 8]"
            )


def list_images(
    root: Path, labelled: bool, exclude_people: Iterable[str] = ()
) -> list[tuple[str, Path]]:
    """(person, path) pairs under ``root``, sorted; people in ``exclude_people``
    are left out. Unlabelled datasets give person ""."""
    excluded = set(exclude_people)
    items: list[tuple[str, Path]] = []
    if labelled:
        for person_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            if person_dir.name in excluded:
                continue
            items += [
                (person_dir.name, f)
                for f in sorted(person_dir.iterdir())
                if f.suffix.lower() in IMAGE_SUFFIXES
            ]
    else:
        items = [("", f) for f in sorted(root.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    return items


def list_listed(
    root: Path, listing: Path, prefix: str, exclude_people: Iterable[str] = ()
) -> list[tuple[str, Path]]:
    """(person, path) pairs of a ``path<TAB>identity`` list (a first line
    ``path<TAB>identity`` is a header), paths relative to ``root``, sorted by
    path; the person is ``prefix + identity`` so that identities of two
    sources never merge (CelebA's are bare numbers). People in
    ``exclude_people`` (prefixed names) are left out. ValueError names the
    file and line of a malformed row."""
    excluded = set(exclude_people)
    items: list[tuple[str, Path]] = []
    for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or (number == 1 and line.split("\t") == ["path", "identity"]):
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0] or not fields[1]:
            raise ValueError(f"{listing}:{number}: expected 'path<TAB>identity', got {line[:80]!r}")
        person = prefix + fields[1]
        if person not in excluded:
            items.append((person, root / fields[0]))
    return sorted(items, key=lambda item: str(item[1]))


def pad_and_scale(image: np.ndarray, pad: float, scale: float) -> np.ndarray:
    """``image`` (H, W, 3) with a border of ``pad`` x its longer side on each
    side (edge pixels repeated: a mirrored border could show half a second
    face), then resized by ``scale`` (bicubic)."""
    if pad > 0:
        border = round(pad * max(image.shape[:2]))
        image = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_REPLICATE)
    if scale != 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return image


class _Worker:
    def __init__(self, spec: CacheSpec) -> None:
        import dlib

        from embedder.dlib_models import RESNET, dlib_model_path

        self.spec = spec
        self.detector = FaceDetector(upsample=spec.upsample)
        self.dlib = dlib
        self.resnet = (
            dlib.face_recognition_model_v1(str(dlib_model_path(RESNET))) if spec.teacher else None
        )

    def pick(self, image: np.ndarray) -> Detection | None:
        dets = self.detector.detect(image)
        if dets and self.spec.pick_centre:
            h, w = image.shape[:2]
            return min(
                dets,
                key=lambda d: (
                    ((d.box[0] + d.box[2]) / 2 - w / 2) ** 2
                    + ((d.box[1] + d.box[3]) / 2 - h / 2) ** 2
                ),
            )
        if dets:
            return dets[0]
        if self.spec.centre_fallback:
            h, w = image.shape[:2]
            box = (int(w * 0.3), int(h * 0.3), int(w * 0.7), int(h * 0.7))
            return Detection(box=box, score=-1.0, landmarks=self.detector.landmarks(image, box))
        return None

    def __call__(
        self, path: Path, teacher: np.ndarray | None = None
    ) -> dict[str, np.ndarray] | None:
        try:
            image = decode_image(path.read_bytes())
        except InvalidArgument:
            return None
        image = pad_and_scale(image, self.spec.pad, self.spec.scale)
        det = self.pick(image)
        if det is None:
            return None
        points = align_points = det.landmarks
        if self.spec.view_seed is not None:
            view = make_view(image, det.landmarks, view_rng(self.spec.view_seed, str(path)))
            image, points, align_points = view.image, view.landmarks, view.align_points
        aligned = align_face(image, align_points, self.spec.size, self.spec.template)
        out = {
            "crop": aligned.crop,
            # The true points, where the (possibly jittered) alignment put them.
            "landmarks": map_points(points, aligned.matrix),
            "detected": np.array(det.score >= 0),
        }
        if self.resnet is not None and teacher is not None:
            out["teacher"] = teacher
        elif self.resnet is not None:
            # dlib cuts its chip from the shape's points; the rectangle only has to hold them.
            x1, y1 = np.floor(align_points.min(axis=0)).astype(int)
            x2, y2 = np.ceil(align_points.max(axis=0)).astype(int)
            rect = self.dlib.rectangle(int(x1), int(y1), int(x2), int(y2))
            shape = self.dlib.full_object_detection(
                rect, [self.dlib.point(round(float(x)), round(float(y))) for x, y in align_points]
            )
            out["teacher"] = np.array(
                self.resnet.compute_face_descriptor(image, shape), dtype=np.float32
            )
        return out


_worker: _Worker | None = None


def _init(spec: CacheSpec) -> None:
    global _worker
    _worker = _Worker(spec)


def _process(job: tuple[Path, np.ndarray | None]) -> dict[str, np.ndarray] | None:
    assert _worker is not None
    return _worker(*job)


def _check_donor(donor: Path, spec: CacheSpec) -> None:
    found = cache_spec(donor)
    if not spec.teacher or replace(found, size=spec.size) != spec:
        raise ValueError(f"{donor} holds a cache built with {found}: no teacher for {spec}")


def _donated_teachers(donor: Path, wanted: set[str]) -> dict[str, np.ndarray]:
    """dlib-resnet descriptors by image path from ``donor`` (checked by
    :func:`_check_donor`), for the paths in ``wanted``, read without the crops.
    The teacher sees the decoded image (or its seeded view) and the detected
    landmarks, never our crop, so its descriptor does not depend on the crop
    size."""
    lent: dict[str, np.ndarray] = {}
    for shard in _shard_files(donor):
        with np.load(shard) as npz:
            if "teacher" not in npz:  # a shard where no face was found
                continue
            paths, teachers = npz["path"].tolist(), npz["teacher"]
        lent.update((p, t) for p, t in zip(paths, teachers, strict=True) if p in wanted)
    return lent


def build_cache(
    items: Sequence[tuple[str, Path]],
    out_dir: Path,
    spec: CacheSpec,
    workers: int = 2,
    shard_size: int = 512,
    progress: bool = True,
    teacher_from: Path | None = None,
) -> None:
    """Process ``items`` into shards under ``out_dir``; resumable (existing
    shards are kept). Images that fail to decode or show no face are
    recorded as skipped in ``skipped.txt``. ``teacher_from``, a cache of the
    same spec at another crop size (e.g. the 128 px cache when building at
    144 px), lends its dlib-resnet descriptors, saving the descriptor's
    ~100 ms per image; images it lacks are computed as usual. Raises
    ValueError when ``out_dir`` holds a cache made with another spec (its
    crops would not be what the model expects) or ``teacher_from`` one that
    differs in more than the size."""
    spec_file = out_dir / "spec.json"
    if spec_file.exists() and (found := cache_spec(out_dir)) != spec:
        raise ValueError(f"{out_dir} holds a cache built with {found}, not {spec}")
    if teacher_from is not None:
        _check_donor(teacher_from, spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(json.dumps(asdict(spec), indent=2))
    shards = [items[i : i + shard_size] for i in range(0, len(items), shard_size)]
    todo = [(i, s) for i, s in enumerate(shards) if not (out_dir / f"shard-{i:05d}.npz").exists()]
    lent: dict[str, np.ndarray] = {}
    if teacher_from is not None and todo:
        wanted = {str(path) for _, shard in todo for _, path in shard}
        lent = _donated_teachers(teacher_from, wanted)
        log.info("borrowing %d of %d teachers from %s", len(lent), len(wanted), teacher_from)
    done_images = (len(shards) - len(todo)) * shard_size
    bar = _progress(len(items), done_images, enabled=progress)
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init, initargs=(spec,)) as pool:
        for index, shard in todo:
            jobs = [(p, lent.get(str(p))) for _, p in shard]
            results = pool.map(_process, jobs, chunksize=8)
            kept = [(item, r) for item, r in zip(shard, results, strict=True) if r is not None]
            skipped = [str(item[1]) for item, r in zip(shard, results, strict=True) if r is None]
            arrays: dict[str, np.ndarray] = {
                "person": np.array([item[0] for item, _ in kept], dtype=str),
                "path": np.array([str(item[1]) for item, _ in kept], dtype=str),
            }
            if kept:
                for key in kept[0][1]:
                    arrays[key] = np.stack([r[key] for _, r in kept])
            tmp = out_dir / f"shard-{index:05d}.tmp.npz"
            np.savez(tmp, **arrays)  # type: ignore[arg-type]
            tmp.rename(out_dir / f"shard-{index:05d}.npz")
            if skipped:
                with (out_dir / "skipped.txt").open("a") as fh:
                    fh.writelines(s + "\n" for s in skipped)
            bar(len(shard))
    log.info("cache complete in %s", out_dir)


def cache_exists(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds a cache (begun: its spec is written first)."""
    return (out_dir / "spec.json").exists()


def cache_spec(out_dir: Path) -> CacheSpec:
    """The spec a cache was built with (fields it predates take their defaults)."""
    return CacheSpec(**json.loads((out_dir / "spec.json").read_text()))


def _shard_files(out_dir: Path) -> list[Path]:
    # A build killed between writing a shard and renaming it leaves a
    # possibly truncated shard-NNNNN.tmp.npz; the resumed build rewrites it.
    return sorted(p for p in out_dir.glob("shard-[0-9]*.npz") if not p.name.endswith(".tmp.npz"))


def cache_paths(out_dir: Path) -> np.ndarray:
    """The source path of every cached face, in load_cache's order, read
    without loading the crops (empty when no shard is written yet)."""
    parts = [np.load(p)["path"] for p in _shard_files(out_dir)]
    return np.concatenate(parts) if parts else np.array([], dtype=str)


def load_cache(out_dir: Path) -> dict[str, np.ndarray]:
    """Concatenate every shard of a cache into one dict of arrays."""
    parts = [dict(np.load(p)) for p in _shard_files(out_dir)]
    parts = [p for p in parts if len(p["person"])]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _progress(total: int, start: int, enabled: bool):  # type: ignore[no-untyped-def]
    import sys
    import time

    state = {"done": start, "t0": time.monotonic(), "start": start}

    def step(n: int) -> None:
        state["done"] += n
        if not enabled:
            return
        rate = (state["done"] - state["start"]) / max(1e-6, time.monotonic() - state["t0"])
        eta = (total - state["done"]) / max(rate, 1e-6)
        sys.stderr.write(f"\r{state['done']}/{total} images  {rate:.1f} img/s  ETA {eta:.0f}s")
        sys.stderr.flush()

    return step
