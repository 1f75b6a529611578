"""The ``edge`` backend: the Qdrant engine in-process (qdrant-edge-py).

On-disk layout under the store's root directory::

    LOCK                     flock()ed by the one process using the store
    galleries/<name>/
        config.json          the GalleryConfig; written last, so a gallery
                             directory without it is an unfinished create
        active               name of the live shard directory ("shard-<n>")
        build.lock           flock()ed while an HNSW build uses the gallery's
                             spare shard directories (by the registry and its
                             build child)
        shard-<n>/           one qdrant-edge shard (segments, WAL, config)
    trash/                   galleries being deleted

Every gallery is one edge shard: cosine distance, the gallery's dim, a
keyword payload index on ``subject_id`` and the WAL on, so an upsert that has
returned survives kill -9 of the process.

HNSW: a gallery is searched exactly until its un-indexed faces reach
``hnsw_min_faces``; then a background thread builds the index. qdrant-edge's
``optimize()`` holds the GIL for the whole build, so it runs in a child
process on a copy of the shard (writes pause for the flush and copy, a second
or so per 100k faces; searches go on). Writes made during the build are
logged and replayed onto the built copy, which then replaces the live shard
under a brief exclusive lock. The switch is the atomic rewrite of ``active``,
so a crash at any point leaves one complete shard. The copy needs as much
free disk as the gallery itself while it runs, and the writes made during a
build are held in memory until it ends (at most one build runs at a time).

The build child dies with the registry (see :mod:`server.store._edge_optimize`)
and holds the gallery's ``build.lock`` until it exits, so a restarted
registry never builds into, or cleans up, a folder that an orphaned child of
its predecessor is still writing: it waits for the lock instead.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, Unpack

from likeness import errors
from server.domain import GalleryConfig
from server.store import _codec as codec
from server.store._edge_build import HnswBuilder
from server.store._edge_shards import (
    ACTIVE_FILE,
    CONFIG_FILE,
    EdgeGallery,
    ShardConfig,
    acquire_root_lock,
    empty,
    load_galleries,
    release_root_lock,
    write_atomic,
)
from server.store.base import Point
from server.store.faces import Faces

_PAGE = 256


@dataclass(frozen=True)
class EdgeIndexInfo:
    """State of a gallery's index: ``faces`` stored, ``indexed`` vectors in
    HNSW segments (deleted ones included until the next rebuild), ``segments``
    and whether a background build is queued or running."""

    faces: int
    indexed: int
    segments: int
    building: bool


class EdgeOptions(TypedDict, total=False):
    """Options of the edge store.

    ``hnsw_min_faces`` (20,000): un-indexed faces in a gallery that trigger a
    background HNSW build (0 = never build; every search is exact).
    ``hnsw_ef`` (128): candidates examined per HNSW search (at least the
    limit); ``hnsw_m`` (16) / ``hnsw_ef_construct`` (100): graph degree and
    build effort.
    """

    hnsw_min_faces: int
    hnsw_ef: int
    hnsw_m: int
    hnsw_ef_construct: int


class EdgeEngine:
    """The :class:`server.store.base.Engine` of qdrant-edge, data under
    ``root`` (options: :class:`EdgeOptions`). Every write goes through
    :meth:`_apply`, which the HNSW builder's replay log sees."""

    backend = "edge"

    def __init__(self, root: Path, **options: Unpack[EdgeOptions]) -> None:
        import qdrant_edge

        hnsw_min_faces = max(0, options.get("hnsw_min_faces", 20_000))

        self._qe: Any = qdrant_edge
        self._root = Path(root)
        self._hnsw_ef = options.get("hnsw_ef", 128)
        self._config_of = ShardConfig(
            qdrant_edge,
            options.get("hnsw_m", 16),
            options.get("hnsw_ef_construct", 100),
            hnsw_min_faces,
        )
        self._galleries_dir = self._root / "galleries"
        self._trash_dir = self._root / "trash"
        self._admin_lock = threading.Lock()
        self._galleries: dict[str, EdgeGallery] = {}
        self._closed = False
        self._builder = HnswBuilder(qdrant_edge, self._config_of, hnsw_min_faces)
        self._lock_fd = acquire_root_lock(self._root)
        try:
            self._galleries_dir.mkdir(exist_ok=True)
            self._trash_dir.mkdir(exist_ok=True)
            empty(self._trash_dir)
            self._galleries = load_galleries(self._galleries_dir, self._qe, self._config_of)
        except BaseException:
            release_root_lock(self._lock_fd)
            raise
        self._builder.start()
        for gallery in self._galleries.values():
            self._builder.maybe_schedule(gallery)

    # -- galleries ---------------------------------------------------------

    def create_gallery(self, config: GalleryConfig) -> None:
        """Create an empty gallery; AlreadyExists when the name is taken."""
        with self._admin_lock:
            self._check_open()
            if config.name in self._galleries:
                raise errors.AlreadyExists(f"gallery {config.name!r} already exists")
            directory = self._galleries_dir / config.name
            if directory.exists():
                shutil.rmtree(directory)
            directory.mkdir()
            shard_name = "shard-0"
            shard = None
            try:
                shard = self._qe.EdgeShard.create(
                    str(directory / shard_name), self._config_of(config.dim)
                )
                shard.update(
                    self._qe.UpdateOperation.create_field_index(
                        codec.SUBJECT_KEY, self._qe.PayloadSchemaType.Keyword
                    )
                )
                shard.flush()
                write_atomic(directory / ACTIVE_FILE, shard_name)
                write_atomic(directory / CONFIG_FILE, json.dumps(codec.config_to_dict(config)))
            except BaseException:
                if shard is not None:
                    shard.close()
                shutil.rmtree(directory, ignore_errors=True)
                raise
            gallery = EdgeGallery(config, directory, shard, shard_name)
            self._galleries = {**self._galleries, config.name: gallery}

    def get_gallery(self, name: str) -> GalleryConfig:
        """The gallery's config; NotFound when absent."""
        return self._gallery(name).config

    def update_gallery(self, config: GalleryConfig) -> None:
        with self._admin_lock:
            self._gallery(config.name).rewrite_config(config)

    def list_galleries(self) -> list[GalleryConfig]:
        """Every gallery, by name."""
        self._check_open()
        return [g.config for _, g in sorted(self._galleries.items())]

    def delete_gallery(self, name: str) -> int:
        """Delete a gallery and its files; returns how many faces it held."""
        with self._admin_lock:
            gallery = self._gallery(name)
            gallery.cancel.set()
            with gallery.write_mutex, gallery.rw.write():
                faces = int(gallery.shard.count(self._qe.CountRequest(exact=True)))
                gallery.closed = True
                gallery.shard.close()
            self._galleries = {k: v for k, v in self._galleries.items() if k != name}
            # A build child may still be writing its copy inside the directory
            # (it sees ``cancel`` and stops within a fraction of a second).
            gallery.copy_idle.wait()
            trash = self._trash_dir / f"{name}-{uuid.uuid4().hex}"
            gallery.dir.replace(trash)
        shutil.rmtree(trash, ignore_errors=True)
        return faces

    # -- points ------------------------------------------------------------

    def require(self, gallery: str) -> None:
        with self._reading(gallery):
            pass

    def vector_dim(self, gallery: str) -> int | None:
        return self._gallery(gallery).config.dim

    def upsert(self, gallery: str, points: Sequence[Point]) -> None:
        """Durable (in the WAL) once it returns; may queue an HNSW build."""
        qe = self._qe
        with self._writing(gallery) as g:
            self._apply(g, qe.UpdateOperation.upsert_points([qe.Point(*p) for p in points]))
        self._builder.maybe_schedule(g)

    def retrieve(self, gallery: str, ids: Sequence[str], with_subject: bool) -> list[Any]:
        payload = self._qe.PayloadSelector.Include([codec.SUBJECT_KEY]) if with_subject else False
        with self._reading(gallery) as g:
            return list(g.shard.retrieve(list(ids), with_payload=payload, with_vector=False))

    def query(
        self, gallery: str, vector: list[float], limit: int, subject_id: str | None
    ) -> list[Any]:
        """Exact below the HNSW threshold, approximate (``hnsw_ef``) above it."""
        qe = self._qe
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector),
            filter=None if subject_id is None else self._subject_filter(subject_id),
            with_payload=qe.PayloadSelector.Include(codec.HIT_PAYLOAD_KEYS),
            with_vector=False,
            params=qe.SearchParams(hnsw_ef=max(self._hnsw_ef, limit)),
        )
        with self._reading(gallery) as g:
            return list(g.shard.query(request))

    def scroll(
        self, gallery: str, subject_id: str | None, offset: Any, with_vectors: bool
    ) -> tuple[list[Any], Any]:
        """One page, under the gallery's read lock (none is held between pages)."""
        request = self._qe.ScrollRequest(
            offset=offset,
            limit=_PAGE,
            filter=None if subject_id is None else self._subject_filter(subject_id),
            with_payload=True,
            with_vector=with_vectors,
        )
        with self._reading(gallery) as g:
            page, next_offset = g.shard.scroll(request)
        return list(page), next_offset

    def set_payload(self, gallery: str, subject_id: str, payload: dict[str, Any]) -> None:
        operation = self._qe.UpdateOperation.set_payload_by_filter(
            self._subject_filter(subject_id), payload
        )
        with self._writing(gallery) as g:
            self._apply(g, operation)

    def delete_subject(self, gallery: str, subject_id: str) -> int:
        """Count and delete under the gallery's write lock."""
        flt = self._subject_filter(subject_id)
        with self._writing(gallery) as g:
            count = int(g.shard.count(self._qe.CountRequest(exact=True, filter=flt)))
            if count:
                self._apply(g, self._qe.UpdateOperation.delete_points_by_filter(flt))
        return count

    def pop(self, gallery: str, point_id: str) -> dict[str, Any] | None:
        """Read and delete under the gallery's write lock."""
        with self._writing(gallery) as g:
            records = g.shard.retrieve(
                [point_id],
                with_payload=self._qe.PayloadSelector.Include([codec.SUBJECT_KEY]),
                with_vector=False,
            )
            if not records:
                return None
            self._apply(g, self._qe.UpdateOperation.delete_points([point_id]))
        return dict(records[0].payload or {})

    def subject_counts(self, gallery: str) -> list[tuple[str, int]]:
        """From one facet over the subject-id payload index, cached until the
        gallery's next write: paging through an unchanged gallery costs
        O(log subjects + limit) per page."""
        with self._reading(gallery) as g:
            generation = g.generation
            cached = g.subjects
            if cached is not None and cached[0] == generation:
                return cached[1]
            faces = int(g.shard.count(self._qe.CountRequest(exact=True)))
            hits = g.shard.facet(
                self._qe.FacetRequest(codec.SUBJECT_KEY, limit=max(1, faces), exact=True)
            ).hits
            # Exact facets list a value whose points were all deleted with count 0.
            rows = sorted((str(h.value), int(h.count)) for h in hits if h.count > 0)
            g.subjects = (generation, rows)
            return rows

    # -- lifecycle ---------------------------------------------------------

    def check_health(self) -> None:
        """Unavailable when the store is closed or its directory is gone."""
        self._check_open()
        if not self._galleries_dir.is_dir():
            raise errors.Unavailable(f"edge store directory {self._root} is missing")

    def index_info(self, gallery: str) -> EdgeIndexInfo:
        """Faces, indexed vectors and segments of a gallery (for tests and benchmarks)."""
        with self._reading(gallery) as g:
            info = g.shard.info()
            building = self._builder.busy(g)
        return EdgeIndexInfo(
            int(info.points_count),
            int(info.indexed_vectors_count),
            int(info.segments_count),
            building,
        )

    def wait_for_builds(self, timeout_s: float) -> bool:
        """Block until no background build is queued or running; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            busy = [g for g in self._galleries.values() if self._builder.busy(g)]
            if not busy:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            busy[0].build_idle.wait(min(left, 0.05))

    def close(self) -> None:
        """Stop background builds, flush and close every shard, release the lock.
        Idempotent; afterwards every call raises Unavailable."""
        with self._admin_lock:
            if self._closed:
                return
            self._closed = True
            for gallery in self._galleries.values():
                gallery.cancel.set()
        self._builder.stop()
        with self._admin_lock:
            for gallery in self._galleries.values():
                with gallery.write_mutex, gallery.rw.write():
                    if not gallery.closed:
                        gallery.closed = True
                        gallery.shard.close()
            release_root_lock(self._lock_fd)

    # -- internals ---------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise errors.Unavailable("the edge store is closed")

    def _gallery(self, name: str) -> EdgeGallery:
        self._check_open()
        codec.check_gallery_name(name)
        gallery = self._galleries.get(name)
        if gallery is None:
            raise errors.NotFound(f"gallery {name!r} not found")
        return gallery

    @contextlib.contextmanager
    def _reading(self, name: str) -> Iterator[EdgeGallery]:
        gallery = self._gallery(name)
        with gallery.rw.read():
            if gallery.closed:
                self._check_open()
                raise errors.NotFound(f"gallery {name!r} not found")
            yield gallery

    @contextlib.contextmanager
    def _writing(self, name: str) -> Iterator[EdgeGallery]:
        gallery = self._gallery(name)
        with gallery.write_mutex, gallery.rw.read():
            if gallery.closed:
                self._check_open()
                raise errors.NotFound(f"gallery {name!r} not found")
            yield gallery

    def _apply(self, g: EdgeGallery, operation: Any) -> None:
        """Apply a write (caller holds write_mutex and rw shared); a build
        running meanwhile replays it onto its copy."""
        g.shard.update(operation)
        g.generation += 1
        if g.replay is not None:
            g.replay.append(operation)

    def _subject_filter(self, subject_id: str) -> Any:
        qe = self._qe
        return qe.Filter(
            must=[qe.FieldCondition(codec.SUBJECT_KEY, match=qe.MatchValue(subject_id))]
        )


class EdgeStore(Faces):
    """:class:`server.store.base.FaceStore` on qdrant-edge, data under ``root``
    (options: :class:`EdgeOptions`).

    Only one process may open ``root``: a second gets
    :class:`likeness.errors.Unavailable` (it may be the previous instance
    still shutting down, so retrying later is the right reaction).
    Thread-safe.
    """

    def __init__(self, root: Path, **options: Unpack[EdgeOptions]) -> None:
        self._edge = EdgeEngine(root, **options)
        super().__init__(self._edge)

    def index_info(self, gallery: str) -> EdgeIndexInfo:
        """Faces, indexed vectors and segments of a gallery (for tests and benchmarks)."""
        return self._edge.index_info(gallery)

    def wait_for_builds(self, timeout_s: float) -> bool:
        """Block until no background build is queued or running; False on timeout."""
        return self._edge.wait_for_builds(timeout_s)
