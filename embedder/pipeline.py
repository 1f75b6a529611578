"""The face pipeline: image bytes -> faces with landmarks, quality, embedding."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from embedder.align import align_face
from embedder.backends import FaceInput
from embedder.batcher import Batcher
from embedder.cascade import DetectionCascade
from embedder.decode import decode_image
from embedder.detect import Detection
from embedder.quality import face_quality
from likeness.errors import FailedPrecondition, LikenessError, NotFound
from likeness.quality import Quality
from likeness.reasons import Reason, measured
from likeness.selection import FaceSelection


@dataclass(frozen=True)
class FaceResult:
    """One embedded face: ``box`` (left, top, right, bottom) and ``landmarks``
    (68, 2) in image pixels; ``vector`` (dim,) float32, L2-normalised."""

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    detection_score: float
    quality: Quality
    vector: np.ndarray
    detector: str = ""


@dataclass(frozen=True)
class EmbedResult:
    """Faces of one image, largest first; ``width``/``height`` of the decoded,
    EXIF-rotated image in pixels; ``detection_steps`` how many detection
    steps ran (1: the first pass found the faces; more: it escalated)."""

    width: int
    height: int
    faces: list[FaceResult]
    detection_steps: int = 1


class StageObserver(Protocol):
    """What watches the pipeline (the embedder's metrics)."""

    def observe_stage(self, stage: str, seconds: float) -> None:
        """``stage`` (decode, detect, landmarks, align, embed) took ``seconds``."""

    def observe_image(self, outcome: str, faces: int) -> None:
        """An image ended with ``outcome`` ("ok" or the error's type name)
        after embedding ``faces`` faces."""


class _Unobserved:
    def observe_stage(self, stage: str, seconds: float) -> None:
        pass

    def observe_image(self, outcome: str, faces: int) -> None:
        pass


class FacePipeline:
    """Decode -> detect -> 68 landmarks -> align -> quality -> embed.

    ``input_size`` is the side of the aligned crop in pixels and
    ``template`` its alignment template (both the model's).
    """

    def __init__(
        self,
        detector: DetectionCascade,
        batcher: Batcher,
        input_size: int,
        max_pixels: int = 40_000_000,
        template: str = "arcface",
        observer: StageObserver | None = None,
    ) -> None:
        self._observer: StageObserver = observer or _Unobserved()
        self._detector = detector
        self._template = template
        self._batcher = batcher
        self._size = input_size
        self._max_pixels = max_pixels

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self._observer.observe_stage(name, time.perf_counter() - start)

    def process(
        self,
        data: bytes,
        selection: FaceSelection = FaceSelection.LARGEST,
        timeout_s: float | None = None,
    ) -> EmbedResult:
        """Embed the selected faces of an encoded image.

        Raises:
            InvalidArgument: undecodable or oversized image (from decode_image).
            NotFound: no face in the image, whatever the selection.
            FailedPrecondition: REQUIRE_SINGLE and several faces in the image.
            DeadlineExceeded: ``timeout_s`` seconds passed waiting for the model.
        """
        try:
            result = self._process(data, selection, timeout_s)
        except LikenessError as exc:
            self._observer.observe_image(type(exc).__name__, 0)
            raise
        self._observer.observe_image("ok", len(result.faces))
        return result

    def _process(
        self, data: bytes, selection: FaceSelection, timeout_s: float | None
    ) -> EmbedResult:
        with self._stage("decode"):
            image = decode_image(data, self._max_pixels)
        height, width = image.shape[:2]
        # Asking for every face, or for proof of only one, skips the fast pass.
        found = self._detector.detect(
            image, thorough=selection is not FaceSelection.LARGEST, timer=self._stage
        )
        detections = self._select(found.detections, selection)
        with self._stage("align"):
            inputs = [
                FaceInput(image, det, align_face(image, det.landmarks, self._size, self._template))
                for det in detections
            ]
        with self._stage("embed"):
            vectors = self._batcher.embed(inputs, timeout_s=timeout_s)
        faces = [
            FaceResult(
                box=item.detection.box,
                landmarks=item.detection.landmarks,
                detection_score=item.detection.score,
                quality=face_quality(item.detection.landmarks, item.aligned.crop, width, height),
                vector=vector,
                detector=item.detection.detector,
            )
            for item, vector in zip(inputs, vectors, strict=True)
        ]
        return EmbedResult(width=width, height=height, faces=faces, detection_steps=found.steps_run)

    def detections_by_step(self) -> dict[str, int]:
        """Images answered by each detection step so far (see DetectionCascade)."""
        return self._detector.counts.snapshot()

    @staticmethod
    def _select(detections: list[Detection], selection: FaceSelection) -> list[Detection]:
        if not detections:
            raise NotFound("no face found in the image", reason=Reason.NO_FACE)
        if selection is FaceSelection.REQUIRE_SINGLE and len(detections) != 1:
            raise FailedPrecondition(
                f"exactly one face required, found {len(detections)} faces in the image",
                reason=Reason.MULTIPLE_FACES,
                metadata=measured(len(detections), 1),
            )
        if selection is FaceSelection.ALL:
            return detections
        return detections[:1]
