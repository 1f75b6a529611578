"""Embedding backends: turn detected, aligned faces into L2-normalised vectors.

Two backends share the :class:`EmbeddingBackend` interface:
- ``likeness-mobilenet``: the shipped MobileNetV2 + landmark model (fast);
- ``dlib-resnet``: dlib's 128-d ResNet from face_recognition_models, the
  reference our model is measured against.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from embedder.align import AlignedFace
from embedder.detect import Detection
from embedder.dlib_models import RESNET, dlib_model_path
from embedder.manifest import Manifest, load_manifest
from embedder.model import ModelConfig, build_model, mirror_faces, model_inputs

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = MODELS_DIR / "likeness-mobilenet"
DLIB_MODEL = MODELS_DIR / "dlib-resnet"


@dataclass(frozen=True)
class FaceInput:
    """One face to embed: the whole RGB image, its detection and its aligned crop."""

    image: np.ndarray
    detection: Detection
    aligned: AlignedFace


class EmbeddingBackend(Protocol):
    """Embeds faces; ``manifest`` describes the model (dim, threshold, fingerprint)."""

    manifest: Manifest

    def embed(self, faces: Sequence[FaceInput]) -> np.ndarray:
        """(len(faces), dim) float32 L2-normalised embeddings; thread-safe."""
        ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: np.ndarray = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


class MobileNetBackend:
    """The Likeness model from an artifact folder (manifest + weights).

    The network runs in one traced ``tf.function`` with a fixed signature, so
    batches of any size never retrace. With ``flip_tta`` in the manifest, each
    face is also embedded mirrored (landmarks permuted) and the two summed.
    """

    def __init__(self, folder: Path = DEFAULT_MODEL, tf_threads: int = 0) -> None:
        import tensorflow as tf

        if tf_threads:
            # RuntimeError: TF was initialised by an earlier backend in this process.
            with contextlib.suppress(RuntimeError):
                tf.config.threading.set_intra_op_parallelism_threads(tf_threads)
                tf.config.threading.set_inter_op_parallelism_threads(tf_threads)
        self.manifest = load_manifest(folder)
        cfg = ModelConfig(**self.manifest.config)
        self._config = cfg
        self._model = build_model(cfg)
        self._model.load_weights(str(folder / self.manifest.weights))
        self._flip = bool(self.manifest.extra.get("flip_tta", False))
        size = cfg.input_size
        spec = {
            "image": tf.TensorSpec([None, size, size, 3], tf.float32),
            "landmarks": tf.TensorSpec([None, 136], tf.float32),
        }
        model = self._model
        self._fn: Any = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        self.embed_arrays(np.zeros((1, size, size, 3), np.uint8), np.zeros((1, 68, 2), np.float32))

    def embed_arrays(self, crops: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Embed aligned crops (N, S, S, 3) uint8 with landmarks (N, 68, 2) in crop pixels."""
        size = self._config.input_size
        if not self._flip:
            return _normalise(np.asarray(self._fn(model_inputs(crops, landmarks, size))))
        # Faces and mirrors in one call: on a CPU a call of a few faces costs
        # mostly TensorFlow's per-op dispatch, so one call of 2N beats two of N.
        n = len(crops)
        mirrored, flipped = mirror_faces(crops, landmarks, size)
        both = np.asarray(
            self._fn(
                model_inputs(
                    np.concatenate([crops, mirrored]), np.concatenate([landmarks, flipped]), size
                )
            )
        )
        return _normalise(both[:n] + both[n:])

    def embed(self, faces: Sequence[FaceInput]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.manifest.dim), np.float32)
        crops = np.stack([f.aligned.crop for f in faces])
        marks = np.stack([f.aligned.landmarks for f in faces])
        return self.embed_arrays(crops, marks)


class DlibResnetBackend:
    """dlib's ResNet face descriptor (128-d), computed on dlib's own 150 px
    chip from the 68 landmarks, then L2-normalised for cosine similarity."""

    def __init__(self, folder: Path = DLIB_MODEL) -> None:
        import dlib

        weights = dlib_model_path(RESNET)
        self.manifest = load_manifest(folder, weights_dir=weights.parent)
        self._dlib = dlib
        self._net = dlib.face_recognition_model_v1(str(weights))
        self._lock = threading.Lock()

    def embed(self, faces: Sequence[FaceInput]) -> np.ndarray:
        dlib = self._dlib
        out = []
        for face in faces:
            left, top, right, bottom = face.detection.box
            shape = dlib.full_object_detection(
                dlib.rectangle(left, top, right - 1, bottom - 1),
                [dlib.point(round(float(x)), round(float(y))) for x, y in face.detection.landmarks],
            )
            with self._lock:
                out.append(np.array(self._net.compute_face_descriptor(face.image, shape)))
        if not out:
            return np.zeros((0, self.manifest.dim), np.float32)
        return _normalise(np.stack(out))


def load_backend(name: str, model_dir: Path | None = None, tf_threads: int = 0) -> EmbeddingBackend:
    """Construct the backend called ``name`` ("likeness-mobilenet" or "dlib-resnet")."""
    if name == "likeness-mobilenet":
        return MobileNetBackend(model_dir or DEFAULT_MODEL, tf_threads=tf_threads)
    if name == "dlib-resnet":
        return DlibResnetBackend(model_dir or DLIB_MODEL)
    raise ValueError(f"unknown backend {name!r}")
