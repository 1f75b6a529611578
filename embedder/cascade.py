"""The detection cascade: a fast first pass, escalating only when it finds nothing.

Most photos people send (selfies, ID photos, portraits) hold a face that
takes a good part of the picture: dlib's HOG without upsampling on a copy
whose longer side is at most ``fast_side`` pixels finds it in a few
milliseconds. Only when that pass finds no face does the cascade escalate,
step by step: HOG upsampled once (faces down to about 40 px, the old single
pass), HOG upsampled twice (down to about 20 px), then, when enabled, the
image turned by 90, 180 and 270 degrees (phone photos without an EXIF
orientation) through the first two HOG steps, and last dlib's MMOD CNN
(darker and more turned faces; many times slower than HOG on a CPU).

A request that asks for every face (FACE_SELECTION_ALL), or must make sure
there is only one (REQUIRE_SINGLE), starts at the upsampled HOG step: a fast
pass that found the largest face would say nothing of the smaller ones.

Weak detections get a second opinion. Each HOG step keeps the boxes scoring
at least ``score_threshold`` (0) and also collects those scoring down to
``weak_threshold`` (-0.5): faces turned a little in the image plane, behind
sunglasses or shaded often score just below 0, where textures score too.
A weak box counts as a face only when dlib's CNN, run on a small crop around
it (:class:`embedder.confirm.CnnConfirmer`, about 0.1 s), finds a face there;
it is then reported by the step that found it. Which weak boxes are checked,
largest first, at most ``confirm_max`` per step: for a request asking for
every face (or for proof of one), all of them; for the largest face, only
those larger than the largest box found with a full score, and only until
one is confirmed (a smaller face cannot change the answer); a weak box
overlapping a kept one (over 30% of the smaller box) is the same face and
is dropped unchecked. So a photo whose
main face HOG nearly misses is not answered with a bystander's smaller face,
and a group photo's weakly scored face is not lost because its neighbours
scored well and stopped the escalation.

Each :class:`Detection` says which step found it (``detector``); the
counts of steps answering are kept in :class:`StageCounts`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from embedder.confirm import Box, CnnConfirmer
from embedder.detect import Detection, FaceDetector, box_area

#: Step names, as reported in Face.detector and InfoResponse.detections_by_step.
FAST = "hog-fast"
UPSAMPLED = "hog-upsampled"
SMALL = "hog-upsampled-2"
CNN = "cnn"
#: The count of images in which no step found a face.
NONE = "none"


@dataclass(frozen=True)
class CascadeConfig:
    """The cascade's steps.

    ``fast_side``: the fast pass (HOG, no upsampling) runs on a copy whose
    longer side is at most this many pixels (smaller images as they are);
    faces of about 80 px in that copy and more are found. ``upsampled_side``:
    the upsampled HOG step's copy, longer side at most this many pixels
    (faces of about 40 px in it). ``small_side``: the twice-upsampled HOG
    step's copy (faces of about 20 px in it; 0 skips the step).
    ``rotations``: then try the image turned by 90, 180 and 270 degrees
    through the first two HOG steps. ``cnn``: last, try the CNN on a copy of
    at most ``cnn_side`` pixels upsampled ``cnn_upsample`` times.
    ``score_threshold``: HOG boxes (and CNN detections) scoring at least this
    are faces. ``weak_threshold``: HOG boxes scoring from this up to
    ``score_threshold`` are faces when the CNN confirms them on a crop, at
    most ``confirm_max`` checks per step (None: no second opinion; see the
    module doc).
    """

    fast_side: int = 640
    upsampled_side: int = 1024
    small_side: int = 800
    cnn: bool = True
    cnn_side: int = 640
    cnn_upsample: int = 0
    rotations: bool = False
    score_threshold: float = 0.0
    weak_threshold: float | None = -0.5
    confirm_max: int = 4


class Confirmer(Protocol):
    """A second opinion on a weak box (see :mod:`embedder.confirm`)."""

    def confirms(self, image: np.ndarray, box: Box) -> bool: ...


class StageCounts:
    """Thread-safe counts of which step answered: images per step name
    (plus :data:`NONE`), since the process started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, step: str) -> None:
        with self._lock:
            self._counts[step] = self._counts.get(step, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


@dataclass(frozen=True)
class CascadeResult:
    """The faces found (largest first, empty when none), the step that found
    them (:data:`NONE` when none) and how many steps ran (1 = no escalation)."""

    detections: list[Detection]
    step: str
    steps_run: int


#: Times a named stage: ``with timer("detect"): ...``.
StageTimer = Callable[[str], AbstractContextManager[object]]


def _untimed(stage: str) -> AbstractContextManager[object]:
    return contextlib.nullcontext()


class DetectionCascade:
    """Runs detection steps until one finds a face (see the module doc).

    ``fast``: the first step of a request not asking for every face (None:
    none); ``steps``: the steps every request runs, in order, after it;
    ``rotated``: then the steps run on the image turned by 90, 180, 270
    degrees; ``last``: then these steps, upright. ``confirmer``: the second
    opinion on boxes scoring below ``threshold`` (at most ``confirm_max``
    per step); None: every box a detector returns is a face.
    """

    def __init__(
        self,
        fast: tuple[str, FaceDetector] | None,
        steps: Sequence[tuple[str, FaceDetector]],
        rotated: Sequence[tuple[str, FaceDetector]] = (),
        last: Sequence[tuple[str, FaceDetector]] = (),
        confirmer: Confirmer | None = None,
        threshold: float = 0.0,
        confirm_max: int = 4,
    ) -> None:
        self._fast = fast
        self._steps = list(steps)
        self._rotated = list(rotated)
        self._last = list(last)
        self._confirmer = confirmer
        self._threshold = threshold
        self._confirm_max = confirm_max
        self.counts = StageCounts()

    @classmethod
    def of(cls, config: CascadeConfig) -> DetectionCascade:
        """The cascade of ``config``: fast HOG, HOG upsampled once and twice,
        rotations (when enabled), CNN; weak HOG boxes checked by the CNN on a
        crop (unless ``weak_threshold`` is None)."""
        threshold = config.score_threshold
        weak = config.weak_threshold
        confirmer: Confirmer | None = None
        hog_threshold = threshold
        if weak is not None and weak < threshold and config.confirm_max > 0:
            confirmer, hog_threshold = CnnConfirmer(), weak
        fast = (FAST, FaceDetector("hog", 0, hog_threshold, config.fast_side))
        upsampled = (UPSAMPLED, FaceDetector("hog", 1, hog_threshold, config.upsampled_side))
        steps = [upsampled]
        if config.small_side:
            steps.append((SMALL, FaceDetector("hog", 2, hog_threshold, config.small_side)))
        rotated = [fast, upsampled] if config.rotations else []
        last = []
        if config.cnn:
            cnn = FaceDetector("cnn", config.cnn_upsample, threshold, config.cnn_side)
            last.append((CNN, cnn))
        return cls(fast, steps, rotated, last, confirmer, threshold, config.confirm_max)

    @classmethod
    def single(cls, name: str, detector: FaceDetector) -> DetectionCascade:
        """One detector for every request, no escalation (the old behaviour)."""
        return cls(None, [(name, detector)])

    def detect(
        self, image: np.ndarray, thorough: bool = False, timer: StageTimer = _untimed
    ) -> CascadeResult:
        """The faces of ``image`` (H, W, 3) RGB uint8 from the first step that
        finds any; ``thorough`` skips the fast pass (see the module doc).
        ``timer(stage)`` times each step's box search as "detect" and the
        landmarks of the boxes found as "landmarks" (the embedder's metrics)."""
        upright = ([] if thorough or self._fast is None else [self._fast]) + self._steps
        run = 0
        for name, detector in upright:
            run += 1
            found = self._find(detector, image, thorough, timer)
            if found:
                return self._answer(found, name, run)
        for quarter_turns in (1, 2, 3) if self._rotated else ():
            turned = np.ascontiguousarray(np.rot90(image, quarter_turns))
            for name, detector in self._rotated:
                run += 1
                found = self._find(detector, turned, thorough, timer)
                if found:
                    back = [_turned_back(d, quarter_turns, image.shape) for d in found]
                    return self._answer(back, f"{name}+rot{90 * quarter_turns}", run)
        for name, detector in self._last:
            run += 1
            found = self._find(detector, image, thorough, timer)
            if found:
                return self._answer(found, name, run)
        self.counts.add(NONE)
        return CascadeResult([], NONE, run)

    def _find(
        self, detector: FaceDetector, image: np.ndarray, thorough: bool, timer: StageTimer
    ) -> list[Detection]:
        with timer("detect"):
            boxes = self._confirmed(image, detector.boxes(image), thorough)
        if not boxes:
            return []
        with timer("landmarks"):
            return detector.with_landmarks(image, boxes)

    def _confirmed(
        self, image: np.ndarray, boxes: list[tuple[Box, float]], thorough: bool
    ) -> list[tuple[Box, float]]:
        """``boxes`` scoring at least the threshold, and the weak ones the
        confirmer confirms (which are checked: see the module doc)."""
        if self._confirmer is None:
            return boxes
        kept = [b for b in boxes if b[1] >= self._threshold]
        weak = sorted((b for b in boxes if b[1] < self._threshold), key=_area, reverse=True)
        largest = max((_area(b) for b in kept), default=0)
        # A weak box overlapping a kept one is the same face framed worse.
        weak = [w for w in weak if not any(_overlap(w[0], k[0]) > 0.3 for k in kept)]
        for candidate in weak[: self._confirm_max]:
            if not thorough and _area(candidate) <= largest:
                break
            if self._confirmer.confirms(image, candidate[0]):
                kept.append(candidate)
                if not thorough:
                    break
        return kept

    def _answer(self, found: list[Detection], step: str, run: int) -> CascadeResult:
        self.counts.add(step)
        return CascadeResult([replace(d, detector=step) for d in found], step, run)


def _area(box: tuple[Box, float]) -> int:
    return box_area(box[0])


def _overlap(a: Box, b: Box) -> float:
    """The intersection of ``a`` and ``b`` over the smaller one's area."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min(box_area(a), box_area(b))
    return width * height / max(1, smaller)


def _turned_back(detection: Detection, quarter_turns: int, shape: Sequence[int]) -> Detection:
    """``detection`` found in ``np.rot90(image, quarter_turns)`` (turned
    counter-clockwise), in the coordinates of ``image`` of ``shape``."""
    height, width = int(shape[0]), int(shape[1])
    left, top, right, bottom = detection.box
    corners = np.array([[left, top], [right, bottom]], dtype=np.float64)
    # Box corners are pixel edges (sizes W, H); landmarks are pixel indices
    # (sizes W - 1, H - 1).
    c = _points_back(corners, quarter_turns, width, height)
    box = (
        round(float(c[:, 0].min())),
        round(float(c[:, 1].min())),
        round(float(c[:, 0].max())),
        round(float(c[:, 1].max())),
    )
    points = _points_back(
        detection.landmarks.astype(np.float64), quarter_turns, width - 1, height - 1
    )
    return replace(detection, box=box, landmarks=points.astype(np.float32))


def _points_back(points: np.ndarray, quarter_turns: int, width: float, height: float) -> np.ndarray:
    x, y = points[:, 0], points[:, 1]
    if quarter_turns == 1:
        return np.stack([width - y, x], axis=1)
    if quarter_turns == 2:
        return np.stack([width - x, height - y], axis=1)
    return np.stack([y, height - x], axis=1)
