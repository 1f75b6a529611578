"""The ``qdrant`` backend: a Qdrant server through qdrant-client.

Each gallery is a collection ``<prefix>g_<name>`` (cosine, the gallery's
dim, keyword payload index on ``subject_id``, the gallery's shard_number /
replication_factor / write_consistency_factor, server defaults for 0).
Gallery configs live in the collection ``<prefix>galleries``, one point per
gallery (id uuid5 of the name, a 1-d dummy vector, the config as payload), so
every registry replica sharing the server sees the same galleries.

``location=":memory:"`` runs qdrant-client's in-process local mode instead
(tests): same answers, no payload indexes, calls serialised by a lock.

Errors: a server that cannot be reached, times out, or rejects the API key
is Unavailable; requests the server rejects as malformed are
InvalidArgument. Writes wait for the server's acknowledgement.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any, Unpack

from qdrant_client import models

from likeness import errors
from server.domain import GalleryConfig
from server.store import _codec as codec
from server.store._qdrant_connection import (
    REJECTED,
    UNAVAILABLE,
    LocalValueError,
    Missing,
    QdrantConnection,
    QdrantOptions,
)
from server.store.base import Point
from server.store.faces import Faces

log = logging.getLogger("likeness.store.qdrant")

_PAGE = 256
_UPSERT_BATCH = 512
#: Namespace of the gallery-config point ids (uuid5 of the gallery name).
_META_NAMESPACE = uuid.UUID("0b8f7f4e-5a0f-4d0c-9a57-3b1d6f0e2c11")


class QdrantEngine(QdrantConnection):
    """The :class:`server.store.base.Engine` of a Qdrant server (or
    ``:memory:``), over a :class:`QdrantConnection` (same arguments); gallery
    configs in the collection ``<prefix>galleries``. Thread-safe.
    """

    backend = "qdrant"

    def __init__(self, url: str | None = None, **options: Unpack[QdrantOptions]) -> None:
        super().__init__(url, **options)
        self._meta = f"{self._prefix}galleries"
        self._meta_ready = False
        self._meta_lock = threading.Lock()

    # -- galleries ---------------------------------------------------------

    def create_gallery(self, config: GalleryConfig) -> None:
        """Create the gallery's collection, then record its config.

        A collection left without a config (a create or delete that died
        half-way) is dropped and made again. Two replicas creating the same
        gallery at the same instant may both succeed.
        """
        self._ensure_meta()
        if self._config_or_none(config.name) is not None:
            raise errors.AlreadyExists(f"gallery {config.name!r} already exists")
        collection = self._collection(config.name)
        try:
            self._create_collection(collection, config)
        except errors.LikenessError:
            if not self._call(self._client.collection_exists, collection):
                raise
            if self._config_or_none(config.name) is not None:
                raise errors.AlreadyExists(f"gallery {config.name!r} already exists") from None
            log.warning("replacing orphan collection %s", collection)
            self._call(self._client.delete_collection, collection)
            self._create_collection(collection, config)
        self._write_config(config)

    def _write_config(self, config: GalleryConfig) -> None:
        self._call(
            self._client.upsert,
            self._meta,
            [
                models.PointStruct(
                    id=self._meta_id(config.name),
                    vector=[1.0],
                    payload=codec.config_to_dict(config),
                )
            ],
            wait=True,
        )

    def get_gallery(self, name: str) -> GalleryConfig:
        """The gallery's config; NotFound when absent."""
        config = self._config_or_none(codec.check_gallery_name(name))
        if config is None:
            raise errors.NotFound(f"gallery {name!r} not found")
        return config

    def update_gallery(self, config: GalleryConfig) -> None:
        """Overwrite the gallery's config point."""
        self.get_gallery(config.name)
        self._write_config(config)

    def list_galleries(self) -> list[GalleryConfig]:
        """Every gallery, by name."""
        self._ensure_meta()
        configs: list[GalleryConfig] = []
        offset: Any = None
        while True:
            page, offset = self._call(
                self._client.scroll, self._meta, limit=_PAGE, offset=offset, with_payload=True
            )
            configs.extend(codec.config_from_dict(r.payload or {}) for r in page)
            if offset is None:
                return sorted(configs, key=lambda c: c.name)

    def delete_gallery(self, name: str) -> int:
        """Forget the config, then drop the collection; returns its face count."""
        self.get_gallery(name)
        collection = self._collection(name)
        try:
            faces = self._count(collection)
        except (Missing, LocalValueError):
            faces = 0
        self._call(
            self._client.delete,
            self._meta,
            models.PointIdsList(points=[self._meta_id(name)]),
            wait=True,
        )
        with contextlib.suppress(Missing):
            self._call(self._client.delete_collection, collection)
        return faces

    # -- points ------------------------------------------------------------

    def vector_dim(self, gallery: str) -> int | None:
        # The server checks the dim; reading the config first would cost a
        # round trip per call.
        return None

    def upsert(self, gallery: str, points: Sequence[Point]) -> None:
        """Write in batches of 512, each acknowledged by the server."""
        collection = self._collection(gallery)
        structs = [models.PointStruct(id=i, vector=v, payload=p) for i, v, p in points]
        for start in range(0, len(structs), _UPSERT_BATCH):
            batch = structs[start : start + _UPSERT_BATCH]
            self._on_gallery(gallery, self._client.upsert, collection, batch, wait=True)

    def retrieve(self, gallery: str, ids: Sequence[str], with_subject: bool) -> list[Any]:
        return list(
            self._on_gallery(
                gallery,
                self._client.retrieve,
                self._collection(gallery),
                list(ids),
                with_payload=[codec.SUBJECT_KEY] if with_subject else False,
                with_vectors=False,
            )
        )

    def query(
        self, gallery: str, vector: list[float], limit: int, subject_id: str | None
    ) -> list[Any]:
        response = self._on_gallery(
            gallery,
            self._client.query_points,
            self._collection(gallery),
            query=vector,
            limit=limit,
            query_filter=None if subject_id is None else _subject_filter(subject_id),
            with_payload=codec.HIT_PAYLOAD_KEYS,
            with_vectors=False,
        )
        return list(response.points)

    def scroll(
        self, gallery: str, subject_id: str | None, offset: Any, with_vectors: bool
    ) -> tuple[list[Any], Any]:
        page, next_offset = self._on_gallery(
            gallery,
            self._client.scroll,
            self._collection(gallery),
            scroll_filter=None if subject_id is None else _subject_filter(subject_id),
            limit=_PAGE,
            offset=offset,
            with_payload=True,
            with_vectors=with_vectors,
        )
        return list(page), next_offset

    def set_payload(self, gallery: str, subject_id: str, payload: dict[str, Any]) -> None:
        """By filter, waiting for the acknowledgement."""
        self._on_gallery(
            gallery,
            self._client.set_payload,
            self._collection(gallery),
            payload=payload,
            points=models.FilterSelector(filter=_subject_filter(subject_id)),
            wait=True,
        )

    def delete_subject(self, gallery: str, subject_id: str) -> int:
        """An exact count, then a delete by filter: a face another replica
        enrols in between goes too."""
        flt = _subject_filter(subject_id)
        collection = self._collection(gallery)
        count = int(
            self._on_gallery(
                gallery, self._client.count, collection, count_filter=flt, exact=True
            ).count
        )
        if count:
            self._on_gallery(
                gallery,
                self._client.delete,
                collection,
                models.FilterSelector(filter=flt),
                wait=True,
            )
        return count

    def pop(self, gallery: str, point_id: str) -> dict[str, Any] | None:
        records = self.retrieve(gallery, [point_id], with_subject=True)
        if not records:
            return None
        self._on_gallery(
            gallery,
            self._client.delete,
            self._collection(gallery),
            models.PointIdsList(points=[point_id]),
            wait=True,
        )
        return dict(records[0].payload or {})

    def subject_counts(self, gallery: str) -> list[tuple[str, int]]:
        """One exact facet over the subject-id index: O(subjects). Not
        cached, since other replicas write to the same server."""
        collection = self._collection(gallery)
        faces = int(self._on_gallery(gallery, self._client.count, collection, exact=True).count)
        response = self._on_gallery(
            gallery,
            self._client.facet,
            collection,
            key=codec.SUBJECT_KEY,
            limit=max(1, faces),
            exact=True,
        )
        return sorted((str(hit.value), int(hit.count)) for hit in response.hits if hit.count > 0)

    # -- internals ---------------------------------------------------------

    @staticmethod
    def _meta_id(name: str) -> str:
        return str(uuid.uuid5(_META_NAMESPACE, name))

    def _ensure_meta(self) -> None:
        if self._meta_ready:
            return
        with self._meta_lock:
            if self._meta_ready:
                return
            if not self._call(self._client.collection_exists, self._meta):
                try:
                    self._call(
                        self._client.create_collection,
                        self._meta,
                        vectors_config=models.VectorParams(size=1, distance=models.Distance.DOT),
                    )
                except errors.LikenessError:
                    # Another replica may have created it a moment ago.
                    if not self._call(self._client.collection_exists, self._meta):
                        raise
            self._meta_ready = True

    def _config_or_none(self, name: str) -> GalleryConfig | None:
        self._ensure_meta()
        try:
            records = self._call(
                self._client.retrieve, self._meta, [self._meta_id(name)], with_payload=True
            )
        except (Missing, LocalValueError):
            self._meta_ready = False
            log.warning("the gallery collection %s is missing", self._meta)
            raise errors.Unavailable(UNAVAILABLE) from None
        if not records:
            return None
        return codec.config_from_dict(records[0].payload or {})

    def _create_collection(self, collection: str, config: GalleryConfig) -> None:
        try:
            self._call(
                self._client.create_collection,
                collection,
                vectors_config=models.VectorParams(
                    size=config.dim, distance=models.Distance.COSINE
                ),
                shard_number=config.shard_number or None,
                replication_factor=config.replication_factor or None,
                write_consistency_factor=config.write_consistency_factor or None,
            )
        except (Missing, LocalValueError) as exc:
            log.warning("the store rejected creating gallery %r: %s", config.name, exc)
            raise errors.InvalidArgument(
                f"{REJECTED}: cannot create gallery {config.name!r}"
            ) from None
        if not self._local:
            # Local mode has no payload indexes (it warns and ignores them).
            self._call(
                self._client.create_payload_index,
                collection,
                codec.SUBJECT_KEY,
                field_schema=models.PayloadSchemaType.KEYWORD,
                wait=True,
            )

    def _count(self, collection: str) -> int:
        return int(self._call(self._client.count, collection, exact=True).count)


class QdrantStore(Faces):
    """:class:`server.store.base.FaceStore` on a Qdrant server at ``url`` (or
    ``location=":memory:"``); options: :class:`QdrantOptions`."""

    def __init__(self, url: str | None = None, **options: Unpack[QdrantOptions]) -> None:
        super().__init__(QdrantEngine(url, **options))


def _subject_filter(subject_id: str) -> models.Filter:
    return models.Filter(
        must=[
            models.FieldCondition(key=codec.SUBJECT_KEY, match=models.MatchValue(value=subject_id))
        ]
    )
