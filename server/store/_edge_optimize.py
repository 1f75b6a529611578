"""Child process that runs qdrant-edge's optimizers on a copy of a shard.

``python -m server.store._edge_optimize SHARD_DIR [--parent-pid PID]
[--parent-pipe FD]``: loads the shard at SHARD_DIR (with the config persisted
there), runs ``optimize()`` (HNSW build, merges, vacuum) until nothing is left
to do, flushes and closes it. Exit status 0 on success, 1 on failure (the
reason is logged to stderr), 3 when the parent was already gone.

Why a process: ``EdgeShard.optimize()`` holds the GIL for the whole build
(minutes for a million faces), which would freeze every thread of the
registry, so :class:`server.store.edge.EdgeStore` runs it here on a copy and
swaps the result in.

The child dies with its parent: a build whose registry is gone has nobody
to swap its result in, and would only go on writing into a folder that the
restarted registry builds into. With ``--parent-pid`` it asks Linux for
SIGKILL when the parent dies (``PR_SET_PDEATHSIG``) and exits at once if the
parent died before that took effect; with ``--parent-pipe`` (the read end of
a pipe whose write end only the parent holds) it exits when the pipe reaches
end-of-file. The pipe is the fallback where there is no death signal, and a
weak one: ``optimize()`` holds the GIL, so the watching thread only gets to
run before and after it. The edge store's build lock, which this process
inherits and holds until it exits, is what keeps a surviving child's folder
apart from the next build.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import sys
import threading

log = logging.getLogger("likeness.store.edge_optimize")

#: Exit status when the parent died before the build could start.
PARENT_GONE = 3
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def optimize(path: str) -> bool:
    """Optimize the shard at ``path``; True when any segment was rebuilt."""
    import qdrant_edge

    shard = qdrant_edge.EdgeShard.load(path)
    try:
        changed = bool(shard.optimize())
        shard.flush()
    finally:
        shard.close()
    return changed


def _set_death_signal() -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies; False
    where that is not available (not Linux, or prctl refused)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    if prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
        return False
    return True


def _watch_parent(fd: int) -> None:
    """Block on the parent's pipe; exit the process at end-of-file (the
    parent never writes, so EOF means its end was closed: it died)."""
    while True:
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        if not data:
            # os._exit, not sys.exit: this is not the main thread, and the
            # half-built copy must not be flushed.
            os._exit(PARENT_GONE)


def _tie_to_parent(parent_pid: int | None, pipe_fd: int | None) -> bool:
    """Arrange to die with the parent; False when it is already gone."""
    if parent_pid is not None:
        _set_death_signal()
        # The death signal only covers a parent that dies after it was set;
        # reparenting (to init or a subreaper) shows an earlier death.
        if os.getppid() != parent_pid:
            return False
    if pipe_fd is not None:
        threading.Thread(
            target=_watch_parent, args=(pipe_fd,), name="parent-watch", daemon=True
        ).start()
    return True


def main(argv: list[str]) -> int:
    """Entry point; ``argv`` is ``[SHARD_DIR, options...]``."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    parser = argparse.ArgumentParser(prog="python -m server.store._edge_optimize")
    parser.add_argument("shard_dir")
    parser.add_argument("--parent-pid", type=int, help="die when this process (our parent) dies")
    parser.add_argument("--parent-pipe", type=int, help="fd whose EOF means the parent died")
    args = parser.parse_args(argv)
    if not _tie_to_parent(args.parent_pid, args.parent_pipe):
        log.warning("parent %s is gone; not optimizing %s", args.parent_pid, args.shard_dir)
        return PARENT_GONE
    try:
        changed = optimize(args.shard_dir)
    except Exception:
        log.exception("optimize failed for %s", args.shard_dir)
        return 1
    log.info("optimized %s (changed=%s)", args.shard_dir, changed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
