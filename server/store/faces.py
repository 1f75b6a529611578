"""The face-store semantics, written once over a backend's
:class:`server.store.base.Engine` primitives: face ids are UUIDs (others are
never stored), vectors are checked before they are written, a face's subject
is in its payload, subject counts come from one facet.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from likeness import errors
from server.domain import GalleryConfig, SearchHit, StoredFace
from server.store import _codec as codec
from server.store.base import Engine, Point


def _subject(payload: dict[str, Any] | None) -> str:
    return str((payload or {}).get(codec.SUBJECT_KEY, ""))


class Faces:
    """:class:`server.store.base.FaceStore` over one backend's engine.
    Thread-safe when the engine is."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.backend = engine.backend

    # -- galleries ---------------------------------------------------------

    def create_gallery(self, config: GalleryConfig) -> None:
        """Create an empty gallery; AlreadyExists when the name is taken."""
        self._engine.create_gallery(codec.check_config(config))

    def get_gallery(self, name: str) -> GalleryConfig:
        """The gallery's config; NotFound when absent."""
        return self._engine.get_gallery(name)

    def update_gallery(self, config: GalleryConfig) -> None:
        """Replace a gallery's config; NotFound when absent, InvalidArgument
        when the name, model or dim would change."""
        stored = self._engine.get_gallery(config.name)
        if (stored.model_fingerprint, stored.dim) != (config.model_fingerprint, config.dim):
            raise errors.InvalidArgument("a gallery's model and dim never change")
        self._engine.update_gallery(codec.check_config(config))

    def list_galleries(self) -> list[GalleryConfig]:
        """Every gallery, by name."""
        return self._engine.list_galleries()

    def delete_gallery(self, name: str) -> int:
        """Delete a gallery and its faces; returns how many faces it held."""
        return self._engine.delete_gallery(name)

    # -- faces -------------------------------------------------------------

    def upsert_faces(self, gallery: str, faces: Sequence[StoredFace]) -> None:
        """Insert or overwrite faces by face id; InvalidArgument for a face id
        that is not a UUID or a vector that is not (dim,), finite and non-zero.
        Durable once it returns."""
        dim = self._engine.vector_dim(gallery)
        points: list[Point] = []
        for face in faces:
            face_id = codec.require_face_uuid(face.face_id)
            vector = codec.check_vector(face.vector, dim, f"face {face_id} vector")
            points.append((face_id, vector, codec.face_payload(face, gallery, face_id)))
        if points:
            self._engine.upsert(gallery, points)
        else:
            self._engine.require(gallery)

    def existing_face_ids(self, gallery: str, face_ids: Sequence[str]) -> set[str]:
        """The subset of ``face_ids`` stored (ids that are not UUIDs never are)."""
        wanted: dict[str, list[str]] = {}
        for face_id in face_ids:
            canonical = codec.face_uuid(face_id)
            if canonical is not None:
                wanted.setdefault(canonical, []).append(face_id)
        if not wanted:
            self._engine.require(gallery)
            return set()
        records = self._engine.retrieve(gallery, list(wanted), with_subject=False)
        return {original for r in records for original in wanted.get(str(r.id), [])}

    def search(
        self, gallery: str, vector: np.ndarray, limit: int, subject_id: str | None = None
    ) -> list[SearchHit]:
        """The ``limit`` faces of highest cosine similarity to ``vector`` (in
        [-1, 1], best first), only ``subject_id``'s when given."""
        codec.check_limit(limit)
        query = codec.check_vector(vector, self._engine.vector_dim(gallery), "query vector")
        points = self._engine.query(gallery, query, limit, subject_id)
        return [codec.hit_from_point(p.id, p.score, p.payload) for p in points]

    def subject_faces(self, gallery: str, subject_id: str) -> list[StoredFace]:
        """All faces of a subject, vectors included (empty when unknown)."""
        return list(self._faces(gallery, subject_id))

    def set_subject_metadata(self, gallery: str, subject_id: str, metadata: dict[str, str]) -> None:
        """Replace the metadata of the subject's faces (payload only: vectors
        are not rewritten, and a face deleted meanwhile stays deleted)."""
        self._engine.set_payload(gallery, subject_id, {codec.METADATA_KEY: dict(metadata)})

    def delete_subject(self, gallery: str, subject_id: str) -> int:
        """Delete a subject's faces by filter, so a face written meanwhile goes
        too; returns how many were counted just before (0 when unknown)."""
        return self._engine.delete_subject(gallery, subject_id)

    def face_subject(self, gallery: str, face_id: str) -> str | None:
        """The subject id of a stored face; None when absent (or not a UUID)."""
        canonical = codec.face_uuid(face_id)
        if canonical is None:
            self._engine.require(gallery)
            return None
        records = self._engine.retrieve(gallery, [canonical], with_subject=True)
        return _subject(records[0].payload) if records else None

    def delete_face(self, gallery: str, face_id: str) -> str:
        """Delete one face; returns its subject id; NotFound when absent."""
        canonical = codec.face_uuid(face_id)
        payload = None
        if canonical is None:
            self._engine.require(gallery)
        else:
            payload = self._engine.pop(gallery, canonical)
        if payload is None:
            raise errors.NotFound(f"face {face_id!r} not found in gallery {gallery!r}")
        return _subject(payload)

    def list_subjects(self, gallery: str, after: str | None, limit: int) -> list[tuple[str, int]]:
        """(subject id, face count) in subject-id order after ``after``, from
        one facet over the subject-id index (O(subjects), not O(faces))."""
        codec.check_limit(limit)
        return codec.page_subjects(self._engine.subject_counts(gallery), after, limit)

    def counts(self, gallery: str) -> tuple[int, int]:
        """(subjects, faces), from the same facet as list_subjects."""
        rows = self._engine.subject_counts(gallery)
        return len(rows), sum(count for _, count in rows)

    def iter_faces(self, gallery: str) -> Iterator[StoredFace]:
        """Every face, vectors included, a page at a time (writes during an
        export may or may not show). NotFound at once for an unknown gallery."""
        self._engine.require(gallery)
        return self._faces(gallery, None)

    # -- lifecycle ---------------------------------------------------------

    def check_health(self) -> None:
        """Unavailable when the store cannot serve requests."""
        self._engine.check_health()

    def close(self) -> None:
        """Release the backend; idempotent."""
        self._engine.close()

    def _faces(self, gallery: str, subject_id: str | None) -> Iterator[StoredFace]:
        offset: Any = None
        while True:
            page, offset = self._engine.scroll(gallery, subject_id, offset, with_vectors=True)
            for record in page:
                yield codec.face_from_point(record.id, record.payload, record.vector, gallery)
            if offset is None:
                return
