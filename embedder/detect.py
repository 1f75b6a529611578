"""Face detection (dlib HOG or CNN) and 68-point landmarks."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Literal

import cv2
import dlib
import numpy as np

from embedder.dlib_models import CNN_DETECTOR, SHAPE_68, dlib_model_path


@dataclass(frozen=True)
class Detection:
    """One face: ``box`` is (left, top, right, bottom) in image pixels (right and
    bottom exclusive), ``score`` the detector's confidence, ``landmarks`` the
    68 (x, y) points in image pixels, ``detector`` the detection step that
    found it (see :mod:`embedder.cascade`; "" from a single detector)."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray
    detector: str = ""

    @property
    def area(self) -> int:
        return box_area(self.box)


def box_area(box: tuple[int, int, int, int]) -> int:
    """The area in pixels of ``box`` (left, top, right, bottom); 0 when empty."""
    left, top, right, bottom = box
    return max(0, right - left) * max(0, bottom - top)


class FaceDetector:
    """Finds faces and their 68 landmarks in RGB uint8 images.

    Args:
        kind: "hog" (dlib's frontal HOG + linear SVM, fast on a CPU) or "cnn"
            (dlib's MMOD CNN, more robust, about 20x slower on a CPU).
        upsample: times the image is doubled before detection; 1 finds faces
            down to about 40 px wide, 0 down to about 80 px.
        score_threshold: faces scoring below are dropped (HOG SVM margin; CNN
            confidence). Raise it to cut false positives.
        max_side: images whose longer side exceeds this many pixels are
            detected on a downscaled copy (boxes are mapped back); landmarks are
            always found at full resolution.
    """

    def __init__(
        self,
        kind: Literal["hog", "cnn"] = "hog",
        upsample: int = 1,
        score_threshold: float = 0.0,
        max_side: int = 1024,
    ) -> None:
        self._kind = kind
        self._upsample = upsample
        self._threshold = score_threshold
        self._max_side = max_side
        if kind == "hog":
            self._hog = dlib.get_frontal_face_detector()
        else:
            self._cnn = dlib.cnn_face_detection_model_v1(str(dlib_model_path(CNN_DETECTOR)))
        self._predictor = _shape_predictor()
        # dlib's detectors keep scratch buffers per object and release the GIL:
        # two threads running one detector at once crash the process (the
        # shape predictor is safe to share).
        self._detect_lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Detection]:
        """All faces of ``image`` (H, W, 3) RGB uint8 scoring at least the
        threshold, largest box first (:meth:`boxes` then :meth:`landmarks`)."""
        return self.with_landmarks(image, self.boxes(image))

    def boxes(self, image: np.ndarray) -> list[tuple[tuple[int, int, int, int], float]]:
        """The face boxes (left, top, right, bottom; image pixels) of ``image``
        with their scores, in the detector's order, before landmarks."""
        scale = 1.0
        small = image
        longer = max(image.shape[:2])
        if longer > self._max_side:
            scale = self._max_side / longer
            small = cv2.resize(
                image,
                (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                interpolation=cv2.INTER_AREA,
            )
        found: list[tuple[tuple[int, int, int, int], float]] = []
        with self._detect_lock:
            if self._kind == "hog":
                rects, scores, _ = self._hog.run(small, self._upsample, self._threshold)
                for rect, score in zip(rects, scores, strict=True):
                    found.append((_box(rect, scale), float(score)))
            else:
                for det in self._cnn(small, self._upsample):
                    if det.confidence >= self._threshold:
                        found.append((_box(det.rect, scale), float(det.confidence)))
        return found

    def with_landmarks(
        self, image: np.ndarray, found: list[tuple[tuple[int, int, int, int], float]]
    ) -> list[Detection]:
        """Detections of the boxes of :meth:`boxes`, largest box first."""
        detections = [
            Detection(box=box, score=score, landmarks=self.landmarks(image, box))
            for box, score in found
        ]
        detections.sort(key=lambda d: d.area, reverse=True)
        return detections

    def landmarks(self, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The 68 landmarks (68, 2) float32 in image pixels of the face in ``box``."""
        rect = dlib.rectangle(box[0], box[1], box[2] - 1, box[3] - 1)
        shape = self._predictor(image, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


@functools.cache
def _shape_predictor() -> dlib.shape_predictor:
    # One per process (about 100 MB): the cascade's detectors share it.
    return dlib.shape_predictor(str(dlib_model_path(SHAPE_68)))


def _box(rect: dlib.rectangle, scale: float) -> tuple[int, int, int, int]:
    inv = 1.0 / scale
    return (
        round(rect.left() * inv),
        round(rect.top() * inv),
        round((rect.right() + 1) * inv),
        round((rect.bottom() + 1) * inv),
    )
