"""The files of the ``edge`` backend (layout in :mod:`server.store.edge`):
the store's lock, gallery directories and their shards, atomic writes, the
build lock, and the shard configuration."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from likeness import errors
from server.domain import GalleryConfig
from server.store import _codec as codec
from server.store._rwlock import RWLock

log = logging.getLogger("likeness.store.edge")

SHARD_DIR = re.compile(r"shard-(\d{1,9})")
CONFIG_FILE = "config.json"
ACTIVE_FILE = "active"
BUILD_LOCK_FILE = "build.lock"
#: Filtered searches whose filter matches fewer vectors than this (KB of
#: vectors) score them exactly through the payload index instead of walking
#: the graph; a subject's handful of faces is always far below it.
_FULL_SCAN_KB = 10_000


class EdgeGallery:
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

    def rewrite_config(self, config: GalleryConfig) -> None:
        """Replace the gallery's config, on disk (atomically) and here."""
        write_atomic(self.dir / CONFIG_FILE, json.dumps(codec.config_to_dict(config)))
        self.config = config


class ShardConfig:
    """The qdrant-edge configuration of a gallery's shard: cosine, the
    gallery's dim, the WAL on, HNSW with graph degree ``m`` and build effort
    ``ef_construct``, indexing once ``min_faces`` faces are un-indexed (0:
    never)."""

    def __init__(self, qe: Any, m: int, ef_construct: int, min_faces: int) -> None:
        self._qe = qe
        self._m = m
        self._ef_construct = ef_construct
        self._min_faces = min_faces

    def __call__(self, dim: int) -> Any:
        qe = self._qe
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
            wal_enabled=True,
            hnsw_config=qe.HnswIndexConfig(
                m=self._m,
                ef_construct=self._ef_construct,
                full_scan_threshold=_FULL_SCAN_KB,
            ),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=self._indexing_kb(dim)),
        )

    def _indexing_kb(self, dim: int) -> int:
        # qdrant indexes a segment once its vectors exceed this many KB; 0
        # turns indexing off, which is what hnsw_min_faces=0 means.
        if self._min_faces == 0:
            return 0
        return max(1, self._min_faces * dim * 4 // 1024 * 9 // 10)


def acquire_root_lock(root: Path) -> int:
    """The fd holding the exclusive flock of ``root/LOCK`` (with this pid
    written in it); Unavailable when another process holds it."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise errors.Unavailable(
            f"edge store {root} is in use by another process (pid {holder})"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def release_root_lock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def empty(directory: Path) -> None:
    """Remove everything in ``directory`` (the trash)."""
    for entry in directory.iterdir():
        shutil.rmtree(entry, ignore_errors=True)


def load_galleries(galleries_dir: Path, qe: Any, config_of: ShardConfig) -> dict[str, EdgeGallery]:
    """Open every complete gallery under ``galleries_dir``, removing the
    directories of unfinished creates and (unless an orphaned build child
    still holds the build lock) the spare shards of unfinished builds."""
    galleries: dict[str, EdgeGallery] = {}
    for directory in sorted(galleries_dir.iterdir()):
        config_file = directory / CONFIG_FILE
        if not config_file.is_file():
            log.warning("removing unfinished gallery directory %s", directory)
            shutil.rmtree(directory, ignore_errors=True)
            continue
        corrupt = f"edge store gallery {directory.name!r} is corrupt ({directory})"
        try:
            config = codec.config_from_dict(json.loads(config_file.read_text()))
            active = (directory / ACTIVE_FILE).read_text().strip()
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
            # ValueError covers bad JSON; TypeError a JSON value that is
            # not an object or lacks a config field.
            raise errors.FailedPrecondition(f"{corrupt}: {type(exc).__name__}") from None
        if config.name != directory.name or SHARD_DIR.fullmatch(active) is None:
            raise errors.FailedPrecondition(corrupt)
        lock_fd = try_build_lock(directory)
        if lock_fd is None:
            # The build will remove them once the process holding the
            # lock (an orphaned build child) has ended.
            log.warning(
                "gallery %r: an earlier build process still holds %s; its next build waits for it",
                config.name,
                directory / BUILD_LOCK_FILE,
            )
        else:
            try:
                remove_spare_shards(directory, active)
            finally:
                os.close(lock_fd)
        shard = qe.EdgeShard.load(str(directory / active), config_of(config.dim))
        galleries[config.name] = EdgeGallery(config, directory, shard, active)
    return galleries


def try_build_lock(gallery_dir: Path) -> int | None:
    """An fd holding the exclusive flock of the gallery's build lock file, or
    None when another process holds it."""
    fd = os.open(gallery_dir / BUILD_LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_holder(gallery_dir: Path) -> str:
    """The pid the last build wrote into the lock file ("unknown" if none)."""
    try:
        text = (gallery_dir / BUILD_LOCK_FILE).read_text(errors="replace").strip()
    except OSError:
        text = ""
    return text or "unknown"


def remove_spare_shards(gallery_dir: Path, active: str) -> None:
    """Remove every shard directory but ``active`` (a build's leftovers);
    the caller holds the build lock."""
    for entry in gallery_dir.iterdir():
        if entry.is_dir() and entry.name != active:
            shutil.rmtree(entry, ignore_errors=True)


def write_atomic(path: Path, text: str) -> None:
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
