"""What both backends store, and the checks they share.

A face is one Qdrant point: id = face id (a UUID), vector = the embedding,
payload = :func:`face_payload` (never an image). A gallery config is a JSON
object of :class:`GalleryConfig`'s fields (:func:`config_to_dict`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from typing import Any

import numpy as np

from likeness import errors
from likeness.quality import Quality
from server._validate import GALLERY_NAME_RE, canonical_uuid
from server.domain import GalleryConfig, SearchHit, StoredFace

#: Payload keys of a face point.
SUBJECT_KEY = "subject_id"
FACE_KEY = "face_id"
GALLERY_KEY = "gallery"
FINGERPRINT_KEY = "model_fingerprint"
CREATED_KEY = "created_at"
METADATA_KEY = "metadata"
QUALITY_KEY = "quality"
REQUEST_KEY = "request_sha256"

#: Payload a search hit needs (the rest stays on disk).
HIT_PAYLOAD_KEYS = [SUBJECT_KEY, METADATA_KEY]

_CONFIG_FIELDS = {f.name for f in fields(GalleryConfig)}


def check_gallery_name(name: str) -> str:
    """``name`` when it is 1-64 characters of [a-z0-9_-]; InvalidArgument otherwise.

    Both backends build paths or collection names from it, so they check it
    again even though the service validates first.
    """
    if not isinstance(name, str) or GALLERY_NAME_RE.fullmatch(name) is None:
        raise errors.InvalidArgument(
            f"gallery name {name!r} must be 1-64 characters of a-z, 0-9, '_' and '-'"
        )
    return name


def face_uuid(face_id: str) -> str | None:
    """The canonical (lower-case, hyphenated) form of a face id, None if not a UUID."""
    return canonical_uuid(face_id)


def require_face_uuid(face_id: str) -> str:
    """:func:`face_uuid`, raising InvalidArgument for a non-UUID."""
    canonical = face_uuid(face_id)
    if canonical is None:
        raise errors.InvalidArgument(f"face id {face_id!r} is not a UUID")
    return canonical


def check_vector(vector: np.ndarray, dim: int | None, what: str = "vector") -> list[float]:
    """The vector as a list of floats.

    InvalidArgument when its shape is not (dim,) (any 1-d shape when ``dim``
    is None: the server checks the dim), a component is not finite or it is
    all zeros (cosine similarity is undefined for it).
    """
    arr = np.asarray(vector, dtype=np.float32)
    if arr.ndim != 1 or arr.size == 0 or (dim is not None and arr.shape != (dim,)):
        expected = "a 1-d vector" if dim is None else f"({dim},)"
        raise errors.InvalidArgument(f"{what} has shape {arr.shape}, expected {expected}")
    if not np.all(np.isfinite(arr)):
        raise errors.InvalidArgument(f"{what} has a component that is not finite")
    if not np.any(arr):
        raise errors.InvalidArgument(f"{what} is all zeros")
    values: list[float] = arr.tolist()
    return values


def check_limit(limit: int) -> int:
    """``limit`` when it is at least 1; InvalidArgument otherwise."""
    if limit < 1:
        raise errors.InvalidArgument(f"limit must be at least 1, got {limit}")
    return limit


def face_payload(face: StoredFace, gallery: str, face_id: str) -> dict[str, Any]:
    """The payload of a face point (``face.gallery`` is replaced by ``gallery``)."""
    quality = None if face.quality is None else asdict(face.quality)
    payload: dict[str, Any] = {
        SUBJECT_KEY: face.subject_id,
        FACE_KEY: face_id,
        GALLERY_KEY: gallery,
        FINGERPRINT_KEY: face.model_fingerprint,
        CREATED_KEY: float(face.created_at),
        METADATA_KEY: dict(face.metadata),
        QUALITY_KEY: quality,
    }
    if face.request_sha256:
        payload[REQUEST_KEY] = face.request_sha256
    return payload


def face_from_point(
    point_id: object, payload: Mapping[str, Any] | None, vector: object, gallery: str
) -> StoredFace:
    """A :class:`StoredFace` from a stored point (``vector`` a list of floats)."""
    data = payload or {}
    quality = data.get(QUALITY_KEY)
    return StoredFace(
        face_id=str(point_id),
        subject_id=str(data.get(SUBJECT_KEY, "")),
        gallery=gallery,
        vector=np.asarray(vector, dtype=np.float32),
        model_fingerprint=str(data.get(FINGERPRINT_KEY, "")),
        created_at=float(data.get(CREATED_KEY, 0.0)),
        metadata=_str_dict(data.get(METADATA_KEY)),
        quality=None if not isinstance(quality, dict) else Quality(**quality),
        request_sha256=str(data.get(REQUEST_KEY, "")),
    )


def hit_from_point(point_id: object, score: float, payload: Mapping[str, Any] | None) -> SearchHit:
    """A :class:`SearchHit`; ``score`` is clamped to [-1, 1] (float rounding
    can put the cosine of a vector with itself a hair above 1)."""
    data = payload or {}
    return SearchHit(
        face_id=str(point_id),
        subject_id=str(data.get(SUBJECT_KEY, "")),
        score=min(1.0, max(-1.0, float(score))),
        metadata=_str_dict(data.get(METADATA_KEY)),
    )


def config_to_dict(config: GalleryConfig) -> dict[str, Any]:
    """A JSON-ready dict of the config's fields."""
    return asdict(config)


def config_from_dict(data: Mapping[str, Any]) -> GalleryConfig:
    """The config stored by :func:`config_to_dict` (unknown keys are ignored,
    so a newer registry's extra fields do not break an older one)."""
    return GalleryConfig(**{k: v for k, v in data.items() if k in _CONFIG_FIELDS})


def check_config(config: GalleryConfig) -> GalleryConfig:
    """InvalidArgument for a config no backend can store."""
    check_gallery_name(config.name)
    if config.dim < 1:
        raise errors.InvalidArgument(f"gallery dim must be at least 1, got {config.dim}")
    if not math.isfinite(config.threshold):
        raise errors.InvalidArgument("gallery threshold must be finite")
    return config


def page_subjects(
    ordered: Sequence[tuple[str, int]], after: str | None, limit: int
) -> list[tuple[str, int]]:
    """``limit`` rows of ``ordered`` (sorted by subject id) after ``after``."""
    check_limit(limit)
    start = 0 if after is None else bisect.bisect_right(ordered, after, key=lambda row: row[0])
    return list(ordered[start : start + limit])


def _str_dict(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}
