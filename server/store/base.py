"""The storage interface every Qdrant backend implements.

Both backends (``edge``: qdrant-edge-py in-process; ``qdrant``: qdrant-client
against a server, or ``:memory:`` in tests) must give the same answers: the
contract tests in tests/test_store_contract.py run against each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from server.domain import GalleryConfig, SearchHit, StoredFace


class FaceStore(Protocol):
    """Galleries of enrolled faces with cosine k-NN search.

    Errors: NotFound for an unknown gallery or face, AlreadyExists on
    creating an existing gallery, Unavailable when the store cannot be
    reached (all from likeness.errors). Writes are durable once the call
    returns (WAL on the edge backend; write acknowledgement on the server).
    """

    backend: str

    def create_gallery(self, config: GalleryConfig) -> None: ...

    def get_gallery(self, name: str) -> GalleryConfig: ...

    def update_gallery(self, config: GalleryConfig) -> None:
        """Replace the stored config of gallery ``config.name`` (its name,
        model and dim unchanged); NotFound when absent."""
        ...

    def list_galleries(self) -> list[GalleryConfig]: ...

    def delete_gallery(self, name: str) -> int:
        """Delete a gallery and all its faces; returns the number of faces."""
        ...

    def upsert_faces(self, gallery: str, faces: Sequence[StoredFace]) -> None:
        """Insert faces; a face whose ``face_id`` exists is overwritten, never duplicated."""
        ...

    def existing_face_ids(self, gallery: str, face_ids: Sequence[str]) -> set[str]:
        """Which of ``face_ids`` are stored."""
        ...

    def search(
        self, gallery: str, vector: np.ndarray, limit: int, subject_id: str | None = None
    ) -> list[SearchHit]:
        """The ``limit`` faces most similar to ``vector`` (cosine, best first),
        optionally only among ``subject_id``'s faces."""
        ...

    def subject_faces(self, gallery: str, subject_id: str) -> list[StoredFace]:
        """All faces of a subject (empty list when the subject is unknown)."""
        ...

    def set_subject_metadata(self, gallery: str, subject_id: str, metadata: dict[str, str]) -> None:
        """Replace the metadata of every stored face of a subject (payload
        only: vectors are not rewritten, and a face deleted meanwhile stays
        deleted). No-op for an unknown subject."""
        ...

    def delete_subject(self, gallery: str, subject_id: str) -> int:
        """Delete a subject's faces (by filter, so a face written meanwhile
        goes too); returns how many were counted just before."""
        ...

    def face_subject(self, gallery: str, face_id: str) -> str | None:
        """The subject id of a stored face; None when absent (or not a UUID)."""
        ...

    def delete_face(self, gallery: str, face_id: str) -> str:
        """Delete one face; returns its subject id; NotFound when absent."""
        ...

    def list_subjects(self, gallery: str, after: str | None, limit: int) -> list[tuple[str, int]]:
        """(subject id, face count) in subject-id order, starting after ``after``."""
        ...

    def counts(self, gallery: str) -> tuple[int, int]:
        """(subjects, faces) in a gallery."""
        ...

    def iter_faces(self, gallery: str) -> Iterator[StoredFace]:
        """Every face of a gallery, vectors included (for export)."""
        ...

    def check_health(self) -> None:
        """Raise Unavailable when the store cannot serve requests."""
        ...

    def close(self) -> None: ...


#: One point to write: (face UUID, vector, payload).
Point = tuple[str, list[float], dict[str, Any]]


class Engine(Protocol):
    """The primitives a backend implements; :class:`server.store.faces.Faces`
    writes the face-store semantics once over them.

    Every per-gallery primitive raises NotFound when the gallery does not
    exist (also when it has nothing else to do), Unavailable when the
    backend cannot be reached. Records are the backend library's own: they
    have ``id`` and ``payload`` (and ``vector`` when asked for, ``score``
    from :meth:`query`).
    """

    backend: str

    def create_gallery(self, config: GalleryConfig) -> None: ...

    def get_gallery(self, name: str) -> GalleryConfig: ...

    def update_gallery(self, config: GalleryConfig) -> None: ...

    def list_galleries(self) -> list[GalleryConfig]: ...

    def delete_gallery(self, name: str) -> int: ...

    def require(self, gallery: str) -> None:
        """NotFound unless the gallery exists."""
        ...

    def vector_dim(self, gallery: str) -> int | None:
        """The dim to check vectors against before they reach the backend
        (None: the backend checks them itself)."""
        ...

    def upsert(self, gallery: str, points: Sequence[Point]) -> None:
        """Write points (at least one), durably, overwriting by id."""
        ...

    def retrieve(self, gallery: str, ids: Sequence[str], with_subject: bool) -> list[Any]:
        """The stored points among ``ids`` (canonical UUIDs; at least one),
        with the subject id in their payload when ``with_subject``, else none."""
        ...

    def query(
        self, gallery: str, vector: list[float], limit: int, subject_id: str | None
    ) -> list[Any]:
        """The ``limit`` nearest points by cosine, best first (only
        ``subject_id``'s when given), with the hit payload keys."""
        ...

    def scroll(
        self, gallery: str, subject_id: str | None, offset: Any, with_vectors: bool
    ) -> tuple[list[Any], Any]:
        """One page of points from ``offset`` (None: the first) and the next
        offset (None after the last page); only ``subject_id``'s when given;
        full payloads."""
        ...

    def set_payload(self, gallery: str, subject_id: str, payload: dict[str, Any]) -> None:
        """Set ``payload`` keys on every point of a subject (vectors untouched)."""
        ...

    def delete_subject(self, gallery: str, subject_id: str) -> int:
        """Delete a subject's points by filter (points written meanwhile go
        too); returns the exact count taken just before."""
        ...

    def pop(self, gallery: str, point_id: str) -> dict[str, Any] | None:
        """Delete one point; its payload's subject id ({} without payload),
        or None when it is absent."""
        ...

    def subject_counts(self, gallery: str) -> list[tuple[str, int]]:
        """(subject id, points) for every subject, by subject id."""
        ...

    def check_health(self) -> None: ...

    def close(self) -> None: ...
