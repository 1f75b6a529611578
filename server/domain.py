"""Domain values of the registry (frozen dataclasses; no protobuf here)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from likeness.quality import Quality

DEFAULT_GALLERY = "default"


@dataclass(frozen=True)
class GalleryConfig:
    """A gallery: bound to one model (fingerprint, dim) at creation.

    ``threshold`` is a cosine similarity in [-1, 1]; quality gates of 0 are off.
    Sharding fields apply only to the ``qdrant`` backend (0 = server default).
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
    replication_factor: int = 0
    write_consistency_factor: int = 0


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
