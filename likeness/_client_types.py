"""Result values of :mod:`likeness.client`: frozen dataclasses, no protobuf.

Conventions (as in the API contract, proto/likeness/v1/common.proto):
image coordinates are pixels of the EXIF-rotated image, x to the right, y
downwards, origin at the top-left corner; scores are cosine similarity of
L2-normalised embeddings in [-1, 1], and a decision is "match" when
``score >= threshold``; times are Unix seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from likeness.operating_points import OperatingPoint
from likeness.quality import Quality

#: The gallery every request uses unless it names another.
DEFAULT_GALLERY = "default"


@dataclass(frozen=True)
class Point:
    """A point in image pixels."""

    x: float
    y: float


@dataclass(frozen=True)
class BoundingBox:
    """A face box in image pixels; ``right`` and ``bottom`` are exclusive."""

    left: int
    top: int
    right: int
    bottom: int


@dataclass(frozen=True)
class Embedding:
    """An L2-normalised embedding and the fingerprint of the model that made it."""

    values: tuple[float, ...]
    model_fingerprint: str

    def as_array(self) -> np.ndarray:
        """The vector as a float32 array of shape (dim,)."""
        return np.asarray(self.values, dtype=np.float32)


@dataclass(frozen=True)
class Face:
    """A face found by the embedder: 68 iBUG 300-W landmarks in image pixels,
    the detector's margin (higher is surer), its quality and embedding;
    ``detector`` the detection step that found it ("hog-fast",
    "hog-upsampled", "cnn", ... see likeness.v1.Face)."""

    box: BoundingBox
    landmarks: tuple[Point, ...]
    detection_score: float
    quality: Quality | None
    embedding: Embedding
    detector: str = ""


@dataclass(frozen=True)
class EmbedResult:
    """The faces of one image, largest first; the decoded image size in
    pixels; ``detection_steps`` the detection steps run (1 = no escalation)."""

    faces: tuple[Face, ...]
    image_width: int
    image_height: int
    detection_steps: int = 0


@dataclass(frozen=True)
class ModelInfo:
    """The embedder's model; ``default_threshold`` is the cosine similarity
    calibrated at FAR = 1e-3, ``input_size`` the aligned crop side in pixels;
    ``detections_by_step`` images answered by each detection step since the
    embedder started ("none": no face found), see likeness.v1.InfoResponse;
    ``operating_points`` the model's named thresholds with their measured
    rates, ``default_operating_point`` the one galleries get by default."""

    backend: str
    model_id: str
    model_fingerprint: str
    dim: int
    default_threshold: float
    input_size: int
    detections_by_step: Mapping[str, int] = field(default_factory=dict)
    operating_points: tuple[OperatingPoint, ...] = ()
    default_operating_point: str = ""


@dataclass(frozen=True)
class EnrolledFace:
    """A stored face; ``quality`` is None for a precomputed embedding."""

    face_id: str
    quality: Quality | None


@dataclass(frozen=True)
class DuplicateCandidate:
    """Another subject whose face matches a newly enrolled one (score >= threshold)."""

    subject_id: str
    score: float


@dataclass(frozen=True)
class EnrollResult:
    """The answer to an enrolment; ``replayed`` is True when the idempotency
    key had been seen before and nothing was stored this time."""

    subject_id: str
    faces: tuple[EnrolledFace, ...]
    possible_duplicates: tuple[DuplicateCandidate, ...]
    replayed: bool


@dataclass(frozen=True)
class VerifyResult:
    """1:1 decision: the best score against the subject's faces, the gallery's
    threshold, ``match = score >= threshold`` and the face that scored best;
    ``operating_point`` the gallery's point that gave ``threshold`` (None
    from a server older than operating points)."""

    score: float
    threshold: float
    match: bool
    face_id: str
    probe_quality: Quality | None
    operating_point: OperatingPoint | None = None


@dataclass(frozen=True)
class Candidate:
    """A subject returned by identify: its best face and score."""

    subject_id: str
    score: float
    face_id: str
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class IdentifiedFace:
    """One face of a probe image identified on its own (selection ALL): its
    box in probe image pixels, quality, candidates best first and whether it
    is unknown."""

    box: BoundingBox
    quality: Quality | None
    candidates: tuple[Candidate, ...]
    unknown: bool


@dataclass(frozen=True)
class IdentifyResult:
    """1:N answer: candidates best first; ``unknown`` is True when no subject
    reaches ``threshold``. ``faces``: with selection ALL, every face of the
    probe image, largest first (the other fields answer for the largest).
    ``operating_point``: the gallery's point that gave ``threshold``."""

    candidates: tuple[Candidate, ...]
    unknown: bool
    threshold: float
    probe_quality: Quality | None
    faces: tuple[IdentifiedFace, ...] = ()
    operating_point: OperatingPoint | None = None


@dataclass(frozen=True)
class CompareResult:
    """Two probes compared: ``match = score >= threshold``, the threshold of
    ``operating_point`` (the gallery's, or the model's default)."""

    score: float
    threshold: float
    match: bool
    quality_a: Quality | None
    quality_b: Quality | None
    operating_point: OperatingPoint | None = None


@dataclass(frozen=True)
class FaceRecord:
    """A stored face of a subject (no vector); ``created_at`` in Unix seconds."""

    face_id: str
    model_fingerprint: str
    created_at: float
    quality: Quality | None


@dataclass(frozen=True)
class Subject:
    """An enrolled subject with its faces and metadata."""

    gallery: str
    subject_id: str
    faces: tuple[FaceRecord, ...]
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class SubjectSummary:
    """A subject id and how many faces it has."""

    subject_id: str
    face_count: int


@dataclass(frozen=True)
class SubjectPage:
    """One page of subjects, ordered by id; ``next_page_token`` is empty on the last page."""

    subjects: tuple[SubjectSummary, ...]
    next_page_token: str


@dataclass(frozen=True)
class Gallery:
    """A gallery bound to one model; quality gates of 0 are off.

    ``threshold``: cosine similarity; ``min_face_size_px``: inter-ocular
    pixels; ``max_abs_yaw_deg``: degrees; ``created_at``: Unix seconds;
    ``gate_probes``: the gates also apply to image probes;
    ``operating_point``: the point in force (its threshold is ``threshold``;
    "custom" when set by hand or older than operating points).
    """

    name: str
    model_fingerprint: str
    dim: int
    threshold: float
    min_face_size_px: float
    min_sharpness: float
    max_abs_yaw_deg: float
    created_at: float
    gate_probes: bool = False
    operating_point: OperatingPoint | None = None


@dataclass(frozen=True)
class GalleryStats:
    """Counts of a gallery and the store backend ("edge" or "qdrant")."""

    gallery: Gallery
    subjects: int
    faces: int
    store_backend: str
    #: Pairs of different subjects whose faces match (FindDuplicates at the
    #: gallery's threshold); None unless asked for (``count_duplicates``).
    duplicate_pairs: int | None = None


@dataclass(frozen=True)
class ExportedFace:
    """One stored face with its embedding, as exported and imported."""

    subject_id: str
    face_id: str
    embedding: Embedding
    metadata: Mapping[str, str]
    created_at: float
    quality: Quality | None


@dataclass(frozen=True)
class ImportResult:
    """Faces written, and faces skipped because their id was already stored."""

    imported: int
    skipped: int


@dataclass(frozen=True)
class ApiKey:
    """An API key (never its secret): ``scopes`` maps gallery (or "*") to
    role ("read", "enroll", "admin")."""

    key_id: str
    name: str
    scopes: Mapping[str, str]
    created_at: float
    revoked: bool


@dataclass(frozen=True)
class CreatedApiKey:
    """A new key and its bearer secret, which the server shows only this once."""

    key: ApiKey
    secret: str
