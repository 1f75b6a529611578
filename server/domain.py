"""Domain values of the registry (frozen dataclasses; no protobuf here).

Scores are cosine similarities in [-1, 1]; times are Unix seconds; vectors
are L2-normalised float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from likeness.operating_points import CUSTOM, OperatingPoint, custom
from likeness.quality import Quality

DEFAULT_GALLERY = "default"


@dataclass(frozen=True)
class GalleryConfig:
    """A gallery: bound to one model (fingerprint, dim) at creation.

    ``threshold`` is a cosine similarity in [-1, 1]; quality gates of 0 are off.
    Sharding fields apply only to the ``qdrant`` backend (0 = server default).
    ``operating_point`` names the model's operating point ``threshold`` is
    (at target FAR ``operating_point_far``); "custom" for a threshold set by
    hand, "" for galleries stored before operating points (reported as
    "custom" too, see :attr:`point`).
    """

    name: str
    model_fingerprint: str
    dim: int
    threshold: float
    created_at: float
    min_face_size_px: float = 0.0
    min_sharpness: float = 0.0
    max_abs_yaw_deg: float = 0.0
    shard_number: int = 0
    #: The quality gates also apply to image probes (Verify, Identify, Compare).
    gate_probes: bool = False
    replication_factor: int = 0
    write_consistency_factor: int = 0
    operating_point: str = ""
    operating_point_far: float = 0.0

    @property
    def point(self) -> OperatingPoint:
        """The operating point in force (name "custom", FAR 0, when none)."""
        if not self.operating_point or self.operating_point == CUSTOM:
            return custom(self.threshold)
        return OperatingPoint(self.operating_point, self.operating_point_far, self.threshold)


@dataclass(frozen=True)
class StoredFace:
    """One enrolled face as stored: ``vector`` is L2-normalised float32 (dim,),
    ``created_at`` unix seconds; ``face_id`` is a UUID string."""

    face_id: str
    subject_id: str
    gallery: str
    vector: np.ndarray
    model_fingerprint: str
    created_at: float
    metadata: dict[str, str] = field(default_factory=dict)
    quality: Quality | None = None
    #: sha256 (hex) of the Enroll request that wrote the face under an
    #: idempotency key: a retry with the same key must carry the same request.
    #: Empty for faces enrolled without a key, imported, or stored before it.
    request_sha256: str = ""


@dataclass(frozen=True)
class SearchHit:
    """A face found by a search: ``score`` is cosine similarity in [-1, 1]."""

    face_id: str
    subject_id: str
    score: float
    metadata: dict[str, str] = field(default_factory=dict)


# -- what the embedder answers -------------------------------------------


@dataclass(frozen=True)
class EmbeddedFace:
    """One face found by the embedder.

    ``vector``: float32 (dim,) as sent (L2-normalised by the embedder);
    ``box``: (left, top, right, bottom) in image pixels, right/bottom exclusive.
    """

    vector: np.ndarray
    model_fingerprint: str
    quality: Quality
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class ModelInfo:
    """The embedder's model: ``default_threshold`` is a cosine similarity in
    [-1, 1]; ``operating_points`` the model's named thresholds and
    ``default_operating_point`` the name of the one galleries get by default
    (an embedder that reports none: one "custom" point at
    ``default_threshold``)."""

    model_fingerprint: str
    dim: int
    default_threshold: float
    backend: str = ""
    model_id: str = ""
    operating_points: tuple[OperatingPoint, ...] = ()
    default_operating_point: str = ""

    def point(self, name: str) -> OperatingPoint | None:
        """The point called ``name`` ("" = the default); None when unknown."""
        points = self.operating_points or (custom(self.default_threshold),)
        wanted = name or self.default_operating_point or CUSTOM
        return next((p for p in points if p.name == wanted), None)

    @property
    def default_point(self) -> OperatingPoint:
        """The point galleries get when none is named: :meth:`point` of "",
        or "custom" at ``default_threshold`` when the model names none."""
        return self.point("") or custom(self.default_threshold)

    @property
    def point_names(self) -> list[str]:
        """The names :meth:`point` knows."""
        return [p.name for p in self.operating_points] or [CUSTOM]


# -- requests and answers of the registry service --------------------------


@dataclass(frozen=True)
class EmbeddingInput:
    """A precomputed embedding: ``values`` L2-normalised, of the model
    ``model_fingerprint``."""

    values: Sequence[float] | np.ndarray
    model_fingerprint: str


@dataclass(frozen=True)
class Probe:
    """A probe face: exactly one of ``image`` (encoded bytes) or ``embedding``."""

    image: bytes | None = None
    embedding: EmbeddingInput | None = None


@dataclass(frozen=True)
class EnrolledFace:
    face_id: str
    quality: Quality | None


@dataclass(frozen=True)
class DuplicateCandidate:
    subject_id: str
    score: float


@dataclass(frozen=True)
class EnrollResult:
    subject_id: str
    faces: list[EnrolledFace]
    possible_duplicates: list[DuplicateCandidate]
    replayed: bool


@dataclass(frozen=True)
class VerifyResult:
    score: float
    threshold: float
    match: bool
    face_id: str
    probe_quality: Quality | None
    operating_point: OperatingPoint | None = None


@dataclass(frozen=True)
class Candidate:
    subject_id: str
    score: float
    face_id: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IdentifiedFace:
    """One face of a probe image identified on its own: ``box`` (left, top,
    right, bottom) in probe image pixels."""

    box: tuple[int, int, int, int]
    quality: Quality | None
    candidates: list[Candidate]
    unknown: bool


@dataclass(frozen=True)
class IdentifyResult:
    """``faces``: every face of the probe, largest first (selection ALL on an
    image probe; empty otherwise); the other fields describe the largest."""

    candidates: list[Candidate]
    unknown: bool
    threshold: float
    probe_quality: Quality | None
    faces: list[IdentifiedFace] = field(default_factory=list)
    operating_point: OperatingPoint | None = None


@dataclass(frozen=True)
class CompareResult:
    score: float
    threshold: float
    match: bool
    quality_a: Quality | None
    quality_b: Quality | None
    operating_point: OperatingPoint | None = None


@dataclass(frozen=True)
class SubjectRecord:
    """A subject with its faces (oldest first) and metadata."""

    gallery: str
    subject_id: str
    faces: list[StoredFace]
    metadata: dict[str, str]


@dataclass(frozen=True)
class SubjectPage:
    """(subject id, face count) in subject-id order; ``next_page_token`` empty
    on the last page."""

    subjects: list[tuple[str, int]]
    next_page_token: str


@dataclass(frozen=True)
class GalleryStats:
    gallery: GalleryConfig
    subjects: int
    faces: int
    store_backend: str


@dataclass(frozen=True)
class GalleryOptions:
    """CreateGallery options; None = the embedder model's default (threshold)
    or 0 (gates: off). Sharding applies to the qdrant backend only.
    ``operating_point``: one of the model's by name ("" = its default);
    exclusive with ``threshold`` (a threshold set by hand)."""

    threshold: float | None = None
    operating_point: str = ""
    min_face_size_px: float | None = None
    min_sharpness: float | None = None
    max_abs_yaw_deg: float | None = None
    shard_number: int = 0
    gate_probes: bool = False
    replication_factor: int = 0
    write_consistency_factor: int = 0


@dataclass(frozen=True)
class ImportedFace:
    """One face of an import stream (as written by export)."""

    subject_id: str
    face_id: str
    embedding: EmbeddingInput
    metadata: dict[str, str]
    created_at: float
    quality: Quality | None


@dataclass(frozen=True)
class ImportResult:
    imported: int
    skipped: int
