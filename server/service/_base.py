"""What every verb of the registry service shares: the store, the
embedder, per-subject locks, gallery lookup, and probe and embedding checks."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from likeness import errors
from likeness.quality import Quality
from likeness.reasons import Reason, measured
from likeness.selection import FaceSelection
from server import _validate as check
from server.domain import (
    DEFAULT_GALLERY,
    EmbeddedFace,
    EmbeddingInput,
    GalleryConfig,
    Probe,
)
from server.embedder_client import EmbedderPort
from server.store.base import FaceStore

_LOCK_STRIPES = 64


@dataclass(frozen=True)
class FaceVector:
    """A face ready to store or search with: ``vector`` L2-normalised float32
    (dim,), ``quality`` as measured by the embedder (None for a precomputed
    embedding), ``box`` (left, top, right, bottom) in image pixels (None for
    a precomputed embedding)."""

    vector: np.ndarray
    quality: Quality | None
    box: tuple[int, int, int, int] | None = None


class ServiceBase:
    """The state and helpers of :class:`server.service.RegistryService`,
    which each verb module extends."""

    def __init__(self, store: FaceStore, embedder: EmbedderPort) -> None:
        self._store = store
        self._embedder = embedder
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]

    # -- health ------------------------------------------------------------

    def check_store(self) -> None:
        """Raise Unavailable when the store cannot serve."""
        self._store.check_health()

    def check_embedder(self) -> None:
        """Raise Unavailable when the embedder cannot serve."""
        self._embedder.check_health()

    # -- helpers -----------------------------------------------------------

    def _lock(self, gallery: str, subject: str) -> threading.Lock:
        return self._locks[hash((gallery, subject)) % _LOCK_STRIPES]

    def _resolve_gallery(
        self, name: str, deadline: float | None = None
    ) -> tuple[GalleryConfig, bool]:
        """The gallery's config and whether it exists. A missing "default"
        gallery is described from the embedder's model (created by the caller
        once the request is valid: a rejected request stores nothing)."""
        try:
            return self._store.get_gallery(name), True
        except errors.NotFound:
            if name != DEFAULT_GALLERY:
                raise gallery_not_found(name) from None
        info = self._embedder.info(seconds_left(deadline))
        point = info.default_point
        config = GalleryConfig(
            name=name,
            model_fingerprint=info.model_fingerprint,
            dim=info.dim,
            threshold=point.threshold,
            created_at=time.time(),
            operating_point=point.name,
            operating_point_far=point.far,
        )
        return config, False

    def _create_default(self, config: GalleryConfig) -> GalleryConfig:
        # Another request may have created it first.
        with contextlib.suppress(errors.AlreadyExists):
            self._store.create_gallery(config)
        return self._store.get_gallery(config.name)

    def _existing_gallery(self, name: str) -> GalleryConfig:
        """The gallery's config; NotFound when it does not exist, "default"
        included: only Enroll, Verify and Identify create "default" (reads
        must neither write nor need the embedder)."""
        try:
            return self._store.get_gallery(name)
        except errors.NotFound:
            raise gallery_not_found(name) from None

    def _probe(
        self, probe: Probe, field: str, config: GalleryConfig, deadline: float | None
    ) -> FaceVector:
        return self._probe_for(probe, field, config, config.model_fingerprint, config.dim, deadline)

    def _probe_faces(
        self,
        probe: Probe,
        field: str,
        config: GalleryConfig,
        selection: FaceSelection,
        deadline: float | None,
    ) -> list[FaceVector]:
        """The probe's faces of ``selection``, largest first (an embedding
        probe: itself, whatever the selection)."""
        if probe.embedding is not None or selection is FaceSelection.LARGEST:
            return [self._probe(probe, field, config, deadline)]
        if not probe.image:
            raise errors.InvalidArgument(f"{field}: an image or an embedding is required")
        out = []
        for face in self._embed(probe.image, selection, field, deadline):
            if face.model_fingerprint != config.model_fingerprint:
                raise fingerprint_mismatch(
                    f"{field} (embedder)", face.model_fingerprint, config, config.model_fingerprint
                )
            if config.gate_probes:
                check_quality(face.quality, config, field)
            out.append(FaceVector(unit_vector(face.vector), face.quality, face.box))
        return out

    def _probe_for(
        self,
        probe: Probe,
        field: str,
        gallery: GalleryConfig | None,
        fingerprint: str,
        dim: int,
        deadline: float | None,
    ) -> FaceVector:
        if probe.embedding is not None:
            vector = self._checked_embedding(probe.embedding, gallery, fingerprint, dim, field)
            return FaceVector(vector, None)
        if not probe.image:
            raise errors.InvalidArgument(f"{field}: an image or an embedding is required")
        faces = self._embed(probe.image, FaceSelection.LARGEST, field, deadline)
        face = faces[0]
        if face.model_fingerprint != fingerprint:
            raise fingerprint_mismatch(
                f"{field} (embedder)", face.model_fingerprint, gallery, fingerprint
            )
        if gallery is not None and gallery.gate_probes:
            check_quality(face.quality, gallery, field)
        return FaceVector(unit_vector(face.vector), face.quality, face.box)

    def _embedding_face(
        self, embedding: EmbeddingInput, config: GalleryConfig, field: str
    ) -> FaceVector:
        vector = self._checked_embedding(
            embedding, config, config.model_fingerprint, config.dim, field
        )
        return FaceVector(vector, None)

    @staticmethod
    def _checked_embedding(
        embedding: EmbeddingInput,
        gallery: GalleryConfig | None,
        fingerprint: str,
        dim: int,
        field: str,
    ) -> np.ndarray:
        if not embedding.model_fingerprint:
            raise errors.InvalidArgument(f"{field}.model_fingerprint: required")
        if embedding.model_fingerprint != fingerprint:
            raise fingerprint_mismatch(field, embedding.model_fingerprint, gallery, fingerprint)
        return check.vector(embedding.values, dim, f"{field}.values")

    def _image_faces(
        self,
        image: bytes,
        selection: FaceSelection,
        config: GalleryConfig,
        field: str,
        deadline: float | None,
    ) -> list[FaceVector]:
        out = []
        for face in self._embed(image, selection, field, deadline):
            if face.model_fingerprint != config.model_fingerprint:
                raise fingerprint_mismatch(
                    f"{field} (embedder)", face.model_fingerprint, config, config.model_fingerprint
                )
            check_quality(face.quality, config, field)
            out.append(FaceVector(unit_vector(face.vector), face.quality))
        return out

    def _embed(
        self, image: bytes, selection: FaceSelection, field: str, deadline: float | None
    ) -> list[EmbeddedFace]:
        try:
            faces = self._embedder.embed(image, selection, seconds_left(deadline))
        except (errors.InvalidArgument, errors.NotFound, errors.FailedPrecondition) as exc:
            raise exc.prefixed(f"{field}: ") from None
        if not faces:
            raise errors.NotFound(f"{field}: no face found", reason=Reason.NO_FACE)
        return faces


def fingerprint_mismatch(
    what: str, got: str, gallery: GalleryConfig | None, want: str
) -> errors.FailedPrecondition:
    """The MODEL_MISMATCH refusal of fingerprint ``got`` where ``want`` is required."""
    where = f"gallery {gallery.name!r}" if gallery is not None else "the embedder"
    return errors.FailedPrecondition(
        f"{what}: model fingerprint {got!r} differs from {where}'s model fingerprint {want!r}",
        reason=Reason.MODEL_MISMATCH,
        metadata=measured(got, want),
    )


def gallery_not_found(name: str) -> errors.NotFound:
    """The GALLERY_NOT_FOUND refusal of gallery ``name``."""
    return errors.NotFound(
        f"gallery {name!r} not found", reason=Reason.GALLERY_NOT_FOUND, metadata={"gallery": name}
    )


def subject_not_found(subject: str, gallery: str) -> errors.NotFound:
    """The SUBJECT_NOT_FOUND refusal of ``subject`` in ``gallery``."""
    return errors.NotFound(
        f"subject {subject!r} not found in gallery {gallery!r}",
        reason=Reason.SUBJECT_NOT_FOUND,
        metadata={"subject": subject, "gallery": gallery},
    )


def deadline_in(timeout_s: float | None) -> float | None:
    """The time.monotonic() instant ``timeout_s`` seconds from now (None: none)."""
    return None if timeout_s is None else time.monotonic() + timeout_s


def seconds_left(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (None: no deadline)."""
    return None if deadline is None else deadline - time.monotonic()


def unit_vector(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if not math.isfinite(norm) or norm == 0.0:
        raise RuntimeError("the embedder returned a zero or non-finite vector")
    return (vector / norm).astype(np.float32)


def check_quality(quality: Quality, config: GalleryConfig, field: str) -> None:
    """Raise FailedPrecondition (reason FACE_TOO_SMALL, FACE_TOO_BLURRY or
    POSE_TOO_LARGE, metadata the measured value and the gallery's limit) for
    the first of the gallery's quality gates ``quality`` fails; gates of 0 are off."""
    if config.min_face_size_px > 0 and quality.face_size_px < config.min_face_size_px:
        raise errors.FailedPrecondition(
            f"{field}: face size {quality.face_size_px:.1f} px is below the gallery's "
            f"minimum {config.min_face_size_px:g} px",
            reason=Reason.FACE_TOO_SMALL,
            metadata=measured(quality.face_size_px, config.min_face_size_px, field=field),
        )
    if config.min_sharpness > 0 and quality.sharpness < config.min_sharpness:
        raise errors.FailedPrecondition(
            f"{field}: sharpness {quality.sharpness:.1f} is below the gallery's "
            f"minimum {config.min_sharpness:g}",
            reason=Reason.FACE_TOO_BLURRY,
            metadata=measured(quality.sharpness, config.min_sharpness, field=field),
        )
    if config.max_abs_yaw_deg > 0 and abs(quality.yaw_deg) > config.max_abs_yaw_deg:
        raise errors.FailedPrecondition(
            f"{field}: yaw {quality.yaw_deg:.1f} degrees exceeds the gallery's "
            f"limit of {config.max_abs_yaw_deg:g} degrees",
            reason=Reason.POSE_TOO_LARGE,
            metadata=measured(abs(quality.yaw_deg), config.max_abs_yaw_deg, field=field),
        )
