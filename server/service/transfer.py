"""Transfer: export a gallery's faces, import them into a gallery of the
same model, all or nothing."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from server import _validate as check
from server.domain import (
    GalleryConfig,
    ImportedFace,
    ImportResult,
    StoredFace,
)
from server.service._base import (
    ServiceBase,
)

_IMPORT_BATCH = 256


class Transfer(ServiceBase):
    """The export and import verbs of the registry service."""

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
