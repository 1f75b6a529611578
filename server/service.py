"""The registry's domain logic: enrolment, 1:1 verification, 1:N
identification, galleries. No protobuf here (see server/servicer.py).

Scores are cosine similarities in [-1, 1]; a decision is "match" when
score >= threshold. Every request is validated completely before anything is
written, so a rejected request stores nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from likeness import errors
from likeness.quality import Quality
from likeness.selection import FaceSelection
from server import _validate as check
from server.domain import (
    DEFAULT_GALLERY,
    GalleryConfig,
    SearchHit,
    StoredFace,
)
from server.embedder_client import EmbeddedFace, EmbedderPort
from server.store.base import FaceStore

# Face ids of idempotent enrolments are uuid5(namespace, gallery/key/index):
# a retried request computes the same ids and never duplicates a face.
_FACE_ID_NAMESPACE = uuid.UUID("6f1d0a52-8f63-4c3e-9d35-0f6b3c2a9e41")
# Nearest faces examined per new face when looking for possible duplicates.
_DUPLICATE_SEARCH = 16
# Identify widens its face search (x4 each round) up to this many faces
# until it has top_k distinct subjects.
_IDENTIFY_MAX_FACES = 4096
_IMPORT_BATCH = 256
_LOCK_STRIPES = 64
_MAX_ABS_YAW_DEG = 180.0


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


@dataclass(frozen=True)
class Candidate:
    subject_id: str
    score: float
    face_id: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IdentifyResult:
    candidates: list[Candidate]
    unknown: bool
    threshold: float
    probe_quality: Quality | None


@dataclass(frozen=True)
class CompareResult:
    score: float
    threshold: float
    match: bool
    quality_a: Quality | None
    quality_b: Quality | None


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
    or 0 (gates: off). Sharding applies to the qdrant backend only."""

    threshold: float | None = None
    min_face_size_px: float | None = None
    min_sharpness: float | None = None
    max_abs_yaw_deg: float | None = None
    shard_number: int = 0
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


@dataclass(frozen=True)
class _ProbeVector:
    vector: np.ndarray
    quality: Quality | None


@dataclass(frozen=True)
class _NewFace:
    vector: np.ndarray
    quality: Quality | None


@dataclass(frozen=True)
class _Written:
    """The ids an enrolment writes its faces under, its idempotency key (None:
    none) and the sha256 of its request (empty without a key)."""

    face_ids: list[str]
    key: str | None
    request_sha256: str


def _fingerprint_mismatch(what: str, got: str, gallery: GalleryConfig | None, want: str) -> str:
    where = f"gallery {gallery.name!r}" if gallery is not None else "the embedder"
    return f"{what}: model fingerprint {got!r} differs from {where}'s model fingerprint {want!r}"


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.clip(np.dot(a.astype(np.float64), b.astype(np.float64)), -1.0, 1.0))


class RegistryService:
    """Registry operations over a :class:`FaceStore` and an embedder.

    Errors (likeness.errors): InvalidArgument for malformed fields (nothing
    stored), NotFound for unknown galleries/subjects/faces, FailedPrecondition
    for model fingerprint mismatches, face-count and quality rejections,
    AlreadyExists for an existing gallery, Unavailable when the store or the
    embedder cannot be reached.
    """

    def __init__(self, store: FaceStore, embedder: EmbedderPort) -> None:
        self._store = store
        self._embedder = embedder
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]

    # -- galleries ---------------------------------------------------------

    def create_gallery(
        self, name: str, options: GalleryOptions, timeout_s: float | None = None
    ) -> GalleryConfig:
        """Create a gallery bound to the embedder's current model.

        ``timeout_s`` (here and on every RPC that asks the embedder): what is
        left of the client's deadline, seconds (None: no deadline); each
        embedder call waits at most that long (and at most its own timeout).
        """
        deadline = _deadline(timeout_s)
        name = check.gallery_name(name, field="name")
        threshold = (
            None if options.threshold is None else check.score(options.threshold, "threshold")
        )
        gates = {
            "min_face_size_px": options.min_face_size_px,
            "min_sharpness": options.min_sharpness,
            "max_abs_yaw_deg": options.max_abs_yaw_deg,
        }
        checked = {
            key: 0.0
            if value is None
            else check.non_negative(
                value, key, _MAX_ABS_YAW_DEG if key == "max_abs_yaw_deg" else math.inf
            )
            for key, value in gates.items()
        }
        for key in ("shard_number", "replication_factor", "write_consistency_factor"):
            if getattr(options, key) < 0:
                raise errors.InvalidArgument(f"{key}: must be >= 0 (0 = server default)")
        info = self._embedder.info(_left(deadline))
        config = GalleryConfig(
            name=name,
            model_fingerprint=info.model_fingerprint,
            dim=info.dim,
            threshold=info.default_threshold if threshold is None else threshold,
            created_at=time.time(),
            min_face_size_px=checked["min_face_size_px"],
            min_sharpness=checked["min_sharpness"],
            max_abs_yaw_deg=checked["max_abs_yaw_deg"],
            shard_number=options.shard_number,
            replication_factor=options.replication_factor,
            write_consistency_factor=options.write_consistency_factor,
        )
        try:
            self._store.create_gallery(config)
        except errors.AlreadyExists:
            raise errors.AlreadyExists(f"gallery {name!r} already exists") from None
        return self._store.get_gallery(name)

    def list_galleries(self) -> list[GalleryConfig]:
        """Every gallery, by name."""
        return sorted(self._store.list_galleries(), key=lambda g: g.name)

    def delete_gallery(self, name: str) -> int:
        """Delete a gallery with all its faces; returns the number of faces."""
        name = check.gallery_name(name, field="name")
        try:
            return self._store.delete_gallery(name)
        except errors.NotFound:
            raise errors.NotFound(f"gallery {name!r} not found") from None

    def stats(self, gallery: str) -> GalleryStats:
        config = self._existing_gallery(check.gallery_name(gallery))
        subjects, faces = self._store.counts(config.name)
        return GalleryStats(config, subjects, faces, self._store.backend)

    # -- enrolment ---------------------------------------------------------

    def enroll(
        self,
        gallery: str,
        subject_id: str,
        images: Sequence[bytes] = (),
        embeddings: Sequence[EmbeddingInput] = (),
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str = "",
        selection: FaceSelection = FaceSelection.REQUIRE_SINGLE,
        timeout_s: float | None = None,
    ) -> EnrollResult:
        """Add faces (images first, then embeddings, in request order) to a subject.

        With an idempotency key, face ids are uuid5 of (gallery, key, index):
        a retry stores nothing again and answers ``replayed=True``.
        Non-empty ``metadata`` replaces the subject's metadata.
        Quality gates of the gallery reject a face (embedded from an image;
        precomputed embeddings carry no quality) with FailedPrecondition.
        """
        deadline = _deadline(timeout_s)
        name = check.gallery_name(gallery)
        subject = check.subject_id(subject_id)
        new_metadata = check.metadata(metadata or {})
        key = check.idempotency_key(idempotency_key)
        if not images and not embeddings:
            raise errors.InvalidArgument("images, embeddings: at least one face is required")
        check.enroll_faces(len(images) + len(embeddings))
        for i, image in enumerate(images):
            if not image:
                raise errors.InvalidArgument(f"images[{i}]: empty")
        config, exists = self._resolve_gallery(name, deadline)
        new_faces = [
            self._embedding_face(e, config, f"embeddings[{i}]") for i, e in enumerate(embeddings)
        ]
        image_faces: list[_NewFace] = []
        for i, image in enumerate(images):
            image_faces.extend(
                self._image_faces(image, selection, config, f"images[{i}]", deadline)
            )
        new_faces = image_faces + new_faces
        check.enroll_faces(len(new_faces), "images (faces found)")
        if key is None:
            face_ids = [str(uuid.uuid4()) for _ in new_faces]
            written = _Written(face_ids, None, "")
        else:
            face_ids = [
                str(uuid.uuid5(_FACE_ID_NAMESPACE, f"{name}\x00{key}\x00{i}"))
                for i in range(len(new_faces))
            ]
            digest = _request_digest(subject, images, embeddings, new_metadata, selection)
            written = _Written(face_ids, key, digest)
        if not exists:
            config = self._create_default(config)
        with self._lock(name, subject):
            return self._write_enrolment(config, subject, new_faces, written, new_metadata)

    def _write_enrolment(
        self,
        config: GalleryConfig,
        subject: str,
        new_faces: list[_NewFace],
        written: _Written,
        new_metadata: dict[str, str],
    ) -> EnrollResult:
        current = self._store.subject_faces(config.name, subject)
        face_ids, key = written.face_ids, written.key
        enrolled = [
            EnrolledFace(fid, f.quality) for fid, f in zip(face_ids, new_faces, strict=True)
        ]
        to_write = set(face_ids)
        if key is not None:
            present = self._store.existing_face_ids(config.name, face_ids)
            if present:
                own = {f.face_id: f for f in current}
                if not present <= own.keys():
                    raise errors.FailedPrecondition(
                        f"idempotency_key: {key!r} was already used for another subject"
                    )
                # Faces stored before digests were kept carry none: nothing
                # to compare them with, so they replay as before.
                if any(
                    own[fid].request_sha256 not in ("", written.request_sha256) for fid in present
                ):
                    raise errors.FailedPrecondition(
                        f"idempotency_key: {key!r} was already used for a different request "
                        "(other images, embeddings, metadata or selection); use a new key"
                    )
                if len(present) == len(face_ids):
                    duplicates = self._duplicates(config, subject, new_faces)
                    return EnrollResult(subject, enrolled, duplicates, replayed=True)
                # A retry of a request that died half-way: write only the
                # missing faces, leaving the stored ones as they are.
                to_write -= present
        duplicates = self._duplicates(config, subject, new_faces)
        if new_metadata:
            subject_metadata = new_metadata
        elif current:
            subject_metadata = max(current, key=lambda f: f.created_at).metadata
        else:
            subject_metadata = {}
        now = time.time()
        writes = [
            StoredFace(
                face_id=fid,
                subject_id=subject,
                gallery=config.name,
                vector=face.vector,
                model_fingerprint=config.model_fingerprint,
                created_at=now,
                metadata=dict(subject_metadata),
                quality=face.quality,
                request_sha256=written.request_sha256,
            )
            for fid, face in zip(face_ids, new_faces, strict=True)
            if fid in to_write
        ]
        if new_metadata and any(f.metadata != new_metadata for f in current):
            # Payload only: a full upsert of the existing faces would bring
            # back one that a concurrent DeleteFace removed.
            self._store.set_subject_metadata(config.name, subject, dict(new_metadata))
        self._store.upsert_faces(config.name, writes)
        return EnrollResult(subject, enrolled, duplicates, replayed=False)

    def _duplicates(
        self, config: GalleryConfig, subject: str, faces: Sequence[_NewFace]
    ) -> list[DuplicateCandidate]:
        best: dict[str, float] = {}
        for face in faces:
            for hit in self._store.search(config.name, face.vector, _DUPLICATE_SEARCH):
                if hit.subject_id != subject and hit.score >= config.threshold:
                    best[hit.subject_id] = max(best.get(hit.subject_id, -1.0), hit.score)
        ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
        return [DuplicateCandidate(s, score) for s, score in ranked]

    # -- matching ----------------------------------------------------------

    def verify(
        self, gallery: str, subject_id: str, probe: Probe, timeout_s: float | None = None
    ) -> VerifyResult:
        """Best score of the probe over the subject's faces; NotFound for an
        unknown subject."""
        deadline = _deadline(timeout_s)
        name = check.gallery_name(gallery)
        subject = check.subject_id(subject_id)
        config, exists = self._resolve_gallery(name, deadline)
        probe_vector = self._probe(probe, "probe", config, deadline)
        if not exists:
            config = self._create_default(config)
        hits = self._store.search(config.name, probe_vector.vector, 1, subject_id=subject)
        if not hits:
            raise errors.NotFound(f"subject {subject!r} not found in gallery {config.name!r}")
        hit = hits[0]
        return VerifyResult(
            score=hit.score,
            threshold=config.threshold,
            match=hit.score >= config.threshold,
            face_id=hit.face_id,
            probe_quality=probe_vector.quality,
        )

    def identify(
        self,
        gallery: str,
        probe: Probe,
        top_k: int = 0,
        min_score: float | None = None,
        timeout_s: float | None = None,
    ) -> IdentifyResult:
        """Up to ``top_k`` subjects (1-100, 0 = 5) by their best face score,
        best first, each scoring >= ``min_score`` (None: the gallery's
        threshold). ``unknown`` when no subject reaches the threshold."""
        deadline = _deadline(timeout_s)
        name = check.gallery_name(gallery)
        k = check.top_k(top_k)
        floor = None if min_score is None else check.score(min_score, "min_score")
        config, exists = self._resolve_gallery(name, deadline)
        probe_vector = self._probe(probe, "probe", config, deadline)
        if not exists:
            config = self._create_default(config)
        if floor is None:
            floor = config.threshold
        best = self._best_per_subject(config.name, probe_vector.vector, k, floor)
        ranked = sorted(best.values(), key=lambda h: (-h.score, h.subject_id))
        candidates = [
            Candidate(h.subject_id, h.score, h.face_id, dict(h.metadata))
            for h in ranked
            if h.score >= floor
        ][:k]
        unknown = not ranked or ranked[0].score < config.threshold
        return IdentifyResult(candidates, unknown, config.threshold, probe_vector.quality)

    def _best_per_subject(
        self, gallery: str, vector: np.ndarray, k: int, floor: float
    ) -> dict[str, SearchHit]:
        limit = min(k * 4, _IDENTIFY_MAX_FACES)
        while True:
            hits = self._store.search(gallery, vector, limit)
            best: dict[str, SearchHit] = {}
            for hit in hits:
                if hit.subject_id not in best or hit.score > best[hit.subject_id].score:
                    best[hit.subject_id] = hit
            exhausted = len(hits) < limit or (bool(hits) and hits[-1].score < floor)
            if len(best) >= k or exhausted or limit >= _IDENTIFY_MAX_FACES:
                return best
            limit = min(limit * 4, _IDENTIFY_MAX_FACES)

    def compare(
        self, a: Probe, b: Probe, gallery: str = "", timeout_s: float | None = None
    ) -> CompareResult:
        """Cosine similarity of two probes; stores nothing. With ``gallery``
        its threshold and model apply, else the embedder model's."""
        deadline = _deadline(timeout_s)
        if gallery:
            config, _ = self._resolve_gallery(check.gallery_name(gallery), deadline)
            threshold = config.threshold
            target: GalleryConfig | None = config
            fingerprint, dim = config.model_fingerprint, config.dim
        else:
            info = self._embedder.info(_left(deadline))
            threshold, target = info.default_threshold, None
            fingerprint, dim = info.model_fingerprint, info.dim
        va = self._probe_for(a, "a", target, fingerprint, dim, deadline)
        vb = self._probe_for(b, "b", target, fingerprint, dim, deadline)
        score = _cosine(va.vector, vb.vector)
        return CompareResult(score, threshold, score >= threshold, va.quality, vb.quality)

    # -- subjects and faces ------------------------------------------------

    def get_subject(self, gallery: str, subject_id: str) -> SubjectRecord:
        name = check.gallery_name(gallery)
        subject = check.subject_id(subject_id)
        config = self._existing_gallery(name)
        faces = sorted(
            self._store.subject_faces(config.name, subject), key=lambda f: (f.created_at, f.face_id)
        )
        if not faces:
            raise errors.NotFound(f"subject {subject!r} not found in gallery {config.name!r}")
        return SubjectRecord(config.name, subject, faces, dict(faces[-1].metadata))

    def list_subjects(self, gallery: str, page_size: int = 0, page_token: str = "") -> SubjectPage:
        """One page of subjects in subject-id order (page_size 1-1000, 0 = 100)."""
        name = check.gallery_name(gallery)
        size = check.page_size(page_size)
        after = check.decode_page_token(page_token)
        config = self._existing_gallery(name)
        rows = self._store.list_subjects(config.name, after, size + 1)
        if len(rows) > size:
            rows = rows[:size]
            token = check.encode_page_token(rows[-1][0])
        else:
            token = ""
        return SubjectPage(rows, token)

    def delete_subject(self, gallery: str, subject_id: str) -> int:
        """Delete a subject's faces; returns how many; NotFound when it has none."""
        name = check.gallery_name(gallery)
        subject = check.subject_id(subject_id)
        config = self._existing_gallery(name)
        with self._lock(config.name, subject):
            deleted = self._store.delete_subject(config.name, subject)
        if deleted == 0:
            raise errors.NotFound(f"subject {subject!r} not found in gallery {config.name!r}")
        return deleted

    def delete_face(self, gallery: str, face_id: str) -> str:
        """Delete one face; returns its subject id. Runs under the subject's
        lock, so it cannot interleave with an enrolment of the same subject."""
        name = check.gallery_name(gallery)
        fid = check.face_id(face_id)
        config = self._existing_gallery(name)
        missing = f"face {fid!r} not found in gallery {config.name!r}"
        subject = self._store.face_subject(config.name, fid)
        if subject is None:
            raise errors.NotFound(missing)
        with self._lock(config.name, subject):
            try:
                return self._store.delete_face(config.name, fid)
            except errors.NotFound:
                raise errors.NotFound(missing) from None

    # -- export / import ---------------------------------------------------

    def export_gallery(self, gallery: str) -> tuple[GalleryConfig, Iterator[StoredFace]]:
        """The gallery and an iterator over its faces (vectors included)."""
        config = self._existing_gallery(check.gallery_name(gallery))
        return config, self._store.iter_faces(config.name)

    def import_gallery(self, gallery: str, faces: Iterable[ImportedFace]) -> ImportResult:
        """Write exported faces into a gallery of the same model fingerprint,
        keeping their face ids; faces already present are skipped.

        All or nothing: the whole stream is read and validated before the
        first face is written, so an invalid face anywhere fails the call
        with nothing stored (the registry holds the validated faces in memory
        meanwhile: about 1 KiB per 128-d face). Only a store failure during
        the writes can leave part of the faces written; a retry then skips
        those and writes the rest.
        """
        config = self._existing_gallery(check.gallery_name(gallery))
        now = time.time()
        validated: dict[str, StoredFace] = {}
        skipped = 0
        for index, face in enumerate(faces):
            stored = self._imported_face(face, config, f"face[{index}]", now)
            if stored.face_id in validated:
                skipped += 1
            else:
                validated[stored.face_id] = stored
        imported = 0
        pending = list(validated.values())
        for start in range(0, len(pending), _IMPORT_BATCH):
            batch = pending[start : start + _IMPORT_BATCH]
            present = self._store.existing_face_ids(config.name, [f.face_id for f in batch])
            fresh = [f for f in batch if f.face_id not in present]
            if fresh:
                self._store.upsert_faces(config.name, fresh)
            imported += len(fresh)
            skipped += len(batch) - len(fresh)
        return ImportResult(imported, skipped)

    def _imported_face(
        self, face: ImportedFace, config: GalleryConfig, where: str, now: float
    ) -> StoredFace:
        subject = check.subject_id(face.subject_id, f"{where}.subject_id")
        fid = check.face_id(face.face_id, f"{where}.face_id")
        vector = self._embedding_face(face.embedding, config, f"{where}.embedding").vector
        metadata = check.metadata(face.metadata, f"{where}.metadata")
        created_at = check.created_at(face.created_at, now, f"{where}.created_at")
        quality = None if face.quality is None else check.quality(face.quality, f"{where}.quality")
        return StoredFace(
            face_id=fid,
            subject_id=subject,
            gallery=config.name,
            vector=vector,
            model_fingerprint=config.model_fingerprint,
            created_at=created_at or now,
            metadata=metadata,
            quality=quality,
        )

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
                raise errors.NotFound(f"gallery {name!r} not found") from None
        info = self._embedder.info(_left(deadline))
        config = GalleryConfig(
            name=name,
            model_fingerprint=info.model_fingerprint,
            dim=info.dim,
            threshold=info.default_threshold,
            created_at=time.time(),
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
            raise errors.NotFound(f"gallery {name!r} not found") from None

    def _probe(
        self, probe: Probe, field: str, config: GalleryConfig, deadline: float | None
    ) -> _ProbeVector:
        return self._probe_for(probe, field, config, config.model_fingerprint, config.dim, deadline)

    def _probe_for(
        self,
        probe: Probe,
        field: str,
        gallery: GalleryConfig | None,
        fingerprint: str,
        dim: int,
        deadline: float | None,
    ) -> _ProbeVector:
        if probe.embedding is not None:
            vector = self._checked_embedding(probe.embedding, gallery, fingerprint, dim, field)
            return _ProbeVector(vector, None)
        if not probe.image:
            raise errors.InvalidArgument(f"{field}: an image or an embedding is required")
        faces = self._embed(probe.image, FaceSelection.LARGEST, field, deadline)
        face = faces[0]
        if face.model_fingerprint != fingerprint:
            raise errors.FailedPrecondition(
                _fingerprint_mismatch(
                    f"{field} (embedder)", face.model_fingerprint, gallery, fingerprint
                )
            )
        return _ProbeVector(_unit(face.vector), face.quality)

    def _embedding_face(
        self, embedding: EmbeddingInput, config: GalleryConfig, field: str
    ) -> _NewFace:
        vector = self._checked_embedding(
            embedding, config, config.model_fingerprint, config.dim, field
        )
        return _NewFace(vector, None)

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
            raise errors.FailedPrecondition(
                _fingerprint_mismatch(field, embedding.model_fingerprint, gallery, fingerprint)
            )
        return check.vector(embedding.values, dim, f"{field}.values")

    def _image_faces(
        self,
        image: bytes,
        selection: FaceSelection,
        config: GalleryConfig,
        field: str,
        deadline: float | None,
    ) -> list[_NewFace]:
        out = []
        for face in self._embed(image, selection, field, deadline):
            if face.model_fingerprint != config.model_fingerprint:
                raise errors.FailedPrecondition(
                    _fingerprint_mismatch(
                        f"{field} (embedder)",
                        face.model_fingerprint,
                        config,
                        config.model_fingerprint,
                    )
                )
            _check_quality(face.quality, config, field)
            out.append(_NewFace(_unit(face.vector), face.quality))
        return out

    def _embed(
        self, image: bytes, selection: FaceSelection, field: str, deadline: float | None
    ) -> list[EmbeddedFace]:
        try:
            faces = self._embedder.embed(image, selection, _left(deadline))
        except (errors.InvalidArgument, errors.NotFound, errors.FailedPrecondition) as exc:
            raise type(exc)(f"{field}: {exc}") from None
        if not faces:
            raise errors.NotFound(f"{field}: no face found")
        return faces


def _request_digest(
    subject: str,
    images: Sequence[bytes],
    embeddings: Sequence[EmbeddingInput],
    metadata: Mapping[str, str],
    selection: FaceSelection,
) -> str:
    """sha256 (hex) of what an Enroll asks for: equal exactly when subject,
    images (bytes), embeddings (fingerprint and float32 values), metadata and
    selection are equal. Each part is length-prefixed so no two requests
    share a byte stream."""
    digest = hashlib.sha256()

    def part(data: bytes) -> None:
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)

    part(b"likeness-enroll-v1")
    part(subject.encode())
    part(selection.name.encode())
    for image in images:
        part(b"image")
        part(hashlib.sha256(image).digest())
    for embedding in embeddings:
        part(b"embedding")
        part(embedding.model_fingerprint.encode())
        part(np.asarray(embedding.values, dtype=np.float32).tobytes())
    for key, value in sorted(metadata.items()):
        part(key.encode())
        part(value.encode())
    return digest.hexdigest()


def _deadline(timeout_s: float | None) -> float | None:
    """The time.monotonic() instant ``timeout_s`` seconds from now (None: none)."""
    return None if timeout_s is None else time.monotonic() + timeout_s


def _left(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (None: no deadline)."""
    return None if deadline is None else deadline - time.monotonic()


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if not math.isfinite(norm) or norm == 0.0:
        raise RuntimeError("the embedder returned a zero or non-finite vector")
    return (vector / norm).astype(np.float32)


def _check_quality(quality: Quality, config: GalleryConfig, field: str) -> None:
    if config.min_face_size_px > 0 and quality.face_size_px < config.min_face_size_px:
        raise errors.FailedPrecondition(
            f"{field}: face size {quality.face_size_px:.1f} px is below the gallery's "
            f"minimum {config.min_face_size_px:g} px"
        )
    if config.min_sharpness > 0 and quality.sharpness < config.min_sharpness:
        raise errors.FailedPrecondition(
            f"{field}: sharpness {quality.sharpness:.1f} is below the gallery's "
            f"minimum {config.min_sharpness:g}"
        )
    if config.max_abs_yaw_deg > 0 and abs(quality.yaw_deg) > config.max_abs_yaw_deg:
        raise errors.FailedPrecondition(
            f"{field}: yaw {quality.yaw_deg:.1f} degrees exceeds the gallery's "
            f"limit of {config.max_abs_yaw_deg:g} degrees"
        )
