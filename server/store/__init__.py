"""Face storage: the :class:`FaceStore` interface and :func:`open_store`.

Backends: ``edge`` (:class:`server.store.edge.EdgeStore`, the Qdrant engine
in-process, data under ``settings.data_dir / "qdrant"``) and ``qdrant``
(:class:`server.store.qdrant.QdrantStore`, a Qdrant server). Each backend's
client library is imported only when that backend is opened.
"""

from __future__ import annotations

from server.settings import RegistrySettings
from server.store.base import FaceStore

__all__ = ["FaceStore", "open_store"]


def open_store(settings: RegistrySettings) -> FaceStore:
    """Open the backend ``settings.store`` names.

    Raises Unavailable when the edge directory is locked by another process.
    ``qdrant_url=":memory:"`` runs the ``qdrant`` backend in-process (tests,
    trials). The ``qdrant`` backend connects lazily: call ``check_health()`` to find
    out whether the server answers.
    """
    if settings.store == "edge":
        from server.store.edge import EdgeStore

        return EdgeStore(
            settings.data_dir / "qdrant",
            hnsw_min_faces=settings.hnsw_min_faces,
            hnsw_ef=settings.hnsw_ef,
        )
    from server.store.qdrant import QdrantStore

    if settings.qdrant_url == ":memory:":
        # qdrant-client's in-process mode: one process, nothing persisted.
        return QdrantStore(location=":memory:")
    return QdrantStore(
        settings.qdrant_url,
        api_key=settings.qdrant_api_key,
        prefer_grpc=settings.qdrant_prefer_grpc,
    )
