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
import math
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import grpc
import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.common.client_exceptions import QdrantException
from qdrant_client.http.exceptions import ApiException, UnexpectedResponse

from likeness import errors
from server.domain import GalleryConfig, SearchHit, StoredFace
from server.store import _codec as codec

log = logging.getLogger("likeness.store.qdrant")

T = TypeVar("T")

_PAGE = 256
#: Longest wait between two reconnection attempts to a Qdrant server.
_MAX_RECONNECT_BACKOFF_MS = 5_000
_UPSERT_BATCH = 512
#: Namespace of the gallery-config point ids (uuid5 of the gallery name).
_META_NAMESPACE = uuid.UUID("0b8f7f4e-5a0f-4d0c-9a57-3b1d6f0e2c11")

#: What a client is told; the server's own words go to the log only.
_UNAVAILABLE = "the store is unavailable"
_REJECTED = "the store rejected the request"


class _Missing(Exception):
    """The server answered "not found"; the caller knows what was missing."""


class QdrantStore:
    """:class:`server.store.base.FaceStore` on a Qdrant server (or ``:memory:``).

    Give exactly one of ``url`` (e.g. ``http://qdrant:6334``; with
    ``prefer_grpc`` its port is the gRPC port) or ``location`` (``":memory:"``).
    ``timeout_s`` bounds each request (rounded up to whole seconds, as
    qdrant-client takes them). Nothing connects until the first call.
    Thread-safe.
    """

    backend = "qdrant"

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        prefer_grpc: bool = True,
        location: str | None = None,
        timeout_s: float = 10.0,
        prefix: str = "likeness_",
    ) -> None:
        if (url is None) == (location is None):
            raise ValueError("give exactly one of url and location")
        self._local = location is not None
        if location is not None:
            self._client = QdrantClient(location=location)
        else:
            assert url is not None
            self._client = QdrantClient(
                url=url,
                grpc_port=urlsplit(url).port or 6334,
                prefer_grpc=prefer_grpc,
                api_key=api_key,
                timeout=max(1, math.ceil(timeout_s)),
                check_compatibility=False,
                # gRPC's default reconnect backoff grows to 120 s: after a long
                # outage the registry would stay UNAVAILABLE that long once
                # Qdrant is back. Retry at least every few seconds instead.
                grpc_options={
                    "grpc.initial_reconnect_backoff_ms": 500,
                    "grpc.max_reconnect_backoff_ms": _MAX_RECONNECT_BACKOFF_MS,
                },
            )
        # Local mode is plain Python over dicts: one caller at a time.
        self._serial: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self._local else contextlib.nullcontext()
        )
        self._prefix = prefix
        self._meta = f"{prefix}galleries"
        self._meta_ready = False
        self._meta_lock = threading.Lock()
        self._closed = False

    # -- galleries ---------------------------------------------------------

    def create_gallery(self, config: GalleryConfig) -> None:
        """Create the gallery's collection, then record its config.

        A collection left without a config (a create or delete that died
        half-way) is dropped and made again. Two replicas creating the same
        gallery at the same instant may both succeed.
        """
        codec.check_config(config)
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
        except (_Missing, _LocalValueError):
            faces = 0
        self._call(
            self._client.delete,
            self._meta,
            models.PointIdsList(points=[self._meta_id(name)]),
            wait=True,
        )
        with contextlib.suppress(_Missing):
            self._call(self._client.delete_collection, collection)
        return faces

    # -- faces -------------------------------------------------------------

    def upsert_faces(self, gallery: str, faces: Sequence[StoredFace]) -> None:
        """Insert or overwrite faces by face id (waits for the server's
        acknowledgement); InvalidArgument for a face id that is not a UUID or
        a vector of the wrong dim, not finite, or zero."""
        collection = self._collection(gallery)
        points = []
        for face in faces:
            face_id = codec.require_face_uuid(face.face_id)
            vector = codec.check_vector(face.vector, None, f"face {face_id} vector")
            payload = codec.face_payload(face, gallery, face_id)
            points.append(models.PointStruct(id=face_id, vector=vector, payload=payload))
        if not points:
            self._require_collection(gallery)
        for start in range(0, len(points), _UPSERT_BATCH):
            batch = points[start : start + _UPSERT_BATCH]
            self._on_gallery(gallery, self._client.upsert, collection, batch, wait=True)

    def existing_face_ids(self, gallery: str, face_ids: Sequence[str]) -> set[str]:
        """The subset of ``face_ids`` stored (ids that are not UUIDs never are)."""
        wanted: dict[str, list[str]] = {}
        for face_id in face_ids:
            canonical = codec.face_uuid(face_id)
            if canonical is not None:
                wanted.setdefault(canonical, []).append(face_id)
        if not wanted:
            self._require_collection(gallery)
            return set()
        records = self._on_gallery(
            gallery,
            self._client.retrieve,
            self._collection(gallery),
            list(wanted),
            with_payload=False,
            with_vectors=False,
        )
        return {original for r in records for original in wanted.get(str(r.id), [])}

    def search(
        self, gallery: str, vector: np.ndarray, limit: int, subject_id: str | None = None
    ) -> list[SearchHit]:
        """The ``limit`` faces of highest cosine similarity to ``vector`` (in
        [-1, 1], best first), only ``subject_id``'s when given."""
        codec.check_limit(limit)
        query = codec.check_vector(vector, None, "query vector")
        response = self._on_gallery(
            gallery,
            self._client.query_points,
            self._collection(gallery),
            query=query,
            limit=limit,
            query_filter=None if subject_id is None else _subject_filter(subject_id),
            with_payload=codec.HIT_PAYLOAD_KEYS,
            with_vectors=False,
        )
        return [codec.hit_from_point(p.id, p.score, p.payload) for p in response.points]

    def subject_faces(self, gallery: str, subject_id: str) -> list[StoredFace]:
        """All faces of a subject, vectors included (empty when unknown)."""
        records = self._scroll_all(gallery, _subject_filter(subject_id), with_vectors=True)
        return [codec.face_from_point(r.id, r.payload, r.vector, gallery) for r in records]

    def set_subject_metadata(self, gallery: str, subject_id: str, metadata: dict[str, str]) -> None:
        """Replace the metadata payload of the subject's faces by filter
        (vectors untouched; waits for the acknowledgement)."""
        self._on_gallery(
            gallery,
            self._client.set_payload,
            self._collection(gallery),
            payload={codec.METADATA_KEY: dict(metadata)},
            points=models.FilterSelector(filter=_subject_filter(subject_id)),
            wait=True,
        )

    def delete_subject(self, gallery: str, subject_id: str) -> int:
        """Delete a subject's faces by filter, so a face another replica
        enrols meanwhile goes too; returns the exact count taken just before
        (0 when unknown)."""
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

    def face_subject(self, gallery: str, face_id: str) -> str | None:
        """The subject id of a stored face; None when absent."""
        canonical = codec.face_uuid(face_id)
        if canonical is None:
            self._require_collection(gallery)
            return None
        records = self._on_gallery(
            gallery,
            self._client.retrieve,
            self._collection(gallery),
            [canonical],
            with_payload=[codec.SUBJECT_KEY],
            with_vectors=False,
        )
        return str((records[0].payload or {}).get(codec.SUBJECT_KEY, "")) if records else None

    def delete_face(self, gallery: str, face_id: str) -> str:
        """Delete one face; returns its subject id; NotFound when absent."""
        canonical = codec.face_uuid(face_id)
        records = []
        if canonical is not None:
            records = self._on_gallery(
                gallery,
                self._client.retrieve,
                self._collection(gallery),
                [canonical],
                with_payload=[codec.SUBJECT_KEY],
                with_vectors=False,
            )
        else:
            self._require_collection(gallery)
        if not records:
            raise errors.NotFound(f"face {face_id!r} not found in gallery {gallery!r}")
        self._on_gallery(
            gallery,
            self._client.delete,
            self._collection(gallery),
            models.PointIdsList(points=[str(canonical)]),
            wait=True,
        )
        return str((records[0].payload or {}).get(codec.SUBJECT_KEY, ""))

    def list_subjects(self, gallery: str, after: str | None, limit: int) -> list[tuple[str, int]]:
        """(subject id, face count) in subject-id order after ``after``.

        One exact facet over the subject-id index per page: O(subjects), not
        O(faces). Not cached, since other replicas write to the same server.
        """
        codec.check_limit(limit)
        return codec.page_subjects(self._subject_counts(gallery), after, limit)

    def counts(self, gallery: str) -> tuple[int, int]:
        """(subjects, faces) from one exact facet."""
        rows = self._subject_counts(gallery)
        return len(rows), sum(count for _, count in rows)

    def iter_faces(self, gallery: str) -> Iterator[StoredFace]:
        """Every face, vectors included, scrolled in pages of 256."""
        self._require_collection(gallery)
        return self._iter_faces(gallery)

    # -- lifecycle ---------------------------------------------------------

    def check_health(self) -> None:
        """Unavailable when the server cannot be reached or refuses us."""
        if self._closed:
            raise errors.Unavailable("the qdrant store is closed")
        self._call(self._client.get_collections)

    def close(self) -> None:
        """Close the client's connections; idempotent."""
        if not self._closed:
            self._closed = True
            self._client.close()

    # -- internals ---------------------------------------------------------

    def _collection(self, gallery: str) -> str:
        return f"{self._prefix}g_{codec.check_gallery_name(gallery)}"

    @staticmethod
    def _meta_id(name: str) -> str:
        return str(uuid.uuid5(_META_NAMESPACE, name))

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the client, mapping its errors to domain errors (_Missing for
        a "not found" the caller interprets)."""
        if self._closed:
            raise errors.Unavailable("the qdrant store is closed")
        try:
            with self._serial:
                return fn(*args, **kwargs)
        except grpc.RpcError as exc:
            raise _from_grpc(exc) from exc
        except UnexpectedResponse as exc:
            raise _from_http(exc) from exc
        except (ApiException, QdrantException, OSError) as exc:
            log.warning("qdrant cannot be reached", exc_info=True)
            raise errors.Unavailable(_UNAVAILABLE) from exc
        except ValueError as exc:
            # Local mode reports both unknown collections and bad input as
            # ValueError; the caller tells them apart by asking for the collection.
            raise _LocalValueError(str(exc)) from exc

    def _on_gallery(self, gallery: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:meth:`_call` on a gallery's collection: NotFound when it is gone."""
        try:
            return self._call(fn, *args, **kwargs)
        except (_Missing, _LocalValueError) as exc:
            self._require_collection(gallery)
            if isinstance(exc, _Missing):
                raise errors.NotFound(f"gallery {gallery!r} not found") from None
            log.warning("the store rejected a request on gallery %r: %s", gallery, exc)
            raise errors.InvalidArgument(_REJECTED) from None

    def _require_collection(self, gallery: str) -> None:
        if not self._call(self._client.collection_exists, self._collection(gallery)):
            raise errors.NotFound(f"gallery {gallery!r} not found")

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
        except (_Missing, _LocalValueError):
            self._meta_ready = False
            log.warning("the gallery collection %s is missing", self._meta)
            raise errors.Unavailable(_UNAVAILABLE) from None
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
        except (_Missing, _LocalValueError) as exc:
            log.warning("the store rejected creating gallery %r: %s", config.name, exc)
            raise errors.InvalidArgument(
                f"{_REJECTED}: cannot create gallery {config.name!r}"
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

    def _scroll_all(self, gallery: str, flt: models.Filter, *, with_vectors: bool) -> list[Any]:
        records: list[Any] = []
        offset: Any = None
        while True:
            page, offset = self._on_gallery(
                gallery,
                self._client.scroll,
                self._collection(gallery),
                scroll_filter=flt,
                limit=_PAGE,
                offset=offset,
                with_payload=True,
                with_vectors=with_vectors,
            )
            records.extend(page)
            if offset is None:
                return records

    def _subject_counts(self, gallery: str) -> list[tuple[str, int]]:
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

    def _iter_faces(self, gallery: str) -> Iterator[StoredFace]:
        offset: Any = None
        while True:
            page, offset = self._on_gallery(
                gallery,
                self._client.scroll,
                self._collection(gallery),
                limit=_PAGE,
                offset=offset,
                with_payload=True,
                with_vectors=True,
            )
            for record in page:
                yield codec.face_from_point(record.id, record.payload, record.vector, gallery)
            if offset is None:
                return


class _LocalValueError(Exception):
    """A ValueError of qdrant-client's local mode (see :meth:`QdrantStore._call`)."""


def _subject_filter(subject_id: str) -> models.Filter:
    return models.Filter(
        must=[
            models.FieldCondition(key=codec.SUBJECT_KEY, match=models.MatchValue(value=subject_id))
        ]
    )


def _from_grpc(exc: grpc.RpcError) -> Exception:
    code_of = getattr(exc, "code", None)
    code = code_of() if callable(code_of) else None
    details_of = getattr(exc, "details", None)
    details = str(details_of()) if callable(details_of) else ""
    if code == grpc.StatusCode.NOT_FOUND:
        return _Missing(details)
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return errors.AlreadyExists("already exists")
    name = code.name if code is not None else "unknown"
    log.warning("qdrant answered %s: %s", name, details, exc_info=exc)
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
        return errors.InvalidArgument(_REJECTED)
    return errors.Unavailable(_UNAVAILABLE)


def _from_http(exc: UnexpectedResponse) -> Exception:
    status = exc.status_code or 0
    if status == 404:
        return _Missing(exc.reason_phrase)
    if status == 409:
        return errors.AlreadyExists("already exists")
    log.warning("qdrant answered HTTP %d: %r", status, exc.content[:300], exc_info=exc)
    if status in (400, 422):
        return errors.InvalidArgument(_REJECTED)
    return errors.Unavailable(_UNAVAILABLE)
