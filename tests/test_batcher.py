"""The embedder's batcher: calls queued while the model is busy run as one
batch, and every caller gets back its own rows, in its own order."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from embedder.batcher import Batcher


class _TaggingBackend:
    """Embeds a face (here: an int tag) as the row [tag, tag]; the first call
    blocks until ``release`` is set, so later calls queue up meanwhile."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[int]] = []

    def embed(self, faces: Sequence[Any]) -> np.ndarray:
        if not self.entered.is_set():
            self.entered.set()
            self.release.wait(60)
        self.batches.append(list(faces))
        return np.array([[f, f] for f in faces], np.float32).reshape(-1, 2)


def test_callers_batched_together_each_get_their_own_rows() -> None:
    backend = _TaggingBackend()
    batcher = Batcher(backend, max_batch=64, wait_ms=50.0)  # type: ignore[arg-type]
    try:
        plug = threading.Thread(target=batcher.embed, args=([-1],))
        plug.start()
        assert backend.entered.wait(60)  # the worker is blocked in the model on the plug
        requests = [[10 * i + j for j in range(i % 3 + 1)] for i in range(8)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(batcher.embed, faces) for faces in requests]
            while batcher._queue.qsize() < len(requests):
                time.sleep(0.01)  # every caller is queued behind the plug
            backend.release.set()
            results = [f.result(timeout=60) for f in futures]
        plug.join(60)
    finally:
        batcher.close()
    # The queued callers ran as one model call of all their faces.
    assert len(backend.batches) == 2
    assert sorted(backend.batches[1]) == sorted(f for faces in requests for f in faces)
    for faces, rows in zip(requests, results, strict=True):
        np.testing.assert_array_equal(rows[:, 0], faces)
