"""Embedding cached faces with a Keras model, as training validates and as
serving embeds (test-time views summed)."""

from __future__ import annotations

from typing import Any

import numpy as np

from embedder.model import InferenceViews, model_inputs
from trainer.data import FaceData


def embed_faces(model: Any, data: FaceData, size: int, batch: int = 256) -> np.ndarray:
    """Embeddings (N, dim) of cached faces, no augmentation, no views."""
    out = [
        np.asarray(
            model(
                model_inputs(data.crops[i : i + batch], data.landmarks[i : i + batch], size),
                training=False,
            )
        )
        for i in range(0, len(data), batch)
    ]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def embed_views(
    model: Any, data: FaceData, size: int, views: InferenceViews, chunk: int = 512
) -> np.ndarray:
    """(N, dim) sum over ``views`` of each face's embedding, as served (not
    normalised: trainer.evaluate.unit does that)."""
    parts = []
    for start in range(0, len(data), chunk):
        part = data.subset(np.arange(start, min(start + chunk, len(data))))
        crops, landmarks = views.apply(part.crops, part.landmarks, size)
        people = np.tile(part.person, views.count)
        paths = np.tile(part.path, views.count)
        outputs = embed_faces(model, FaceData(crops, landmarks, people, paths, None), size)
        parts.append(views.sum(np.asarray(outputs)))
    return np.concatenate(parts)
