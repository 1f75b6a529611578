"""Micro-batching: concurrent requests share one model call."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import numpy as np

from embedder.backends import EmbeddingBackend, FaceInput
from likeness.errors import DeadlineExceeded


class Batcher:
    """Collects faces from concurrent callers for up to ``wait_ms`` milliseconds
    or ``max_batch`` faces, embeds them in one backend call, and hands each
    caller its rows. One worker thread owns the backend, so backends need not
    be re-entrant. ``on_batch`` is told the number of faces of each model call."""

    def __init__(
        self,
        backend: EmbeddingBackend,
        max_batch: int = 32,
        wait_ms: float = 0.0,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._on_batch = on_batch
        self._backend = backend
        self._max = max_batch
        self._wait = wait_ms / 1000.0
        self._queue: queue.Queue[tuple[Sequence[FaceInput], Future[np.ndarray]] | None] = (
            queue.Queue()
        )
        self._thread = threading.Thread(target=self._run, name="embed-batcher", daemon=True)
        self._thread.start()

    def embed(self, faces: Sequence[FaceInput], timeout_s: float | None = None) -> np.ndarray:
        """(len(faces), dim) embeddings; blocks until the batch containing them ran."""
        if not faces:
            return self._backend.embed([])
        future: Future[np.ndarray] = Future()
        self._queue.put((faces, future))
        try:
            return future.result(timeout=timeout_s)
        except TimeoutError:
            raise DeadlineExceeded("deadline passed while waiting for the model") from None

    def close(self) -> None:
        """Stop the worker after the queued work is done."""
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            count = len(item[0])
            deadline = time.monotonic() + self._wait
            stop = False
            while count < self._max:
                remaining = deadline - time.monotonic()
                try:
                    nxt = (
                        self._queue.get(timeout=max(remaining, 0))
                        if remaining > 0
                        else (self._queue.get_nowait())
                    )
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
                count += len(nxt[0])
            self._execute(batch)
            if stop:
                return

    def _execute(self, batch: list[tuple[Sequence[FaceInput], Future[np.ndarray]]]) -> None:
        faces = [f for items, _ in batch for f in items]
        if self._on_batch is not None:
            self._on_batch(len(faces))
        try:
            vectors = self._backend.embed(faces)
        except Exception as exc:  # handed to every waiting caller, re-raised there
            for _, future in batch:
                future.set_exception(exc)
            return
        start = 0
        for items, future in batch:
            future.set_result(vectors[start : start + len(items)])
            start += len(items)
