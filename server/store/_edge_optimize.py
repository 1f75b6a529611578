"""Child process that runs qdrant-edge's optimizers on a copy of a shard.

``python -m server.store._edge_optimize SHARD_DIR``: loads the shard at
SHARD_DIR (with the config persisted there), runs ``optimize()`` (HNSW build,
merges, vacuum) until nothing is left to do, flushes and closes it. Exit
status 0 on success, 1 on failure (the reason is logged to stderr).

Why a process: ``EdgeShard.optimize()`` holds the GIL for the whole build
(minutes for a million faces), which would freeze every thread of the
registry, so :class:`server.store.edge.EdgeStore` runs it here on a copy and
swaps the result in.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("likeness.store.edge_optimize")


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


def main(argv: list[str]) -> int:
    """Entry point; ``argv`` is ``[SHARD_DIR]``."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    if len(argv) != 1:
        log.error("usage: python -m server.store._edge_optimize SHARD_DIR")
        return 2
    try:
        changed = optimize(argv[0])
    except Exception:
        log.exception("optimize failed for %s", argv[0])
        return 1
    log.info("optimized %s (changed=%s)", argv[0], changed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
