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
import fcntl
import json
import logging
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from likeness import errors
from server.domain import GalleryConfig, SearchHit, StoredFace
from server.store import _codec as codec
from server.store._rwlock import RWLock

log = logging.getLogger("likeness.store.edge")

_SHARD_DIR = re.compile(r"shard-(\d{1,9})")
_CONFIG_FILE = "config.json"
_ACTIVE_FILE = "active"
_PAGE = 256
#: Filtered searches whose filter matches fewer vectors than this (KB of
#: vectors) score them exactly through the payload index instead of walking
#: the graph; a subject's handful of faces is always far below it.
_FULL_SCAN_KB = 10_000
_BUILD_RETRY_S = 60.0
_BUILD_LOCK_FILE = "build.lock"
#: Seconds between two tries of a build lock held by another process.
_BUILD_LOCK_POLL_S = 0.2


@dataclass(frozen=True)
class EdgeIndexInfo:
    """State of a gallery's index: ``faces`` stored, ``indexed`` vectors in
    HNSW segments (deleted ones included until the next rebuild), ``segments``
    and whether a background build is queued or running."""

    faces: int
    indexed: int
    segments: int
    building: bool


class _Gallery:
    """A gallery's open shard and the locks around it.

    ``rw`` is held shared by every use of ``shard`` and exclusively to swap
    or close it; ``write_mutex`` serialises writes (and the build's copy and
    swap phases) so the replay log sees them in order.
    """

    def __init__(self, config: GalleryConfig, directory: Path, shard: Any, shard_name: str):
        self.config = config
        self.dir = directory
        self.shard = shard
        self.shard_name = shard_name
        self.rw = RWLock()
        self.write_mutex = threading.Lock()
        self.closed = False
        self.replay: list[Any] | None = None
        self.generation = 0
        self.subjects: tuple[int, list[tuple[str, int]]] | None = None
        self.build_queued = False
        self.build_idle = threading.Event()
        self.build_idle.set()
        self.copy_idle = threading.Event()  # clear while a build uses ``dir``
        self.copy_idle.set()
        self.cancel = threading.Event()
        self.retry_after = 0.0


class EdgeStore:
    """:class:`server.store.base.FaceStore` on qdrant-edge, data under ``root``.

    ``hnsw_min_faces``: un-indexed faces in a gallery that trigger a
    background HNSW build (0 = never build; every search is exact).
    ``hnsw_ef``: candidates examined per HNSW search (at least the limit);
    ``hnsw_m`` / ``hnsw_ef_construct``: graph degree and build effort.

    Only one process may open ``root``: a second gets
    :class:`likeness.errors.Unavailable` (it may be the previous instance
    still shutting down, so retrying later is the right reaction).
    Thread-safe.
    """

    backend = "edge"

    def __init__(
        self,
        root: Path,
        *,
        hnsw_min_faces: int = 20_000,
        hnsw_ef: int = 128,
        hnsw_m: int = 16,
        hnsw_ef_construct: int = 100,
    ) -> None:
        import qdrant_edge

        self._qe: Any = qdrant_edge
        self._root = Path(root)
        self._hnsw_min_faces = max(0, hnsw_min_faces)
        self._hnsw_ef = hnsw_ef
        self._hnsw_m = hnsw_m
        self._hnsw_ef_construct = hnsw_ef_construct
        self._galleries_dir = self._root / "galleries"
        self._trash_dir = self._root / "trash"
        self._admin_lock = threading.Lock()
        self._galleries: dict[str, _Gallery] = {}
        self._closed = False
        self._stopping = threading.Event()
        self._schedule_lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Gallery | None] = queue.SimpleQueue()
        self._child: subprocess.Popen[bytes] | None = None
        self._child_lock = threading.Lock()
        self._lock_fd = self._acquire_lock()
        try:
            self._galleries_dir.mkdir(exist_ok=True)
            self._trash_dir.mkdir(exist_ok=True)
            self._empty_trash()
            self._galleries = self._load_galleries()
        except BaseException:
            self._release()
            raise
        self._builder = threading.Thread(
            target=self._build_loop, name="edge-hnsw-builder", daemon=True
        )
        self._builder.start()
        for gallery in self._galleries.values():
            self._maybe_schedule(gallery)

    # -- galleries ---------------------------------------------------------

    def create_gallery(self, config: GalleryConfig) -> None:
        """Create an empty gallery; AlreadyExists when the name is taken."""
        codec.check_config(config)
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
                    str(directory / shard_name), self._edge_config(config.dim)
                )
                shard.update(
                    self._qe.UpdateOperation.create_field_index(
                        codec.SUBJECT_KEY, self._qe.PayloadSchemaType.Keyword
                    )
                )
                shard.flush()
                _write_atomic(directory / _ACTIVE_FILE, shard_name)
                _write_atomic(directory / _CONFIG_FILE, json.dumps(codec.config_to_dict(config)))
            except BaseException:
                if shard is not None:
                    shard.close()
                shutil.rmtree(directory, ignore_errors=True)
                raise
            gallery = _Gallery(config, directory, shard, shard_name)
            self._galleries = {**self._galleries, config.name: gallery}

    def get_gallery(self, name: str) -> GalleryConfig:
        """The gallery's config; NotFound when absent."""
        return self._gallery(name).config

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

    # -- faces -------------------------------------------------------------

    def upsert_faces(self, gallery: str, faces: Sequence[StoredFace]) -> None:
        """Insert or overwrite faces by face id; InvalidArgument for a face id
        that is not a UUID or a vector that is not (dim,), finite and non-zero.
        Durable (in the WAL) once it returns."""
        with self._writing(gallery) as g:
            points = []
            for face in faces:
                face_id = codec.require_face_uuid(face.face_id)
                vector = codec.check_vector(face.vector, g.config.dim, f"face {face_id} vector")
                payload = codec.face_payload(face, g.config.name, face_id)
                points.append(self._qe.Point(face_id, vector, payload))
            if points:
                self._apply(g, self._qe.UpdateOperation.upsert_points(points))
        self._maybe_schedule(g)

    def existing_face_ids(self, gallery: str, face_ids: Sequence[str]) -> set[str]:
        """The subset of ``face_ids`` stored (ids that are not UUIDs never are)."""
        wanted: dict[str, list[str]] = {}
        for face_id in face_ids:
            canonical = codec.face_uuid(face_id)
            if canonical is not None:
                wanted.setdefault(canonical, []).append(face_id)
        with self._reading(gallery) as g:
            if not wanted:
                return set()
            records = g.shard.retrieve(list(wanted), with_payload=False, with_vector=False)
        return {original for r in records for original in wanted.get(str(r.id), [])}

    def search(
        self, gallery: str, vector: np.ndarray, limit: int, subject_id: str | None = None
    ) -> list[SearchHit]:
        """The ``limit`` faces of highest cosine similarity to ``vector`` (in
        [-1, 1], best first), only ``subject_id``'s when given. Exact below
        the HNSW threshold, approximate (``hnsw_ef``) above it."""
        codec.check_limit(limit)
        qe = self._qe
        with self._reading(gallery) as g:
            query = codec.check_vector(vector, g.config.dim, "query vector")
            request = qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(query),
                filter=None if subject_id is None else self._subject_filter(subject_id),
                with_payload=qe.PayloadSelector.Include(codec.HIT_PAYLOAD_KEYS),
                with_vector=False,
                params=qe.SearchParams(hnsw_ef=max(self._hnsw_ef, limit)),
            )
            points = g.shard.query(request)
        return [codec.hit_from_point(p.id, p.score, p.payload) for p in points]

    def subject_faces(self, gallery: str, subject_id: str) -> list[StoredFace]:
        """All faces of a subject, vectors included (empty when unknown)."""
        with self._reading(gallery) as g:
            records = self._scroll_all(g, self._subject_filter(subject_id), with_vector=True)
            name = g.config.name
        return [codec.face_from_point(r.id, r.payload, r.vector, name) for r in records]

    def set_subject_metadata(self, gallery: str, subject_id: str, metadata: dict[str, str]) -> None:
        """Replace the metadata payload of the subject's faces (vectors untouched)."""
        with self._writing(gallery) as g:
            self._apply(
                g,
                self._qe.UpdateOperation.set_payload_by_filter(
                    self._subject_filter(subject_id), {codec.METADATA_KEY: dict(metadata)}
                ),
            )

    def delete_subject(self, gallery: str, subject_id: str) -> int:
        """Delete a subject's faces; returns how many (0 when unknown)."""
        flt = self._subject_filter(subject_id)
        with self._writing(gallery) as g:
            count = int(g.shard.count(self._qe.CountRequest(exact=True, filter=flt)))
            if count:
                self._apply(g, self._qe.UpdateOperation.delete_points_by_filter(flt))
        return count

    def face_subject(self, gallery: str, face_id: str) -> str | None:
        """The subject id of a stored face; None when absent."""
        canonical = codec.face_uuid(face_id)
        with self._reading(gallery) as g:
            if canonical is None:
                return None
            records = g.shard.retrieve(
                [canonical],
                with_payload=self._qe.PayloadSelector.Include([codec.SUBJECT_KEY]),
                with_vector=False,
            )
        return str((records[0].payload or {}).get(codec.SUBJECT_KEY, "")) if records else None

    def delete_face(self, gallery: str, face_id: str) -> str:
        """Delete one face; returns its subject id; NotFound when absent."""
        canonical = codec.face_uuid(face_id)
        with self._writing(gallery) as g:
            records = []
            if canonical is not None:
                records = g.shard.retrieve(
                    [canonical],
                    with_payload=self._qe.PayloadSelector.Include([codec.SUBJECT_KEY]),
                    with_vector=False,
                )
            if not records:
                raise errors.NotFound(f"face {face_id!r} not found in gallery {gallery!r}")
            self._apply(g, self._qe.UpdateOperation.delete_points([canonical]))
        return str((records[0].payload or {}).get(codec.SUBJECT_KEY, ""))

    def list_subjects(self, gallery: str, after: str | None, limit: int) -> list[tuple[str, int]]:
        """(subject id, face count) in subject-id order after ``after``.

        Built from one facet over the subject-id payload index (O(subjects),
        not O(faces)) and cached until the gallery's next write, so paging
        through an unchanged gallery costs O(log subjects + limit) per page.
        """
        codec.check_limit(limit)
        with self._reading(gallery) as g:
            rows = self._subject_counts(g)
        return codec.page_subjects(rows, after, limit)

    def counts(self, gallery: str) -> tuple[int, int]:
        """(subjects, faces), from the same cached facet as list_subjects."""
        with self._reading(gallery) as g:
            rows = self._subject_counts(g)
        return len(rows), sum(count for _, count in rows)

    def iter_faces(self, gallery: str) -> Iterator[StoredFace]:
        """Every face, vectors included, in pages of 256 (no lock is held
        between pages, so writes during an export may or may not show)."""
        self._gallery(gallery)
        return self._iter_faces(gallery)

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
            building = g.build_queued or not g.build_idle.is_set()
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
            busy = [
                g for g in self._galleries.values() if g.build_queued or not g.build_idle.is_set()
            ]
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
            self._stopping.set()
            for gallery in self._galleries.values():
                gallery.cancel.set()
            self._queue.put(None)
            self._terminate_child()
        self._builder.join()
        with self._admin_lock:
            for gallery in self._galleries.values():
                with gallery.write_mutex, gallery.rw.write():
                    if not gallery.closed:
                        gallery.closed = True
                        gallery.shard.close()
            self._release()

    # -- internals: access ---------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise errors.Unavailable("the edge store is closed")

    def _gallery(self, name: str) -> _Gallery:
        self._check_open()
        codec.check_gallery_name(name)
        gallery = self._galleries.get(name)
        if gallery is None:
            raise errors.NotFound(f"gallery {name!r} not found")
        return gallery

    @contextlib.contextmanager
    def _reading(self, name: str) -> Iterator[_Gallery]:
        gallery = self._gallery(name)
        with gallery.rw.read():
            if gallery.closed:
                self._check_open()
                raise errors.NotFound(f"gallery {name!r} not found")
            yield gallery

    @contextlib.contextmanager
    def _writing(self, name: str) -> Iterator[_Gallery]:
        gallery = self._gallery(name)
        with gallery.write_mutex, gallery.rw.read():
            if gallery.closed:
                self._check_open()
                raise errors.NotFound(f"gallery {name!r} not found")
            yield gallery

    def _apply(self, g: _Gallery, operation: Any) -> None:
        """Apply a write (caller holds write_mutex and rw shared)."""
        g.shard.update(operation)
        g.generation += 1
        if g.replay is not None:
            g.replay.append(operation)

    def _subject_filter(self, subject_id: str) -> Any:
        qe = self._qe
        return qe.Filter(
            must=[qe.FieldCondition(codec.SUBJECT_KEY, match=qe.MatchValue(subject_id))]
        )

    def _scroll_all(self, g: _Gallery, flt: Any, *, with_vector: bool) -> list[Any]:
        records: list[Any] = []
        offset = None
        while True:
            page, offset = g.shard.scroll(
                self._qe.ScrollRequest(
                    offset=offset,
                    limit=_PAGE,
                    filter=flt,
                    with_payload=True,
                    with_vector=with_vector,
                )
            )
            records.extend(page)
            if offset is None:
                return records

    def _subject_counts(self, g: _Gallery) -> list[tuple[str, int]]:
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

    def _iter_faces(self, gallery: str) -> Iterator[StoredFace]:
        offset = None
        while True:
            with self._reading(gallery) as g:
                page, offset = g.shard.scroll(
                    self._qe.ScrollRequest(
                        offset=offset, limit=_PAGE, with_payload=True, with_vector=True
                    )
                )
                name = g.config.name
            for record in page:
                yield codec.face_from_point(record.id, record.payload, record.vector, name)
            if offset is None:
                return

    # -- internals: files ----------------------------------------------------

    def _acquire_lock(self) -> int:
        self._root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._root / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise errors.Unavailable(
                f"edge store {self._root} is in use by another process (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _release(self) -> None:
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)

    def _empty_trash(self) -> None:
        for entry in self._trash_dir.iterdir():
            shutil.rmtree(entry, ignore_errors=True)

    def _load_galleries(self) -> dict[str, _Gallery]:
        galleries: dict[str, _Gallery] = {}
        for directory in sorted(self._galleries_dir.iterdir()):
            config_file = directory / _CONFIG_FILE
            if not config_file.is_file():
                log.warning("removing unfinished gallery directory %s", directory)
                shutil.rmtree(directory, ignore_errors=True)
                continue
            corrupt = f"edge store gallery {directory.name!r} is corrupt ({directory})"
            try:
                config = codec.config_from_dict(json.loads(config_file.read_text()))
                active = (directory / _ACTIVE_FILE).read_text().strip()
            except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
                # ValueError covers bad JSON; TypeError a JSON value that is
                # not an object or lacks a config field.
                raise errors.FailedPrecondition(f"{corrupt}: {type(exc).__name__}") from None
            if config.name != directory.name or _SHARD_DIR.fullmatch(active) is None:
                raise errors.FailedPrecondition(corrupt)
            lock_fd = _try_build_lock(directory)
            if lock_fd is None:
                # The build will remove them once the process holding the
                # lock (an orphaned build child) has ended.
                log.warning(
                    "gallery %r: an earlier build process still holds %s; "
                    "its next build waits for it",
                    config.name,
                    directory / _BUILD_LOCK_FILE,
                )
            else:
                try:
                    _remove_spare_shards(directory, active)
                finally:
                    os.close(lock_fd)
            shard = self._qe.EdgeShard.load(str(directory / active), self._edge_config(config.dim))
            galleries[config.name] = _Gallery(config, directory, shard, active)
        return galleries

    def _edge_config(self, dim: int) -> Any:
        qe = self._qe
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
            wal_enabled=True,
            hnsw_config=qe.HnswIndexConfig(
                m=self._hnsw_m,
                ef_construct=self._hnsw_ef_construct,
                full_scan_threshold=_FULL_SCAN_KB,
            ),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=self._indexing_kb(dim)),
        )

    def _indexing_kb(self, dim: int) -> int:
        # qdrant indexes a segment once its vectors exceed this many KB; 0
        # turns indexing off, which is what hnsw_min_faces=0 means.
        if self._hnsw_min_faces == 0:
            return 0
        return max(1, self._hnsw_min_faces * dim * 4 // 1024 * 9 // 10)

    # -- internals: background HNSW build ------------------------------------

    def _maybe_schedule(self, g: _Gallery) -> bool:
        """Queue a build when enough faces are un-indexed; True if queued."""
        if self._hnsw_min_faces == 0:
            return False
        with g.rw.read():
            if g.closed:
                return False
            info = g.shard.info()
        if int(info.points_count) - int(info.indexed_vectors_count) < self._hnsw_min_faces:
            return False
        with self._schedule_lock:
            if g.build_queued or time.monotonic() < g.retry_after or self._stopping.is_set():
                return False
            g.build_queued = True
            g.build_idle.clear()
        self._queue.put(g)
        return True

    def _build_loop(self) -> None:
        while True:
            gallery = self._queue.get()
            if gallery is None:
                return
            try:
                self._build(gallery)
            except Exception:
                log.exception("HNSW build of gallery %r failed", gallery.config.name)
                gallery.retry_after = time.monotonic() + _BUILD_RETRY_S
            finally:
                with self._schedule_lock:
                    gallery.build_queued = False
            # Writes replayed onto the new shard may already call for the next
            # build; build_idle stays clear until that is decided.
            if not self._maybe_schedule(gallery):
                with self._schedule_lock:
                    if not gallery.build_queued:
                        gallery.build_idle.set()

    def _build(self, g: _Gallery) -> None:
        g.copy_idle.clear()
        try:
            if g.cancel.is_set() or self._stopping.is_set():
                return
            lock_fd = self._lock_build(g)
            if lock_fd is None:
                return
            try:
                self._build_copy(g, lock_fd)
            finally:
                # Closing, never LOCK_UN: flock belongs to the open file,
                # which a still-running child shares, and LOCK_UN would
                # release it under that child's feet.
                os.close(lock_fd)
        finally:
            g.copy_idle.set()

    def _lock_build(self, g: _Gallery) -> int | None:
        """Take the gallery's build lock, waiting (polled every
        ``_BUILD_LOCK_POLL_S`` seconds) while another process holds it;
        returns the locked fd, or None when the gallery or store closed
        meanwhile."""
        waiting_since: float | None = None
        while True:
            fd = _try_build_lock(g.dir)
            if fd is not None:
                if waiting_since is not None:
                    log.info(
                        "gallery %r: build lock free after %.1f s",
                        g.config.name,
                        time.monotonic() - waiting_since,
                    )
                return fd
            if waiting_since is None:
                waiting_since = time.monotonic()
                log.warning(
                    "gallery %r: waiting for %s, held by another build process (pid %s)",
                    g.config.name,
                    g.dir / _BUILD_LOCK_FILE,
                    _lock_holder(g.dir),
                )
            if g.cancel.wait(_BUILD_LOCK_POLL_S) or self._stopping.is_set():
                return None

    def _build_copy(self, g: _Gallery, lock_fd: int) -> None:
        if g.cancel.is_set() or self._stopping.is_set():
            return
        match = _SHARD_DIR.fullmatch(g.shard_name)
        next_name = f"shard-{int(match.group(1)) + 1 if match else 1}"
        target = g.dir / next_name
        # Left by a build that died; the lock says no process writes them now.
        _remove_spare_shards(g.dir, g.shard_name)
        started = time.monotonic()
        with g.write_mutex:
            if g.closed:
                return
            with g.rw.read():
                g.shard.flush()
                shutil.copytree(
                    g.dir / g.shard_name,
                    target,
                    ignore=shutil.ignore_patterns("temp_segments"),
                )
            g.replay = []
        try:
            if not self._run_child(target, g, lock_fd):
                return
            replayed = self._swap_in(g, target, next_name)
            if replayed is None:
                return
        finally:
            with g.write_mutex:
                g.replay = None
            if g.shard_name != next_name:
                shutil.rmtree(target, ignore_errors=True)
        log.info(
            "built HNSW index of gallery %r in %.1f s (%d writes replayed)",
            g.config.name,
            time.monotonic() - started,
            replayed,
        )

    def _run_child(self, target: Path, g: _Gallery, lock_fd: int) -> bool:
        """Run the optimizer child on ``target``; it inherits ``lock_fd`` (the
        build lock), so the lock outlives this process while the child lives.
        Called on the builder thread only: Linux's parent-death signal fires
        when the thread that started the child ends, and this thread outlives
        every child it starts (close() kills the child before it returns)."""
        env = dict(os.environ)
        project = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [project, env.get("PYTHONPATH")]))
        # Only this process holds the write end (os.pipe() fds are not
        # inherited), so the child sees EOF exactly when this process is gone.
        watch_fd, alive_fd = os.pipe()
        try:
            with self._child_lock:
                if self._stopping.is_set() or g.cancel.is_set():
                    return False
                try:
                    child = subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "server.store._edge_optimize",
                            str(target),
                            "--parent-pid",
                            str(os.getpid()),
                            "--parent-pipe",
                            str(watch_fd),
                        ],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        env=env,
                        pass_fds=(watch_fd, lock_fd),
                    )
                finally:
                    os.close(watch_fd)
                self._child = child
            with contextlib.suppress(OSError):
                os.ftruncate(lock_fd, 0)
                os.pwrite(lock_fd, f"{child.pid}\n".encode(), 0)
            with contextlib.suppress(OSError):
                # Searches must keep their cores: the build takes what is left.
                os.setpriority(os.PRIO_PROCESS, child.pid, 10)
            stderr = b""
            try:
                while True:
                    try:
                        _, stderr = child.communicate(timeout=0.2)
                        break
                    except subprocess.TimeoutExpired:
                        if g.cancel.is_set() or self._stopping.is_set():
                            child.kill()
            finally:
                with self._child_lock:
                    self._child = None
        finally:
            os.close(alive_fd)
        if child.returncode != 0:
            if not (g.cancel.is_set() or self._stopping.is_set()):
                raise RuntimeError(
                    f"optimizer exited with {child.returncode}: "
                    f"{stderr.decode(errors='replace')[-2000:]}"
                )
            return False
        return True

    def _swap_in(self, g: _Gallery, target: Path, next_name: str) -> int | None:
        """Replay the logged writes onto the built shard and make it the live
        one; returns how many writes were replayed (None: gallery gone)."""
        with g.write_mutex:
            if g.closed or g.cancel.is_set():
                return None
            replay = g.replay or []
            indexed_before = int(g.shard.info().indexed_vectors_count)
            new = self._qe.EdgeShard.load(str(target), self._edge_config(g.config.dim))
            try:
                for operation in replay:
                    new.update(operation)
                new.flush()
                _write_atomic(g.dir / _ACTIVE_FILE, next_name)
            except BaseException:
                new.close()
                raise
            with g.rw.write():
                old, old_name = g.shard, g.shard_name
                g.shard, g.shard_name = new, next_name
                g.replay = None
            if int(new.info().indexed_vectors_count) <= indexed_before:
                # The optimizer found nothing to index (e.g. deletes hid the
                # unindexed tail): do not rebuild on every write.
                g.retry_after = time.monotonic() + _BUILD_RETRY_S
        old.close()
        shutil.rmtree(g.dir / old_name, ignore_errors=True)
        return len(replay)

    def _terminate_child(self) -> None:
        with self._child_lock:
            child = self._child
            if child is not None and child.poll() is None:
                child.kill()


def _try_build_lock(gallery_dir: Path) -> int | None:
    """An fd holding the exclusive flock of the gallery's build lock file, or
    None when another process holds it."""
    fd = os.open(gallery_dir / _BUILD_LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _lock_holder(gallery_dir: Path) -> str:
    """The pid the last build wrote into the lock file ("unknown" if none)."""
    try:
        text = (gallery_dir / _BUILD_LOCK_FILE).read_text(errors="replace").strip()
    except OSError:
        text = ""
    return text or "unknown"


def _remove_spare_shards(gallery_dir: Path, active: str) -> None:
    """Remove every shard directory but ``active`` (a build's leftovers);
    the caller holds the build lock."""
    for entry in gallery_dir.iterdir():
        if entry.is_dir() and entry.name != active:
            shutil.rmtree(entry, ignore_errors=True)


def _write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader sees the old or the new file
    whole, also across a crash (write, fsync, rename, fsync the directory)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
