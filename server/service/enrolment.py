"""Enrolment: add faces to a subject (idempotently with a key), read a
subject's faces, page through subjects, delete subjects and faces."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from likeness import errors, tracing
from likeness.selection import FaceSelection
from server import _validate as check
from server.domain import (
    DuplicateCandidate,
    EmbeddingInput,
    EnrolledFace,
    EnrollResult,
    GalleryConfig,
    StoredFace,
    SubjectPage,
    SubjectRecord,
)
from server.service._base import (
    FaceVector,
    ServiceBase,
    deadline_in,
    subject_not_found,
)

# Face ids of idempotent enrolments are uuid5(namespace, gallery/key/index):
# a retried request computes the same ids and never duplicates a face.
_FACE_ID_NAMESPACE = uuid.UUID("6f1d0a52-8f63-4c3e-9d35-0f6b3c2a9e41")
# Nearest faces examined per new face when looking for possible duplicates.
_DUPLICATE_SEARCH = 16


@dataclass(frozen=True)
class _Written:
    """The ids an enrolment writes its faces under, its idempotency key (None:
    none) and the sha256 of its request (empty without a key)."""

    face_ids: list[str]
    key: str | None
    request_sha256: str


class Enrolment(ServiceBase):
    """The enrolment and subject verbs of the registry service."""

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
        deadline = deadline_in(timeout_s)
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
        image_faces: list[FaceVector] = []
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
        new_faces: list[FaceVector],
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
        with tracing.span("store.upsert_faces", {"gallery": config.name, "faces": len(writes)}):
            self._store.upsert_faces(config.name, writes)
        return EnrollResult(subject, enrolled, duplicates, replayed=False)

    def _duplicates(
        self, config: GalleryConfig, subject: str, faces: Sequence[FaceVector]
    ) -> list[DuplicateCandidate]:
        best: dict[str, float] = {}
        for face in faces:
            for hit in self._store.search(config.name, face.vector, _DUPLICATE_SEARCH):
                if hit.subject_id != subject and hit.score >= config.threshold:
                    best[hit.subject_id] = max(best.get(hit.subject_id, -1.0), hit.score)
        ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
        return [DuplicateCandidate(s, score) for s, score in ranked]

    # -- subjects and faces ------------------------------------------------

    def get_subject(self, gallery: str, subject_id: str) -> SubjectRecord:
        name = check.gallery_name(gallery)
        subject = check.subject_id(subject_id)
        config = self._existing_gallery(name)
        faces = sorted(
            self._store.subject_faces(config.name, subject), key=lambda f: (f.created_at, f.face_id)
        )
        if not faces:
            raise subject_not_found(subject, config.name)
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
            raise subject_not_found(subject, config.name)
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
