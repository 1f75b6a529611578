"""The face pipeline: image bytes -> faces with landmarks, quality, embedding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedder.align import align_face
from embedder.backends import FaceInput
from embedder.batcher import Batcher
from embedder.cascade import DetectionCascade
from embedder.decode import decode_image
from embedder.detect import Detection
from embedder.quality import face_quality
from likeness.errors import FailedPrecondition, NotFound
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
    ) -> None:
        self._detector = detector
        self._template = template
        self._batcher = batcher
        self._size = input_size
        self._max_pixels = max_pixels

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
        image = decode_image(data, self._max_pixels)
        height, width = image.shape[:2]
        # Asking for every face, or for proof of only one, skips the fast pass.
        found = self._detector.detect(image, thorough=selection is not FaceSelection.LARGEST)
        detections = self._select(found.detections, selection)
        inputs = [
            FaceInput(image, det, align_face(image, det.landmarks, self._size, self._template))
            for det in detections
        ]
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
