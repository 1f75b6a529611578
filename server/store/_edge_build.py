"""The background HNSW build of the ``edge`` backend.

qdrant-edge's ``optimize()`` holds the GIL for the whole build, so it runs in
a child process (:mod:`server.store._edge_optimize`) on a copy of the shard;
writes made meanwhile are logged (``EdgeGallery.replay``) and replayed onto
the built copy, which then replaces the live shard under a brief exclusive
lock. The child holds the gallery's build lock until it exits, so a
restarted registry never builds into, or cleans up, a folder an orphaned
child of its predecessor is still writing: it waits for the lock instead.
At most one build runs at a time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from server.store._edge_shards import (
    ACTIVE_FILE,
    BUILD_LOCK_FILE,
    SHARD_DIR,
    EdgeGallery,
    ShardConfig,
    lock_holder,
    remove_spare_shards,
    try_build_lock,
    write_atomic,
)

log = logging.getLogger("likeness.store.edge")

_BUILD_RETRY_S = 60.0
#: Seconds between two tries of a build lock held by another process.
_BUILD_LOCK_POLL_S = 0.2


class HnswBuilder:
    """Builds the HNSW index of galleries whose un-indexed faces reach
    ``min_faces`` (0: never), one at a time, on its own thread."""

    def __init__(self, qe: Any, config_of: ShardConfig, min_faces: int) -> None:
        self._qe = qe
        self._config_of = config_of
        self._min_faces = min_faces
        self.stopping = threading.Event()
        self._schedule_lock = threading.Lock()
        self._queue: queue.SimpleQueue[EdgeGallery | None] = queue.SimpleQueue()
        self._child: subprocess.Popen[bytes] | None = None
        self._child_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._build_loop, name="edge-hnsw-builder", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop building (a running child is killed); returns once the
        builder thread has ended. The caller has set every gallery's cancel."""
        self.stopping.set()
        self._queue.put(None)
        self._terminate_child()
        self._thread.join()

    @staticmethod
    def busy(g: EdgeGallery) -> bool:
        """Whether a build of ``g`` is queued or running."""
        return g.build_queued or not g.build_idle.is_set()

    def maybe_schedule(self, g: EdgeGallery) -> bool:
        """Queue a build when enough faces are un-indexed; True if queued."""
        if self._min_faces == 0:
            return False
        with g.rw.read():
            if g.closed:
                return False
            info = g.shard.info()
        if int(info.points_count) - int(info.indexed_vectors_count) < self._min_faces:
            return False
        with self._schedule_lock:
            if g.build_queued or time.monotonic() < g.retry_after or self.stopping.is_set():
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
            if not self.maybe_schedule(gallery):
                with self._schedule_lock:
                    if not gallery.build_queued:
                        gallery.build_idle.set()

    def _build(self, g: EdgeGallery) -> None:
        g.copy_idle.clear()
        try:
            if g.cancel.is_set() or self.stopping.is_set():
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

    def _lock_build(self, g: EdgeGallery) -> int | None:
        """Take the gallery's build lock, waiting (polled every
        ``_BUILD_LOCK_POLL_S`` seconds) while another process holds it;
        returns the locked fd, or None when the gallery or store closed
        meanwhile."""
        waiting_since: float | None = None
        while True:
            fd = try_build_lock(g.dir)
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
                    g.dir / BUILD_LOCK_FILE,
                    lock_holder(g.dir),
                )
            if g.cancel.wait(_BUILD_LOCK_POLL_S) or self.stopping.is_set():
                return None

    def _build_copy(self, g: EdgeGallery, lock_fd: int) -> None:
        if g.cancel.is_set() or self.stopping.is_set():
            return
        match = SHARD_DIR.fullmatch(g.shard_name)
        next_name = f"shard-{int(match.group(1)) + 1 if match else 1}"
        target = g.dir / next_name
        # Left by a build that died; the lock says no process writes them now.
        remove_spare_shards(g.dir, g.shard_name)
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

    def _run_child(self, target: Path, g: EdgeGallery, lock_fd: int) -> bool:
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
                if self.stopping.is_set() or g.cancel.is_set():
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
                        if g.cancel.is_set() or self.stopping.is_set():
                            child.kill()
            finally:
                with self._child_lock:
                    self._child = None
        finally:
            os.close(alive_fd)
        if child.returncode != 0:
            if not (g.cancel.is_set() or self.stopping.is_set()):
                raise RuntimeError(
                    f"optimizer exited with {child.returncode}: "
                    f"{stderr.decode(errors='replace')[-2000:]}"
                )
            return False
        return True

    def _swap_in(self, g: EdgeGallery, target: Path, next_name: str) -> int | None:
        """Replay the logged writes onto the built shard and make it the live
        one; returns how many writes were replayed (None: gallery gone)."""
        with g.write_mutex:
            if g.closed or g.cancel.is_set():
                return None
            replay = g.replay or []
            indexed_before = int(g.shard.info().indexed_vectors_count)
            new = self._qe.EdgeShard.load(str(target), self._config_of(g.config.dim))
            try:
                for operation in replay:
                    new.update(operation)
                new.flush()
                write_atomic(g.dir / ACTIVE_FILE, next_name)
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
